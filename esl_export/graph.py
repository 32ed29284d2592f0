"""The lowered network: framework-neutral, plain data, validated at construction.

Modelled on NIR's node set: one small dataclass per node kind, the graph a dict
of nodes and a list of edges. Fields NIR lacks (the single-spike neuron, the
reset mode, the strict threshold comparison) live here and go into NIR metadata
on export. Arrays are numpy, weights float32; a mask is kept beside each
synaptic weight so back ends can drop or count the zeros.

Time convention: every node runs once per time step; a connection node's output
at step t is computed from its input at step t (back ends that add a delay per
connection, as Lava does, say so themselves).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse


class GraphError(ValueError):
    """A graph that is not well formed; the message names the node."""


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in value)


def _finite(node: str, **arrays: np.ndarray | None) -> None:
    """Weights and biases must be numbers: NaN or infinity would run as garbage."""
    for name, arr in arrays.items():
        if arr is not None and not np.isfinite(arr).all():
            raise GraphError(f"{node}: {name} has NaN or infinite values")


@dataclass(frozen=True)
class Input:
    """Network input: ``shape`` per sample and the encoding that turns it into
    per-step input (``kind``: direct | rate | latency | frames, ``T``...)."""

    shape: tuple[int, ...]
    encoding: dict[str, Any]

    @property
    def output_shape(self) -> tuple[int, ...]:
        return _shape(self.shape)


@dataclass(frozen=True)
class Affine:
    """y = W x + b over flat vectors. ``mask`` marks the active synapses."""

    weight: np.ndarray  # [out, in]
    bias: np.ndarray | None
    mask: np.ndarray  # bool, like weight

    def __post_init__(self) -> None:
        if self.weight.ndim != 2 or self.mask.shape != self.weight.shape:
            raise GraphError(f"Affine: weight {self.weight.shape}, mask {self.mask.shape}: 2-D and alike")
        if self.bias is not None and self.bias.shape != (self.weight.shape[0],):
            raise GraphError(f"Affine: bias {self.bias.shape} does not fit weight {self.weight.shape}")
        _finite("Affine", weight=self.weight, bias=self.bias)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.weight.shape[1],)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.weight.shape[0],)

    def synapses(self) -> int:
        """Active synapses (non-zero connections) of one application."""
        return int(self.mask.sum())

    def fan_out(self) -> np.ndarray:
        """Active synapses leaving each input element."""
        return self.mask.sum(axis=0)


@dataclass(frozen=True)
class Conv2d:
    """2-D cross-correlation as torch computes it, on [C, H, W] inputs."""

    weight: np.ndarray  # [out_ch, in_ch, kh, kw]
    bias: np.ndarray | None
    mask: np.ndarray
    input_shape: tuple[int, int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        c = self.input_shape[0]
        if self.weight.ndim != 4 or self.mask.shape != self.weight.shape or self.weight.shape[1] != c:
            raise GraphError(f"Conv2d: weight {self.weight.shape} does not fit input {self.input_shape}")
        if min(self.output_shape) <= 0:
            raise GraphError(f"Conv2d: input {self.input_shape} is smaller than the kernel")
        if self.bias is not None and self.bias.shape != (self.weight.shape[0],):
            raise GraphError(f"Conv2d: bias {self.bias.shape} does not fit weight {self.weight.shape}")
        _finite("Conv2d", weight=self.weight, bias=self.bias)

    @property
    def output_shape(self) -> tuple[int, ...]:
        _, h, w = self.input_shape
        kh, kw = self.weight.shape[2:]
        oh = (h + 2 * self.padding[0] - kh) // self.stride[0] + 1
        ow = (w + 2 * self.padding[1] - kw) // self.stride[1] + 1
        return (self.weight.shape[0], oh, ow)

    def unrolled(self) -> sparse.csr_matrix:
        """The equivalent [out_numel, in_numel] matrix in torch's flatten order,
        with zero entries (masked taps) dropped and padding left out."""
        mat = _unroll(self.weight * self.mask, self.input_shape, self.output_shape, self.stride,
                      self.padding)
        mat.eliminate_zeros()
        return mat

    def _active(self) -> sparse.csr_matrix:
        return _unroll(self.mask.astype(np.float32), self.input_shape, self.output_shape, self.stride,
                       self.padding)

    def fan_out(self) -> np.ndarray:
        """Active synapses leaving each input element (padding excluded)."""
        return np.asarray(self._active().sum(axis=0)).ravel().astype(np.int64)

    def synapses(self) -> int:
        return int(self.fan_out().sum())


@dataclass(frozen=True)
class AvgPool2d:
    """Average pooling on [C, H, W], kernel == stride, no padding."""

    kernel: int
    input_shape: tuple[int, int, int]

    @property
    def output_shape(self) -> tuple[int, ...]:
        c, h, w = self.input_shape
        return (c, h // self.kernel, w // self.kernel)

    def unrolled(self) -> sparse.csr_matrix:
        c = self.input_shape[0]
        k = self.kernel
        weight = np.zeros((c, c, k, k), np.float32)
        for i in range(c):
            weight[i, i] = 1.0 / (k * k)
        return _unroll(weight, self.input_shape, self.output_shape, (k, k), (0, 0))

    def synapses(self) -> int:
        return int(np.prod(self.output_shape)) * self.kernel * self.kernel


@dataclass(frozen=True)
class Flatten:
    input_shape: tuple[int, ...]

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (int(np.prod(self.input_shape)),)


@dataclass(frozen=True)
class _Elementwise:
    """A node whose output has its input's shape."""

    shape: tuple[int, ...]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return _shape(self.shape)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return _shape(self.shape)


