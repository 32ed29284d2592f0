"""What a spiking network costs, in operations, counted on the lowered graph.

Each metric is a small class, one per definition, named after what it counts
(NeuroBench's style). All of them read the lowered graph of ``esl_export.lower``;
the measured one also reads an *activity*: the per-step outputs of the graph's
input node and spiking neurons for a batch of samples (``esl_energy.activity``
records them).

Definitions
-----------
``Connections`` (mode ``connections``, the ESL-SNNs paper's count)
    One operation per active (non-masked) synapse per inference, whatever the
    input and however many time steps: the same number is the paper's "FLOPS" on
    a GPU and its SOPs on TrueNorth. 784-800-10 dense: 784·800 + 800·10 = 635,200.
``DenseOps`` (mode ``dense``)
    As if no mask and every input active: every possible synapse of every
    connection layer, once per time step (``steps``). An upper bound.
``MeasuredOps`` (mode ``measured``)
    Run on data; per sample, summed over time steps, for each connection layer:
    Σ_t Σ_i [x_i(t) ≠ 0] · (non-zero fan-out of input i). The non-zero fan-out
    counts the synapses whose stored weight is non-zero (masked weights are exactly
    zero in model.pt), so zero weights and zero inputs cost nothing — NeuroBench's
    "effective" synaptic operations. A layer whose input is binary events (the
    spikes of a LIF or single-spike neuron, or rate/latency-coded input) counts
    SOPs (NeuroBench: ACs); a layer whose input is analog (direct-coded pixels,
    average-pooled spikes, DVS frames of normalised counts) counts MACs. The
    decision is made on the graph, by what produces the input; NeuroBench makes it
    on the values (all in {-1, 0, 1} → ACs), which gives the same split for these
    models. Biases are not counted (as in NeuroBench).
``NeuronUpdates``
    Neuron state updates per sample, listed beside the synaptic operations (never
    added to them): a LIF neuron updates once per time step; a single-spike IF
    neuron is evaluated once per inference (the z-domain model solves for its one
    firing time in closed form; its event-driven input integration is already
    counted as SOPs). Non-spiking readouts are not counted.

Time steps
----------
``steps`` is the input encoding's T for step-based encodings (direct, rate,
frames). Latency coding (the single-spike network) has no time steps: every
neuron, input pixels included, sends at most one spike per inference, so each
synapse carries at most one event and ``steps`` is 1.

With latency coding and ``zero_pixels: last`` every pixel spikes (dark pixels at
``t_max``), so the first layer's measured SOPs equal its active synapses; with
``zero_pixels: never`` only non-zero pixels spike.

Direct (analog) input
---------------------
Under direct coding the input is the same at every step, so the first layer's
current is the same at every step. The lowered graph (and a step-by-step
executor such as Lava) computes it at every step: ``direct_input="per-step"``,
the default, counts it T times. The PyTorch ``mlp-lif`` computes it once and
holds it (the conv nets do not): ``direct_input="once"`` counts it once, which is
what NeuroBench reports on the unmodified ``mlp-lif`` module.

Everything is per sample (one inference), as NeuroBench reports it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from esl_export.graph import (
    LIF,
    Add,
    Affine,
    AvgPool2d,
    Conv2d,
    Flatten,
    Graph,
    Input,
    Readout,
    SingleSpikeIF,
)
from esl_train.jit import compiled
from esl_train.models.conv import pool2_spikes

MODES = ("connections", "dense", "measured", "memory")  # memory: esl_energy.memory
DirectInput = Literal["per-step", "once"]
DIRECT_INPUT = ("per-step", "once")

#: the op kinds a layer count can have: ``connection`` (the paper's one op per
#: evaluated synapse, priced as the platform's connection op), ``mac``, ``sop``
LAYER_OPS = ("connection", "mac", "sop")

#: input encodings whose values are events (0/1), not analog values
SPIKING_ENCODINGS = ("rate", "latency")

Activity = Mapping[str, torch.Tensor]
"""Per-step outputs ``[T, B, *shape]`` of the graph's input node and of its spiking
neurons (LIF, SingleSpikeIF), by node name, for one batch of samples."""


class EnergyError(Exception):
    """A bad input to esl_energy; the message is one line."""

    def __init__(self, message: object) -> None:
        super().__init__(" ".join(str(message).split()))


@dataclass(frozen=True)
class LayerCount:
    """One connection layer's count (per sample)."""

    name: str  # graph node name
    source: str  # the node whose output it reads (through Flatten/pooling)
    op: str  # one of LAYER_OPS
    synapses: int  # active (non-masked) synapses of one application
    possible: int  # synapses of one application without a mask
    ops: float  # operations per sample
    input_activity: float | None = None  # measured: mean fraction of inputs ≠ 0 per step
    events: float | None = None  # measured: inputs ≠ 0 per sample, summed over time steps
    active_inputs: float | None = None  # measured: inputs ≠ 0 at some step of the sample
    active_ops: float | None = None  # measured: synapses of those inputs (non-zero weights)


