"""esl-energy: what a spiking network costs, in operations and joules per platform.

    esl-energy SOURCE [SOURCE ...] --platforms gpu,truenorth [--mode connections,measured,memory]
               [--compare-qnn]
               [--data mnist-embedded] [--samples 1000] [--layers] [--format table|markdown|csv|json|latex]
    esl-energy net.nir --steps 8 [--encoding direct|rate] --mode measured
    esl-energy table1 [--dense DENSE.pt] [--esl ESL.pt] [--out runs/table1] [--format ...]
    esl-energy IR_DIR [IR_DIR ...] [--platforms truenorth-merolla2014] [--samples 200]

A SOURCE is a model.pt, a NIR file from any framework (measured mode then runs the
graph's own reference executor: no PyTorch model is needed) or an export folder. A
folder is dispatched on its manifest: a TrueNorth IR (``esl-export --target truenorth``)
is priced by running test digits through its tick-accurate simulator, measured SOPs per
core plus static power per core and tick (``esl_energy/placed.py``); a NIR folder is its
graph; a Lava or ONNX folder is priced through the source its manifest records.

Every bad input ends with one line ``esl-energy: error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn

from esl_energy.counting import DIRECT_INPUT, MODES, EnergyError
from esl_energy.placed import DEFAULT_IR_PLATFORMS
from esl_energy.report import DEFAULT_DATA, FORMATS, Loaded, evaluate, parse_modes, render
from esl_export.backends import for_folder, input_errors, read_manifest
from esl_export.sources import SourceError, add_nir_options, nir_options, reopen
from esl_train.cli_common import LineParser, UsageError, add_progress, add_source, run_command, show_progress
from esl_train.distributed import resolve_device
from hw_targets import load_platforms

PROG = "esl-energy"


def fail(message: object) -> NoReturn:
    raise UsageError(message)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default="table", choices=FORMATS, help="output format (default: table)")
    p.add_argument("--targets-file", action="append", default=[], metavar="YAML",
                   help="your own platform table (repeatable); its name can then be used in --platforms")
    add_progress(p)


def _model_parser() -> argparse.ArgumentParser:
    p = LineParser(prog=PROG, description="Count the operations of spiking networks (model.pt, NIR files, "
                   "export folders) and price them per hardware platform. 'esl-energy table1 --help' for "
                   "ESL-SNNs Table 1.")
    p.add_argument("models", nargs="+", metavar="SOURCE|DIR",
                   help="model.pt written by esl-train, NIR file(s) from any framework, or folder(s) written "
                   "by esl-export (a TrueNorth IR is run and priced per core)")
    p.add_argument("--platforms", "--platform", dest="platforms", default=None,
                   help="comma-separated platform names, aliases or YAML paths (default: gpu,truenorth "
                   f"for models, {DEFAULT_IR_PLATFORMS} for IR folders)")
    add_source(p, "an export folder's model.pt or NIR file: an IR replays its rate-coded draw, a Lava or "
                  "ONNX export is priced through it (default: the path the manifest records; the sha256 "
                  "must match)")
    p.add_argument("--seed", type=int, default=0, help="seed of rate-coded input draws (default 0)")
    p.add_argument("--mode", default=None,
                   help=f"comma-separated counting modes: {', '.join(MODES)} (default: connections); "
                        "memory is the measured run with weight reads, membrane reads/writes, spike events "
                        "and static power priced too (platforms with memory prices: cmos45nm, "
                        "cmos45nm-int8, loihi, truenorth-merolla2014)")
    p.add_argument("--data", default=DEFAULT_DATA,
                   help=f"dataset for measured mode, its test split (default: {DEFAULT_DATA})")
    p.add_argument("--data-dir", default=None, help="folder of the dataset (all but mnist-embedded)")
    p.add_argument("--samples", type=int, default=None,
                   help="samples for measured mode (default: 1000) or for an IR run (default: 200)")
    p.add_argument("--batch-size", type=int, default=256, help="batch size for measured mode")
    p.add_argument("--device", default="auto",
                   help="where measured mode runs a PyTorch model: auto (CUDA when present), cpu, cuda, "
                        "cuda:N (rate draws on CUDA come from CUDA's generator)")
    p.add_argument("--direct-input", default="per-step", choices=DIRECT_INPUT,
                   help="count a layer reading direct (constant analog) input at every time step "
                   "(the graph's semantics, default) or once (as the mlp-lif PyTorch forward does)")
    p.add_argument("--layers", action="store_true", help="add the per-layer breakdown")
    p.add_argument("--compare-qnn", action="store_true",
                   help="memory mode: price the equivalent quantized ANN (ceil(log2(T+1))-bit activations, "
                        "same weights) too, and give the break-even spike rate per platform")
    add_nir_options(p)
    _common(p)
    return p


def _table1_parser() -> argparse.ArgumentParser:
    p = LineParser(prog=f"{PROG} table1", description="ESL-SNNs Table 1 (MNIST 784-800-10) beside the "
                "paper's printed values. Without --dense/--esl the missing models are trained on "
                "the embedded digits (20 epochs of 3,600 digits each; existing files in --out reused).")
    p.add_argument("--dense", default=None, metavar="DENSE.pt", help="the dense 784-800-10 model")
    p.add_argument("--esl", default=None, metavar="ESL.pt", help="the ESL (epsilon = 60) model")
    p.add_argument("--out", default="runs/table1", help="where models are trained when not given")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's 20 epochs")
    p.add_argument("--seed", type=int, default=0)
    _common(p)
    return p


def _resolve(path: str, source: str | None = None) -> str | Loaded | None:
    """What a command-line entry is priced as: a path to load (a source, or a folder holding
    its graph), the recorded source of an export, opened as that export read it, or None
    for a placed IR (run and priced per core). A folder is dispatched on its manifest."""
    from pathlib import Path

    p = Path(path)
    if not p.is_dir():
        return path
    backend = for_folder(p)
    if backend.energy == "placed":
        return None
    if backend.energy == "graph":
        return path
    entry = read_manifest(p).get("source", {})
    src = reopen(entry, source) if isinstance(entry, dict) else None
    if src is None:
        raise SourceError(f"{p}: a {backend.name} export is priced through its source, "
                          f"{entry.get('path') if isinstance(entry, dict) else None!r}, which is not there "
                          f"(name it with --source)")
    print(f"{p}: priced through its source {src.path} (sha256 checked)", file=sys.stderr)
    return Loaded(path, src.model, None, src.graph)


def _run_models(argv: list[str]) -> int:
    args = _model_parser().parse_args(argv)
    if args.source is not None and (len(args.models) != 1 or not os.path.isdir(args.models[0])):
        fail("--source names the source of one export folder")
    resolved = [_resolve(m, args.source) for m in args.models]
    placed = [r is None for r in resolved]
    if any(placed):
        if not all(placed):
            fail("give sources or TrueNorth IR folders, not both in one call")
        if args.mode is not None or args.compare_qnn:
            fail("a TrueNorth IR folder is priced by running it on its cores (SOPs per core and static "
                 "power); --mode and --compare-qnn apply to model.pt and NIR sources")
        return _run_placed(args)
    platforms = load_platforms(args.platforms or "gpu,truenorth", args.targets_file)
    modes = parse_modes(args.mode or "connections")
    results = evaluate([r for r in resolved if r is not None], platforms, modes, args.data,
                       data_dir=args.data_dir,
                       samples=1000 if args.samples is None else args.samples,
                       direct_input=args.direct_input, batch_size=args.batch_size,
                       progress=show_progress(args.progress), nir=nir_options(args), seed=args.seed,
                       device=resolve_device(args.device) if {"measured", "memory"} & set(modes) else None,
                       compare_qnn=args.compare_qnn)
    print(render(results, args.format, args.layers))
    return 0


def _run_placed(args: argparse.Namespace) -> int:
    import json

    from esl_energy.placed import placed_rows, price_placed
    from esl_energy.report import table

    platforms = load_platforms(args.platforms or DEFAULT_IR_PLATFORMS, args.targets_file)
    samples = 200 if args.samples is None else args.samples
    results = [price_placed(m, platforms, samples, model_path=args.source,
                            data=None if args.data == DEFAULT_DATA else args.data, data_dir=args.data_dir,
                            seed=args.seed)
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
                               progress=show_progress(args.progress),
                               log=lambda line: print(line, file=sys.stderr))
        paths.update({k: str(v) for k, v in trained.items()})
    rows = table1_rows(paths["dense"], paths["esl"], args.targets_file)
    print(render_table1(rows, args.format))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "table1":
        return run_command(PROG, lambda: _run_table1(argv[1:]), _errors)
    return run_command(PROG, lambda: _run_models(argv), _errors)


def _errors() -> tuple[type[BaseException], ...]:
    return (EnergyError, *input_errors())


if __name__ == "__main__":
    raise SystemExit(main())
