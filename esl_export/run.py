"""esl-run: stream test digits through an exported network in Lava and compare it
with the PyTorch model it came from.

    esl-run DIR --samples 200 [--config floating_pt|fixed_pt]

Prints Lava's accuracy, PyTorch's accuracy on the same digits, their agreement and
the simulator's steps per second (with a progress bar while it runs). Lava is always
stopped, also on an error or Ctrl-C. Bad input gives one line
``esl-run: error: ...`` and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="esl-run", description=__doc__.splitlines()[0])
    p.add_argument("export", metavar="DIR", help="folder written by esl-export --target lava or truenorth "
                   "(a TrueNorth IR runs in its own tick-accurate simulator)")
    p.add_argument("--samples", type=int, default=200, help="test digits to stream (default 200)")
    p.add_argument("--offset", type=int, default=0, help="first test digit (default 0)")
    p.add_argument("--config", choices=("floating_pt", "fixed_pt"), default="floating_pt",
                   help="Lava run config: float, or Loihi's fixed point with 8-bit weights")
    p.add_argument("--model", default=None,
                   help="the source model.pt (default: the path recorded in the export; its sha256 "
                        "must match)")
    p.add_argument("--no-compare", action="store_true", help="do not run the PyTorch model")
    p.add_argument("--data", default=None, help="dataset (default: the one the model was trained on)")
    p.add_argument("--data-dir", default=None, help="folder or file of the dataset")
    p.add_argument("--sparse-model", choices=("fast", "stock"), default="fast",
                   help="floating_pt model of Lava's Sparse process (default: esl-snn's faster one)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from esl_export.graph import GraphError
    from esl_export.lava.artifact import ArtifactError
    from esl_export.lava.build import LavaRunError
    from esl_export.lava.runner import run_artifact
    from esl_export.truenorth.runner import is_export, run_export
    from esl_train.checkpoint import CheckpointError
    from esl_train.data import DataError

    if is_export(args.export):  # a TrueNorth core IR: its own simulator
        from esl_export.truenorth.ir import IRError

        try:
            ir_result = run_export(args.export, args.samples, model_path=args.model, offset=args.offset,
                                   data=args.data, data_dir=args.data_dir)
        except (IRError, CheckpointError, DataError) as exc:
            parser.error(" ".join(str(exc).split()))
        print(ir_result.summary())
        return 0
    try:
        result = run_artifact(args.export, args.samples, args.config, model_path=args.model,
                              compare=not args.no_compare, data=args.data, data_dir=args.data_dir,
                              offset=args.offset, progress=not args.no_progress,
                              sparse_model=args.sparse_model)
    except (ArtifactError, CheckpointError, DataError, GraphError) as exc:
        parser.error(" ".join(str(exc).split()))
    except LavaRunError as exc:  # not the input's fault: exit 1, still one line
        print(f"esl-run: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("esl-run: interrupted (Lava stopped)", file=sys.stderr)
        return 130
    print(result.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
