"""Recording what a network does on data: the activity ``MeasuredOps`` counts.

An activity is ``{node name: [T, B, *shape]}`` for the graph's input node and for
each spiking neuron node (LIF, SingleSpikeIF) of the lowered graph, for one batch.

- ``record(model, graph, x)`` runs the PyTorch model itself (the spikes the model
  really emits, bit for bit what NeuroBench sees when it hooks the same model): the
  LIF models through ``layer_spikes``; the single-spike network through its spike
  times, as one "step" with 1 where a neuron (or input pixel) fires.
- ``reference_activity(graph, x)`` runs the numpy reference executor of the graph
  instead (LIF graphs only; float64, so a spike may differ from the float32 model's
  at a near-tie).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from esl_energy.counting import Activity, EnergyError
from esl_export.graph import LIF, Graph, Input, SingleSpikeIF
from esl_export.reference import encode, run


def input_node(graph: Graph) -> Input:
    node = graph.nodes[graph.input]
    assert isinstance(node, Input)
    return node


def expected_sample_shape(graph: Graph) -> tuple[int, ...]:
    """The shape of one raw sample the model takes (fully connected models take any
    shape with the right number of values)."""
    inp = input_node(graph)
    if inp.encoding.get("kind") == "frames":
        return (int(inp.encoding["T"]), *inp.shape)
    return tuple(inp.shape)


def check_samples(graph: Graph, shape: tuple[int, ...], what: str = "data") -> None:
    """EnergyError unless samples of ``shape`` fit the graph's input."""
    want = expected_sample_shape(graph)
    flat_ok = len(input_node(graph).shape) == 1 and math.prod(shape) == math.prod(want)
    if tuple(shape) != want and not flat_ok:
        raise EnergyError(
            f"{what}: samples of shape {list(shape)} do not fit the model "
            f"({graph.meta.get('model', 'model')} takes {list(want)})"
        )


@torch.no_grad()
def record(model: torch.nn.Module, graph: Graph, x: torch.Tensor) -> Activity:
    """Activity of one batch ``x`` ([B, *sample shape]) run through the model."""
    check_samples(graph, tuple(x.shape[1:]))
    model.eval()
    B = x.shape[0]
    single = [n for n, v in graph.nodes.items() if isinstance(v, SingleSpikeIF)]
    lifs = [n for n, v in graph.nodes.items() if isinstance(v, LIF)]
    shape = input_node(graph).shape
    if single:
        t_in = model.input_spike_times(x)  # type: ignore[operator]
        times = model.spike_times(x)  # type: ignore[operator]
        if len(times) != len(single):
            raise EnergyError(f"model gives {len(times)} spiking layers, the graph has {len(single)}")
        act = {graph.input: torch.isfinite(t_in).reshape(1, B, *shape)}
        for name, t in zip(single, times, strict=True):
            act[name] = torch.isfinite(t).reshape(1, B, *graph.nodes[name].output_shape)
        return act
    rec = model.layer_spikes(x)  # type: ignore[operator]
    seq = rec["input"]
    act = {graph.input: seq.reshape(seq.shape[0], B, *shape)}
    for name in lifs:
        if rec.get(name) is None:
            raise EnergyError(f"model recorded no spikes for graph node {name}")
        act[name] = rec[name]
    return act


def reference_activity(graph: Graph, x: np.ndarray | torch.Tensor,
                       rng: np.random.Generator | None = None) -> Activity:
    """Activity of one batch run through the numpy reference executor (LIF graphs)."""
    x = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    check_samples(graph, tuple(x.shape[1:]))
    seq = encode(graph, x, rng)
    out = run(graph, seq)
    act = {graph.input: torch.from_numpy(np.ascontiguousarray(seq))}
    for name, node in graph.nodes.items():
        if isinstance(node, LIF):
            act[name] = torch.from_numpy(out[name])
    return act