@dataclass(frozen=True)
class OpCount:
    """The result of one metric: per-layer synaptic operations and neuron updates,
    per sample (one inference)."""

    mode: str
    layers: tuple[LayerCount, ...]
    neuron_updates: float | None  # per sample; None where the mode does not count them
    steps: int
    samples: int = 0  # measured: how many samples the averages are over
    direct_input: str = "per-step"

    @property
    def ops(self) -> float:
        """All synaptic operations per sample (MACs + SOPs, or connection ops)."""
        return float(sum(layer.ops for layer in self.layers))

    def ops_of(self, op: str) -> float:
        return float(sum(layer.ops for layer in self.layers if layer.op == op))

    @property
    def macs(self) -> float:
        return self.ops_of("mac")

    @property
    def sops(self) -> float:
        return self.ops_of("sop")

    @property
    def connections(self) -> int:
        """Active synapses of one application of every connection layer."""
        return sum(layer.synapses for layer in self.layers)

    @property
    def density(self) -> float:
        """Active synapses over possible synapses, over all connection layers."""
        possible = sum(layer.possible for layer in self.layers)
        return self.connections / possible if possible else math.nan


# --------------------------------------------------------------------------- graph facts


def steps(graph: Graph) -> int:
    """Time steps of one inference (1 for latency coding: one event per synapse)."""
    enc = _input(graph).encoding
    if enc.get("kind") == "latency":
        return 1
    T = enc.get("T")
    if not isinstance(T, int) or T < 1:
        raise EnergyError(f"graph input encoding {enc.get('kind')!r} has no valid T ({T!r})")
    return T


def _input(graph: Graph) -> Input:
    node = graph.nodes[graph.input]
    assert isinstance(node, Input)
    return node


def fan_out(node: Affine | Conv2d, which: Literal["mask", "nonzero", "all"] = "mask") -> torch.Tensor:
    """Synapses leaving each input element (flat, torch's order), as float64:
    ``mask`` — active synapses; ``nonzero`` — synapses whose weight is non-zero;
    ``all`` — every synapse the layer could have (no mask). Convolution padding
    is not an input and has no synapses."""
    if which == "mask":
        active = np.asarray(node.mask, bool)
    elif which == "nonzero":
        active = np.asarray(node.weight != 0)
    else:
        active = np.ones(node.weight.shape, bool)
    if isinstance(node, Affine):
        return torch.from_numpy(active.sum(axis=0, dtype=np.int64)).double()
    # input (c, y, x) feeds output row oy through kernel row i iff y = oy·stride − pad + i
    # for some 0 <= oy < out_h: a [kh, H] validity table, and likewise [kw, W] for columns
    _, h, w = node.input_shape
    _, oh, ow = node.output_shape
    rows = _taps(active.shape[2], h, oh, node.stride[0], node.padding[0])
    cols = _taps(active.shape[3], w, ow, node.stride[1], node.padding[1])
    per_tap = active.sum(axis=0, dtype=np.int64)  # [c_in, kh, kw]: active output channels
    fan = np.einsum("cij,iy,jx->cyx", per_tap, rows, cols)
    return torch.from_numpy(np.ascontiguousarray(fan).reshape(-1)).double()


