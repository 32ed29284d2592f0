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

import numpy as np

from esl_export.backends import MANIFEST, Backend, read_manifest
from esl_export.runs import RunError, RunReport, RunRequest
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
    from esl_export.files import sha256_file
    from esl_export.graph import SingleSpikeIF
    from esl_export.nir_graph import read_nir
    from esl_export.reference import run
    from esl_export.runs import decode, encoded_input, graph_run, prepare

    manifest = read_manifest(folder)
    path = folder / NIR_FILE
    want = (manifest.get("files") or {}).get(NIR_FILE) if isinstance(manifest.get("files"), dict) else None
    if not path.is_file() or want is None or sha256_file(path) != want:
        raise RunError(f"{path}: missing, or changed since export (sha256 differs from the manifest)")
    graph, _ = read_nir(path)
    x, y, _, ref = prepare(manifest.get("source", {}), req, math.prod(graph.nodes[graph.input].output_shape))
    if any(isinstance(n, SingleSpikeIF) for n in graph.nodes.values()):
        title, preds = "NIR graph (discrete-time reference)", graph_run(graph, x).predictions
    else:
        seq = encoded_input(graph, x, ref, req.seed)
        title = "NIR graph (reference executor)"
        preds = np.concatenate([decode(graph, run(graph, seq[:, i:i + 100])) for i in range(0, len(x), 100)])
    assert preds is not None
    return RunReport(title, "the NIR graph", req.samples, preds, y,
                     None if ref is None else ref.name, None if ref is None else ref.predictions)


BACKEND = Backend("nir", "a NIR graph file (-o NAME.nir for the bare file); LIF networks load in "
                  "snntorch, Norse, Sinabs and other NIR readers", (NIR_FOLDER_FORMAT,), _export, _run,
                  file_suffix=".nir", energy="graph")
