"""The NIR back end: the lowered graph as a NIR file (nir 1.0.8) that other frameworks
read (snntorch, Norse, Sinabs, Lava-dl, SpiNNaker2 ...), run here by the graph's own
reference executor.

``esl-export SRC --target nir`` writes a folder with ``network.nir`` and a manifest;
``-o NAME.nir`` writes the bare file. The conversion and its conventions (dt, the LIF
parameters, metadata) are in ``esl_export.nir_graph``.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path

from esl_export.backends import MANIFEST, Backend, read_manifest, verified_file
from esl_export.runs import RunReport, RunRequest
from esl_export.sources import NIR_FILE, NIR_FOLDER_FORMAT, Source

VERSION = 1


def _is_our_nir(path: Path) -> bool:
    from esl_export.nir_graph import read_nir

    try:
        graph, _ = read_nir(path)
    except Exception:  # anything unreadable is not ours to replace
        return False
    return bool(graph.meta.get("nir", {}).get("ours"))


def _export(source: Source, out: Path, args: argparse.Namespace) -> list[str]:
    from esl_export.files import export_folder, jsonable, sha256_file, write_file
    from esl_export.nir_graph import DEFAULT_DT, NIRError, write_nir

    dt = args.nir_dt or source.graph.meta.get("nir", {}).get("dt") or DEFAULT_DT
    graph = source.graph
    kinds = Counter(type(n).__name__ for n in graph.nodes.values())
    what = ", ".join(f"{v} {k}" for k, v in kinds.items())
    if out.suffix == ".nir":
        write_file(out, lambda tmp: write_nir(graph, tmp, dt), _is_our_nir, "NIR file", NIRError)
        return [f"wrote {out}: NIR graph of {source.label} ({what}), one step = {dt:g} s"]
    with export_folder(out, MANIFEST, NIR_FOLDER_FORMAT, "NIR export", NIRError) as tmp:
        write_nir(graph, tmp / NIR_FILE, dt)
        manifest = {"format": NIR_FOLDER_FORMAT, "version": VERSION, "backend": "nir", "file": NIR_FILE,
                    "dt": dt, "source": source.manifest_entry(),
                    "nodes": {name: type(node).__name__ for name, node in graph.nodes.items()},
                    "files": {NIR_FILE: sha256_file(tmp / NIR_FILE)}}
        (tmp / MANIFEST).write_text(json.dumps(jsonable(manifest), indent=1) + "\n")
    return [f"wrote {out}: {out / NIR_FILE}, NIR graph of {source.label} ({what}), one step = {dt:g} s; "
            f"read it with nir.read()"]


def _run(folder: Path, req: RunRequest) -> RunReport:
    from esl_export.nir_graph import read_nir
    from esl_export.runs import graph_run, prepare

    manifest = read_manifest(folder)
    graph, _ = read_nir(verified_file(folder, manifest, NIR_FILE))
    x, y, _, ref = prepare(manifest.get("source", {}), req, math.prod(graph.nodes[graph.input].output_shape))
    own = graph_run(graph, x, req.seed, seq=None if ref is None else ref.seq)  # the reference's draw
    assert own.predictions is not None and own.name is not None
    return RunReport(f"NIR graph ({own.name.removeprefix('the ')})", "the NIR graph", req.samples,
                     own.predictions, y, None if ref is None else ref.name,
                     None if ref is None else ref.predictions)


BACKEND = Backend("nir", "a NIR graph file (-o NAME.nir for the bare file); LIF networks load in "
                  "snntorch, Norse, Sinabs and other NIR readers", (NIR_FOLDER_FORMAT,), _export, _run,
                  file_suffix=".nir", energy="graph")
