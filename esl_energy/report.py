"""Counting model files, pricing them and rendering the result as a table.

``energy_report(paths, ...)`` is the one-call form (the README's main job ends with
it); ``evaluate(...)`` returns the numbers as data, ``render(...)`` formats them.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tabulate import tabulate
from tqdm.auto import tqdm

from esl_energy.activity import check_samples, record, reference_activity
from esl_energy.counting import (
    DIRECT_INPUT,
    MODES,
    Connections,
    DenseOps,
    DirectInput,
    EnergyError,
    MeasuredOps,
    OpCount,
)
from esl_energy.memory import (
    INCLUDED,
    TERMS,
    BreakEven,
    TermEnergy,
    activation_bits,
    break_even,
    price_traffic,
    summarize,
    traffic,
)
from esl_energy.pricing import Energy, price
from esl_export.graph import Graph, GraphError, SingleSpikeIF
from esl_export.lower import lower
from esl_export.nir_graph import ReadOptions
from esl_train.checkpoint import Checkpoint, load_model
from hw_targets import Platform, load_platforms

FORMATS = ("table", "markdown", "csv", "json", "latex")
_TABLEFMT = {"table": "simple", "markdown": "github", "latex": "latex_booktabs"}
DEFAULT_DATA = "mnist-embedded"


@dataclass(frozen=True)
class Loaded:
    """A source, its lowered graph, and (for a model.pt) the rebuilt model and checkpoint.
    A NIR source has no model: measured mode runs the graph's reference executor."""

    label: str
    model: torch.nn.Module | None
    checkpoint: Checkpoint | None
    graph: Graph


@dataclass(frozen=True)
class ModelEnergy:
    """One model counted in one mode and priced on each platform."""

    label: str
    arch: str
    count: OpCount
    energies: tuple[Energy, ...]
    data: str | None = None  # measured: what the samples were
    memory: tuple[TermEnergy, ...] = ()  # memory mode: the SNN's terms per platform
    qnn: tuple[TermEnergy, ...] = ()  # memory mode with compare_qnn: the equivalent QNN's
    break_even: tuple[BreakEven, ...] = ()

    def joules(self, platform: str) -> float | None:
        """The total per inference on one platform: the memory terms' sum in memory mode."""
        for te in self.memory:
            if te.platform == platform:
                return te.joules
        return next(e.joules for e in self.energies if e.platform == platform)


def load(path: str | os.PathLike[str], nir: ReadOptions | None = None) -> Loaded:
    """Load a model.pt through the one loader and lower it, or read a NIR file (or NIR
    export folder) into the graph (CheckpointError, EnergyError)."""
    from esl_export.sources import SourceError, kind_of, load_source

    try:
        if kind_of(Path(path)) != "model":
            source = load_source(path, nir)
            return Loaded(os.fspath(path), None, None, source.graph)
    except SourceError as exc:
        raise EnergyError(str(exc)) from None
    model, ckpt = load_model(Path(path))
    try:
        graph = lower(model, ckpt.masks, source=str(path))  # type: ignore[arg-type]
    except GraphError as exc:
        raise EnergyError(f"{path}: {exc}") from None
    return Loaded(os.fspath(path), model, ckpt, graph)


def load_samples(data: str = DEFAULT_DATA, data_dir: str | os.PathLike[str] | None = None,
                 samples: int = 1000) -> torch.Tensor:
    """The first ``samples`` test samples of a dataset (balanced over classes; DataError)."""
    from esl_train.data import load_data

    if samples < 1:
        raise EnergyError(f"--samples must be a positive number, got {samples}")
    return load_data(data, None if data_dir is None else Path(data_dir), limit=samples).test.x


def measure(model: torch.nn.Module | None, graph: Graph, x: torch.Tensor, *, batch_size: int = 256,
            direct_input: DirectInput = "per-step", progress: bool = False,
            label: str = "", seed: int | None = None, device: torch.device | None = None) -> OpCount:
    """Measured-mode count on samples ``x``, per sample: the model's own spikes, or with
    no model (a NIR source) the reference executor's. Rate draws are seeded with
    ``seed`` (None: the caller's torch RNG state as it is, fresh numpy entropy). The model
    runs on ``device`` (default: where it is); on CUDA its rate draws come from CUDA's
    generator, so rate-coded counts differ from the CPU's by sampling noise."""
    check_samples(graph, tuple(x.shape[1:]))
    if batch_size < 1:
        raise EnergyError(f"batch size must be positive, got {batch_size}")
    if model is None and any(isinstance(n, SingleSpikeIF) for n in graph.nodes.values()):
        raise EnergyError(f"{label or 'graph'}: measured and memory modes need the PyTorch model for a "
                          f"single-spike network (the reference executor runs step-based graphs); price its "
                          f"model.pt")
    metric = MeasuredOps(graph, direct_input)
    if seed is not None:
        torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    starts = range(0, len(x), batch_size)
    for i in tqdm(starts, desc=f"measuring {label}".strip(), unit="batch", disable=not progress,
                  leave=False):
        xb = x[i: i + batch_size]
        if model is None:
            metric(reference_activity(graph, xb, rng))
            continue
        if device is not None:
            model.to(device)
            xb = xb.to(device)
        metric({k: v.cpu() for k, v in record(model, graph, xb).items()})
    return metric.compute()