@dataclass(frozen=True)
class Add(_Elementwise):
    """Element-wise sum of its inputs (residual connections)."""


@dataclass(frozen=True)
class LIF(_Elementwise):
    """u(t) = tau·u(t-1) + I(t); spike when u > v_th (strict); u <- 0 after a spike.
    Lava floating_pt: du = 1, dv = 1 - tau."""

    tau: float
    v_th: float
    reset: str = "zero"

    def __post_init__(self) -> None:
        if not 0.0 <= self.tau <= 1.0 or not 0 < self.v_th < float("inf") or self.reset != "zero":
            raise GraphError(f"LIF: tau {self.tau} in [0, 1], v_th {self.v_th} > 0, reset 'zero' expected")


@dataclass(frozen=True)
class SingleSpikeIF(_Elementwise):
    """Non-leaky integrate-and-fire with exponentially decaying synaptic current
    (tau_syn), threshold ``threshold``; each neuron fires at most once."""

    threshold: float = 1.0
    tau_syn: float = 1.0

    def __post_init__(self) -> None:
        if not (0 < self.threshold < float("inf") and 0 < self.tau_syn < float("inf")):
            raise GraphError(f"SingleSpikeIF: threshold {self.threshold} and tau_syn {self.tau_syn} must be "
                             f"positive and finite")


@dataclass(frozen=True)
class Readout(_Elementwise):
    """Non-spiking output: the input current of each step is that step's logit."""


Node = Input | Affine | Conv2d | AvgPool2d | Flatten | Add | LIF | SingleSpikeIF | Readout
CONNECTIONS = (Affine, Conv2d, AvgPool2d)
NEURONS = (LIF, SingleSpikeIF)


@dataclass(frozen=True)
class Graph:
    """Nodes by name and directed edges; ``nodes`` is in topological order."""

    nodes: dict[str, Node]
    edges: list[tuple[str, str]]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = list(self.nodes)
        inputs = [n for n, v in self.nodes.items() if isinstance(v, Input)]
        if len(inputs) != 1 or names[0] != inputs[0]:
            raise GraphError("graph: exactly one Input node, first in order")
        order = {n: i for i, n in enumerate(names)}
        for src, dst in self.edges:
            if src not in order or dst not in order:
                raise GraphError(f"graph: edge {src} -> {dst} names a missing node")
            if order[src] >= order[dst]:
                raise GraphError(f"graph: edge {src} -> {dst} goes against the node order")
            out = _shape(self.nodes[src].output_shape)
            want = _shape(getattr(self.nodes[dst], "input_shape", out))
            if int(np.prod(out)) != int(np.prod(want)) or (
                not isinstance(self.nodes[dst], Affine | Flatten) and out != want
            ):
                raise GraphError(f"graph: {src} gives {out}, {dst} takes {want}")
        for name in names[1:]:
            if not self.predecessors(name):
                raise GraphError(f"graph: node {name} has no input")
        if len(self.outputs()) != 1:
            raise GraphError(f"graph: expected one output node, found {self.outputs()}")

    @property
    def input(self) -> str:
        return next(iter(self.nodes))

    def outputs(self) -> list[str]:
        sources = {s for s, _ in self.edges}
        return [n for n in self.nodes if n not in sources]

    @property
    def output(self) -> str:
        return self.outputs()[0]

    def predecessors(self, name: str) -> list[str]:
        return [s for s, d in self.edges if d == name]

    def successors(self, name: str) -> list[str]:
        return [d for s, d in self.edges if s == name]

    def connections(self) -> dict[str, Affine | Conv2d]:
        """Synaptic layers (those with learnable, maskable weights), in order."""
        return {n: v for n, v in self.nodes.items() if isinstance(v, Affine | Conv2d)}


def _unroll(
    weight: np.ndarray,
    in_shape: tuple[int, int, int],
    out_shape: tuple[int, ...],
    stride: tuple[int, int],
    padding: tuple[int, int],
) -> sparse.csr_matrix:
    """[out_numel, in_numel] sparse matrix of a cross-correlation in torch's flatten
    order; taps that fall on padding are left out. Zero weights are kept as
    explicit entries so that the structure follows the kernel, not the values."""
    c_in, h, w = in_shape
    c_out, oh, ow = out_shape
    kh, kw = weight.shape[2:]
    rows, cols, vals = [], [], []
    co, ci = np.meshgrid(np.arange(c_out), np.arange(c_in), indexing="ij")
    for i in range(kh):
        ys = np.arange(oh)
        yy = ys * stride[0] - padding[0] + i
        ys, yy = ys[(yy >= 0) & (yy < h)], yy[(yy >= 0) & (yy < h)]
        for j in range(kw):
            xs = np.arange(ow)
            xx = xs * stride[1] - padding[1] + j
            xs, xx = xs[(xx >= 0) & (xx < w)], xx[(xx >= 0) & (xx < w)]
            out_pos = (ys[:, None] * ow + xs[None, :]).ravel()
            in_pos = (yy[:, None] * w + xx[None, :]).ravel()
            rows.append((co[..., None] * oh * ow + out_pos).ravel())
            cols.append((ci[..., None] * h * w + in_pos).ravel())
            vals.append(np.broadcast_to(weight[:, :, i, j][..., None], (c_out, c_in, len(out_pos))).ravel())
    mat = sparse.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(c_out * oh * ow, c_in * h * w),
    )
    return mat.tocsr()
