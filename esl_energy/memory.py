"""Memory-aware energy: operations, neuron updates, memory accesses and spike traffic of a
measured run, each priced from hw_targets; and the equivalent quantized ANN.

The model follows Lemaire et al. (ICONIP 2022, "An Analytical Estimation of Spiking Neural
Networks Energy Efficiency"): an event-driven layer, for every input event, fetches the
weight of each of the event's synapses and read-modify-writes the target neuron's
membrane; every neuron also reads and writes its membrane once per update (leak and
threshold). All counts are per sample (one inference), from the same measured run as
``MeasuredOps`` (``esl_energy.counting``).

Terms, per connection layer ``l`` (inputs ``N_in``, outputs ``N_out``, non-zero synapses
``S``; ``O`` effective synaptic ops and ``E`` input events of the run):

``synaptic``     ``O`` SOPs (event input) or MACs (analog input), priced as measured mode does.
``weight_read``  ``O`` reads of ``w`` bits from a weight memory of ``S·w/8`` bytes, where ``w``
                 is the platform's weight width plus, for a masked (sparse) layer, the bits
                 of a target index (``ceil(log2(fan-out))``; a dense layer needs none).
``state_read``,  ``O`` reads and ``O`` writes of the target membrane (``state_bits``) in a
``state_write``  state memory of ``N_out·state_bits/8`` bytes, plus, per spiking neuron
                 node, one read and one write per neuron update.
``events``       ``E`` address events into the layer, each ``ceil(log2(N_in))`` bits written to
                 and read from an event buffer of ``N_in`` addresses — or the platform's
                 ``event`` price per event where it has one. Analog inputs (direct pixels,
                 pooled spikes) are dense words of ``state_bits``.
``neuron``       neuron updates (``NeuronUpdates``), priced ``neuron_update``.
``static``       static power × the inference's time (T ticks), where the platform has both.

A term the platform does not price stays *unpriced* (``None``), never zero; a term its
table declares ``included`` (in a chip-level per-op figure) is shown as included.

The equivalent QNN (Yan et al., arXiv 2409.08290): the same network, weights and sparsity,
with ``b = ceil(log2(T + 1))``-bit activations — a neuron's activation is its spike count
over the T steps — run once. Per layer: ``A`` inputs with a non-zero count and their
``Q`` synapses: ``Q`` MACs (a b-bit activation times a weight: ``min(mac, b·ac)``, a
shift-and-add of b accumulates where the table makes that cheaper; a layer reading analog
input pays ``mac``), ``Q`` weight reads, ``Q`` accumulator read-modify-writes, one
activation (neuron update, one state read and write) per neuron, and the ``A`` non-zero
activations moved as (address, value) pairs or as a dense vector of ``b``-bit words,
whichever is fewer bits.

Break-even spike rate: the SNN's energy is ``F + λ·V`` when the events of every layer fed
by spikes (or by pooled spikes) scale by ``λ`` (its ops, weight reads, membrane accesses
and events are proportional to its input events; neuron updates, static power and a
layer reading analog input are not). With the QNN
held at its measured activity, ``λ* = (E_QNN − F)/V`` and the break-even rate is
``λ*`` times the measured rate (input events per input per step over the spike-input
layers): below it the SNN costs less.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from esl_energy.counting import (
    LIF,
    EnergyError,
    NeuronUpdates,
    OpCount,
    SingleSpikeIF,
    fan_out,
)
from esl_energy.pricing import price_kind
from esl_export.graph import Graph
from hw_targets import Platform

#: memory-mode terms, in the order they are shown
TERMS = ("synaptic", "neuron", "weight_read", "state_read", "state_write", "events", "static")
INCLUDED = "included"  # a term inside another price of the platform's table
NA = "-"  # a term a row does not have (a neuron update of a connection layer)


@dataclass(frozen=True)
class Access:
    """Accesses of one kind per sample: how many, of how many bits, to a memory of how many bytes."""

    count: float
    bits: int
    memory_bytes: float

    @property
    def total_bits(self) -> float:
        return self.count * self.bits


@dataclass(frozen=True)
class LayerTraffic:
    """What one connection layer (or one neuron node) does per sample, term by term."""

    name: str
    kind: str  # "connection" or "neurons"
    ops: float = 0.0  # synaptic operations (connection)
    op: str = "sop"  # sop, mac, or (QNN) qmac: a b-bit activation times a weight
    updates: float = 0.0  # neuron updates (neurons)
    weight_reads: Access | None = None
    state_reads: Access | None = None
    state_writes: Access | None = None
    events: Access | None = None  # written once and read once
    scales: bool = False  # SNN: proportional to the spike rate (layers fed by spikes or pooled spikes)


@dataclass(frozen=True)
class Traffic:
    """A network's per-sample traffic: its SNN run, or the equivalent QNN."""

    network: str  # "snn" or "qnn"
    layers: tuple[LayerTraffic, ...]
    steps: int
    activation_bits: int | None  # QNN: b
    spike_rate: float | None  # SNN: input events per input per step over the spike-input layers