def count(loaded: Loaded, mode: str, x: torch.Tensor | None = None, *,
          direct_input: DirectInput = "per-step", batch_size: int = 256,
          progress: bool = False, seed: int | None = None, device: torch.device | None = None) -> OpCount:
    """Count one loaded model in one mode (measured needs samples ``x``)."""
    if mode == "connections":
        return Connections()(loaded.graph)
    if mode == "dense":
        return DenseOps(direct_input)(loaded.graph)
    if mode in ("measured", "memory"):
        if x is None:
            raise EnergyError(f"{mode} mode needs data (--data)")
        return measure(loaded.model, loaded.graph, x, batch_size=batch_size,
                       direct_input=direct_input, progress=progress, label=loaded.label, seed=seed,
                       device=device)
    raise EnergyError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")


def parse_modes(modes: str | Sequence[str]) -> list[str]:
    items = [m.strip() for m in modes.split(",")] if isinstance(modes, str) else list(modes)
    items = [m for m in items if m]
    if not items:
        raise EnergyError("no mode given")
    for m in items:
        if m not in MODES:
            raise EnergyError(f"unknown mode {m!r}; choose from {', '.join(MODES)}")
    return list(dict.fromkeys(items))


def evaluate(
    paths: Sequence[str | os.PathLike[str] | Loaded],
    platforms: Sequence[Platform],
    modes: Sequence[str] = ("connections",),
    data: str | torch.Tensor | None = DEFAULT_DATA,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    samples: int = 1000,
    direct_input: DirectInput = "per-step",
    batch_size: int = 256,
    progress: bool = False,
    nir: ReadOptions | None = None,
    seed: int | None = None,
    device: torch.device | None = None,
    compare_qnn: bool = False,
) -> list[ModelEnergy]:
    """Count every source (model.pt, NIR file, or one already loaded) in every mode and price
    it on every platform; memory mode adds its terms (and, with ``compare_qnn``, the
    equivalent QNN and the break-even spike rate, ``esl_energy.memory``)."""
    if direct_input not in DIRECT_INPUT:
        raise EnergyError(f"direct input must be one of {', '.join(DIRECT_INPUT)}, got {direct_input!r}")
    loaded = [p if isinstance(p, Loaded) else load(p, nir) for p in paths]
    x: torch.Tensor | None = None
    data_label: str | None = None
    if compare_qnn and "memory" not in modes:
        raise EnergyError("--compare-qnn compares under memory mode: add memory to --mode")
    if "measured" in modes or "memory" in modes:
        if data is None:
            raise EnergyError("measured mode needs data (--data)")
        if isinstance(data, torch.Tensor):
            x, data_label = data[:samples], f"{min(samples, len(data)):,} given samples"
        else:
            x = load_samples(data, data_dir, samples)
            data_label = f"{len(x):,} test samples of {data}"
        for m in loaded:
            check_samples(m.graph, tuple(x.shape[1:]), f"{data_label} for {m.label}")
    out = []
    for m in loaded:
        run: OpCount | None = None  # one measured run serves measured and memory modes
        if compare_qnn and _input_kind(m.graph) == "latency":
            raise EnergyError(f"{m.label}: --compare-qnn maps a rate-coded SNN with T steps to a QNN; "
                              f"this network is latency-coded (one spike per neuron)")
        for mode in modes:
            if mode in ("measured", "memory"):
                if run is None:
                    run = count(m, "measured", x, direct_input=direct_input, batch_size=batch_size,
                                progress=progress, seed=seed, device=device)
                c = dataclasses.replace(run, mode=mode)
            else:
                c = count(m, mode, x, direct_input=direct_input, batch_size=batch_size, progress=progress,
                          seed=seed, device=device)
            item = ModelEnergy(m.label, str(m.graph.meta.get("model", "?")), c,
                               tuple(price(c, p) for p in platforms),
                               data_label if mode in ("measured", "memory") else None)
            if mode == "memory":
                item = _with_memory(item, m.graph, platforms, compare_qnn)
            out.append(item)
    return out


