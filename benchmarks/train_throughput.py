"""Training throughput (samples/s) of the MLP models: forward + backward + optimizer step.

Each model is built from its architecture description through the model registry, fed
the embedded MNIST training digits (``--data random``: uniform random pixels shaped like
them) in batches of the size its training recipe (``default_hparams``) uses, and timed
over ``--steps`` steps after ``--warmup`` untimed ones; the best of ``--repeats`` timings
is reported.

The single-spike model runs its layers' compiled CPU kernels (``single_spike_cpu.py``);
``--tensor-code`` adds a row that times it on the tensor code they replace, in its own
process, and checks that both trained the same numbers (the loss to all digits).

    .venv/bin/python benchmarks/train_throughput.py
    .venv/bin/python benchmarks/train_throughput.py --models mlp-single-spike --steps 50
    .venv/bin/python benchmarks/train_throughput.py --neighbours 1   # quiet, then beside a busy process

With ``--neighbours N`` every model is timed twice in one run, each in a fresh process
that picks its OpenMP wait policy as the commands do (``esl_train/openmp.py``): quiet,
then after N CPU-bound processes (a pure-Python busy loop each) have started beside it;
the slowdown and the policy each chose are printed. ``--policy default|passive`` forces
one policy for both, to compare. The loss column shows that the timings trained the same
numbers (the loss after the last step, to all digits).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from esl_train.openmp import choose_wait_policy  # noqa: E402

# a worker process (--child) chooses its policy before torch loads, as the commands do
POLICY = choose_wait_policy() if "--child" in sys.argv and "--policy" not in sys.argv else None

import torch  # noqa: E402

from esl_train.models import build_model  # noqa: E402
from esl_train.train import TrainConfig, make_optimizer, train_step  # noqa: E402

SIZES = [784, 800, 10]
MODELS = ("mlp-single-spike", "mlp-lif")


def measure(
    model: Any, batch_size: int, steps: int, warmup: int, repeats: int, seed: int = 0, data: str = "digits"
) -> tuple[float, float]:
    """Best samples/s over ``repeats`` timings of ``steps`` training steps, and the last loss."""
    hp = dict(getattr(model, "default_hparams", {}))
    opt = make_optimizer(TrainConfig(out="", epochs=1, batch_size=batch_size, lr=float(hp.get("lr", 1e-3)),
                                     optimizer=hp.get("optimizer", "adam"),
                                     weight_decay=float(hp.get("weight_decay") or 0.0)), model.parameters())
    clip = hp.get("clip_grad_norm")
    g = torch.Generator().manual_seed(seed)
    n_classes = SIZES[-1]
    if data == "digits":
        from esl_train.data import load_data

        train = load_data("mnist-embedded").train
        batches = [(train.x[i:i + batch_size], train.y[i:i + batch_size])
                   for i in range(0, len(train.y) - batch_size + 1, batch_size)]
    else:
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


def _busy() -> None:
    while True:
        pass


@contextmanager
def neighbours(n: int) -> Iterator[None]:
    """``n`` CPU-bound processes running for the duration of the block."""
    procs = [mp.get_context("spawn").Process(target=_busy, daemon=True) for _ in range(n)]
    for proc in procs:
        proc.start()
    time.sleep(0.5 if n else 0.0)  # let them reach the scheduler
    try:
        yield
    finally:
        for proc in procs:
            proc.terminate()
            proc.join()


def _child(args: argparse.Namespace) -> int:
    """Time one model in this process; print one JSON line."""
    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    if args.tensor_code:  # the single-spike layers without their compiled kernels
        from esl_train.models import single_spike_cpu

        single_spike_cpu.usable = lambda *tensors: False
    torch.manual_seed(0)
    name = args.models[0]
    model = build_model({"name": name, "sizes": list(SIZES)})
    bs = args.batch_size or int(getattr(model, "default_hparams", {}).get("batch_size", 100))
    rate, loss = measure(model, bs, args.steps, args.warmup, args.repeats, data=args.data)
    print(json.dumps({"rate": rate, "loss": loss, "batch": bs, "threads": threads,
                      "policy": os.environ.get("OMP_WAIT_POLICY", "default")}))
    return 0


def _run_child(name: str, args: argparse.Namespace, tensor_code: bool = False) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    cmd = [sys.executable, __file__, "--child", "--models", name, "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--repeats", str(args.repeats), "--data", args.data]
    if tensor_code:
        cmd.append("--tensor-code")
    if args.policy == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    if args.policy != "auto":
        cmd.append("--policy")
    for flag in ("batch_size", "threads"):
        if getattr(args, flag):
            cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


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
    p.add_argument("--neighbours", type=int, default=0,
                   help="also time each model beside this many busy processes (default 0: quiet only)")
    p.add_argument("--policy", nargs="?", const="forced", default="auto",
                   choices=("auto", "default", "passive", "forced"),
                   help="OpenMP wait policy of the timed processes: auto (as the commands choose), "
                        "default (libgomp's), passive")
    p.add_argument("--data", choices=("digits", "random"), default="digits",
                   help="the embedded MNIST training digits (default) or uniform random pixels")
    p.add_argument("--tensor-code", action="store_true",
                   help="also time the single-spike model on its tensor code (no compiled kernels)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return _child(args)

    rows = []
    for name in args.models:
        runs = [("quiet", _run_child(name, args))]
        if args.tensor_code and name == "mlp-single-spike":
            before = _run_child(name, args, tensor_code=True)
            runs.append(("quiet, tensor code", before))
            print(f"{name}: compiled kernels {runs[0][1]['rate'] / before['rate']:.2f}x the tensor code; "
                  f"same loss: {runs[0][1]['loss'] == before['loss']}", file=sys.stderr)
        if args.neighbours:
            with neighbours(args.neighbours):
                runs.append((f"+{args.neighbours} busy", _run_child(name, args)))
            quiet, busy = runs[0][1], runs[-1][1]
            print(f"{name}: {quiet['rate'] / busy['rate']:.2f}x slower beside {args.neighbours} "
                  f"busy process(es); same loss: {quiet['loss'] == busy['loss']}", file=sys.stderr)
        for where, r in runs:
            rows.append((name, where, r["policy"], r["batch"], r["threads"], r["rate"],
                         1000.0 * r["batch"] / r["rate"], r["loss"]))

    head = ("model", "load", "OpenMP wait", "batch", "threads", "samples/s", "ms/step", "loss")
    table = [(n, w, po, str(b), str(t), f"{r:,.0f}", f"{ms:.1f}", f"{lo!r}")
             for n, w, po, b, t, r, ms, lo in rows]
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
