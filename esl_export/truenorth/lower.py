"""Lowering a rate-coded LIF network onto cores: an MLP (Input → (Affine → LIF)* → Affine →
Readout) or a chain of convolutions (VGGSNN), whose every linear chain between two neuron
layers (Conv2d and AvgPool2d unrolled in torch's flatten order, pooling fused into the next
layer, as the Lava export does) becomes one sparse Affine layer placed like an MLP's.
Residual networks (two paths into one layer) are refused.

Quantisation (per neuron j of every Affine layer)
    Ternary with a per-neuron scale (TWN): ``δ_j = 0.7·mean|w_j|`` over the non-zero
    weights, ``α_j = mean |w|`` over ``|w| > δ_j``, ``q = sign(w)·[|w| > δ_j]``. The
    membrane counts in units of ``α_j / L_j``: a +1 synapse adds ``+L_j``, a −1 synapse
    ``−L_j``, where ``L_j`` is the largest level with ``Q_j = quantum_j·L_j`` (below) and
    the bias within the 9 signed bits; threshold ``floor(v_th·L/α_j) + 1`` (PyTorch's strict
    ``u > v_th`` becomes TrueNorth's ``V >= θ``), bias ``round(b·L/α_j)`` (9-bit,
    clipped). A layer whose weights are already ternary (±α per neuron) and whose
    thresholds and biases are multiples of ``α_j/L`` is represented exactly.

Neuron model
    TrueNorth's leak is linear; the paper's multiplicative ``τ`` is not expressible.
    τ = 1 (IF) is exact. τ < 1 becomes a leak toward zero with TrueNorth's leak-reversal
    flag, ``V ← V − λ·sign(V)`` with ``λ = round((1 − τ)/2 · v_th)`` in integer units:
    the decay ``(1 − τ)·|u|`` at a typical ``|u| ≈ v_th/2``. On the 784-800-10 models
    this matched the exact decay's accuracy within half a point, where a plain IF neuron
    with a floor lost 2-3 points (both measured in a float emulation with ternary
    weights, 500 test digits). Hard reset to 0. The readout becomes
    integrating neurons (no leak, linear reset, threshold ``readout_unit`` in logit
    units) whose spike counts, after ``drain`` extra ticks, are the class scores.

Biases
    A bias is a host-driven *bias line* per layer that fires during exactly the T ticks
    in which that layer sees a sample (axon type 2), so there is no leak before the
    first input arrives or after the last.

Axons
    Each (source, sign) a core needs gets an axon: type 0 for sources a neuron there
    weights +1, type 1 for −1 (an input with both signs in a core uses two axons).

Fan-in: direct or partial sums (chosen per layer, fewer cores wins)
    *Direct*: a neuron's whole fan-in fits one core; cores are filled one at a time
    with the neurons that add the fewest new axons, so neurons whose inputs overlap
    share a core (a core-aware ESL mask, ``esl-train --core-aware``, puts each neuron's
    inputs in one pool of ``(A − 1)/2`` inputs: one core per pool).
    *Partial sums*: the (source, sign) axons, sorted sign first, are cut into groups of
    ``A − 1``; in a group every neuron that has +1 synapses there gets a partial neuron
    ``p+`` (weights +L/−L), one with −1 synapses a ``p−`` (−L/+L), threshold
    ``Q_j = quantum_j·L_j`` (by default ``quantum_j = round(v_th/α_j / s)``: a spike is
    worth 1/s of a threshold, s = 2 where partial channels average fewer than
    ``DENSE_CHANNEL`` synapses and s = 1 where they are denser, whose larger per-tick
    sums would otherwise queue; on 1,000 digits s = 1 lifts the dense 784-800-10 from
    87.1 % to 90.6 % and costs the ε = 60 ESL model 1.5 points, hence the split), linear
    reset, floor 0: each spike carries Q units of the group's
    positive (``p+``) or negative (``p−``) sum, the remainder waits for later ticks.
    The final neuron has weights +Q (type 2, from ``p+``) and −Q (type 3, from ``p−``).
    Cost: one extra tick, and per-tick group sums above Q units are spread over later
    ticks (rate limit of one spike per tick).

Fan-out: replica neurons
    A neuron whose spikes feed F axons is placed F times in its core (identical
    crossbar column and parameters, so identical spikes): no extra tick, no delay to
    compensate. Inputs fan out from the host. A neuron with no consumer is not placed.

Timing: data step t is on the first layer's axons at tick t; a direct layer spikes at
the tick its inputs arrive, a partial-sum layer one tick later, and every edge has
delay 1. ``layer_offsets[k]`` is the tick of layer k's step 0.

Single-spike networks (``single_spike.py``; Mostafa 2018: non-leaky IF, exponentially
decaying synaptic current, threshold 1, one spike per neuron, latency-coded input, the
earliest output wins)
    *Grid*: one tick is one step of ``single_spike_dt`` (``--tick``, default dt = 2/15
    τ_syn; a pixel's spike at step round(t_i/dt)); ``grid steps + 2`` ticks per sample
    for 784-800-10 (27).
    *Synaptic current*: not a TrueNorth state. By tick n a spike at step m has put
    w·(1 − e^{−(n−m)dt}) on the membrane; K equal arrivals of w/K at the kernel's
    quantile delays d_k = round(−ln(1 − (k − ½)/K)/dt) (made distinct, 1..15) follow the
    same curve as a staircase, so one axon type per weight level and sign suffices. The
    host sends each pixel's spike K times on one axon (at s_i + d_k); a hidden neuron
    sends its one spike to a *splitter* (K neurons on one axon), whose spikes reach a
    *relay* neuron over K axons with the delays d_k; the relay re-emits every arrival
    (threshold 1, reset to 0), so each consumer core gets the K arrivals on one axon.
    Splitter and relay cost two ticks between layers, the same for every neuron.
    *Weights*: two magnitudes per neuron (Lloyd on |w| with 0 fixed), axon types
    +a, +b, −a, −b; ``lb`` as large as the 9 bits, the 18-bit threshold and fire-once
    allow; threshold floor(K·lb/b) + 1 (strict ``V > 1`` as ``V >= θ``).
    *Fire once*: reset mode 0 with the IR's ``reset_value`` = −(2^18 − 1) (version 4 of
    the IR; version 3 folders read with 0); ``lb`` is capped so that K × the neuron's
    positive weights stay below that distance, so no neuron can fire twice in a sample.
    *Fan-in*: a neuron whose (input, type) keys fit one core is placed whole (a core
    takes the neurons that add the fewest new axons, so an input pool shares a core); a
    wider one (the dense hidden layer, 11 gradient-grown neurons of the ESL ε = 60
    model, every output neuron: 800 inputs) sums through
    *level neurons*: its inputs, one sign and at most A per channel, drive m neurons with
    thresholds (r − ½)·Q that fire once; the final neuron adds ±Q per level spike, i.e.
    Σ ±Q·round(S_ch/Q) one tick later, with no rate limit. Q is chosen so every channel's
    whole range (K·Σ|w|) is covered with at most A levels in all (the final neuron's
    axons); the host feeds level sums one tick early (input lines n_data..2·n_data−1), and
    direct neurons of a layer with level sums get their relay arrivals one tick late, so a
    layer's neurons keep one clock.
    *Readout*: the output that spikes first, lowest index on ties (``outputs.rule`` =
    ``first-spike`` in the manifest; the simulator records each output's first tick).
    Measured (``benchmarks/truenorth_single_spike.py``; 784-800-10, the default recipe,
    20 epochs on 4,000 embedded digits; 500 test digits, dense 200; agreement with
    PyTorch; SOPs measured per core, placement overhead included):

    ===================================  =====  =====  =====  =====  =====  ==========
    model / variant                      cores  ticks  torch  IR     agree  SOPs/digit
    ===================================  =====  =====  =====  =====  =====  ==========
    ESL ε = 60, K = 8, tick 2/15 (dflt)   449    27    93.4   92.6   96.2   3.41 M
    same, tick 4/15                       449    16    93.4   90.8   95.2   2.67 M
    same, K = 4                           434    27    93.4   90.6   93.2   1.78 M
    same, K = 2                           428    27    93.4   90.2   92.4   0.84 M
    same, rate-limited partial sums       440    27    93.4   89.8   93.2   0.58 M
    same, at most 128 levels per neuron   444    27    93.4   91.8   95.2   1.97 M
    ESL ε = 60, --weights ternary         308    27    95.0   94.4   97.8   4.30 M
    ESL, --core-aware, --weights ternary   89    27    93.8   93.6   98.6   3.28 M
    dense (200 digits)                   3229    27    94.5   87.5   92.0    280 M
    dense, rate-limited partial sums     2430    27    94.5   55.0   56.0   3.02 M
    ===================================  =====  =====  =====  =====  =====  ==========

    Lower bounds: 71 (63 ternary, 35–47 for K = 2–4); the core-aware ternary model puts
    each pool of 127 inputs (two axon types each: 254 axons) on one core, so its hidden
    layer is placed whole (89 cores against 63). In a float emulation of the same
    staircase (500 digits) the kernel alone keeps 97.6 % agreement and two-level weights
    95.8 %; ternary rounding of a float model (one level) falls to 92.4 %. A ternary-
    trained model has no rounding left (two-level error 0.000) and loses only to the
    kernel and the tick. First spikes (default ESL): mean |t_IR − t_PyTorch| 0.14 τ_syn
    hidden, 0.15 output (ternary-trained 0.06, 0.10); within the window 5.9 % of hidden
    neurons change fire/no-fire (0.7 % ternary-trained, 0.6 % core-aware), 0.6 % of
    outputs. Outputs tie at the earliest tick on 4.2 % of digits, 1.0 point of the
    disagreement; breaking ties by the membrane's overshoot (a ladder of higher-threshold
    replicas) gained 0.4 point in the emulation, so it is not built. The level neurons
    dominate the SOPs (each channel's arrivals reach all m of its levels); rate-limited
    partials cut them 6x but their queues move spikes (dense: 56 % agreement).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from esl_export.graph import LIF, Affine, Graph, GraphError, Readout, SingleSpikeIF
from esl_export.truenorth.ir import (
    NO_FLOOR,
    RESET_LINEAR,
    RESET_ZERO,
    THRESHOLD_MAX,
    CoreIR,
    Geometry,
    IRError,
)

QUANTUM = 0  # default Q/L, the units one partial-sum spike carries: 0 = per neuron (below)
# auto quantum: a partial-sum spike is worth 1/2 of the threshold where partial channels are
# sparse (few synapses each: fine steps, little backlog) and a whole threshold where they are
# dense (large per-tick sums would queue behind the one-spike-per-tick limit)
SPIKES_PER_THRESHOLD = {"sparse": 2, "dense": 1}
DENSE_CHANNEL = 32  # synapses per partial channel from which a layer counts as dense


@dataclass
class Core:
    axons: list[tuple[Any, int]] = field(default_factory=list)  # (source key, axon type)
    neurons: list[dict[str, Any]] = field(default_factory=list)
    index: dict[Any, int] = field(default_factory=dict)  # source key -> axon

    def axon(self, key: Any, kind: int) -> int:
        if key not in self.index:
            self.index[key] = len(self.axons)
            self.axons.append((key, kind))
        return self.index[key]


@dataclass
class Layer:
    """A quantised Affine + neuron pair."""

    q: np.ndarray  # int8 [out, in] ternary
    scale: np.ndarray  # α_j
    threshold: np.ndarray
    bias: np.ndarray  # int
    readout: bool
    leak: np.ndarray  # int λ_j >= 0 per neuron: V ← V − λ_j·sign(V) every tick
    error: dict[str, float]
    level: np.ndarray  # L_j
    quantum: np.ndarray  # Q_j = quantum_j·L_j


def channel_fan_in(q: np.ndarray, axons: int) -> float:
    """Mean synapses per partial-sum channel if the layer were split into axon groups of
    ``axons − 1`` (source, sign) keys: synapses / (neurons × groups)."""
    keys = int((q > 0).any(0).sum() + (q < 0).any(0).sum())
    groups = max(1, math.ceil(keys / (axons - 1)))
    return float(np.count_nonzero(q)) / max(1, q.shape[0] * groups)


def quantise(aff: Affine, neuron: LIF | Readout, readout_unit: float, bits: int, quantum: int,
             axons: int = 256) -> Layer:
    w = np.asarray(aff.weight, np.float64) * aff.mask
    absw = np.abs(w)
    nz = absw > 0
    mean = np.where(nz.any(1), (absw * nz).sum(1) / np.maximum(nz.sum(1), 1), 1.0)
    keep = absw > 0.7 * mean[:, None]
    alpha = np.where(keep.any(1), (absw * keep).sum(1) / np.maximum(keep.sum(1), 1), 1.0)
    q = (np.sign(w) * keep).astype(np.int8)
    hi = (1 << (bits - 1)) - 1
    b = np.zeros(w.shape[0]) if aff.bias is None else np.asarray(aff.bias, np.float64)
    unit = readout_unit if isinstance(neuron, Readout) else neuron.v_th  # threshold, real units
    spt = SPIKES_PER_THRESHOLD["dense" if channel_fan_in(q, axons) >= DENSE_CHANNEL else "sparse"]
    qu = (np.full(len(alpha), quantum) if quantum > 0 else np.clip(np.round(unit / alpha / spt), 1, hi))
    # L_j: the largest ±1 weight with Q_j = quantum_j·L_j and the bias both in the weight bits
    L = np.floor(hi / qu)
    L = np.maximum(1, np.minimum(L, np.floor(hi * alpha / np.maximum(np.abs(b), 1e-300)))).astype(np.int64)
    k = L / alpha  # integer units per real unit, per neuron
    bias = np.clip(np.round(b * k), -hi - 1, hi).astype(np.int64)
    if isinstance(neuron, Readout):
        thr = np.maximum(1, np.round(readout_unit * k)).astype(np.int64)
    else:
        thr = (np.floor(neuron.v_th * k) + 1).astype(np.int64)
    err = q * alpha[:, None] - w
    error = {"weight_rel_rms": float(np.sqrt((err ** 2).sum() / max((w ** 2).sum(), 1e-300))),
             "zeroed_fraction": float((nz & ~keep).sum() / max(nz.sum(), 1)),
             "bias_max_abs": float(np.abs(bias / k - b).max())}
    decay = 0.0 if isinstance(neuron, Readout) else (1.0 - neuron.tau) / 2.0 * neuron.v_th
    leak = np.round(decay * k).astype(np.int64)
    error["level_min"], error["level_max"] = int(L.min()), int(L.max())
    return Layer(q, alpha, thr, bias, isinstance(neuron, Readout), leak, error, L, qu.astype(np.int64) * L)


def _keys(q_row: np.ndarray, src: list[Any]) -> list[tuple[Any, int]]:
    """(source key, axon type) a neuron needs: type 0 for +1 synapses, 1 for −1."""
    idx = np.flatnonzero(q_row)
    return [((src[i], 0 if q_row[i] > 0 else 1), 0 if q_row[i] > 0 else 1) for i in idx]


def _main_neuron(layer: Layer, j: int, weights: list[int], dest: list[Any]) -> dict[str, Any]:
    thr = int(layer.threshold[j])
    return {"role": "main", "j": j, "w": weights, "thr": thr,
            "reset": RESET_LINEAR if layer.readout else RESET_ZERO,
            "floor": NO_FLOOR, "leak": -int(layer.leak[j]), "dest": dest}


def pack_cores(keys: list[list[Any]], slots: list[int], g: Geometry) -> list[list[int]]:
    """Greedy direct placement shared by the LIF and single-spike lowerings: rows (neurons)
    with their distinct axon keys and output slots (replicas) go into cores one core at a
    time. A core opens with the unplaced row of widest fan-in; then, while anything fits,
    it takes the row that adds the fewest new axons (ties: the widest, then the lowest
    index). Returns the rows of each core in the order taken. Every row must fit a core."""
    if not keys:
        return []
    kid = {k: i for i, k in enumerate(dict.fromkeys(k for ks in keys for k in ks))}
    rows = np.repeat(np.arange(len(keys)), [len(ks) for ks in keys])
    cols = np.fromiter((kid[k] for ks in keys for k in ks), np.int64, len(rows))
    # row × axon key, sparse: a conv layer's neurons each touch a small window of keys
    use = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(keys), len(kid)))
    use_cols = use.tocsc()
    width = np.asarray(use.sum(1), np.float32).ravel()
    n_slots = np.asarray(slots)
    left = np.ones(len(keys), bool)
    groups: list[list[int]] = []
    while left.any():
        have, n_have, free = np.zeros(len(kid), bool), 0, g.neurons
        new = width.copy()  # axons each row would add to this core
        group: list[int] = []
        while True:
            fits = left & (n_have + new <= g.axons) & (n_slots <= free)
            if not fits.any():
                break
            pool = fits if not group else fits & (new == new[fits].min())
            r = int(np.argmax(np.where(pool, width, -1)))
            left[r] = False
            got = use.indices[use.indptr[r]:use.indptr[r + 1]]
            added = got[~have[got]]
            if len(added):
                have[added] = True
                n_have += len(added)
                new -= np.asarray(use_cols[:, added].sum(1), np.float32).ravel()
            free -= int(n_slots[r])
            group.append(r)
        groups.append(group)
    return groups


def place_direct(layer: Layer, src: list[Any], slots: list[list[Any]], g: Geometry,
                 bias_key: Any) -> list[Core] | None:
    """Whole fan-in per core, filled by ``pack_cores``. None if some neuron does not fit.
    Neurons whose inputs overlap (the same input pool of a core-aware mask) thus share a
    core, and a neuron from elsewhere joins only when nothing closer fits."""
    n_out = layer.q.shape[0]
    need = [_keys(layer.q[j], src) + ([((bias_key,), 2)] if layer.bias[j] else []) for j in range(n_out)]
    live = [j for j in range(n_out) if slots[j]]
    if any(len(need[j]) > g.axons or len(slots[j]) > g.neurons for j in live):
        return None
    cores: list[Core] = []
    for group in pack_cores([[k for k, _ in need[j]] for j in live], [len(slots[j]) for j in live], g):
        core = Core()
        for r in group:
            j = live[r]
            for key, kind in need[j]:
                core.axon(key, kind)
            w = [int(layer.level[j]), -int(layer.level[j]), int(layer.bias[j]), 0]
            cols = [core.index[k] for k, _ in need[j]]
            for dest in slots[j]:
                nrn = _main_neuron(layer, j, w, dest)
                nrn["axons"] = cols
                core.neurons.append(nrn)
        cores.append(core)
    return cores


def place_partial(layer: Layer, src: list[Any], slots: list[list[Any]], g: Geometry,
                  bias_key: Any, tag: Any) -> list[Core]:
    """Partial-sum cores per axon group, then final cores (see the module docstring).

    Axons are grouped sign first (all +1 keys, then all −1 keys), so most groups hold
    one sign and a neuron needs only ``p+`` there (or only ``p−``): a ``p−`` whose
    inputs are all +1 could never fire past its floor of 0, so it is left out."""
    live = [j for j in range(layer.q.shape[0]) if slots[j]]
    keys = sorted({(i, 0 if layer.q[j, i] > 0 else 1) for j in live for i in np.flatnonzero(layer.q[j])},
                  key=lambda k: (k[1], k[0]))
    per = g.axons - 1  # one axon kept for the bias line
    gid = {k: n // per for n, k in enumerate(keys)}
    members: dict[int, dict[int, list[tuple[int, int]]]] = {}
    for j in live:
        for i in np.flatnonzero(layer.q[j]):
            s = 0 if layer.q[j, i] > 0 else 1
            members.setdefault(gid[(i, s)], {}).setdefault(j, []).append((i, s))
    bias_group: dict[int, int] = {}
    for j in live:  # the bias joins a group where the neuron already has a channel of its sign
        b = int(layer.bias[j])
        if not b:
            continue
        want = 0 if b > 0 else 1
        grp = next((gg for gg in sorted(members) if any(s == want for _, s in members[gg].get(j, []))),
                   next((gg for gg in sorted(members) if j in members[gg]), 0))
        bias_group[j] = grp
        members.setdefault(grp, {}).setdefault(j, [])
    channels: dict[int, list[tuple[int, int, int]]] = {j: [] for j in live}  # (group, sign, core)
    cores: list[Core] = []
    partial_at: dict[tuple[int, int, int], tuple[int, int]] = {}  # (j, group, sign) -> (core, neuron)
    for grp in sorted(members):
        core: Core | None = None
        for j in sorted(members[grp]):
            b = int(layer.bias[j]) if bias_group.get(j) == grp else 0
            signs = sorted({s for _, s in members[grp][j]} | ({0 if b > 0 else 1} if b else set()))
            if core is None or len(core.neurons) + len(signs) > g.neurons:
                core = Core()
                cores.append(core)
            cols = [core.axon((src[i], s), s) for i, s in members[grp][j]]
            if b:
                cols.append(core.axon((bias_key,), 2))
            L, Q = int(layer.level[j]), int(layer.quantum[j])
            for sign in signs:
                pm = 1 if sign == 0 else -1
                partial_at[(j, grp, sign)] = (len(cores) - 1, len(core.neurons))
                channels[j].append((grp, sign, len(cores) - 1))
                core.neurons.append({"role": "partial", "j": j, "w": [pm * L, -pm * L, pm * b, 0],
                                     "thr": Q, "reset": RESET_LINEAR, "floor": 0, "leak": 0, "axons": cols,
                                     "dest": None})
    # final neurons: one axon per partial channel, F replica slots each
    final: Core | None = None
    for j in live:
        need_ax = len(channels[j])
        if need_ax > g.axons:
            raise IRError(f"layer {tag}: neuron {j} needs {need_ax} partial-sum axons, more than one core")
        if final is None or len(final.axons) + need_ax > g.axons or \
                len(final.neurons) + len(slots[j]) > g.neurons:
            final = Core()
            cores.append(final)
        cols = []
        for grp, sign, _ in channels[j]:
            key = ("partial", tag, j, grp, sign)
            cols.append(final.axon(key, 2 + sign))
            pc, pn = partial_at[(j, grp, sign)]
            cores[pc].neurons[pn]["dest"] = key
        for dest in slots[j]:
            Q = int(layer.quantum[j])
            nrn = _main_neuron(layer, j, [0, 0, Q, -Q], dest)
            nrn["axons"] = cols
            final.neurons.append(nrn)
    return cores


def layer_pairs(graph: Graph) -> list[tuple[str, Affine, LIF | Readout]]:
    """The graph as a chain of (connection, neurons) pairs: every linear chain between two
    neuron layers (Affine, or Conv2d and AvgPool2d unrolled in torch's flatten order, fused
    with any pooling before them) becomes one Affine, as the Lava export's stages do."""
    from esl_export.lava.artifact import stages_of_lif_graph

    inp = graph.nodes[graph.input]
    enc = inp.encoding  # type: ignore[union-attr]
    if enc.get("kind") != "rate":
        raise GraphError(f"TrueNorth takes spikes: the model's input encoding is {enc.get('kind')!r}; "
                         f"train with --encoding rate")
    if any(isinstance(n, SingleSpikeIF) for n in graph.nodes.values()):
        raise GraphError("the TrueNorth target lowers rate-coded LIF networks, not the single-spike network")
    stages = stages_of_lif_graph(graph)
    if any(st.sources is not None for st in stages):
        raise GraphError("residual networks (two paths into one layer) are not lowered onto cores")
    if stages[-1].neuron.get("counts"):  # a graph ending in a LIF layer: its spikes are the output
        stages = stages[:-1]
    pairs: list[tuple[str, Affine, LIF | Readout]] = []
    for st in stages:
        weight = st.weight if isinstance(st.weight, np.ndarray) else np.asarray(st.weight.todense())
        neuron = graph.nodes[st.layer]
        assert isinstance(neuron, LIF | Readout)
        pairs.append((st.name, Affine(weight, st.bias, weight != 0), neuron))
    return pairs


