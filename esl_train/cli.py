"""esl-train: train one of the paper's SNNs and write model.pt."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import torch

from esl_train.checkpoint import CheckpointError
from esl_train.data import DATASETS, DataError, Splits, load_data
from esl_train.models import MODEL_NAMES, ArchError, build_model
from esl_train.train import Interrupted, TrainConfig, run_paths, train

MLPS = ("mlp-single-spike", "mlp-lif")


def _kv(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="esl-train", description=__doc__)
    p.add_argument("--model", required=True, choices=MODEL_NAMES)
    p.add_argument("--out", default="model.pt", help="model file to write (default: model.pt)")
    p.add_argument("--data", default="mnist-embedded", choices=DATASETS)
    p.add_argument("--data-dir", default=None, help="folder or file of the dataset")
    p.add_argument("--limit", type=int, default=None, help="at most this many samples per split")
    p.add_argument("--frames", type=int, default=10, help="time bins for DVS data")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue an interrupted run of --out")
    g = p.add_argument_group("architecture")
    g.add_argument("--hidden", type=_ints, default=None, help="MLP hidden sizes, e.g. 800 or 400,400")
    g.add_argument("--T", type=int, default=None, help="time steps (LIF models)")
    g.add_argument("--width", type=float, default=None, help="channel multiplier (conv models)")
    g.add_argument("--encoding", default=None, help="input encoding (mlp-lif: direct or rate)")
    g.add_argument("--arch", type=_kv, action="append", default=[], metavar="KEY=VALUE",
                   help="any other architecture field (JSON value)")
    h = p.add_argument_group("optimisation (defaults: the model's recipe)")
    h.add_argument("--epochs", type=int, default=None)
    h.add_argument("--batch-size", type=int, default=None)
    h.add_argument("--lr", type=float, default=None)
    h.add_argument("--lr-final", type=float, default=None)
    h.add_argument("--lr-schedule", choices=("const", "exp", "cosine"), default=None)
    h.add_argument("--optimizer", choices=("adam", "sgd"), default=None)
    h.add_argument("--clip-grad-norm", type=float, default=None)
    h.add_argument("--weight-decay", type=float, default=None)
    h.add_argument("--save-every", type=int, default=50, help="steps between resume snapshots")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def arch_from_args(args: argparse.Namespace, data: Splits) -> dict[str, Any]:
    """Architecture description from the flags and the dataset's shape."""
    arch: dict[str, Any] = {"name": args.model}
    if args.model in MLPS:
        if len(data.in_shape) == 4:
            raise ArchError(f"{args.model} takes static images; {data.name} is event frames")
        arch["sizes"] = [math.prod(data.in_shape), *(args.hidden or [800]), data.num_classes]
    else:
        arch["in_shape"] = list(data.in_shape)
        arch["num_classes"] = data.num_classes
    for key in ("T", "width", "encoding"):
        if getattr(args, key) is not None:
            arch[key] = getattr(args, key)
    arch.update(dict(args.arch))
    return arch


def config_from_args(args: argparse.Namespace, recipe: dict[str, Any]) -> TrainConfig:
    def pick(name: str, default: Any = None) -> Any:
        value = getattr(args, name)
        return recipe.get(name, default) if value is None else value

    return TrainConfig(
        out=args.out,
        epochs=pick("epochs", 10),
        batch_size=pick("batch_size", 100),
        lr=pick("lr", 1e-3),
        lr_final=pick("lr_final"),
        lr_schedule=pick("lr_schedule", "const"),
        optimizer=pick("optimizer", "adam"),
        clip_grad_norm=pick("clip_grad_norm"),
        weight_decay=pick("weight_decay", 0.0),
        seed=args.seed,
        save_every=args.save_every,
        dataset=args.data,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        data = load_data(args.data, args.data_dir, frames=args.frames, limit=args.limit)
        arch = arch_from_args(args, data)
        recipe = type(build_model(arch)).default_hparams
        cfg = config_from_args(args, recipe)
        if run_paths(cfg.out)["resume"].resolve() == run_paths(cfg.out)["model"].resolve():
            raise ValueError("--out must name a file such as model.pt")
        print(f"{args.model} on {data.name}: train {len(data.train.y)}, val {len(data.val.y)}, "
              f"test {len(data.test.y)}; {cfg.epochs} epochs, batch {cfg.batch_size}, "
              f"seed {cfg.seed}, torch threads {torch.get_num_threads()}")
        result = train(arch, data, cfg, resume=args.resume, progress=not args.no_progress)
    except (DataError, ArchError, CheckpointError, ValueError) as exc:
        print(f"esl-train: error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted):
        print(f"esl-train: interrupted; continue with the same command and --resume "
              f"(state in {run_paths(args.out)['resume']})", file=sys.stderr)
        return 130
    print(f"test accuracy {result.test_acc:.4f} (best validation {result.val_acc:.4f}); "
          f"wrote {cfg.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
