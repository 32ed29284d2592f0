"""Lowering the single-spike network (Mostafa 2018) onto cores; the scheme and the measured
numbers are in ``lower.py``'s module docstring ("Single-spike networks").

In short: one tick is one step of ``single_spike_dt`` (``dt`` in τ_syn units). The decaying
synaptic current is replaced by K equal, delayed arrivals of every spike at the quantile
delays of the kernel (a staircase of ``1 − e^{−t}``): the host sends each pixel's spike K
times on one axon; a hidden neuron's K replica neurons send it, one per delay, to a relay
neuron that re-emits the K arrivals on one axon per consumer. Weights are two-level per
neuron (axon types +a, +b, −a, −b), neurons fire once (reset far below threshold), and a
neuron whose fan-in does not fit one core sums it through *level* neurons (a thermometer
code of each channel's partial sum: no rate limit, one tick).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from esl_export import single_spike_dt as sdt
from esl_export.graph import Graph
from esl_export.truenorth.ir import (
    NO_FLOOR,
    RESET_LINEAR,
    RESET_ZERO,
    THRESHOLD_MAX,
    CoreIR,
    Geometry,
    IRError,
)
from esl_export.truenorth.lower import Core, pack_cores

#: default grid step in τ_syn units: 2/15, half the grid of the 13-step variant; K = 8 copies
DEFAULT_DT = 2.0 / 15.0
DEFAULT_COPIES = 8
#: the reset potential that makes a neuron fire once: the most negative the IR allows
FIRE_ONCE = -THRESHOLD_MAX
DECODE = "first-spike"
#: most level neurons per partial-summed neuron (besides the final neuron's axons: one core's)
LEVEL_BUDGET = 1 << 30
#: the rate-limited partial-sum variant: a partial spike carries 1/2 of the final threshold
RATE_SPIKES_PER_THRESHOLD = 2


#: the longest tick (tau_syn): beyond it a spike's whole current lands within one tick
MAX_DT = 1.0
#: the most ticks per sample (a sample's arrays and the simulation grow with it)
MAX_TICKS = 4096


def kernel_delays(copies: int, dt: float, max_delay: int) -> list[int]:
    """Delays (ticks) of the K arrivals: the (k − ½)/K quantiles of the exponential kernel,
    rounded, made strictly increasing (one axon carries one spike per tick) and at least 1."""
    if not 1 <= copies <= max_delay:
        raise IRError(f"--copies must be in 1..{max_delay} (distinct delays of at most {max_delay} ticks)")
    out: list[int] = []
    for k in range(1, copies + 1):
        d = max(1, round(-math.log(1.0 - (k - 0.5) / copies) / dt))
        if out and d <= out[-1]:
            d = out[-1] + 1
        out.append(d)
    if out[-1] > max_delay:  # the tail is squeezed under the largest delay, kept distinct
        for k in range(copies - 1, -1, -1):
            out[k] = min(out[k], max_delay - (copies - 1 - k))
    return out


@dataclass
class SSLayer:
    """One layer, quantised: ``types[j, i]`` in 0..3 (+a, +b, −a, −b; −1: no synapse),
    integer weights ``la``/``lb`` per neuron, threshold in those units."""

    name: str
    b: np.ndarray  # the larger magnitude per neuron, real units (lb stands for b/K)
    real_threshold: float
    copies: int
    types: np.ndarray  # int8 [out, in]
    la: np.ndarray
    lb: np.ndarray
    threshold: np.ndarray
    error: dict[str, float]
    q: np.ndarray = field(default_factory=lambda: np.zeros(0))  # partial-sum quantum per neuron (0: direct)
    mode: str = "direct"  # "direct", "levels" (every neuron) or "mixed"
    direct_cores: int = 0  # the first cores of the layer hold whole fan-ins, the rest level sums

    def int_weight(self) -> np.ndarray:
        """[out, in] integer weight of one arrival."""
        w = np.stack([self.la, self.lb, -self.la, -self.lb], 1)  # [out, 4]
        pick = np.take_along_axis(w, np.maximum(self.types, 0).astype(np.int64), 1)
        return np.where(self.types >= 0, pick, 0)


def two_levels(w: np.ndarray, iters: int = 15) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per neuron |w| → {0, a, b} (a <= b) by Lloyd iterations (0 fixed): ``(idx, a, b)``,
    ``idx`` 0 (zeroed), 1 (a) or 2 (b)."""
    mag = np.abs(w)
    nz = mag > 0
    mean = (mag * nz).sum(1) / np.maximum(nz.sum(1), 1)
    a, b = 0.7 * mean, 1.6 * mean
    for _ in range(iters):
        centres = np.stack([np.zeros_like(a), a, b], 1)
        idx = np.abs(mag[:, :, None] - centres[:, None, :]).argmin(2) * nz
        for c, arr in ((1, a), (2, b)):
            sel = idx == c
            arr[:] = np.where(sel.any(1), (mag * sel).sum(1) / np.maximum(sel.sum(1), 1), arr)
    centres = np.stack([np.zeros_like(a), a, b], 1)
    idx = np.abs(mag[:, :, None] - centres[:, None, :]).argmin(2) * nz
    b = np.where(b > 0, b, 1.0)
    return idx, np.minimum(a, b), b


