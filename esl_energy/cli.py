"""esl-energy: what a spiking network costs, in operations and joules per platform.

    esl-energy MODEL.pt [MODEL.pt ...] --platforms gpu,truenorth [--mode connections,measured]
               [--data mnist-embedded] [--samples 1000] [--layers] [--format table|markdown|csv|json|latex]
    esl-energy table1 [--dense DENSE.pt] [--esl ESL.pt] [--out runs/table1] [--format ...]
    esl-energy IR_DIR [IR_DIR ...] [--platforms truenorth-merolla2014] [--samples 200]

An IR_DIR (written by ``esl-export --target truenorth``) is priced by running test digits
through its tick-accurate simulator: measured SOPs per core plus static power per core
and tick (``esl_energy/placed.py``).

Every bad input ends with one line ``esl-energy: error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from esl_energy.counting import DIRECT_INPUT, MODES, EnergyError
from esl_energy.placed import DEFAULT_IR_PLATFORMS
from esl_energy.report import DEFAULT_DATA, FORMATS, evaluate, parse_modes, render
from esl_export.graph import GraphError
from esl_export.truenorth.ir import IRError
from esl_export.truenorth.runner import is_export
from esl_train.checkpoint import CheckpointError
from esl_train.data import DataError
from hw_targets import TargetError, load_platforms

PROG = "esl-energy"
#: errors that are the user's input, reported on one line
INPUT_ERRORS = (CheckpointError, DataError, TargetError, EnergyError, GraphError, IRError, ValueError,
                OSError)


class UsageError(Exception):
    """A bad command line; main() prints it on one line and returns 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def fail(message: object) -> NoReturn:
    raise UsageError(message)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default="table", choices=FORMATS, help="output format (default: table)")
    p.add_argument("--targets-file", action="append", default=[], metavar="YAML",
                   help="your own platform table (repeatable); its name can then be used in --platforms")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars (default: when stderr is a terminal)")


def _model_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Count the operations of spiking-network model files "
                "and price them per hardware platform. 'esl-energy table1 --help' for ESL-SNNs Table 1.")
    p.add_argument("models", nargs="+", metavar="MODEL.pt|IR_DIR",
                   help="model file(s) written by esl-train, or TrueNorth IR folder(s) written by "
                   "esl-export --target truenorth")
    p.add_argument("--platforms", default=None,
                   help="comma-separated platform names, aliases or YAML paths (default: gpu,truenorth "
                   f"for model files, {DEFAULT_IR_PLATFORMS} for IR folders)")
    p.add_argument("--source", default=None, metavar="MODEL.pt",
                   help="IR folders: the model.pt they were exported from, whose rate-coded draw is "
                   "replayed (default: the path the IR's manifest records)")
    p.add_argument("--mode", default="connections",
                   help=f"comma-separated counting modes: {', '.join(MODES)} (default: connections)")
    p.add_argument("--data", default=DEFAULT_DATA,
                   help=f"dataset for measured mode, its test split (default: {DEFAULT_DATA})")
    p.add_argument("--data-dir", default=None, help="folder of the dataset (all but mnist-embedded)")
    p.add_argument("--samples", type=int, default=None,
                   help="samples for measured mode (default: 1000) or for an IR run (default: 200)")
    p.add_argument("--batch-size", type=int, default=256, help="batch size for measured mode")
    p.add_argument("--direct-input", default="per-step", choices=DIRECT_INPUT,
                   help="count a layer reading direct (constant analog) input at every time step "
                   "(the graph's semantics, default) or once (as the mlp-lif PyTorch forward does)")
    p.add_argument("--layers", action="store_true", help="add the per-layer breakdown")
    _common(p)
    return p


def _table1_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=f"{PROG} table1", description="ESL-SNNs Table 1 (MNIST 784-800-10) beside the "
                "paper's printed values. Without --dense/--esl the missing models are trained on "
                "the embedded digits (20 epochs of 3,600 digits each; existing files in --out reused).")
    p.add_argument("--dense", default=None, metavar="DENSE.pt", help="the dense 784-800-10 model")
    p.add_argument("--esl", default=None, metavar="ESL.pt", help="the ESL (epsilon = 60) model")
    p.add_argument("--out", default="runs/table1", help="where models are trained when not given")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's 20 epochs")
    p.add_argument("--seed", type=int, default=0)
    _common(p)
    return p


def _progress(flag: bool | None) -> bool:
    return sys.stderr.isatty() if flag is None else flag


def _run_models(argv: list[str]) -> int:
    args = _model_parser().parse_args(argv)
    placed = [is_export(m) for m in args.models]
    if any(placed):
        if not all(placed):
            fail("give model files or TrueNorth IR folders, not both in one call")
        return _run_placed(args)
    if args.source is not None:
        fail("--source is for IR folders")
    platforms = load_platforms(args.platforms or "gpu,truenorth", args.targets_file)
    modes = parse_modes(args.mode)
    results = evaluate(args.models, platforms, modes, args.data, data_dir=args.data_dir,
                       samples=1000 if args.samples is None else args.samples,
                       direct_input=args.direct_input, batch_size=args.batch_size,
                       progress=_progress(args.progress))
    print(render(results, args.format, args.layers))
    return 0


def _run_placed(args: argparse.Namespace) -> int:
    import json

    from esl_energy.placed import placed_rows, price_placed
    from esl_energy.report import table

    platforms = load_platforms(args.platforms or DEFAULT_IR_PLATFORMS, args.targets_file)
    samples = 200 if args.samples is None else args.samples
    results = [price_placed(m, platforms, samples, model_path=args.source,
                            data=None if args.data == DEFAULT_DATA else args.data, data_dir=args.data_dir)
               for m in args.models]
    rows = placed_rows(results)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    print(table(rows, args.format))
    if args.format in ("table", "markdown"):
        mark = "*" if args.format == "table" else "-"
        for res in results:
            run = res.run
            print(f"{mark} {res.path}: IR accuracy {100 * run.accuracy:.2f}% on {run.samples} test digits"
                  + (f", PyTorch {100 * run.pytorch_accuracy:.2f}%, agreement {100 * run.agreement:.2f}%"
                     if run.agreement is not None and run.pytorch_accuracy is not None else ""))
        print(f"{mark} SOPs are measured per core by the IR simulator (partial-sum and replica neurons "
              "included); static = cores x ticks x chip power / cores per chip")
    return 0


def _run_table1(argv: list[str]) -> int:
    from esl_energy.table1 import render_table1, table1_rows, train_table1

    args = _table1_parser().parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        fail(f"--epochs must be positive, got {args.epochs}")
    load_platforms("gpu,truenorth", args.targets_file)  # bad tables fail before any training
    paths = {"dense": args.dense, "esl": args.esl}
    missing = [k for k, v in paths.items() if v is None]
    if missing:
        trained = train_table1(args.out, missing, epochs=args.epochs, seed=args.seed,
                               progress=_progress(args.progress),
                               log=lambda line: print(line, file=sys.stderr))
        paths.update({k: str(v) for k, v in trained.items()})
    rows = table1_rows(paths["dense"], paths["esl"], args.targets_file)
    print(render_table1(rows, args.format))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "table1":
            return _run_table1(argv[1:])
        return _run_models(argv)
    except (UsageError, *INPUT_ERRORS) as exc:
        line = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{PROG}: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
