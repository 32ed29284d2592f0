"""The ONNX back end: one time step of the network as an ONNX graph (opset 17) with the
membrane potentials as explicit inputs and outputs, run step by step in onnxruntime.

``esl-export SRC --target onnx`` writes a folder with ``step.onnx`` and a manifest that
lists the tensor names; ``-o NAME.onnx`` writes the bare file. The graph and its tensor
names are documented in ``esl_export.onnx_step``.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from esl_export.backends import MANIFEST, Backend, read_manifest, verified_file
from esl_export.runs import RunError, RunReport, RunRequest
from esl_export.sources import Source

FORMAT = "esl-snn/onnx-export"
VERSION = 1
ONNX_FILE = "step.onnx"


def _is_our_onnx(path: Path) -> bool:
    import onnx

    from esl_export.onnx_step import FORMAT as STEP_FORMAT

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # anything unreadable is not ours to replace
        return False
    return any(p.key == "format" and p.value == STEP_FORMAT for p in model.metadata_props)


def _export(source: Source, out: Path, args: argparse.Namespace) -> list[str]:
    import onnx

    from esl_export.files import export_folder, jsonable, sha256_file, write_file
    from esl_export.onnx_step import OPSET, lif_nodes, spikes, to_onnx, u_in, u_out

    model = to_onnx(source.graph)
    onnx.checker.check_model(model, full_check=True)
    graph = source.graph
    inp = graph.nodes[graph.input]
    lifs = lif_nodes(graph)
    line = (f"one step of {source.label} as ONNX (opset {OPSET}; inputs input {list(inp.output_shape)} + "
            f"{len(lifs)} membrane states, outputs output + spikes and states; T = "
            f"{inp.encoding.get('T')} steps per sample)")  # type: ignore[union-attr]
    if out.suffix == ".onnx":
        write_file(out, lambda tmp: onnx.save(model, str(tmp)), _is_our_onnx, "ONNX file", ValueError)
        return [f"wrote {out}: {line}"]
    with export_folder(out, MANIFEST, FORMAT, "ONNX export", ValueError) as tmp:
        onnx.save(model, str(tmp / ONNX_FILE))
        manifest = {
            "format": FORMAT, "version": VERSION, "backend": "onnx", "file": ONNX_FILE, "opset": OPSET,
            "source": source.manifest_entry(),
            "input": {"shape": list(inp.output_shape), "encoding": inp.encoding},  # type: ignore[union-attr]
            "tensors": {"inputs": ["input", *(u_in(n) for n in lifs)],
                        "outputs": ["output", *(o for n in lifs for o in (spikes(n), u_out(n)))]},
            "output_node": graph.output, "output_kind": type(graph.nodes[graph.output]).__name__,
            "files": {ONNX_FILE: sha256_file(tmp / ONNX_FILE)},
        }
        (tmp / MANIFEST).write_text(json.dumps(jsonable(manifest), indent=1) + "\n")
    return [f"wrote {out}: {out / ONNX_FILE}, {line}"]


def _run(folder: Path, req: RunRequest) -> RunReport:
    import time

    from esl_export.graph import Input
    from esl_export.onnx_step import run_steps
    from esl_export.reference import encode_input
    from esl_export.runs import prepare

    manifest = read_manifest(folder)
    path = verified_file(folder, manifest, ONNX_FILE)
    try:
        shape = tuple(int(s) for s in manifest["input"]["shape"])
        enc = dict(manifest["input"]["encoding"])
        T = int(enc["T"])
        if not shape or min(shape) < 1 or not 1 <= T <= 100_000 or enc.get("kind") not in ("direct", "rate",
                                                                                           "frames"):
            raise ValueError(enc.get("kind"))
    except (KeyError, TypeError, ValueError) as exc:
        raise RunError(f"{folder / MANIFEST}: malformed input entry ({exc})") from None
    x, y, _, ref = prepare(manifest.get("source", {}), req, math.prod(shape))
    if ref is not None and ref.seq is not None:
        seq = ref.seq
    else:
        seq = encode_input(Input(shape, enc), x, np.random.default_rng(req.seed))
    t0 = time.perf_counter()
    out = np.concatenate([run_steps(path, seq[:, i:i + 100])["output"] for i in range(0, len(x), 100)],
                         axis=1)
    seconds = time.perf_counter() - t0
    preds = out.reshape(T, len(x), -1).sum(axis=0).argmax(axis=1)
    return _OnnxReport("onnxruntime", "onnxruntime", req.samples, preds, y,
                       None if ref is None else ref.name, None if ref is None else ref.predictions,
                       f"speed: {T * len(x) / seconds:,.0f} sample-steps/s ({seconds:.2f} s, batch 100)")


@dataclass
class _OnnxReport(RunReport):
    speed: str

    def detail_lines(self) -> list[str]:
        return [self.speed]


BACKEND = Backend("onnx", "one time step as an ONNX graph with the membrane states as inputs and outputs "
                  "(-o NAME.onnx for the bare file), run by onnxruntime", (FORMAT,), _export, _run,
                  file_suffix=".onnx")