def quantise(name: str, w: np.ndarray, copies: int, threshold: float, g: Geometry) -> SSLayer:
    """Two-level weights per neuron in integer units; ``lb`` as large as the 9 bits, the
    18-bit threshold and fire-once allow (see ``_fits``)."""
    idx, a, b = two_levels(w)
    sign = np.sign(w)
    types = np.where(idx == 0, -1, (idx - 1) + 2 * (sign < 0)).astype(np.int8)
    hi = g.weight_range[1]
    lb = np.full(len(b), hi, np.int64)
    pos_b = ((types == 0) * (a / b)[:, None] + (types == 1)).sum(1)  # positive arrivals, in b units
    # fire-once: everything positive that can still arrive after the spike stays below the
    # threshold distance (K·Σ positive < |FIRE_ONCE|); the threshold fits its 18 bits
    cap = np.floor(np.minimum((THRESHOLD_MAX - 1) / np.maximum(copies * pos_b, 1e-300),
                              (THRESHOLD_MAX - 1) * b / (copies * threshold)))
    lb = np.maximum(1, np.minimum(lb, cap)).astype(np.int64)
    la = np.maximum(1, np.round(lb * a / b)).astype(np.int64)
    thr = (np.floor(copies * threshold * lb / b) + 1).astype(np.int64)
    qw = np.where(idx == 0, 0.0, sign * np.where(idx == 1, a[:, None], b[:, None]))
    wint = np.where(types < 0, 0, np.take_along_axis(np.stack([la, lb, -la, -lb], 1),
                                                    np.maximum(types, 0).astype(np.int64), 1))
    real = wint * (b / lb)[:, None]  # what the integers stand for, in real units
    nrm = max(float((w ** 2).sum()), 1e-300)
    error = {"weight_rel_rms": float(np.sqrt(((qw - w) ** 2).sum() / nrm)),
             "integer_rel_rms": float(np.sqrt(((real - w) ** 2).sum() / nrm)),
             "zeroed_fraction": float(((w != 0) & (idx == 0)).sum() / max(int((w != 0).sum()), 1)),
             "level_b_min": int(lb.min()), "level_b_max": int(lb.max())}
    return SSLayer(name, b, threshold, copies, types, la, lb, thr, error)


# ----------------------------------------------------------------------------- placement


def _neuron(cols: list[int], w: list[int], thr: int, reset_value: int, dest: Any, role: str,
            layer: int, j: int) -> dict[str, Any]:
    return {"axons": cols, "w": w, "thr": int(thr), "rv": int(reset_value), "dest": dest, "role": role,
            "layer": layer, "j": j, "reset": RESET_ZERO}


