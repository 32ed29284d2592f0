"""Export a source to the core IR, and stream test digits through the IR simulator.

Accuracy is the IR's prediction (argmax of output spike counts; for the single-spike IR
the output that spikes first, as its manifest's ``outputs.rule`` says) against the labels;
agreement is against the reference's prediction on the same digits (the PyTorch model,
or the graph's reference executor for a NIR source), with the reference's own
rate-coded Bernoulli draw fed to the IR, so both see the same spikes. Without a source
the IR draws its own spikes (seeded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from esl_export.files import refuse_input
from esl_export.graph import Input
from esl_export.reference import encode_input
from esl_export.runs import RunReport, RunRequest, prepare
from esl_export.sources import Source, load_source
from esl_export.truenorth import ir as ir_mod
from esl_export.truenorth.energy import IREnergy, price_run
from esl_export.truenorth.ir import CoreIR, Geometry, IRError
from esl_export.truenorth.lower import lower_graph
from esl_export.truenorth.simulate import SimResult, simulate


def export_graph(source: Source, out_dir: str | Path, platform: str = "truenorth-merolla2014",
                 **options: Any) -> CoreIR:
    """Lower a source's graph, place it, validate and write it (``esl-export --target truenorth``)."""
    ir = lower_graph(source.graph, Geometry.from_platform(platform), **options)
    ir.meta["source"] = source.manifest_entry()
    ir.meta["backend"] = "truenorth"
    ir_mod.write(ir, out_dir)
    return ir_mod.read(out_dir)  # validated again on load


def export_model(model_path: str | Path, out_dir: str | Path, platform: str = "truenorth-merolla2014",
                 **options: Any) -> CoreIR:
    """Lower model.pt (or a NIR file), place it, validate and write it."""
    refuse_input(Path(out_dir), Path(model_path), IRError)
    return export_graph(load_source(model_path), out_dir, platform, **options)


def summary_lines(ir: CoreIR) -> list[str]:
    """Cores, utilisation, fan-out and the lower bound, per layer and in all."""
    rep, st = ir.meta["report"], ir.stats()
    if ir.meta.get("kind") == "single-spike":
        return _single_spike_lines(ir)
    lines = [f"{st['cores']} cores (lower bound {rep['lower_bound']}), crossbar utilisation "
             f"{100 * st['utilisation']:.2f}% ({st['synapses']:,} synapses), "
             f"{sum(lay['replicas'] for lay in rep['layers'])} replica neurons, 0 splitters"]
    for lay, q in zip(rep["layers"], rep["quantisation"]["layers"], strict=True):
        lines.append(f"  {lay['name']}: {lay['mode']}, {lay['cores']} cores, {lay['ternary_synapses']:,} "
                     f"ternary synapses, {lay['partial_neurons']} partial-sum neurons, {lay['replicas']} "
                     f"replicas; weight error {q['weight_rel_rms']:.3f} relative RMS, "
                     f"{100 * q['zeroed_fraction']:.1f}% of weights zeroed")
    worst = max(q["weight_rel_rms"] for q in rep["quantisation"]["layers"])
    if worst > 0.01:  # a float-trained model: the cores compute with rounded weights
        lines.append(f"  the weights were rounded to ternary (up to {worst:.3f} relative RMS error); a model "
                     f"trained with esl-train --weights ternary deploys exactly")
    return lines


def _single_spike_lines(ir: CoreIR) -> list[str]:
    rep, st, inp = ir.meta["report"], ir.stats(), ir.meta["inputs"]
    lines = [f"{st['cores']} cores (lower bound {rep['lower_bound']}), crossbar utilisation "
             f"{100 * st['utilisation']:.2f}% ({st['synapses']:,} synapses), "
             f"{sum(lay['replicas'] for lay in rep['layers'])} replica neurons, {rep['splitter_neurons']} "
             f"splitter and {rep['relay_neurons']} relay neurons, {rep['level_neurons']} level (partial-sum) "
             f"neurons; {ir.meta['timing']['ticks_per_sample']} "
             f"ticks per sample (dt {inp['dt']:.4g} tau_syn, arrival delays {inp['kernel_delays']})"]
    for lay, q in zip(rep["layers"], rep["quantisation"]["layers"], strict=True):
        extra = (f", quantum up to {lay['quantum_over_threshold_max']:.3f} of the threshold"
                 if lay["mode"] != "direct" else "")
        lines.append(f"  {lay['name']}: {lay['mode']}, {lay['cores']} cores (+{lay['relay_cores']} "
                     f"splitter/relay cores), {lay['synapses']:,} synapses, {lay['replicas']} "
                     f"replicas{extra}; "
                     f"two-level weight error "
                     f"{q['weight_rel_rms']:.3f} relative RMS ({q['integer_rel_rms']:.3f} in integers), "
                     f"{100 * q['zeroed_fraction']:.1f}% of weights zeroed")
    return lines


@dataclass
class IRRun(RunReport):
    sim: SimResult
    energies: list[IREnergy]  # one per platform priced

    @property
    def energy(self) -> IREnergy:
        return self.energies[0]

    def detail_lines(self) -> list[str]:
        return [f"SOPs: {self.sim.sops.sum() / self.samples:,.0f} per digit over "
                f"{self.sim.ticks} ticks; busiest core {self.sim.sops.max() / self.samples:,.0f}",
                *(f"energy per digit, {e.summary()}" for e in self.energies),
                f"speed: {self.sim.ticks_per_s:,.0f} network ticks/s ({self.sim.seconds:.2f} s)"]


def run_export(export: str | Path | CoreIR, samples: int = 200, *, model_path: str | Path | None = None,
               offset: int = 0, data: str | None = None, data_dir: str | None = None, seed: int = 0,
               compare: bool = True, platforms: Sequence[str] = ("truenorth-merolla2014",)) -> IRRun:
    """Stream test digits through the IR, priced on ``platforms``; compare with the source
    when it is at hand."""
    ir = export if isinstance(export, CoreIR) else ir_mod.read(export)
    n_data = int(ir.meta["inputs"]["n_data"])
    T = int(ir.meta["timing"]["T"])
    req = RunRequest(samples, offset, data, data_dir, model_path, compare, False, seed)
    x, y, _, ref = prepare(ir.meta.get("source", {}), req, n_data)
    rule = ir.meta.get("outputs", {}).get("rule", "counts")
    if ir.meta["inputs"].get("encoding") == "latency":  # the single-spike IR: the host sends spike times
        from esl_export.truenorth.single_spike import input_raster

        seq = input_raster(ir, x.reshape(samples, -1))
    elif ref is not None and ref.seq is not None:
        seq = ref.seq.reshape(ref.seq.shape[0], samples, -1)
    else:  # no reference: the IR's own seeded rate draw
        seq = encode_input(Input((n_data,), {"kind": "rate", "T": T}), x.reshape(samples, -1),
                           np.random.default_rng(seed))
    sim = simulate(ir, seq, host=ir.meta["inputs"].get("encoding") == "latency")
    return IRRun("IR simulator", "the IR", samples, sim.predictions(rule), y,
                 None if ref is None else ref.name, None if ref is None else ref.predictions,
                 sim=sim, energies=[price_run(ir, sim, p) for p in platforms])
