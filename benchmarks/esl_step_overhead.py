"""Wall time of a training step with ESL vs dense: same model, same batch, one run.

A step is forward + backward + optimizer.step (+ sparsifier.step for ESL). ESL keeps
the weights dense tensors with zeros, so forward and backward cost the same as dense;
its overhead is the re-mask after every step and a prune/regrow update every T_iter
steps. Dense and ESL blocks of T_iter steps alternate (each ESL block ends with one
mask update), so machine noise hits both alike.

Prints: mean step time of each, their ratio (= 1 + the amortised overhead), and the
sparsifier's own cost measured directly (re-mask step, update step), amortised over
T_iter steps.

    python benchmarks/esl_step_overhead.py                       # single-spike MLP, eps 60
    python benchmarks/esl_step_overhead.py --model mlp-lif --density 0.3
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from typing import Any

import torch

from esl_train.data import load_data
from esl_train.esl import GROW_RULES, PRUNE_RULES, ESLConfig, ESLSparsifier
from esl_train.models import build_model
from esl_train.train import TrainConfig, make_optimizer, train_step

MLPS = ("mlp-single-spike", "mlp-lif")


def _setup(
    arch: dict[str, Any], recipe: dict[str, Any], seed: int
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = build_model(arch)
    cfg = TrainConfig(out="-", epochs=1, batch_size=1, lr=recipe.get("lr", 1e-3),
                      optimizer=recipe.get("optimizer", "adam"))
    return model, make_optimizer(cfg, model.parameters())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mlp-single-spike")
    p.add_argument("--arch", default="{}", help="extra architecture fields as JSON")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--eps", type=float, default=None)
    size.add_argument("--density", type=float, default=None)
    p.add_argument("--prune", choices=PRUNE_RULES, default="magnitude")
    p.add_argument("--grow", choices=GROW_RULES, default="gradient")
    p.add_argument("--t-iter", type=int, default=None,
                   help="steps between updates (default: the esl-train default: one epoch of the "
                        "embedded digits, 36 steps, for the MLPs; 1000 for conv nets)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--blocks", type=int, default=4, help="dense/ESL block pairs to time")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--json", action="store_true", help="print the result as JSON too")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    eps = args.eps if args.eps is not None or args.density is not None else 60.0

    data = load_data("mnist-embedded")
    arch = {"name": args.model, **json.loads(args.arch)}
    if args.model in MLPS:
        arch.setdefault("sizes", [784, 800, 10])
    else:
        arch.setdefault("in_shape", list(data.in_shape))
    recipe = type(build_model(arch)).default_hparams
    x, y = data.train.x[: args.batch_size], data.train.y[: args.batch_size]
    steps_per_epoch = math.ceil(len(data.train.y) / args.batch_size)
    t_iter = args.t_iter or (steps_per_epoch if args.model in MLPS else 1000)

    dense, dense_opt = _setup(arch, recipe, 0)
    sparse, sparse_opt = _setup(arch, recipe, 0)
    sp = ESLSparsifier(sparse, sparse_opt, ESLConfig(
        eps=eps if args.density is None else None, density=args.density, prune=args.prune, grow=args.grow,
        t_iter=t_iter, t_end=None, verbose=False))
    clip = recipe.get("clip_grad_norm")

    def step(model: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
        train_step(model, opt, x, y, clip)

    remask_s: list[float] = []
    update_s: list[float] = []

    def esl_step() -> None:
        step(sparse, sparse_opt)
        t0 = time.perf_counter()
        row = sp.step()
        (update_s if row else remask_s).append(time.perf_counter() - t0)

    for _ in range(2):  # warm-up (allocator, lazy init)
        step(dense, dense_opt)
        step(sparse, sparse_opt)
    sp.t = 0  # the warm-up steps above did not call sp.step(); blocks end on update steps
    dense_s, esl_s = 0.0, 0.0
    for _ in range(args.blocks):
        t0 = time.perf_counter()
        for _ in range(t_iter):
            step(dense, dense_opt)
        dense_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(t_iter):
            esl_step()
        esl_s += time.perf_counter() - t0
    n = args.blocks * t_iter
    dense_step, esl_step_t = dense_s / n, esl_s / n
    remask, update = statistics.median(remask_s), statistics.median(update_s)
    direct = ((t_iter - 1) * remask + update) / t_iter / dense_step
    active = sum(int(m.sum()) for m in sp.masks.values())
    result = {
        "model": args.model, "sparse_layers": list(sp.masks), "active": active,
        "density": {k: round(float(m.float().mean()), 4) for k, m in sp.masks.items()},
        "prune": args.prune, "grow": args.grow, "t_iter": t_iter, "batch_size": args.batch_size,
        "steps_each": n, "threads": torch.get_num_threads(),
        "dense_step_ms": 1e3 * dense_step, "esl_step_ms": 1e3 * esl_step_t,
        "ratio_esl_over_dense": esl_step_t / dense_step,
        "remask_ms": 1e3 * remask, "update_ms": 1e3 * update,
        "amortised_overhead_direct": direct,
    }
    print(f"{args.model}: {active:,} active in {', '.join(sp.masks)}; {args.prune}/{args.grow}, "
          f"T_iter {t_iter}, batch {args.batch_size}, {n} steps each, {result['threads']} threads")
    print(f"  dense step {result['dense_step_ms']:.1f} ms, ESL step {result['esl_step_ms']:.1f} ms: "
          f"ratio {result['ratio_esl_over_dense']:.3f}")
    print(f"  sparsifier alone: re-mask {result['remask_ms']:.2f} ms/step, "
          f"update {result['update_ms']:.1f} ms "
          f"every {t_iter} steps -> amortised overhead {100 * direct:.2f} % of a dense step")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
