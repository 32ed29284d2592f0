"""Export a model.pt to the core IR, and stream test digits through the IR simulator.

Accuracy is the IR's prediction (argmax of output spike counts) against the labels;
agreement is against the PyTorch model's prediction on the same digits, with
PyTorch's own rate-coded Bernoulli draw fed to the IR, so both see the same spikes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from esl_export.files import sha256_file
from esl_export.truenorth import ir as ir_mod
from esl_export.truenorth.energy import IREnergy, price_run
from esl_export.truenorth.ir import CoreIR, Geometry, IRError
from esl_export.truenorth.lower import lower_graph
from esl_export.truenorth.simulate import SimResult, simulate


def export_model(model_path: str | Path, out_dir: str | Path, platform: str = "truenorth-merolla2014",
                 **options: Any) -> CoreIR:
    """Lower model.pt, place it, validate and write it (``esl-export --target truenorth``)."""
    from esl_export.lower import lower_file

    model, out = Path(model_path), Path(out_dir)
    if model.exists() and (out.resolve() == model.resolve() or out.resolve() in model.resolve().parents):
        raise IRError(f"{out}: would overwrite the input {model}; choose another output folder")
    graph, ckpt = lower_file(model)
    ir = lower_graph(graph, Geometry.from_platform(platform), **options)
    ir.meta["source"] = {"path": str(model), "sha256": sha256_file(model), "model": ckpt.arch.get("name"),
                         "dataset": ckpt.meta.get("dataset"), "density": ckpt.meta.get("density")}
    ir_mod.write(ir, out)
    return ir_mod.read(out)  # validated again on load


def summary_lines(ir: CoreIR) -> list[str]:
    """Cores, utilisation, fan-out and the lower bound, per layer and in all."""
    rep, st = ir.meta["report"], ir.stats()
    lines = [f"{st['cores']} cores (lower bound {rep['lower_bound']}), crossbar utilisation "
             f"{100 * st['utilisation']:.2f}% ({st['synapses']:,} synapses), "
             f"{sum(lay['replicas'] for lay in rep['layers'])} replica neurons, 0 splitters"]
    for lay, q in zip(rep["layers"], rep["quantisation"]["layers"], strict=True):
        lines.append(f"  {lay['name']}: {lay['mode']}, {lay['cores']} cores, {lay['ternary_synapses']:,} "
                     f"ternary synapses, {lay['partial_neurons']} partial-sum neurons, {lay['replicas']} "
                     f"replicas; weight error {q['weight_rel_rms']:.3f} relative RMS, "
                     f"{100 * q['zeroed_fraction']:.1f}% of weights zeroed")
    return lines


@dataclass
class IRRun:
    samples: int
    accuracy: float
    pytorch_accuracy: float | None
    agreement: float | None
    sim: SimResult
    energy: IREnergy

    def summary(self) -> str:
        lines = [f"IR simulator: accuracy {100 * self.accuracy:.2f}% on {self.samples} test digits"]
        if self.pytorch_accuracy is not None and self.agreement is not None:
            lines.append(f"PyTorch:      accuracy {100 * self.pytorch_accuracy:.2f}%; the IR agrees with "
                         f"PyTorch on {100 * self.agreement:.2f}% of the digits")
        lines.append(f"SOPs: {self.sim.sops.sum() / self.samples:,.0f} per digit over "
                     f"{self.sim.ticks} ticks; busiest core {self.sim.sops.max() / self.samples:,.0f}")
        lines.append(f"energy per digit, {self.energy.summary()}")
        lines.append(f"speed: {self.sim.ticks_per_s:,.0f} network ticks/s ({self.sim.seconds:.2f} s)")
        return "\n".join(lines)


def run_export(export: str | Path | CoreIR, samples: int = 200, *, model_path: str | Path | None = None,
               offset: int = 0, data: str | None = None, data_dir: str | None = None) -> IRRun:
    """Stream test digits through the IR; compare with the source model when it is at hand."""
    from esl_export.lava.runner import pytorch_side
    from esl_train.checkpoint import CheckpointError, load_model
    from esl_train.data import load_data

    ir = export if isinstance(export, CoreIR) else ir_mod.read(export)
    src = ir.meta.get("source", {})
    path = Path(model_path) if model_path is not None else Path(str(src.get("path", "")))
    if not path.is_file():
        raise IRError(f"{path}: the source model is needed for its rate-coded draw; pass --model")
    if src.get("sha256") and sha256_file(path) != src["sha256"]:
        raise IRError(f"{path}: not the checkpoint this export was made from (sha256 differs)")
    try:
        model, _ = load_model(path)
    except CheckpointError as exc:
        raise IRError(str(exc)) from None
    splits = load_data(data or src.get("dataset") or "mnist-embedded", data_dir)
    n = len(splits.test.y)
    if samples < 1 or offset < 0 or offset + samples > n:
        raise IRError(f"the test split has {n} samples; asked for {samples} from {offset}")
    x = splits.test.x[offset:offset + samples].numpy()
    n_data = int(ir.meta["inputs"]["n_data"])
    if int(np.prod(x.shape[1:])) != n_data:
        raise IRError(f"the test samples have {int(np.prod(x.shape[1:]))} values, the IR takes {n_data}")
    y = splits.test.y[offset:offset + samples].numpy()
    import torch

    torch.manual_seed(0)  # the rate draw repeats
    preds, seq = pytorch_side(model.eval(), x)
    assert seq is not None
    sim = simulate(ir, seq.reshape(seq.shape[0], seq.shape[1], -1))
    p = sim.predictions()
    return IRRun(samples, float(np.mean(p == y)), float(np.mean(preds == y)), float(np.mean(p == preds)), sim,
                 price_run(ir, sim))


def is_export(path: str | Path) -> bool:
    """Whether ``path`` is a folder holding a TrueNorth IR manifest."""
    import json

    try:
        return json.loads((Path(path) / ir_mod.MANIFEST).read_text()).get("format") == ir_mod.FORMAT
    except (OSError, ValueError, AttributeError):
        return False
