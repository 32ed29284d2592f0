"""esl-run: stream test digits through an exported network on its back end and compare
it with the source it came from.

    esl-run DIR [--samples 200] [--config floating_pt|fixed_pt]

DIR is a folder written by esl-export; its manifest names the back end that runs it
(Lava's simulator, the TrueNorth core simulator, onnxruntime, or the graph's reference
executor for NIR). Prints the back end's accuracy, the source's on the same digits
(the PyTorch model, or the reference executor for a NIR source), their agreement and
the back end's own figures. Rate-coded input is drawn with --seed, so a command
repeats. Bad input gives one line ``esl-run: error: ...`` and exit status 2; a
simulator that fails gives one line and 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from esl_export.backends import backends, for_folder, input_errors
from esl_export.runs import RunRequest
from esl_train.cli_common import LineParser, add_progress, add_source, run_command, show_progress

PROG = "esl-run"


def build_parser() -> argparse.ArgumentParser:
    p = LineParser(prog=PROG, description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("export", metavar="DIR", help="folder written by esl-export (any target)")
    p.add_argument("--samples", type=int, default=200, help="test digits to stream (default 200)")
    p.add_argument("--offset", type=int, default=0, help="first test digit (default 0)")
    add_source(p, "the model.pt or NIR file the export came from (default: the path its manifest "
                  "records; the sha256 must match)")
    p.add_argument("--model", dest="source", help=argparse.SUPPRESS)  # the flag's name before 0.2
    p.add_argument("--no-compare", action="store_true", help="do not run the source")
    p.add_argument("--data", default=None, help="dataset (default: the one the source was trained on)")
    p.add_argument("--data-dir", default=None, help="folder or file of the dataset")
    p.add_argument("--seed", type=int, default=0, help="seed of the rate-coded input draw (default 0)")
    add_progress(p)
    for backend in backends().values():
        if backend.run_options is not None:
            backend.run_options(p.add_argument_group(f"{backend.name} folders"))
    return p


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    folder = Path(args.export)
    backend = for_folder(folder)
    req = RunRequest(args.samples, args.offset, args.data, args.data_dir, args.source, not args.no_compare,
                     show_progress(args.progress), args.seed, vars(args))
    print(backend.run(folder, req).summary())
    return 0


def _failures() -> tuple[type[BaseException], ...]:
    from esl_export.lava.build import LavaRunError

    return (LavaRunError,)


def main(argv: list[str] | None = None) -> int:
    return run_command(PROG, lambda: _run(argv), input_errors, failures=_failures,
                       interrupted="interrupted (the simulator was stopped)")


if __name__ == "__main__":
    raise SystemExit(main())
