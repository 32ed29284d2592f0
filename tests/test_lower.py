"""The lowered graph means what the PyTorch model computes: the numpy reference
executor of the graph reproduces every layer's spike train of the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from spiking import spiking_model

from esl_export.graph import Affine, Conv2d, Graph, GraphError, Input, Readout
from esl_export.lower import lower
from esl_export.reference import run
from esl_train.models import build_model

ARCHS = {
    "mlp-lif": {"name": "mlp-lif", "sizes": [784, 64, 32, 10], "T": 5},
    "vggsnn": {"name": "vggsnn", "in_shape": [1, 28, 28], "num_classes": 10, "width": 1 / 16, "T": 3},
    "resnet19": {"name": "resnet19", "in_shape": [3, 32, 32], "num_classes": 10, "width": 1 / 16, "T": 3},
}


def _spiking_model(arch: dict) -> torch.nn.Module:
    """A model whose layers all spike (masked weights are zero in it)."""
    return spiking_model(arch)[0]


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_reference_run_of_lowered_graph_matches_the_model(name: str) -> None:
    model = _spiking_model(ARCHS[name])
    masks = {k: w != 0 for k, w in model.connection_weights().items()}
    x = torch.rand(4, *ARCHS[name].get("in_shape", [1, 28, 28]), generator=torch.Generator().manual_seed(2))
    rec = model.layer_spikes(x)
    graph = lower(model, masks)
    seq = rec["input"].double().numpy()
    out = run(graph, seq.reshape(seq.shape[0], seq.shape[1], *graph.nodes["input"].shape))
    spiking = 0
    for layer, spikes in rec.items():
        if layer == "input":
            continue
        ref = spikes.numpy().reshape(out[layer].shape)
        if layer == "output":
            np.testing.assert_allclose(out[layer], ref, rtol=1e-4, atol=1e-4)
        else:
            # float64 here vs float32 in torch: a spike may only differ at a near-tie
            assert np.mean(out[layer] != ref) < 1e-3, layer
            spiking += int(ref.any())
    assert spiking >= 2, "the comparison needs layers that spike"
    for wname, conn in zip(masks, graph.connections().values(), strict=True):
        assert conn.synapses() > 0 and np.array_equal(conn.mask, masks[wname].numpy())


def test_lowered_mlp_shape_and_counts() -> None:
    model = build_model({"name": "mlp-single-spike", "sizes": [784, 800, 10]})
    graph = lower(model)
    conns = graph.connections()
    assert [c.synapses() for c in conns.values()] == [784 * 800, 8000]
    assert graph.output == "neuron.1"


def test_graph_validation_names_the_problem() -> None:
    w = np.ones((3, 4), np.float32)
    with pytest.raises(GraphError, match="mask"):
        Affine(w, None, np.ones((3, 5), bool))
    with pytest.raises(GraphError, match="fc gives"):
        Graph({"input": Input((4,), {"kind": "direct", "T": 1}), "fc": Affine(w, None, w > 0),
               "out": Readout((2,))}, [("input", "fc"), ("fc", "out")])
    with pytest.raises(GraphError, match="smaller than the kernel"):
        Conv2d(np.ones((2, 1, 5, 5), np.float32), None, np.ones((2, 1, 5, 5), bool), (1, 3, 3))
