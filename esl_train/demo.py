"""The main job (README: `make demo`): train the paper's 784-800-10 single-spike
network on the embedded MNIST digits and report its test accuracy.

Budget: the model's recipe (Adam, batch 100, learning rate 0.01 -> 0.0001
exponentially, the number of epochs in its default_hparams) on the 3,600
training digits, best validation epoch kept, tested on the 1,000 held-out
digits. Re-running continues an interrupted run, or reuses a finished one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from esl_train.checkpoint import CheckpointError
from esl_train.data import DataError, load_data
from esl_train.models import build_model
from esl_train.train import TrainConfig, train

ARCH = {"name": "mlp-single-spike", "sizes": [784, 800, 10]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="esl-demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/demo", help="folder for models and logs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    args = p.parse_args(argv)

    out = Path(args.out)
    recipe = type(build_model(ARCH)).default_hparams
    cfg = TrainConfig(
        out=str(out / "dense.pt"),
        epochs=args.epochs or recipe["epochs"],
        batch_size=recipe["batch_size"],
        lr=recipe["lr"],
        lr_final=recipe.get("lr_final"),
        lr_schedule=recipe.get("lr_schedule", "const"),
        optimizer=recipe.get("optimizer", "adam"),
        clip_grad_norm=recipe.get("clip_grad_norm"),
        weight_decay=recipe.get("weight_decay", 0.0),
        seed=args.seed,
    )
    try:
        data = load_data("mnist-embedded")
        print(f"[1/1] dense {ARCH['name']} {'-'.join(map(str, ARCH['sizes']))}: "
              f"{cfg.epochs} epochs on {len(data.train.y)} embedded digits (seed {cfg.seed})")
        try:
            result = train(ARCH, data, cfg, resume=True)
        except CheckpointError as exc:
            if "other settings" not in str(exc):
                raise
            print("earlier run used other settings; training afresh")
            result = train(ARCH, data, cfg, resume=False)
    except (DataError, CheckpointError, ValueError) as exc:
        print(f"esl-demo: error: {exc}", file=sys.stderr)
        return 2
    print(f"dense {ARCH['name']}: test accuracy {100 * result.test_acc:.2f}% on "
          f"{len(data.test.y)} held-out digits (best validation {100 * result.val_acc:.2f}%, "
          f"epoch {result.checkpoint.meta['best_epoch']}); model: {cfg.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