@dataclass(frozen=True)
class TermEnergy:
    """Joules of every term (None: unpriced; ``INCLUDED``: in another price) and the total
    of the priced ones."""

    platform: str
    network: str
    terms: dict[str, float | str | None]
    layers: tuple[tuple[str, dict[str, float | str | None]], ...]
    notes: tuple[str, ...]
    counts: dict[str, dict[str, float]]  # per term: accesses (ops, updates, events) and bits moved

    @property
    def joules(self) -> float | None:
        """The priced terms' sum; None where the operations themselves are unpriced (a QNN on a
        platform with no multiply-accumulate)."""
        if self.terms["synaptic"] is None:
            return None
        return float(sum(v for v in self.terms.values() if isinstance(v, float)))

    @property
    def unpriced(self) -> list[str]:
        return [t for t, v in self.terms.items() if v is None]


def activation_bits(steps: int) -> int:
    """⌈log2(T + 1)⌉: the bits that hold a spike count of 0..T."""
    return max(1, math.ceil(math.log2(steps + 1)))


def _index_bits(n: float) -> int:
    return max(1, math.ceil(math.log2(max(2.0, n))))


def _neuron_nodes(graph: Graph) -> dict[str, int]:
    return {n: math.prod(v.shape) for n, v in graph.nodes.items() if isinstance(v, LIF | SingleSpikeIF)}


def traffic(graph: Graph, count: OpCount, weight_bits: int, state_bits: int) -> tuple[Traffic, Traffic]:
    """The SNN's measured traffic and its equivalent QNN's, from a measured count."""
    if count.mode not in ("measured", "memory") or any(lc.events is None for lc in count.layers):
        raise EnergyError("memory terms need a measured run (activity per layer)")
    T = count.steps
    b = activation_bits(T)
    conns = graph.connections()
    snn: list[LayerTraffic] = []
    qnn: list[LayerTraffic] = []
    events_in = inputs_steps = 0.0
    for lc in count.layers:
        node = conns[lc.name]
        n_in = math.prod(node.input_shape)
        n_out = math.prod(node.output_shape)
        nonzero = int(fan_out(node, "nonzero").sum())
        sparse = lc.synapses < lc.possible
        w = weight_bits + (_index_bits(lc.possible / max(1, n_in)) if sparse else 0)
        wmem = nonzero * w / 8
        smem = n_out * state_bits / 8
        spikes = lc.op == "sop"
        # what scales with the spike rate: every layer fed by spikes, pooled spikes included;
        # only a layer reading the analog input itself (direct pixels, frames) does not
        from_spikes = spikes or lc.source != graph.input
        assert lc.events is not None and lc.active_inputs is not None and lc.active_ops is not None
        if spikes:
            addr = _index_bits(n_in)
            ev = Access(lc.events, addr, n_in * addr / 8)
            events_in += lc.events
            inputs_steps += n_in * T
        else:  # analog words, dense
            ev = Access(lc.events, state_bits, n_in * state_bits / 8)
        snn.append(LayerTraffic(lc.name, "connection", ops=lc.ops, op=lc.op,
                                weight_reads=Access(lc.ops, w, wmem),
                                state_reads=Access(lc.ops, state_bits, smem),
                                state_writes=Access(lc.ops, state_bits, smem), events=ev,
                                scales=from_spikes))
        # QNN: non-zero activations as (address, value) pairs, or dense b-bit words if fewer bits
        a_bits = b if spikes else state_bits
        pair = lc.active_inputs * (_index_bits(n_in) + a_bits)
        dense = n_in * a_bits
        act = (Access(lc.active_inputs, _index_bits(n_in) + a_bits, n_in * a_bits / 8) if pair < dense
               else Access(n_in, a_bits, n_in * a_bits / 8))
        qnn.append(LayerTraffic(lc.name, "connection", ops=lc.active_ops, op="qmac" if spikes else "mac",
                                weight_reads=Access(lc.active_ops, w, wmem),
                                state_reads=Access(lc.active_ops, state_bits, smem),
                                state_writes=Access(lc.active_ops, state_bits, smem), events=act))
    updates = NeuronUpdates()(graph)
    for name, n in _neuron_nodes(graph).items():
        u = float(updates.get(name, 0))
        smem = n * state_bits / 8
        snn.append(LayerTraffic(name, "neurons", updates=u, state_reads=Access(u, state_bits, smem),
                                state_writes=Access(u, state_bits, smem)))
        qnn.append(LayerTraffic(name, "neurons", updates=float(n), state_reads=Access(n, state_bits, smem),
                                state_writes=Access(n, state_bits, smem)))
    rate = events_in / inputs_steps if inputs_steps else None
    return Traffic("snn", tuple(snn), T, None, rate), Traffic("qnn", tuple(qnn), 1, b, None)


