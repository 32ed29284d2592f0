"""Training throughput with 1 and N processes (torchrun, gloo on CPU, nccl on GPU), and the
time the mask broadcast takes per ESL update.

Runs the same ``esl-train`` command (the 784-800-10 LIF MLP with ESL ε = 60 on the
embedded digits, T_iter a few steps so that there are many updates to time) once as a
single process and once under ``torchrun --nproc_per_node=N``, then reads the logs:

- samples/s per epoch from the epoch rows' ``train_seconds`` (training steps only,
  mask updates included, validation excluded); the first epoch is the warm-up and is
  left out of the mean;
- per update, ``sync_seconds`` (the broadcast of rank 0's masks, weights and optimizer
  state) beside the mean time of one training step.

On a machine with C cores a fair comparison gives every run C threads in all: the single
process gets C torch threads, each of the N processes C/N.

    .venv/bin/python benchmarks/distributed.py                # 1 vs 2 processes on CPU
    .venv/bin/python benchmarks/distributed.py --device cuda --nproc 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(nproc: int, device: str, epochs: int, t_iter: int, threads: int, out: Path) -> list[dict]:
    flags = ["--model", "mlp-lif", "--eps", "60", "--epochs", str(epochs), "--t-iter", str(t_iter),
             "--t-end", str(10**9), "--device", device, "--no-progress", "--out", str(out / "model.pt")]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    if nproc == 1:
        cmd = [sys.executable, "-m", "esl_train", *flags]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "esl_train", *flags]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return json.loads((out / "model.log.json").read_text())


def summarise(rows: list[dict], n_train: int) -> dict[str, float]:
    all_epochs = [r for r in rows if r["kind"] == "epoch"]
    epochs = all_epochs[1:]  # the first is the warm-up
    steps = epochs[0]["step"] - all_epochs[0]["step"]
    step_s = statistics.mean(r["train_seconds"] for r in epochs) / steps
    syncs = [r["sync_seconds"] for r in rows if r["kind"] == "mask_update" and "sync_seconds" in r]
    return {"samples_per_s": n_train / statistics.mean(r["train_seconds"] for r in epochs),
            "step_ms": 1e3 * step_s,
            "sync_ms": 1e3 * statistics.mean(syncs) if syncs else 0.0,
            "updates": float(len([r for r in rows if r["kind"] == "mask_update"]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--t-iter", type=int, default=6)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()

    from esl_train.data import load_data

    n_train = len(load_data("mnist-embedded").train.y)
    with tempfile.TemporaryDirectory() as tmp:
        single = summarise(run(1, args.device, args.epochs, args.t_iter, args.cores, Path(tmp) / "one"),
                           n_train)
        multi = summarise(run(args.nproc, args.device, args.epochs, args.t_iter,
                              max(1, args.cores // args.nproc), Path(tmp) / "many"), n_train)
    print(f"784-800-10 LIF, ESL eps 60, {n_train} training digits, batch 100 (global), "
          f"{args.epochs - 1} timed epochs after a warm-up, device {args.device}, {args.cores} cores")
    print(f"{'processes':>10} {'samples/s':>10} {'step ms':>8} {'sync ms/update':>15} {'sync/step':>10}")
    for n, r in ((1, single), (args.nproc, multi)):
        share = r["sync_ms"] / r["step_ms"] if r["step_ms"] else 0.0
        print(f"{n:>10} {r['samples_per_s']:>10.0f} {r['step_ms']:>8.2f} {r['sync_ms']:>15.3f} "
              f"{share:>10.1%}")
    ratio = multi["samples_per_s"] / single["samples_per_s"]
    print(f"speed-up of {args.nproc} processes over 1: {ratio:.2f}x")


if __name__ == "__main__":
    main()