def lower_graph(graph: Graph, geometry: Geometry | None = None, *, readout_unit: float = 2.0,
                drain: int = 64, mode: str = "auto", quantum: int = QUANTUM, dt: float | None = None,
                copies: int | None = None, window: float | None = None, partial: str = "levels") -> CoreIR:
    """Place a LIF MLP graph on cores (see the module docstring). A graph that ends in a
    LIF layer (an snntorch network, say) has its output neurons' spikes counted directly.
    A single-spike graph goes to ``single_spike.lower_single_spike`` (``dt``, ``copies``,
    ``window``, ``partial``: "levels" or "rate"; the others apply to LIF graphs)."""
    g = geometry or Geometry.from_platform()
    if any(isinstance(n, SingleSpikeIF) for n in graph.nodes.values()):
        from esl_export.truenorth import single_spike as ss

        if mode == "partial":
            mode = "levels"
        return ss.lower_single_spike(graph, g, dt=ss.DEFAULT_DT if dt is None else dt,
                                     copies=ss.DEFAULT_COPIES if copies is None else copies, mode=mode,
                                     window=ss.sdt.DEFAULT_WINDOW if window is None else window,
                                     partial=partial)
    if dt is not None or copies is not None:
        raise IRError("--tick and --copies apply to single-spike models only")
    if g.axon_types < 4 or not 0 <= quantum < (1 << (g.weight_bits - 1)):
        raise IRError(f"geometry {g}: needs 4 axon types and a partial quantum in 0..255 (0: per neuron), "
                      f"got {quantum}")
    pairs = layer_pairs(graph)
    if isinstance(pairs[-1][2], LIF):
        drain = 0  # the output layer's own spikes are the counts: nothing to drain
    enc = graph.nodes[graph.input].encoding  # type: ignore[union-attr]
    T = int(enc["T"])
    layers = [quantise(aff, nrn, readout_unit, g.weight_bits, quantum, g.axons) for _, aff, nrn in pairs]
    n_data = int(pairs[0][1].weight.shape[1])
    n_layers = len(layers)
    # place from the readout back, so each layer knows how many axons consume its neurons
    placed: list[list[Core]] = [[] for _ in layers]
    modes: list[str] = [""] * n_layers
    slots: list[list[Any]] = [[("out", j)] for j in range(layers[-1].q.shape[0])]
    for k in reversed(range(n_layers)):
        lay = layers[k]
        src: list[Any] = ([("data", i) for i in range(n_data)] if k == 0
                          else [("n", k - 1, i) for i in range(lay.q.shape[1])])
        bias_key = ("bias", k)
        direct = place_direct(lay, src, slots, g, bias_key) if mode in ("auto", "direct") else None
        partial = place_partial(lay, src, slots, g, bias_key, k) if mode in ("auto", "partial") else None
        if direct is None and partial is None:
            raise IRError(f"layer {k}: a neuron's fan-in does not fit one core; use partial sums")
        if partial is None or (direct is not None and len(direct) <= len(partial)):
            placed[k], modes[k] = direct, "direct"  # type: ignore[assignment]
        else:
            placed[k], modes[k] = partial, "partial"
        # consumers of the previous layer's neurons: one slot per (core, axon)
        if k > 0:
            prev: list[list[Any]] = [[] for _ in range(lay.q.shape[1])]
            for c, core in enumerate(placed[k]):
                for a, (key, _) in enumerate(core.axons):
                    if isinstance(key[0], tuple) and key[0][0] == "n":
                        prev[key[0][2]].append(("axon", k, c, a))
            slots = prev
    # timing
    arrive, offsets = 0, []
    for k in range(n_layers):
        out_tick = arrive + (1 if modes[k] == "partial" else 0)
        offsets.append({"arrive": arrive, "spike": out_tick})
        arrive = out_tick + 1
    return _assemble(g, layers, placed, modes, offsets, n_data, T, drain, pairs, readout_unit, quantum)


