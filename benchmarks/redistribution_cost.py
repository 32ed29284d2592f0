"""Cost of a mask update with and without redistribution, as a share of a training step.

The tiny VGGSNN of ``esl-reproduce --quick`` (channels / 8, T = 2, batch 64, density 0.1,
SET pruning, random_unfired growth): per setting, median wall time of a training step and
of one mask update (``sparsifier.update(0.3)``), after 5 warm-up steps.

    .venv/bin/python benchmarks/redistribution_cost.py [--steps 25]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from esl_train.esl import ESLConfig, ESLSparsifier
from esl_train.models import build_model

ARCH = {"name": "vggsnn", "in_shape": [1, 28, 28], "num_classes": 10, "width": 0.125, "T": 2}


def measure(rule: str, steps: int) -> tuple[float, float]:
    torch.manual_seed(0)
    model = build_model(ARCH)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sp = ESLSparsifier(model, opt, ESLConfig(density=0.1, prune="set", grow="random_unfired", t_iter=10**9,
                                             t_end=None, redistribute=rule, verbose=False))
    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    y = torch.arange(64) % 10
    step_s, update_s = [], []
    for _ in range(steps + 5):
        t0 = time.perf_counter()
        loss = model.loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sp.step()
        t1 = time.perf_counter()
        sp.update(0.3)
        step_s.append(t1 - t0)
        update_s.append(time.perf_counter() - t1)
    return statistics.median(step_s[5:]), statistics.median(update_s[5:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=25)
    args = ap.parse_args()
    rows = {rule: measure(rule, args.steps) for rule in ("none", "momentum", "magnitude")}
    print(f"{'redistribute':>12} {'step ms':>8} {'update ms':>10} {'update/step':>12}")
    for rule, (step, update) in rows.items():
        print(f"{rule:>12} {1e3 * step:>8.2f} {1e3 * update:>10.2f} {update / step:>12.1%}")
    for rule in ("momentum", "magnitude"):
        extra = rows[rule][1] - rows["none"][1]
        print(f"redistribution by {rule} adds {1e3 * extra:.2f} ms per update = "
              f"{extra / rows['none'][0]:.1%} of a training step")


if __name__ == "__main__":
    main()