def _place_direct(lay: SSLayer, k: int, src: list[Any], slots: list[list[Any]], g: Geometry) -> list[Core]:
    """Whole fan-in in one core, filled by ``lower.pack_cores`` (fewest new axons first), so
    neurons of one input pool (a core-aware mask) share a core. The caller passes only
    neurons that fit a core."""
    live = [j for j in range(lay.types.shape[0]) if slots[j]]
    cores: list[Core] = []
    keys = [[((src[i], int(lay.types[j, i])), int(lay.types[j, i]))
             for i in np.flatnonzero(lay.types[j] >= 0)] for j in live]
    for group in pack_cores([[key for key, _ in ks] for ks in keys], [len(slots[j]) for j in live], g):
        core = Core()
        for r in group:
            j = live[r]
            cols_j = [core.axon(key, kind) for key, kind in keys[r]]
            w = [int(lay.la[j]), int(lay.lb[j]), -int(lay.la[j]), -int(lay.lb[j])]
            for dest in slots[j]:
                core.neurons.append(_neuron(cols_j, w, lay.threshold[j], FIRE_ONCE, dest, "main", k, j))
        cores.append(core)
    return cores


def channels(lay: SSLayer, j: int, axons: int) -> list[tuple[int, np.ndarray]]:
    """Neuron j's partial-sum channels: (sign 0 = +, 1 = −, its inputs), each sign's inputs
    in input order, cut into chunks of ``axons``."""
    out = []
    for sign in (0, 1):
        idx = np.flatnonzero((lay.types[j] >= 0) & (lay.types[j] // 2 == sign))
        out += [(sign, idx[i:i + axons]) for i in range(0, len(idx), axons)]
    return out


def _levels(lay: SSLayer, j: int, copies: int, axons: int) -> tuple[int, list[int]]:
    """Quantum Q (units) and level count per channel: every channel's whole range
    (K × its summed |weights|) is covered, Σ levels <= axons (the final neuron's fan-in)."""
    chans = channels(lay, j, axons)
    mag = np.abs(lay.int_weight()[j])
    ranges = [copies * int(mag[idx].sum()) for _, idx in chans]
    free = min(axons, LEVEL_BUDGET) - len(chans)
    if free <= 0:
        raise IRError(f"layer {lay.name}: neuron {j} has {len(chans)} partial-sum channels, more than one "
                      f"core's {axons} axons")
    q = max(1, math.ceil(sum(ranges) / free))
    return q, [max(1, math.ceil(r / q)) for r in ranges]


def rescale_for_levels(lay: SSLayer, g: Geometry, which: list[int]) -> None:
    """Lower ``lb`` (and ``la``, same ratio) of neurons whose quantum would not fit the
    weight bits (the final neuron adds ±Q per level spike); thresholds follow."""
    hi = g.weight_range[1]
    for j in which:
        ratio = lay.la[j] / lay.lb[j]
        for _ in range(64):
            q, _ = _levels(lay, j, lay.copies, g.axons)
            if q <= hi or lay.lb[j] <= 1:
                break
            lay.lb[j] = max(1, min(int(lay.lb[j]) - 1, int(lay.lb[j] * hi / q)))
            lay.la[j] = max(1, round(lay.lb[j] * ratio))
    lay.threshold = (np.floor(lay.copies * lay.real_threshold * lay.lb / lay.b) + 1).astype(np.int64)
    lay.error["level_b_min"], lay.error["level_b_max"] = int(lay.lb.min()), int(lay.lb.max())


def rescale_for_rate(lay: SSLayer, g: Geometry, which: list[int]) -> None:
    """The rate variant's units: threshold = RATE_SPIKES_PER_THRESHOLD × Q with Q in the
    weight bits, so ``lb`` shrinks to about that threshold's share."""
    hi = g.weight_range[1]
    for j in which:
        ratio = lay.la[j] / lay.lb[j]
        want = (RATE_SPIKES_PER_THRESHOLD * hi - 1) * lay.b[j] / (lay.copies * lay.real_threshold)
        lay.lb[j] = max(1, min(int(lay.lb[j]), int(want)))
        lay.la[j] = max(1, round(lay.lb[j] * ratio))
    lay.threshold = (np.floor(lay.copies * lay.real_threshold * lay.lb / lay.b) + 1).astype(np.int64)
    lay.error["level_b_min"], lay.error["level_b_max"] = int(lay.lb.min()), int(lay.lb.max())


def _place_levels(lay: SSLayer, k: int, src: list[Any], slots: list[list[Any]], copies: int,
                  g: Geometry, scheme: str = "levels") -> list[Core]:
    """Partial sums by level neurons: per channel (one sign, <= A inputs) ``m`` neurons with
    thresholds (r − ½)·Q, r = 1..m (``Q − Q//2`` for r = 1), that integrate the channel's
    |weights| and fire once, when the channel's sum first reaches their level; the final
    neuron adds +Q (type 0) or −Q (type 1) per level spike, so it holds Σ ±Q·round(S_ch/Q)
    one tick later — no rate limit. Channels share a level core while axons and neurons fit.
    ``scheme="rate"``: one neuron per channel instead, threshold Q, linear reset (the LIF
    lowering's partial sums: at most Q per tick passes, the rest waits)."""
    cores: list[Core] = []
    final = Core()
    part = Core()
    qs = np.zeros(lay.types.shape[0], np.int64)
    for j in range(lay.types.shape[0]):
        if not slots[j]:
            continue
        if scheme == "rate":
            q = math.ceil(lay.threshold[j] / RATE_SPIKES_PER_THRESHOLD)
            levels = [1] * len(channels(lay, j, g.axons))
        else:
            q, levels = _levels(lay, j, copies, g.axons)
        qs[j] = q
        if q > g.weight_range[1]:
            raise IRError(f"layer {lay.name}: neuron {j} needs a partial-sum quantum {q} beyond the weight "
                          f"bits")
        if len(final.axons) + sum(levels) > g.axons or len(final.neurons) + len(slots[j]) > g.neurons:
            if final.neurons:
                cores.append(final)
            final = Core()
        fcols = []
        la, lb = int(lay.la[j]), int(lay.lb[j])
        for c, ((sign, idx), m) in enumerate(zip(channels(lay, j, g.axons), levels, strict=True)):
            keys = [((src[i], int(lay.types[j, i])), int(lay.types[j, i])) for i in idx]
            new = sum(1 for key, _ in keys if key not in part.index)
            if len(part.axons) + new > g.axons or len(part.neurons) + m > g.neurons:
                if part.neurons:
                    cores.append(part)
                part = Core()
            cols = [part.axon(key, kind) for key, kind in keys]
            w = [la, lb, 0, 0] if sign == 0 else [0, 0, la, lb]  # the channel's |sum|
            for r in range(1, m + 1):
                key = ("level", k, j, c, r)
                fcols.append(final.axon(key, sign))
                # level r at (r − ½)·Q: the final neuron holds Q·round(S/Q), unbiased
                nrn = _neuron(cols, w, r * q - q // 2, FIRE_ONCE, (key, 1), "level", k, j)
                if scheme == "rate":
                    nrn["thr"], nrn["rv"], nrn["reset"] = q, 0, RESET_LINEAR
                part.neurons.append(nrn)
        for dest in slots[j]:
            final.neurons.append(_neuron(fcols, [q, -q, 0, 0], lay.threshold[j], FIRE_ONCE, dest, "main", k,
                                         j))
    if part.neurons:
        cores.append(part)
    if final.neurons:
        cores.append(final)
    lay.q = qs
    return cores


def _place_splitters(k: int, copy_slots: list[list[Any]], g: Geometry) -> list[Core]:
    """Splitter per source neuron of layer k: one axon (the source's only destination),
    K neurons (weight 1, threshold 1), each sending the spike to one relay axon with its
    kernel delay. (K replicas of the source itself would multiply its SOPs by K.)"""
    cores: list[Core] = []
    core = Core()
    for h, dests in enumerate(copy_slots):
        if not dests:
            continue
        if len(core.axons) + 1 > g.axons or len(core.neurons) + len(dests) > g.neurons:
            cores.append(core)
            core = Core()
        cols = [core.axon(("split", k, h), 0)]
        for dest in dests:
            core.neurons.append(_neuron(cols, [1, 0, 0, 0], 1, 0, dest, "split", k, h))
    if core.neurons:
        cores.append(core)
    return cores


def _place_relays(n: int, k: int, copies: int, slots: list[list[Any]], g: Geometry) -> list[Core]:
    """Relay neuron per source neuron of layer k: K axons (one per delayed replica of the
    source), weight 1, threshold 1, reset to 0: it re-emits every arrival, so each consumer
    gets the K arrivals on one axon."""
    cores: list[Core] = []
    core = Core()
    for h in range(n):
        if not slots[h]:
            continue
        if len(slots[h]) > g.neurons or copies > g.axons:
            raise IRError(f"relay of neuron {h} (layer {k}): {len(slots[h])} consumers and {copies} "
                          f"arrivals, more than one core's {g.neurons} neurons / {g.axons} axons")
        if len(core.axons) + copies > g.axons or len(core.neurons) + len(slots[h]) > g.neurons:
            cores.append(core)
            core = Core()
        cols = [core.axon(("copy", k, h, c), 0) for c in range(copies)]
        for dest in slots[h]:
            core.neurons.append(_neuron(cols, [1, 0, 0, 0], 1, 0, dest, "relay", k, h))
    if core.neurons:
        cores.append(core)
    return cores


@dataclass
class Plan:
    """The quantised layers and their cores, before assembly into arrays."""

    layers: list[SSLayer]
    placed: list[list[Core]]
    relays: list[list[Core]]  # per hidden layer: its splitter cores, then its relay cores
    delays: list[int]
    net: sdt.DTNetwork
    n_data: int


def lower_single_spike(graph: Graph, g: Geometry, *, dt: float = DEFAULT_DT, copies: int = DEFAULT_COPIES,
                       window: float = sdt.DEFAULT_WINDOW, mode: str = "auto",
                       partial: str = "levels") -> CoreIR:
    """Place a single-spike MLP graph (Input, (Affine, SingleSpikeIF)*) on cores."""
    p = plan(graph, g, dt=dt, copies=copies, window=window, mode=mode, partial=partial)
    return _assemble(g, p.layers, p.placed, p.relays, p.delays, p.net, p.n_data, graph)


def plan(graph: Graph, g: Geometry, *, dt: float = DEFAULT_DT, copies: int = DEFAULT_COPIES,
         window: float = sdt.DEFAULT_WINDOW, mode: str = "auto", partial: str = "levels") -> Plan:
    """Quantise and place (see ``lower_single_spike``); the layers carry the integer
    weights, thresholds and partial-sum quanta the cores hold."""
    if not (math.isfinite(dt) and 0 < dt <= MAX_DT and window / dt <= MAX_TICKS):
        raise IRError(f"--tick must be in [{window / MAX_TICKS:.3g}, {MAX_DT}] tau_syn (at most {MAX_TICKS} "
                      f"ticks in the {window:g} tau_syn window; a longer tick than tau_syn loses the "
                      f"kernel), got {dt}")
    if mode not in ("auto", "direct", "levels") or partial not in ("levels", "rate"):
        raise IRError(f"placement {mode!r} / partial sums {partial!r}: auto, direct or levels / levels or "
                      f"rate")
    if g.axon_types < 4:
        raise IRError(f"geometry {g}: the single-spike lowering needs 4 axon types")
    net = sdt.network(graph, dt=dt, window=window)  # checks the graph and the grid
    delays = kernel_delays(copies, dt, g.max_delay)
    layers = [quantise(lay.name, lay.weight / lay.du, copies, lay.threshold, g) for lay in net.layers]
    n_data = layers[0].types.shape[1]
    n_layers = len(layers)
    # place from the output back: each layer learns the axons that consume its neurons
    placed: list[list[Core]] = [[] for _ in range(n_layers)]
    relays: list[list[Core]] = [[] for _ in range(n_layers - 1)]
    slots: list[list[Any]] = [[("out", j)] for j in range(layers[-1].types.shape[0])]
    for k in reversed(range(n_layers)):
        lay = layers[k]
        src: list[Any] = ([("in", i) for i in range(n_data)] if k == 0
                          else [("relay", k - 1, h) for h in range(lay.types.shape[1])])
        # per neuron: its whole fan-in in one core where it fits, level partial sums where not
        fits = [bool(slots[j]) and mode != "levels" and int((lay.types[j] >= 0).sum()) <= g.axons
                for j in range(lay.types.shape[0])]
        wide = [j for j, f in enumerate(fits) if slots[j] and not f]
        if wide and mode == "direct":
            raise IRError(f"layer {lay.name}: neuron {wide[0]}'s fan-in does not fit one core; use "
                          f"--placement auto")
        direct = _place_direct(lay, k, src, [s if f else [] for s, f in zip(slots, fits, strict=True)], g)
        levels: list[Core] = []
        if wide:
            if partial == "rate":
                rescale_for_rate(lay, g, wide)
            else:
                rescale_for_levels(lay, g, wide)
            rest = [s if not f else [] for s, f in zip(slots, fits, strict=True)]
            levels = _place_levels(lay, k, src, rest, copies, g, partial)
        placed[k] = direct + levels
        lay.direct_cores = len(direct)
        lay.mode = "direct" if not wide else "levels" if not direct else "mixed"
        if k == 0:
            break
        consumers: list[list[Any]] = [[] for _ in range(lay.types.shape[1])]
        for c, core in enumerate(placed[k]):
            late = 2 if wide and c < lay.direct_cores else 1  # level sums take one tick more
            for a, (key, _) in enumerate(core.axons):
                if isinstance(key[0], tuple) and key[0][0] == "relay":
                    consumers[key[0][2]].append((("axon", k, c, a), late))
        relay_cores = _place_relays(lay.types.shape[1], k - 1, copies, consumers, g)
        copy_slots: list[list[Any]] = [[] for _ in range(lay.types.shape[1])]
        for core in relay_cores:
            for key, _ in core.axons:
                _, _, h, c = key
                copy_slots[h].append((key, delays[c]))
        split_cores = _place_splitters(k - 1, copy_slots, g)
        relays[k - 1] = split_cores + relay_cores
        slots = [[(("split", k - 1, h), 1)] if copy_slots[h] else [] for h in range(lay.types.shape[1])]
    return Plan(layers, placed, relays, delays, net, n_data)


def _assemble(g: Geometry, layers: list[SSLayer], placed: list[list[Core]], relays: list[list[Core]],
              delays: list[int], net: sdt.DTNetwork, n_data: int, graph: Graph) -> CoreIR:
    order: list[tuple[str, int, int, Core]] = []  # (kind, layer, core within the layer, core)
    for k in range(len(layers)):
        order += [("layer", k, c, core) for c, core in enumerate(placed[k])]
        if k < len(relays):
            order += [("relay", k, c, core) for c, core in enumerate(relays[k])]
    C, A, N = len(order), g.axons, g.neurons
    crossbar = np.zeros((C, A, N), bool)
    axon_type = np.zeros((C, A), np.int8)
    weight = np.zeros((C, N, g.axon_types), np.int16)
    threshold = np.full((C, N), THRESHOLD_MAX, np.int32)
    reset_value = np.zeros((C, N), np.int32)
    reset = np.full((C, N), RESET_ZERO, np.int8)
    where: dict[Any, tuple[int, int]] = {}
    inputs = []
    for gc, (kind, k, c_local, core) in enumerate(order):
        for a, (key, t) in enumerate(core.axons):
            axon_type[gc, a] = t
            if kind == "layer" and key[0] == "level":
                where[key] = (gc, a)
            elif kind == "layer" and key[0][0] == "in":
                # a level sum answers one tick late: its host line runs one tick early
                early = c_local >= layers[0].direct_cores
                inputs.append((key[0][1] + (n_data if early else 0), gc, a))
            elif kind == "layer":
                where[("axon", k, c_local, a)] = (gc, a)
            else:
                where[key] = (gc, a)
    edges, outputs = [], []
    neuron_map: list[list[list[int]]] = [[[-1, -1] for _ in range(lay.types.shape[0])] for lay in layers]
    roles = {"main": 0, "level": 0, "relay": 0, "split": 0}
    for gc, (_, k, _, core) in enumerate(order):
        for n, nrn in enumerate(core.neurons):
            crossbar[gc, nrn["axons"], n] = True
            weight[gc, n] = nrn["w"]
            threshold[gc, n] = nrn["thr"]
            reset_value[gc, n] = nrn["rv"]
            reset[gc, n] = nrn["reset"]
            roles[nrn["role"]] += 1
            if nrn["role"] == "main" and neuron_map[k][nrn["j"]][0] < 0:
                neuron_map[k][nrn["j"]] = [gc, n]
            dest = nrn["dest"]
            if dest[0] == "out":
                outputs.append((gc, n, dest[1]))
            else:
                dc, da = where[dest[0]]
                edges.append((gc, n, dc, da, dest[1]))
    # ticks: a direct layer spikes at the grid step, a level layer one tick later; a relay
    # adds one tick between layers (uniform per layer, so the earliest output is unchanged)
    shift, offsets = 0, []
    for k, lay in enumerate(layers):
        if k > 0:  # the splitter's and the relay's ticks, and the level sums' (direct neurons wait)
            shift += 2 + (lay.mode != "direct")
        offsets.append({"spike": shift})
    ticks = net.steps + shift
    report = {
        "quantisation": {"scheme": "two levels per neuron (axon types +a, +b, −a, −b; Lloyd on |w|), "
                                   f"K = {len(delays)} arrivals of a/K, b/K",
                         "layers": [lay.error for lay in layers]},
        "layers": [{"name": lay.name, "mode": lay.mode, "cores": len(placed[k]),
                    "synapses": int((lay.types >= 0).sum()),
                    "replicas": sum(1 for core in placed[k] for nrn in core.neurons if nrn["role"] == "main")
                    - sum(1 for m in neuron_map[k] if m[0] >= 0),
                    "level_neurons": sum(1 for core in placed[k] for nrn in core.neurons
                                         if nrn["role"] == "level"),
                    "relay_cores": len(relays[k]) if k < len(relays) else 0,
                    "quantum_over_threshold_max": float((lay.q / lay.threshold).max()) if lay.mode != "direct"
                    else 0.0,
                    "unplaced_neurons": sum(1 for m in neuron_map[k] if m[0] < 0)}
                   for k, lay in enumerate(layers)],
        "lower_bound": lower_bound(layers, len(delays), g),
        "relay_neurons": roles["relay"], "splitter_neurons": roles["split"], "level_neurons": roles["level"],
    }
    inp = graph.nodes[graph.input]
    meta = {
        "inputs": {"n_data": n_data, "bias_lines": [], "encoding": "latency",
                   "latency": dict(inp.encoding),  # type: ignore[union-attr]
                   "dt": net.dt, "tau_syn": net.tau_syn, "kernel_delays": delays,
                   "grid_steps": net.steps},
        "outputs": {"decode": "the output that spikes first (lowest index on ties); -1 if none spikes",
                    "rule": DECODE},
        "timing": {"T": ticks, "ticks_per_sample": ticks, "drain": 0, "layer_offsets": offsets,
                   "dt": net.dt},
        "neuron_map": neuron_map, "report": report, "kind": "single-spike",
    }
    NN = (C, N)
    return CoreIR(g, crossbar, axon_type, weight, threshold, np.zeros(NN, np.int32), np.zeros(NN, bool),
                  reset, np.full(NN, NO_FLOOR, np.int32),
                  np.asarray(edges, np.int32).reshape(-1, 5), np.asarray(outputs, np.int32).reshape(-1, 3),
                  np.asarray(inputs, np.int32).reshape(-1, 3), 2 * n_data, layers[-1].types.shape[0], meta,
                  reset_value=reset_value)


def lower_bound(layers: list[SSLayer], copies: int, g: Geometry) -> int:
    """Cores no placement of this scheme can beat: per layer max(neurons/N, axons/A,
    synapses/(A·N)), axons the distinct (source, type) keys; plus, per hidden layer, the
    splitters (K neurons per neuron) and the relays (K axons per neuron). Level partial
    sums are not in it: it bounds the placement, not the fan-in scheme."""
    total = 0
    for k, lay in enumerate(layers):
        last = k == len(layers) - 1
        n = lay.types.shape[0] * (1 if last else copies)
        keys = sum(int((lay.types == t).any(0).sum()) for t in range(4))
        syn = int((lay.types >= 0).sum())
        total += max(math.ceil(lay.types.shape[0] / g.neurons), math.ceil(keys / g.axons),
                     math.ceil(syn / (g.axons * g.neurons)))
        if not last:  # splitters (K neurons per source) and relays (K axons per source)
            total += math.ceil(n / g.neurons) + math.ceil(n / g.axons)
    return total


# ----------------------------------------------------------------------------- host input


def input_raster(ir: CoreIR, x: np.ndarray) -> np.ndarray:
    """Host lines per tick ``[ticks, B, 2·n_data]`` for samples ``x``: pixel i's latency step
    s_i (``single_spike_dt.input_steps``) is sent on line i at s_i + d_k, k = 1..K, and on
    line n_data + i (axons of level partial sums, which answer one tick later) at
    s_i + d_k − 1."""
    inp = ir.meta["inputs"]
    steps = sdt.input_steps(inp["latency"], x, float(inp["dt"]), float(inp["tau_syn"]))
    ticks = int(ir.meta["timing"]["ticks_per_sample"])
    B, n = steps.shape
    r = np.zeros((ticks, B, 2 * n), bool)
    b, i = np.nonzero(steps >= 0)
    for d in inp["kernel_delays"]:
        for early in (0, 1):  # lines n.. feed level partial sums, one tick ahead
            t = steps[b, i] + int(d) - early
            ok = t < ticks
            r[t[ok], b[ok], i[ok] + early * n] = True
    return r


def check_meta(inputs: dict[str, Any], max_delay: int) -> None:
    """The single-spike fields of a manifest's ``inputs`` (types and ranges)."""
    delays = inputs["kernel_delays"]
    dt, tau = inputs["dt"], inputs["tau_syn"]
    ok = (isinstance(delays, list) and delays and all(isinstance(d, int) and not isinstance(d, bool)
                                                        and 1 <= d <= max_delay for d in delays)
          and len(set(delays)) == len(delays))
    if not ok:
        raise IRError(f"inputs kernel_delays {delays!r}: distinct integers in 1..{max_delay} expected")
    for name, v in (("dt", dt), ("tau_syn", tau)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < 1e6:
            raise IRError(f"inputs {name} {v!r}: a positive number expected")
    lat = inputs["latency"]
    if not isinstance(lat, dict) or lat.get("kind") != "latency":
        raise IRError("inputs latency: the model's latency code expected")
    try:
        float(lat["t_max"])
    except (KeyError, TypeError, ValueError):
        raise IRError("inputs latency: t_max missing or not a number") from None


__all__ = ["DEFAULT_COPIES", "DEFAULT_DT", "Plan", "input_raster", "kernel_delays", "lower_single_spike",
           "plan"]