def _assemble(g: Geometry, layers: list[Layer], placed: list[list[Core]], modes: list[str],
              offsets: list[dict[str, int]], n_data: int, T: int, drain: int,
              pairs: list[tuple[str, Affine, LIF | Readout]], readout_unit: float, quantum: int) -> CoreIR:
    base = np.cumsum([0] + [len(p) for p in placed])
    C = int(base[-1])
    A, N = g.axons, g.neurons
    crossbar = np.zeros((C, A, N), bool)
    axon_type = np.zeros((C, A), np.int8)
    weight = np.zeros((C, N, g.axon_types), np.int16)
    threshold = np.full((C, N), THRESHOLD_MAX, np.int32)  # unused neurons: no input, never fire
    leak = np.zeros((C, N), np.int32)
    reversal = np.zeros((C, N), bool)
    reset = np.zeros((C, N), np.int8)
    floor = np.full((C, N), NO_FLOOR, np.int32)
    where: dict[Any, tuple[int, int]] = {}  # axon key -> (core, axon) for partial and neuron links
    inputs, edges, outputs = [], [], []
    n_bias = 0
    bias_lines = []
    for k, cores in enumerate(placed):
        if any(key == (("bias", k),) for core in cores for key, _ in core.axons):
            bias_lines.append({"index": n_data + n_bias, "start": offsets[k]["arrive"], "ticks": T,
                               "layer": k})
            n_bias += 1
    bias_index = {line["layer"]: line["index"] for line in bias_lines}
    for k, cores in enumerate(placed):
        for c, core in enumerate(cores):
            gc = int(base[k] + c)
            for a, (key, kind) in enumerate(core.axons):
                axon_type[gc, a] = kind
                if key[0] == "partial":
                    where[key] = (gc, a)
                else:  # (source key, sign) of a data or neuron source
                    src = key[0]
                    if src[0] == "data":
                        inputs.append((src[1], gc, a))
                    elif src[0] == "bias":
                        inputs.append((bias_index[k], gc, a))
                    else:
                        where[("axon", k, c, a)] = (gc, a)
    neuron_map: list[list[list[int]]] = [[[-1, -1] for _ in range(lay.q.shape[0])] for lay in layers]
    for k, cores in enumerate(placed):
        for c, core in enumerate(cores):
            gc = int(base[k] + c)
            for n, nrn in enumerate(core.neurons):
                crossbar[gc, nrn["axons"], n] = True
                weight[gc, n] = nrn["w"]
                threshold[gc, n] = nrn["thr"]
                reset[gc, n] = nrn["reset"]
                floor[gc, n] = nrn["floor"]
                leak[gc, n] = nrn["leak"]
                reversal[gc, n] = nrn["leak"] != 0
                dest = nrn["dest"]
                if nrn["role"] == "main" and neuron_map[k][nrn["j"]][0] < 0:
                    neuron_map[k][nrn["j"]] = [gc, n]
                if dest[0] == "out":
                    outputs.append((gc, n, dest[1]))
                else:
                    dc, da = where[dest]
                    edges.append((gc, n, dc, da, 1))
    ticks = offsets[-1]["spike"] + T + drain
    syn_per_layer = [int(np.count_nonzero(lay.q)) for lay in layers]
    report = {
        "quantisation": {"scheme": "ternary per neuron (TWN), ±1 weight L_j per neuron, partial "
                                   f"quantum Q_j = {quantum or 'round(threshold/2 units)'}·L_j",
                         "layers": [lay.error for lay in layers]},
        "layers": [{"name": name, "mode": modes[k], "cores": len(placed[k]),
                    "ternary_synapses": syn_per_layer[k],
                    "replicas": sum(1 for core in placed[k] for nrn in core.neurons if nrn["role"] == "main")
                    - sum(1 for m in neuron_map[k] if m[0] >= 0),
                    "partial_neurons": sum(1 for core in placed[k] for nrn in core.neurons
                                           if nrn["role"] == "partial"),
                    "unplaced_neurons": sum(1 for m in neuron_map[k] if m[0] < 0)}
                   for k, (name, _, _) in enumerate(pairs)],
        "lower_bound": lower_bound(layers, placed, g),
    }
    meta = {
        "inputs": {"n_data": n_data, "bias_lines": bias_lines, "encoding": "rate"},
        "outputs": {"decode": "argmax of output spike counts over the sample's ticks (first index on "
                              "ties)", "readout_unit": readout_unit},
        "timing": {"T": T, "ticks_per_sample": ticks, "drain": drain, "layer_offsets": offsets,
                   "taus": [getattr(nrn, "tau", None) for _, _, nrn in pairs]},
        "neuron_map": neuron_map, "report": report,
    }
    return CoreIR(g, crossbar, axon_type, weight, threshold, leak, reversal, reset, floor,
                  np.asarray(edges, np.int32).reshape(-1, 5), np.asarray(outputs, np.int32).reshape(-1, 3),
                  np.asarray(inputs, np.int32).reshape(-1, 3), n_data + n_bias, layers[-1].q.shape[0], meta)