def _priced_access(acc: Access | None, platform: Platform, which: str, term: str) -> float | str | None:
    mem = platform.memory
    if acc is None or acc.count == 0:
        return 0.0
    if mem is not None and term in mem.included:
        return INCLUDED
    table = None if mem is None else (mem.read if which == "read" else mem.write)
    if table is None:
        return None
    return acc.total_bits * table.per_bit(max(acc.memory_bytes, 1.0))


def _event_joules(acc: Access | None, platform: Platform) -> float | str | None:
    mem = platform.memory
    if acc is None or acc.count == 0:
        return 0.0
    if mem is not None and "events" in mem.included:
        return INCLUDED
    if mem is not None and mem.event_j is not None:
        return acc.count * mem.event_j
    if mem is None or mem.read is None or mem.write is None:
        return None
    size = max(acc.memory_bytes, 1.0)
    return acc.total_bits * (mem.read.per_bit(size) + mem.write.per_bit(size))


def _op_joules(layer: LayerTraffic, platform: Platform, activation: int | None) -> float | None:
    if layer.op == "qmac":
        options = [platform.energy[k].joules * n for k, n in (("mac", 1), ("ac", activation or 1))
                   if k in platform.energy]
        return layer.ops * min(options) if options else None
    kind = price_kind(platform, layer.op)  # as measured mode prices it
    return None if kind is None else layer.ops * platform.joules_per(kind)


def _add(a: float | str | None, b: float | str | None) -> float | str | None:
    """Sum of two term values: unpriced wins over included, included over a number (a
    number plus an included part is still a number: the included part is in another price)."""
    if a == NA:
        return b
    if b == NA:
        return a
    if a is None or b is None:
        return None
    if isinstance(a, str) and isinstance(b, str):
        return INCLUDED
    if isinstance(a, str):
        return b if b else INCLUDED
    if isinstance(b, str):
        return a if a else INCLUDED
    return a + b


def price_traffic(tr: Traffic, platform: Platform) -> TermEnergy:
    """Every term of ``tr`` priced on ``platform`` (see the module docstring)."""
    mem = platform.memory
    included = mem.included if mem is not None else ()
    notes: list[str] = []
    layers: list[tuple[str, dict[str, float | str | None]]] = []
    total: dict[str, float | str | None] = dict.fromkeys(TERMS, 0.0)
    nu = price_kind(platform, "neuron_update")
    for lt in tr.layers:
        row: dict[str, float | str | None] = dict.fromkeys(TERMS, NA)
        if lt.kind == "connection":
            j = _op_joules(lt, platform, tr.activation_bits)
            row["synaptic"] = j
            row["weight_read"] = _priced_access(lt.weight_reads, platform, "read", "weight_read")
            row["events"] = _event_joules(lt.events, platform)
        else:
            row["neuron"] = (INCLUDED if "neuron" in included
                             else None if nu is None else lt.updates * platform.joules_per(nu))
        row["state_read"] = _priced_access(lt.state_reads, platform, "read", "state_read")
        row["state_write"] = _priced_access(lt.state_writes, platform, "write", "state_write")
        layers.append((lt.name, row))
        for t in TERMS:
            total[t] = _add(total[t], row[t])
    if "static" in included:
        total["static"] = INCLUDED
    elif platform.static_power_w is not None and platform.tick_s is not None:
        total["static"] = platform.static_power_w * tr.steps * platform.tick_s
    else:
        total["static"] = None
    if mem is None:
        notes.append(f"{platform.name}: no memory prices in its table")
    return TermEnergy(platform.name, tr.network, total, tuple(layers), tuple(notes), counts(tr))