def _input_kind(graph: Graph) -> str:
    return str(graph.nodes[graph.input].encoding.get("kind"))  # type: ignore[union-attr]


def _with_memory(item: ModelEnergy, graph: Graph, platforms: Sequence[Platform],
                 compare_qnn: bool) -> ModelEnergy:
    """Memory-mode terms of a measured count on every platform, and the QNN's if asked."""
    snn_terms, qnn_terms, even = [], [], []
    for p in platforms:
        word = p.memory
        wb = word.weight_bits if word is not None and word.weight_bits else 32
        sb = word.state_bits if word is not None and word.state_bits else 32
        snn, qnn = traffic(graph, item.count, wb, sb)
        snn_terms.append(price_traffic(snn, p))
        if compare_qnn:
            qnn_terms.append(price_traffic(qnn, p))
            even.append(break_even(snn, qnn, p))
    return dataclasses.replace(item, memory=tuple(snn_terms), qnn=tuple(qnn_terms), break_even=tuple(even))


# --------------------------------------------------------------------------- formatting


def fmt_ops(x: float | None) -> str:
    """635200 -> '635,200'; 1234.567 -> '1,234.57'; None -> '-'."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{round(x):,}" if float(x).is_integer() else f"{x:,.2f}"


def fmt_joules(x: float | None) -> str:
    """Three significant digits as the paper prints them: 1.13E-05."""
    return "-" if x is None else f"{x:.2E}"


def fmt_density(x: float | None) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.4g}"


def _energy_cols(platforms: Sequence[Platform]) -> list[str]:
    return [f"{p.name} (J)" for p in platforms]


def summary_rows(results: Sequence[ModelEnergy]) -> list[dict[str, Any]]:
    """One row per model and mode, raw values."""
    rows = []
    for r in results:
        c = r.count
        measured = c.mode in ("measured", "memory")
        row: dict[str, Any] = {
            "model": r.label,
            "mode": c.mode,
            "density": c.density,
            "ops": c.ops,
            "MACs": c.macs if measured else None,
            "SOPs": c.sops if measured else None,
            "neuron updates": c.neuron_updates,
        }
        row.update({f"{e.platform} (J)": r.joules(e.platform) for e in r.energies})
        rows.append(row)
    return rows


def _term(value: float | str | None) -> float | str | None:
    return "unpriced" if value is None else "incl." if value == INCLUDED else value


def memory_rows(results: Sequence[ModelEnergy]) -> list[dict[str, Any]]:
    """Memory mode: one row per model, network (SNN, and its QNN) and platform, a column per term."""
    rows = []
    for r in results:
        nets = [("SNN", r.memory)]
        if r.qnn:
            nets.append((f"QNN {_qnn_bits(r)}-bit", r.qnn))
        for net, terms in nets:
            for te in terms:
                row: dict[str, Any] = {"model": r.label, "network": net, "platform": te.platform}
                row.update({f"{t} (J)": _term(te.terms[t]) for t in TERMS})
                row["total (J)"] = te.joules
                rows.append(row)
    return rows


def _qnn_bits(r: ModelEnergy) -> int:
    return activation_bits(r.count.steps)


def memory_layer_rows(results: Sequence[ModelEnergy]) -> list[dict[str, Any]]:
    """Memory mode, per connection layer and neuron node of the SNN."""
    rows = []
    for r in results:
        for te in r.memory:
            for name, terms in te.layers:
                row: dict[str, Any] = {"model": r.label, "platform": te.platform, "layer": name}
                row.update({f"{t} (J)": _term(terms[t]) for t in TERMS if t != "static"})
                rows.append(row)
    return rows


def break_even_rows(results: Sequence[ModelEnergy]) -> list[dict[str, Any]]:
    """--compare-qnn: per model and platform, both energies and the break-even spike rate."""
    rows = []
    for r in results:
        for be in r.break_even:
            verdict = (be.why if be.rate is None else
                       ("SNN wins" if (be.measured_rate or 0) < be.rate else "QNN wins")
                       + (f"; {be.why}" if be.why else ""))
            rows.append({"model": r.label, "platform": be.platform, "T": r.count.steps,
                         "QNN bits": _qnn_bits(r), "SNN (J)": be.snn_joules, "QNN (J)": be.qnn_joules,
                         "spike rate": be.measured_rate, "break-even rate": be.rate, "verdict": verdict})
    return rows


def layer_rows(results: Sequence[ModelEnergy]) -> list[dict[str, Any]]:
    """One row per model, mode and connection layer, raw values."""
    rows = []
    for r in results:
        if r.memory:  # memory mode has its own per-layer table (memory_layer_rows)
            continue
        for i, layer in enumerate(r.count.layers):
            row: dict[str, Any] = {
                "model": r.label,
                "mode": r.count.mode,
                "layer": layer.name,
                "reads": layer.source,
                "op": layer.op,
                "synapses": layer.synapses,
                "density": layer.synapses / layer.possible if layer.possible else math.nan,
                "input activity": layer.input_activity,
                "ops": layer.ops,
            }
            row.update({f"{e.platform} (J)": e.layers[i][1] for e in r.energies})
            rows.append(row)
    return rows


def _display(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if key.endswith("(J)"):
        return fmt_joules(value)
    if key in ("density", "input activity", "accuracy", "spike rate", "break-even rate"):
        return fmt_density(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return fmt_ops(value)
    return str(value)


def table(rows: Sequence[dict[str, Any]], fmt: str) -> str:
    """Rows of raw values as a table (table, markdown, latex) or CSV."""
    if not rows:
        return ""
    headers = list(rows[0])
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(headers)
        for row in rows:
            writer.writerow(["" if row.get(h) is None else row.get(h) for h in headers])
        return buf.getvalue().rstrip("\n")
    body = [[_display(h, row.get(h)) for h in headers] for row in rows]
    return tabulate(body, headers=headers, tablefmt=_TABLEFMT[fmt], disable_numparse=True,
                    stralign="right")


def notes(results: Sequence[ModelEnergy]) -> list[str]:
    """What the numbers mean: one line per mode shown and per platform's pricing."""
    lines = []
    modes = list(dict.fromkeys(r.count.mode for r in results))
    for mode in modes:
        r = next(r for r in results if r.count.mode == mode)
        c = r.count
        if mode == "connections":
            lines.append("connections: one operation per non-zero synapse per inference "
                         "(the ESL-SNNs count; the same number of FLOPs and SOPs)")
        elif mode == "dense":
            lines.append("dense: every possible synapse at every time step of the model's encoding, "
                         f"no mask (latency coding: one step); direct input counted {c.direct_input}")
        elif mode == "measured":
            lines.append(f"measured: per sample, mean over {r.data}; effective MACs (analog input) "
                         f"and SOPs (spike input), summed over time steps; direct input counted "
                         f"{c.direct_input}")
        else:
            lines.append(f"memory: the measured run ({r.data}) with weight reads, membrane reads and "
                         "writes, spike events and static power priced as well (esl_energy/memory.py); "
                         "a platform's (J) column is the sum of the terms it prices")
            lines.extend(dict.fromkeys(line for r in results for line in summarize(r.memory + r.qnn)))
            if not any(te.terms["weight_read"] not in (None, 0.0) for r in results for te in r.memory):
                lines.append("no platform here prices memory: try --platforms cmos45nm,cmos45nm-int8,loihi,"
                             "truenorth-merolla2014")
            if any(r.break_even for r in results):
                lines.append("QNN: the same network and weights with ceil(log2(T+1))-bit activations (a "
                             "neuron's spike count), run once; break-even rate: the SNN's input events per "
                             "input per step at which both cost the same (below it the SNN wins)")
    priced: dict[str, dict[str, str]] = {}
    unpriced: set[str] = set()
    for r in results:
        for e in r.energies:
            priced.setdefault(e.platform, {}).update(dict(e.priced_as))
            if r.count.neuron_updates is not None and not e.neuron_updates_priced:
                unpriced.add(e.platform)
    for name, used in priced.items():
        how = ", ".join(f"{op} as {kind}" for op, kind in used.items())
        tail = "; neuron updates not priced (no price in its table)" if name in unpriced else ""
        lines.append(f"{name}: {how}{tail}")
    return lines


