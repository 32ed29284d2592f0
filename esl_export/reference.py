"""A plain numpy executor of a lowered LIF graph, step by step.

It is the graph's meaning made runnable: tests compare it with the PyTorch
model (is the lowering right?) and with the back ends (is the export right?),
and esl_energy counts the operations of a measured run on it. Float64, no
connection delays: every node at step t reads its inputs at step t.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from esl_export.graph import (
    LIF,
    Add,
    Affine,
    AvgPool2d,
    Conv2d,
    Flatten,
    Graph,
    GraphError,
    Input,
    Readout,
)


def encode(graph: Graph, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Per-step input [T, B, *shape] of a batch of raw samples, as the model encodes it.

    ``rate`` coding draws Bernoulli spikes from ``rng``; to reproduce a particular
    PyTorch run, pass that run's recorded input sequence to ``run`` instead.
    """
    inp = graph.nodes[graph.input]
    assert isinstance(inp, Input)
    return encode_input(inp, x, rng)


def encode_input(inp: Input, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """``encode`` for an Input node alone (a back end that holds no graph)."""
    enc = inp.encoding
    x = np.asarray(x, np.float64)
    if enc["kind"] == "frames":  # [B, T, C, H, W] -> [T, B, C, H, W]
        return np.swapaxes(x, 0, 1).reshape(x.shape[1], x.shape[0], *inp.shape)
    x = x.reshape(x.shape[0], *inp.shape)
    seq = np.broadcast_to(x, (int(enc["T"]), *x.shape))
    if enc["kind"] == "rate":
        rng = rng or np.random.default_rng(0)
        return (rng.random(seq.shape) < np.clip(seq, 0, 1)).astype(np.float64)
    if enc["kind"] != "direct":
        raise GraphError(f"the reference executor runs step-based encodings, not {enc['kind']!r}")
    return np.array(seq)


def matrix(node: Affine | Conv2d | AvgPool2d) -> sparse.csr_matrix:
    """The node's synaptic matrix [out_numel, in_numel] with masked entries dropped."""
    if isinstance(node, Affine):
        return sparse.csr_matrix(node.weight * node.mask)
    return node.unrolled()


def run(graph: Graph, seq: np.ndarray) -> dict[str, np.ndarray]:
    """Every node's output over time, ``{name: [T, B, *output_shape]}``, for an
    input sequence ``seq`` = [T, B, *input shape]."""
    T, B = seq.shape[:2]
    mats = {n: matrix(v) for n, v in graph.nodes.items() if isinstance(v, Affine | Conv2d | AvgPool2d)}
    out: dict[str, np.ndarray] = {graph.input: np.asarray(seq, np.float64)}
    state: dict[str, np.ndarray] = {}
    for name, node in list(graph.nodes.items())[1:]:
        preds = graph.predecessors(name)
        ins = [out[p].reshape(T, B, -1) for p in preds]
        if isinstance(node, Affine | Conv2d | AvgPool2d):
            flat = ins[0].reshape(T * B, -1)
            y = np.asarray((mats[name] @ flat.T).T)
            bias = getattr(node, "bias", None)
            if bias is not None:
                y = (y.reshape(T * B, -1, int(np.prod(node.output_shape[1:]) or 1))
                     + np.asarray(bias, np.float64)[None, :, None]).reshape(T * B, -1)
            out[name] = y.reshape(T, B, *node.output_shape)
        elif isinstance(node, Add):
            out[name] = sum(ins).reshape(T, B, *node.output_shape)  # type: ignore[union-attr]
        elif isinstance(node, Flatten | Readout):
            out[name] = ins[0].reshape(T, B, *node.output_shape)
        elif isinstance(node, LIF):
            cur = ins[0].reshape(T, B, *node.shape)
            u = np.zeros((B, *node.shape))
            spikes = np.zeros_like(cur)
            for t in range(T):
                u = node.tau * u + cur[t]
                spikes[t] = u > node.v_th
                u = np.where(spikes[t] > 0, 0.0, u)
            state[name] = u
            out[name] = spikes
        else:
            raise GraphError(f"the reference executor cannot run {type(node).__name__} ({name})")
    return out