def counts(tr: Traffic) -> dict[str, dict[str, float]]:
    """Per term, the accesses of a sample and the bits they move (what the joules price)."""
    out: dict[str, dict[str, float]] = {t: {"count": 0.0, "bits": 0.0} for t in TERMS if t != "static"}
    for lt in tr.layers:
        out["synaptic"]["count"] += lt.ops
        out["neuron"]["count"] += lt.updates
        for term, acc in (("weight_read", lt.weight_reads), ("state_read", lt.state_reads),
                          ("state_write", lt.state_writes), ("events", lt.events)):
            if acc is not None:
                out[term]["count"] += acc.count
                out[term]["bits"] += acc.total_bits
    return out


@dataclass(frozen=True)
class BreakEven:
    """Where the SNN's energy equals its QNN's on one platform."""

    platform: str
    snn_joules: float | None
    qnn_joules: float | None
    measured_rate: float | None
    rate: float | None  # None: not computable (see why)
    why: str | None = None


def break_even(snn: Traffic, qnn: Traffic, platform: Platform) -> BreakEven:
    """The break-even spike rate of ``snn`` against ``qnn`` on ``platform``."""
    e_snn, e_qnn = price_traffic(snn, platform), price_traffic(qnn, platform)
    snn_j, qnn_j = e_snn.joules, e_qnn.joules
    if qnn_j is None:
        return BreakEven(platform.name, snn_j, None, snn.spike_rate, None,
                         f"no QNN on {platform.name}: its table prices no mac or ac")
    # a term neither network has a price for is left out of both; one priced for one only is not
    one_sided = sorted(set(e_snn.unpriced) ^ set(e_qnn.unpriced))
    if one_sided or snn_j is None:
        return BreakEven(platform.name, snn_j, qnn_j, snn.spike_rate, None,
                         f"unpriced on {platform.name} for one network only: {', '.join(one_sided)}")
    left_out = sorted(set(e_snn.unpriced) & set(e_qnn.unpriced))
    note = f"leaves out (unpriced for both): {', '.join(left_out)}" if left_out else None
    if not snn.spike_rate:
        return BreakEven(platform.name, snn_j, qnn_j, snn.spike_rate, None, "no spike-input layer")
    variable = _scaling_part(snn, platform)
    fixed = snn_j - variable
    if variable <= 0:
        return BreakEven(platform.name, snn_j, qnn_j, snn.spike_rate, None, "no cost scales with spikes")
    lam = (qnn_j - fixed) / variable
    if lam <= 0:
        return BreakEven(platform.name, snn_j, qnn_j, snn.spike_rate, 0.0,
                         "the SNN's fixed costs alone exceed the QNN's energy")
    return BreakEven(platform.name, snn_j, qnn_j, snn.spike_rate, lam * snn.spike_rate, note)


def _scaling_part(snn: Traffic, platform: Platform) -> float:
    """Joules of the spike-input connection layers (those that scale with the spike rate)."""
    only = Traffic(snn.network, tuple(lt for lt in snn.layers if lt.scales), snn.steps, None, None)
    priced = price_traffic(only, platform)  # static is priced per inference, not per spike
    return float(sum(v for t, v in priced.terms.items() if isinstance(v, float) and t != "static"))


def summarize(energies: Sequence[TermEnergy]) -> list[str]:
    """Which terms were unpriced or included, per platform (and network): one line each."""
    lines = []
    for e in energies:
        who = e.platform if e.network == "snn" else f"QNN on {e.platform}"
        if e.terms["synaptic"] is None:
            lines.append(f"{who}: not priced (its table prices no mac or ac)")
            continue
        inc = [t for t, v in e.terms.items() if v == INCLUDED]
        parts = []
        if inc:
            parts.append(f"included in its op prices: {', '.join(inc)}")
        if e.unpriced:
            parts.append(f"unpriced (no price in its table, not counted): {', '.join(e.unpriced)}")
        if parts:
            lines.append(f"{who}: " + "; ".join(parts))
    return lines