def to_json(results: Sequence[ModelEnergy], layers: bool = False) -> list[dict[str, Any]]:
    out = []
    for r in results:
        c = r.count
        item: dict[str, Any] = {
            "model": r.label, "arch": r.arch, "mode": c.mode, "steps": c.steps,
            "samples": c.samples, "data": r.data, "direct_input": c.direct_input,
            "connections": c.connections, "density": c.density, "ops": c.ops,
            "macs": c.macs, "sops": c.sops, "neuron_updates": c.neuron_updates,
            "energy": {e.platform: {"joules": r.joules(e.platform), "synaptic_joules": e.synaptic_joules,
                                    "neuron_joules": e.neuron_joules,
                                    "priced_as": dict(e.priced_as)} for e in r.energies},
        }
        if r.memory:
            item["memory"] = {te.platform: dict(te.terms) for te in r.memory}
            item["memory_counts"] = {te.platform: te.counts for te in r.memory}
            if layers:
                item["memory_layers"] = {te.platform: {name: dict(t) for name, t in te.layers}
                                         for te in r.memory}
        if r.qnn:
            item["qnn"] = {"activation_bits": _qnn_bits(r),
                           "energy": {te.platform: {"joules": te.joules, **te.terms} for te in r.qnn}}
            item["break_even"] = {be.platform: {"snn_joules": be.snn_joules, "qnn_joules": be.qnn_joules,
                                                "spike_rate": be.measured_rate, "break_even_rate": be.rate,
                                                "why": be.why} for be in r.break_even}
        if layers:
            item["layers"] = [
                {"name": lc.name, "reads": lc.source, "op": lc.op, "synapses": lc.synapses,
                 "possible": lc.possible, "ops": lc.ops, "input_activity": lc.input_activity,
                 "energy": {e.platform: e.layers[i][1] for e in r.energies}}
                for i, lc in enumerate(c.layers)
            ]
        out.append(item)
    return out