def _taps(k: int, size: int, out: int, stride: int, pad: int) -> np.ndarray:
    """[k, size] int table: 1 where kernel offset i reaches input position y from
    some output position."""
    table = np.zeros((k, size), np.int64)
    pos = np.arange(out) * stride - pad
    for i in range(k):
        y = pos + i
        table[i, y[(y >= 0) & (y < size)]] = 1
    return table


def _source(graph: Graph, name: str) -> str:
    """The node a connection layer reads, looking through Flatten."""
    (src,) = graph.predecessors(name)
    while isinstance(graph.nodes[src], Flatten):
        (src,) = graph.predecessors(src)
    return src


def is_spiking(graph: Graph, name: str) -> bool:
    """Whether the output of node ``name`` is binary events."""
    node = graph.nodes[name]
    if isinstance(node, Input):
        return node.encoding.get("kind") in SPIKING_ENCODINGS
    if isinstance(node, LIF | SingleSpikeIF):
        return True
    if isinstance(node, Flatten):
        return is_spiking(graph, graph.predecessors(name)[0])
    return False  # AvgPool2d, Add, connections, Readout: analog values


def _reads_direct_input(graph: Graph, name: str) -> bool:
    src = _source(graph, name)
    return src == graph.input and _input(graph).encoding.get("kind") == "direct"


def _check_direct_input(direct_input: str) -> None:
    if direct_input not in DIRECT_INPUT:
        raise EnergyError(f"direct_input must be one of {', '.join(DIRECT_INPUT)}, got {direct_input!r}")


# --------------------------------------------------------------------------- the metrics


class Connections:
    """The ESL-SNNs paper's count: one operation per active synapse per inference.

    Independent of data and of the number of time steps; the same number is the
    paper's FLOPs (GPU) and SOPs (TrueNorth). Neuron updates are not counted.
    """

    mode = "connections"

    def __call__(self, graph: Graph) -> OpCount:
        layers = []
        for name, node in graph.connections().items():
            synapses = int(fan_out(node, "mask").sum())
            possible = int(fan_out(node, "all").sum())
            layers.append(LayerCount(name, _source(graph, name), "connection", synapses, possible,
                                     float(synapses)))
        return OpCount(self.mode, tuple(layers), None, steps(graph))


class NeuronUpdates:
    """Neuron state updates per sample, by spiking-neuron node: a LIF neuron once per
    time step, a single-spike IF neuron once per inference. Readouts are not counted."""

    def __call__(self, graph: Graph) -> dict[str, int]:
        T = steps(graph)
        out: dict[str, int] = {}
        for name, node in graph.nodes.items():
            if isinstance(node, LIF):
                out[name] = math.prod(node.shape) * T
            elif isinstance(node, SingleSpikeIF):
                out[name] = math.prod(node.shape)
        return out


class DenseOps:
    """Every possible synapse of every connection layer, once per time step, as if
    there were no mask and every input were active (an upper bound). With
    ``direct_input="once"`` a layer reading direct (constant) input counts one step.
    Neuron updates as ``NeuronUpdates``."""

    mode = "dense"

    def __init__(self, direct_input: DirectInput = "per-step") -> None:
        _check_direct_input(direct_input)
        self.direct_input = direct_input

    def __call__(self, graph: Graph) -> OpCount:
        T = steps(graph)
        layers = []
        for name, node in graph.connections().items():
            synapses = int(fan_out(node, "mask").sum())
            possible = int(fan_out(node, "all").sum())
            n = 1 if self.direct_input == "once" and _reads_direct_input(graph, name) else T
            layers.append(LayerCount(name, _source(graph, name), "connection", synapses, possible,
                                     float(possible * n)))
        updates = float(sum(NeuronUpdates()(graph).values()))
        return OpCount(self.mode, tuple(layers), updates, T, direct_input=self.direct_input)


