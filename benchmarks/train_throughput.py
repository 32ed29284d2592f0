"""Training throughput (samples/s) of the MLP models: forward + backward + optimizer step.

Each model is built from its architecture description through the model registry, fed
random pixels in [0, 1] shaped like MNIST (``[B, 1, 28, 28]``) in batches of the size its
training recipe (``default_hparams``) uses, and timed over ``--steps`` steps after
``--warmup`` untimed ones; the best of ``--repeats`` timings is reported.  A model that
cannot be built is skipped with a message.

    .venv/bin/python benchmarks/train_throughput.py
    .venv/bin/python benchmarks/train_throughput.py --models mlp-single-spike --steps 50
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import torch

from esl_train.models import build_model
from esl_train.train import TrainConfig, make_optimizer, train_step

SIZES = [784, 800, 10]
MODELS = ("mlp-single-spike", "mlp-lif")


def measure(
    model: Any, batch_size: int, steps: int, warmup: int, repeats: int, seed: int = 0
) -> tuple[float, float]:
    """Best samples/s over ``repeats`` timings of ``steps`` training steps, and the last loss."""
    hp = dict(getattr(model, "default_hparams", {}))
    opt = make_optimizer(TrainConfig(out="", epochs=1, batch_size=batch_size, lr=float(hp.get("lr", 1e-3)),
                                     optimizer=hp.get("optimizer", "adam"),
                                     weight_decay=float(hp.get("weight_decay") or 0.0)), model.parameters())
    clip = hp.get("clip_grad_norm")
    g = torch.Generator().manual_seed(seed)
    n_classes = SIZES[-1]
    batches = [
        (
            torch.rand(batch_size, 1, 28, 28, generator=g),
            torch.randint(0, n_classes, (batch_size,), generator=g),
        )
        for _ in range(4)
    ]

    def step(i: int) -> float:
        x, y = batches[i % len(batches)]
        return train_step(model, opt, x, y, clip)[1].item()

    model.train()
    loss = float("nan")
    for i in range(warmup):
        loss = step(i)
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(steps):
            loss = step(i)
        best = max(best, steps * batch_size / (time.perf_counter() - t0))
    return best, loss


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), help="registry names")
    p.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--repeats", type=int, default=3, help="timings; the best is reported")
    p.add_argument("--batch-size", type=int, default=None, help="default: the model's recipe")
    p.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: the CPUs this process may use)"
    )
    args = p.parse_args(argv)

    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rows = []
    for name in args.models:
        try:
            model = build_model({"name": name, "sizes": list(SIZES)})
        except Exception as exc:  # a model that is not there is skipped, not fatal
            print(f"skipping {name}: cannot build it ({type(exc).__name__}: {exc})", file=sys.stderr)
            continue
        hp = getattr(model, "default_hparams", {})
        bs = args.batch_size or int(hp.get("batch_size", 100))
        rate, loss = measure(model, bs, args.steps, args.warmup, args.repeats)
        rows.append((name, "-".join(map(str, SIZES)), bs, threads, rate, 1000.0 * bs / rate, loss))

    if not rows:
        print("no model could be built", file=sys.stderr)
        return 1
    head = ("model", "sizes", "batch", "threads", "samples/s", "ms/step", "loss")
    table = [(n, s, str(b), str(t), f"{r:,.0f}", f"{ms:.1f}", f"{lo:.3f}") for n, s, b, t, r, ms, lo in rows]
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