def lower_bound(layers: list[Layer], placed: list[list[Core]], g: Geometry) -> int:
    """Cores no placement of these quantised layers can beat, per layer summed:
    max(neurons / N, axons / A, synapses / (A·N)), where neurons are the main neurons
    (replicas included) and axons the distinct (source, sign) keys, plus, for every
    neuron whose keys do not fit one core, the ``ceil(keys / A) − 1`` extra neurons and
    axons that joining its parts takes at the least (a chain; a sum tree takes more)."""
    total = 0
    for lay, cores in zip(layers, placed, strict=True):
        mains = sum(1 for core in cores for nrn in core.neurons if nrn["role"] == "main")
        live = sorted({nrn["j"] for core in cores for nrn in core.neurons})
        qq = lay.q[live]
        axons = int((qq > 0).any(0).sum() + (qq < 0).any(0).sum())
        syn = int(np.count_nonzero(qq))
        keys = np.count_nonzero(qq, axis=1) + (np.asarray(lay.bias)[live] != 0)
        joins = int(np.maximum(np.ceil(keys / g.axons) - 1, 0).sum())
        total += max(math.ceil((mains + joins) / g.neurons), math.ceil((axons + joins) / g.axons),
                     math.ceil(syn / (g.axons * g.neurons)), 1)
    return total