class MeasuredOps:
    """Effective synaptic operations of a run on data (NeuroBench's
    SynapticOperations ``Effective_MACs`` / ``Effective_ACs``), per sample.

    For every connection layer, per sample: Σ_t Σ_i [x_i(t) ≠ 0] · (non-zero fan-out
    of input i), summed over time steps; SOPs where the input is events, MACs where
    it is analog. Neuron updates as ``NeuronUpdates``, listed separately.

    Accumulates like a NeuroBench AccumulatedMetric: call it on the activity of each
    batch, then ``compute()``; ``reset()`` starts over.
    """

    mode = "measured"

    def __init__(self, graph: Graph, direct_input: DirectInput = "per-step") -> None:
        _check_direct_input(direct_input)
        self.graph = graph
        self.direct_input = direct_input
        self.T = steps(graph)
        self._layers: dict[str, tuple[str, str, torch.Tensor, int, int, bool]] = {}
        for name, node in graph.connections().items():
            src = _source(graph, name)
            op = "sop" if is_spiking(graph, graph.predecessors(name)[0]) else "mac"
            once = direct_input == "once" and _reads_direct_input(graph, name)
            self._layers[name] = (src, op, fan_out(node, "nonzero"), int(fan_out(node, "mask").sum()),
                                  int(fan_out(node, "all").sum()), once)
        self._updates = float(sum(NeuronUpdates()(graph).values()))
        self.reset()

    def reset(self) -> None:
        self.samples = 0
        self._ops = dict.fromkeys(self._layers, 0.0)
        self._active = dict.fromkeys(self._layers, 0.0)
        self._seen = dict.fromkeys(self._layers, 0.0)
        self._any = dict.fromkeys(self._layers, 0.0)  # inputs active at some step (the QNN's ≠ 0)
        self._any_ops = dict.fromkeys(self._layers, 0.0)

    def __call__(self, activity: Activity) -> OpCount:
        """Add one batch; returns the running per-sample count."""
        cache: dict[str, torch.Tensor] = {}
        batch = None
        for name, (src, _, fan, _, _, once) in self._layers.items():
            pooled, x = self._nonzero(graph_pred(self.graph, name), activity, cache)
            B = x.shape[1]
            if batch is None:
                batch = B
            elif batch != B:
                raise EnergyError(f"activity of {src} has batch {B}, expected {batch}")
            if once:
                x = x[:1]
            n = x.shape[2] * (x.shape[3] // 2) * (x.shape[4] // 2) if pooled else x[0, 0].numel()
            if n != fan.numel():
                raise EnergyError(f"activity feeding {name} has {n} values per step, "
                                  f"the layer takes {fan.numel()}")
            counts, anyt = _tally(x, pooled)
            self._ops[name] += float(counts @ fan)
            self._active[name] += float(counts.sum())
            self._seen[name] += float(x.shape[0] * B * n)
            self._any[name] += float(anyt.sum())
            self._any_ops[name] += float(anyt @ fan)
        self.samples += int(batch or 0)
        return self.compute()

    def _nonzero(self, name: str, activity: Activity,
                 cache: dict[str, torch.Tensor]) -> tuple[bool, torch.Tensor]:
        """Where node ``name``'s output [T, B, *shape] is ≠ 0: ``(False, 0/1 indicators)``, or
        ``(True, spikes)`` for a 2×2 average pool of spikes, which is ≠ 0 where its window
        holds a spike (``_tally`` reads the windows; no pooled values are needed). Binary
        spikes are their own indicator; anything else is compared with 0."""
        node = self.graph.nodes[name]
        pred = self.graph.predecessors(name)
        pooled = isinstance(node, AvgPool2d) and node.kernel == 2 and is_spiking(self.graph, pred[0])
        if not (pooled or is_spiking(self.graph, name)):
            return False, self._value(name, activity, cache) != 0
        x = self._value(pred[0] if pooled else name, activity, cache)
        if pooled:
            x = x.reshape(*x.shape[:2], *node.input_shape)  # type: ignore[union-attr]
        return pooled, x if x.is_floating_point() else x.to(torch.float32)

    def _value(self, name: str, activity: Activity, cache: dict[str, torch.Tensor]) -> torch.Tensor:
        """Output [T, B, *shape] of a node: recorded, or computed from its inputs
        for the parameter-free nodes (Flatten, AvgPool2d, Add)."""
        if name in activity:
            return activity[name]
        if name in cache:
            return cache[name]
        node = self.graph.nodes[name]
        preds = self.graph.predecessors(name)
        if isinstance(node, Flatten | Readout):
            x = self._value(preds[0], activity, cache)
            value = x.reshape(*x.shape[:2], *node.output_shape)
        elif isinstance(node, AvgPool2d):
            x = self._value(preds[0], activity, cache)
            T, B = x.shape[:2]
            # in the recorded dtype, as the model pooled it (what NeuroBench's hooks see)
            y = F.avg_pool2d(x.reshape(T * B, *node.input_shape), node.kernel)
            value = y.reshape(T, B, *node.output_shape)
        elif isinstance(node, Add):
            ins = [self._value(p, activity, cache) for p in preds]
            value = sum(ins[1:], ins[0])
        else:
            raise EnergyError(f"no recorded activity for {name} ({type(node).__name__})")
        cache[name] = value
        return value

    def compute(self) -> OpCount:
        n = max(1, self.samples)
        layers = tuple(
            LayerCount(name, src, op, synapses, possible, self._ops[name] / n,
                       self._active[name] / self._seen[name] if self._seen[name] else None,
                       self._active[name] / n, self._any[name] / n, self._any_ops[name] / n)
            for name, (src, op, _, synapses, possible, _) in self._layers.items()
        )
        return OpCount(self.mode, layers, self._updates, self.T, samples=self.samples,
                       direct_input=self.direct_input)


def _tally(x: torch.Tensor, pooled: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Per input, from 0/1 indicators ``x`` [T, B, ...] (``pooled``: spikes [T, B, C, H, W]
    whose 2×2 windows are the inputs, active where they hold a spike): the active steps
    summed over the samples, and the samples in which it is active at some step (float64,
    exact). One compiled pass for float tensors on the CPU, tensor operations otherwise."""
    T, B = x.shape[:2]
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        if pooled:
            counts, anyt = _tally_pool2_kernel(x.contiguous().numpy())
        else:
            counts, anyt = _tally_kernel(x.reshape(T, B, -1).contiguous().numpy())
        return torch.from_numpy(counts), torch.from_numpy(anyt)
    if pooled:
        x = (pool2_spikes(x.flatten(0, 1).float()) * 4.0).clamp_(max=1.0).reshape(T, B, -1)
    # a sum over time of 0/1 values is exact in float32 below 2^24 steps
    per = x.reshape(T, B, -1).sum(0, dtype=torch.float32)
    return per.sum(0, dtype=torch.float64), per.clamp(max=1.0).sum(0, dtype=torch.float64)


@compiled
def _tally_kernel(x):  # type: ignore[no-untyped-def]
    T, B, N = x.shape
    counts = np.zeros(N)
    anyt = np.zeros(N)
    per = np.empty(N, x.dtype)
    one = np.float32(1.0)
    for b in range(B):
        per[:] = x[0, b]
        for t in range(1, T):
            row = x[t, b]
            for n in range(N):
                per[n] += row[n]
        for n in range(N):  # branch-free (min, not if): it vectorises
            counts[n] += per[n]
            anyt[n] += min(per[n], one)
    return counts, anyt


@compiled
def _tally_pool2_kernel(x):  # type: ignore[no-untyped-def]
    T, B, C, H, W = x.shape
    h, w = H // 2, W // 2
    N = C * h * w
    counts = np.zeros(N)
    anyt = np.zeros(N)
    per = np.empty(N, x.dtype)
    one = np.float32(1.0)
    for b in range(B):
        per[:] = 0.0
        for t in range(T):
            for c in range(C):
                for i in range(h):
                    r0, r1 = x[t, b, c, 2 * i], x[t, b, c, 2 * i + 1]
                    row = per[(c * h + i) * w:(c * h + i + 1) * w]  # a view: indices from 0 vectorise
                    for j in range(w):  # a window holds a spike: its sum of 0/1 values, clipped at 1
                        row[j] += min(r0[2 * j] + r0[2 * j + 1] + r1[2 * j] + r1[2 * j + 1], one)
        for n in range(N):
            counts[n] += per[n]
            anyt[n] += min(per[n], one)
    return counts, anyt


def graph_pred(graph: Graph, name: str) -> str:
    """The single predecessor of a connection node."""
    preds = graph.predecessors(name)
    if len(preds) != 1:
        raise EnergyError(f"connection {name} has {len(preds)} inputs, expected 1")
    return preds[0]