def render(results: Sequence[ModelEnergy], fmt: str = "table", layers: bool = False) -> str:
    """The results as text in one of FORMATS; per-layer rows when ``layers``."""
    if fmt not in FORMATS:
        raise EnergyError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps(to_json(results, layers), indent=2)
    summary = summary_rows(results)
    if fmt == "csv":
        if not layers:
            first = table(summary, fmt)
        else:
            rows = [{"layer": "all", **row} for row in summary] + layer_rows(results)
            keys = list(dict.fromkeys(k for row in rows for k in row))
            first = table([{k: row.get(k) for k in keys} for row in rows], fmt)
        # memory mode adds its own tables, each with its header, after a blank line
        extra = [memory_rows(results)] if any(r.memory for r in results) else []
        if extra and layers:
            extra.append(memory_layer_rows(results))
        if any(r.break_even for r in results):
            extra.append(break_even_rows(results))
        return "\n\n".join([first, *(table(rows, fmt) for rows in extra)])
    parts = [table(summary, fmt)]
    if layers and layer_rows(results):
        parts.append(table(layer_rows(results), fmt))
    if any(r.memory for r in results):
        parts.append(table(memory_rows(results), fmt))
        if layers:
            parts.append(table(memory_layer_rows(results), fmt))
    if any(r.break_even for r in results):
        parts.append(table(break_even_rows(results), fmt))
    lines = notes(results)
    if fmt == "latex":
        parts.append("\n".join(f"% {line}" for line in lines))
    elif fmt == "markdown":
        parts.append("\n".join(f"- {line}" for line in lines))
    else:
        parts.append("\n".join(f"* {line}" for line in lines))
    return "\n\n".join(parts)


def energy_report(
    paths: Sequence[str | os.PathLike[str]],
    platforms: str | Sequence[str] = "gpu,truenorth",
    modes: str | Sequence[str] = ("connections", "measured"),
    data: str | torch.Tensor | None = DEFAULT_DATA,
    *,
    samples: int = 1000,
    data_dir: str | os.PathLike[str] | None = None,
    fmt: str = "table",
    layers: bool = False,
    targets_files: Sequence[str | os.PathLike[str]] = (),
    direct_input: DirectInput = "per-step",
    batch_size: int = 256,
    progress: bool = False,
) -> str:
    """The energy table of model files, as text.

    ``paths``: model.pt files; ``platforms``: names, aliases or YAML paths
    (``"gpu,truenorth"``); ``modes``: any of connections, dense, measured;
    ``data``: a dataset name for ``esl_train.data.load_data`` (its test split, the
    first ``samples`` samples, balanced over classes) or a tensor of samples;
    only measured mode reads it. Raises CheckpointError, DataError, TargetError or
    EnergyError, each with a one-line message.
    """
    plats = load_platforms(platforms, targets_files)
    results = evaluate(list(paths), plats, parse_modes(modes), data, data_dir=data_dir,
                       samples=samples, direct_input=direct_input, batch_size=batch_size,
                       progress=progress)
    return render(results, fmt, layers)
