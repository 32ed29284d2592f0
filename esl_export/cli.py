"""esl-export: turn a trained model.pt, or a NIR file from any framework, into a network
for one deployment target.

    esl-export SOURCE --target lava|truenorth|nir|onnx [-o OUT]

SOURCE is a model.pt written by esl-train, a NIR file (snntorch, Norse, Sinabs, ... or
esl-export --target nir) or a NIR export folder. Without -o the output goes next to
the source, named after it and the target (model.pt -> model-lava/). Targets are the
registry in ``esl_export.backends``; each adds its own options below. Bad input gives
one line ``esl-export: error: ...`` and exit status 2; an existing output is replaced
only if it is an earlier export of the same kind, and never the input.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from esl_export.backends import MANIFEST, backends, get, input_errors
from esl_export.files import check_replaceable, refuse_input
from esl_export.sources import SourceError, add_nir_options, load_source, nir_options
from esl_train.cli_common import LineParser, run_command

PROG = "esl-export"


def build_parser() -> argparse.ArgumentParser:
    p = LineParser(prog=PROG, description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("source", metavar="SOURCE", help="model.pt written by esl-train, or a NIR file")
    p.add_argument("--target", required=True, metavar="NAME",
                   help="one of: " + "; ".join(f"{b.name} ({b.help})" for b in backends().values()))
    p.add_argument("-o", "--out", default=None,
                   help="output folder (default: SOURCE's name and the target's, next to it, e.g. "
                        "model-lava/); nir and onnx also take a file name ending in .nir/.onnx")
    add_nir_options(p)
    for backend in backends().values():
        if backend.options is not None:
            backend.options(p.add_argument_group(f"{backend.name} target"))
    return p


def default_out(source: Path, target: str) -> Path:
    """``model.pt`` -> ``model-lava``, next to the source."""
    stem = source.name if source.is_dir() else source.stem
    return source.parent / f"{stem}-{target}"


def _export(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    backend = get(args.target)
    src_path = Path(args.source)
    out = Path(args.out) if args.out else default_out(src_path, backend.name)
    suffixes = {b.file_suffix for b in backends().values()} - {None}
    if out.suffix in suffixes and out.suffix != backend.file_suffix:
        raise SourceError(f"-o {out}: the {backend.name} target writes a folder"
                          f"{' or a ' + backend.file_suffix + ' file' if backend.file_suffix else ''}, "
                          f"not a {out.suffix} file")
    refuse_input(out, src_path, SourceError)
    if out.suffix != backend.file_suffix:  # a folder: refuse an unrelated one before any work
        check_replaceable(out, MANIFEST, backend.formats[0], f"{backend.name} export", SourceError)
    source = load_source(src_path, nir_options(args))
    lines = backend.export(source, out, args)
    for note in source.notes:
        lines.append(f"note: {note}")
    if out.is_dir():
        lines.append(f"run it with: esl-run {out} --samples 200")
    print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_command(PROG, lambda: _export(argv), input_errors)


if __name__ == "__main__":
    raise SystemExit(main())
