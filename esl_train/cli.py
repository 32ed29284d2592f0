"""esl-train: train one of the paper's SNNs and write model.pt."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import torch

from esl_train.checkpoint import CheckpointError
from esl_train.cli_common import LineParser, UsageError, add_progress, one_line, show_progress
from esl_train.data import DATASETS, DataError, Splits, load_data
from esl_train.distributed import Context, DeviceError, setup, teardown
from esl_train.esl import GROW_RULES, PRUNE_RULES, ESLConfig, esl_factory
from esl_train.esl.pools import pool_size_for
from esl_train.esl.sparsifier import REDISTRIBUTE
from esl_train.models import MODEL_NAMES, ArchError, build_model
from esl_train.train import Interrupted, TrainConfig, check_outputs, run_paths, train
from hw_targets import TargetError

MLPS = ("mlp-single-spike", "mlp-lif")

#: ESL defaults: conv nets update every 1,000 steps (the paper); the MLPs once per epoch
#: (on the embedded digits 36 steps, which the paper's 1,000 would never reach), and the
#: topology freezes after 75 % of training (RigL); alpha 0.3 as in SET and RigL
CONV_T_ITER = 1000
T_END_FRACTION = 0.75
ESL_ALPHA = 0.3


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
    p = LineParser(prog="esl-train", description=__doc__)
    p.add_argument("--model", required=True, choices=MODEL_NAMES)
    p.add_argument("--out", default="model.pt", help="model file to write (default: model.pt)")
    p.add_argument("--data", default="mnist-embedded", choices=DATASETS)
    p.add_argument("--data-dir", default=None, help="folder or file of the dataset")
    p.add_argument("--limit", type=int, default=None, help="at most this many samples per split")
    p.add_argument("--frames", type=int, default=10, help="time bins for DVS data")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights, masks and batches")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run of --out")
    p.add_argument("--device", default="auto",
                   help="auto (CUDA when present), cpu, cuda or cuda:N; under torchrun each process "
                        "takes its local GPU (see esl_train/distributed.py)")
    p.add_argument("--amp", action="store_true",
                   help="mixed precision: bfloat16 autocast for the forward pass (meant for the conv models)")
    g = p.add_argument_group("architecture")
    g.add_argument("--hidden", type=_ints, default=None, help="MLP hidden sizes, e.g. 800 or 400,400")
    g.add_argument("--T", "--steps", dest="T", type=int, default=None, help="time steps (LIF models)")
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
    h.add_argument("--weights", choices=("float", "ternary"), default="float",
                   help="ternary: train through per-neuron ternary weights (±alpha, 0; straight-through "
                        "gradients), as TrueNorth-style cores hold them; model.pt stores them")
    e = p.add_argument_group(
        "ESL sparse training (on with --eps or --density)",
        "Prune the fraction alpha_t = alpha/2*(1+cos(t*pi/T_end)) of each sparse layer's active "
        "connections every T_iter optimizer steps and regrow as many, until T_end. "
        "--t-end 0 keeps the initial ER mask (static sparse training).")
    size = e.add_mutually_exclusive_group()
    size.add_argument("--eps", type=float, default=None,
                      help="Erdos-Renyi epsilon: p = eps*(n_in+n_out)/(n_in*n_out) per sparse layer")
    size.add_argument("--density", type=float, default=None,
                      help="target density of the sparse layers (one global epsilon, ERK)")
    e.add_argument("--prune", choices=PRUNE_RULES, default=None, help="prune rule (default magnitude)")
    e.add_argument("--grow", choices=GROW_RULES, default=None, help="growth rule (default gradient)")
    e.add_argument("--alpha", type=float, default=None, help=f"initial prune fraction (default {ESL_ALPHA})")
    e.add_argument("--t-iter", type=int, default=None,
                   help=f"steps between mask updates (default: {CONV_T_ITER} for conv nets, one epoch "
                        "of steps for the MLPs)")
    e.add_argument("--t-end", type=int, default=None,
                   help=f"step after which the topology is frozen (default: "
                        f"{round(100 * T_END_FRACTION)}%% of all steps)")
    e.add_argument("--sparse-layers", default=None, metavar="NAMES",
                   help="comma-separated weight names or module globs (e.g. 'layers.0' or "
                        "'features.*.conv'), 'all', or 'default' (MLP: hidden layers; conv: all "
                        "but the first and last)")
    e.add_argument("--redistribute", choices=REDISTRIBUTE, default=None,
                   help="move the regrowth budget between layers in proportion to their mean momentum "
                        "or weight magnitude (sparse momentum); default none: every layer keeps its count")
    e.add_argument("--core-aware", default=None, metavar="PLATFORM",
                   help="core-aware masks for a crossbar platform of hw_targets (e.g. truenorth): each "
                        "neuron of a sparse Linear layer reads one pool of (axons-1)//2 inputs (square "
                        "image windows for a layer reading the image), so the layer maps onto one core "
                        "per pool (see esl_train/esl/pools.py)")
    add_progress(p)
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
        amp=args.amp,
        weights=args.weights,
    )


def esl_config_from_args(args: argparse.Namespace, cfg: TrainConfig, n_train: int,
                         in_shape: tuple[int, ...] = ()) -> ESLConfig | None:
    """ESL settings from the flags (None: dense training), with the defaults filled in."""
    if args.eps is None and args.density is None:
        given = [f for f in ("prune", "grow", "alpha", "t_iter", "t_end", "sparse_layers", "core_aware",
                             "redistribute")
                 if getattr(args, f) is not None]
        if given:
            raise ValueError(f"--{given[0].replace('_', '-')} needs --eps or --density")
        return None
    steps_per_epoch = math.ceil(n_train / cfg.batch_size)
    t_iter = args.t_iter or (steps_per_epoch if args.model in MLPS else CONV_T_ITER)
    t_end = args.t_end if args.t_end is not None else round(T_END_FRACTION * cfg.epochs * steps_per_epoch)
    layers = None
    if args.sparse_layers not in (None, "default"):
        layers = [v.strip() for v in args.sparse_layers.split(",") if v.strip()]
    return ESLConfig(
        eps=args.eps, density=args.density, prune=args.prune or "magnitude", grow=args.grow or "gradient",
        alpha=ESL_ALPHA if args.alpha is None else args.alpha, t_iter=t_iter, t_end=t_end,
        sparse_layers=layers, seed=args.seed, redistribute=args.redistribute or "none",
        pool_size=None if args.core_aware is None else pool_size_for(args.core_aware),
        image=tuple(in_shape) if args.core_aware is not None and len(in_shape) == 3 else None,
    )


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(f"esl-train: error: {one_line(exc)}", file=sys.stderr)
        return 2
    ctx = Context()
    try:
        ctx = setup(args.device)  # under torchrun: joins the process group
        check_outputs(args.out)  # before the data is read or anything is trained
        data = load_data(args.data, args.data_dir, frames=args.frames, limit=args.limit)
        arch = arch_from_args(args, data)
        recipe = type(build_model(arch)).default_hparams
        cfg = config_from_args(args, recipe)
        if ctx.main:
            where = f"{ctx.world} processes on {ctx.device.type}" if ctx.distributed else str(ctx.device)
            print(f"{args.model} on {data.name}: train {len(data.train.y)}, val {len(data.val.y)}, "
                  f"test {len(data.test.y)}; {cfg.epochs} epochs, batch {cfg.batch_size}, "
                  f"seed {cfg.seed}, {where}, torch threads {torch.get_num_threads()}")
        esl = esl_config_from_args(args, cfg, len(data.train.y), data.in_shape)
        if esl is not None and not ctx.main:
            esl.verbose = False
        factory = esl_factory(esl) if esl is not None else None
        result = train(arch, data, cfg, sparsifier_factory=factory, resume=args.resume,
                       progress=show_progress(args.progress), ctx=ctx)
    except (DataError, ArchError, CheckpointError, TargetError, DeviceError, ValueError) as exc:
        if ctx.main:
            print(f"esl-train: error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted):
        if ctx.main:
            print(f"esl-train: interrupted; continue with the same command and --resume "
                  f"(state in {run_paths(args.out)['resume']})", file=sys.stderr)
        return 130
    finally:
        teardown(ctx)
    if ctx.main:
        print(f"test accuracy {result.test_acc:.4f} (best validation {result.val_acc:.4f}); "
              f"wrote {cfg.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
