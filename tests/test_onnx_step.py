"""The ONNX step graph reproduces float32 PyTorch spike for spike (real onnx + onnxruntime).

Each model is lowered, exported as one time step, and run step by step in onnxruntime on
PyTorch's own encoded input (for rate coding: the very Bernoulli draw) of 20 test
digits. Every LIF layer's spikes must equal PyTorch's and the logits agree to 1e-5.
Connections sum in a different order than torch's kernels may, so a neuron within
rounding distance of threshold could in principle fire differently: such samples are
found by recomputing the membrane potentials in float64 from PyTorch's own spikes,
printed, and excused (from that layer on); a difference anywhere else fails.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from spiking import spiking_model

from esl_export import reference
from esl_export.graph import LIF, Add, Affine, AvgPool2d, Conv2d, Graph, GraphError, Input
from esl_export.lower import lower
from esl_export.onnx_step import OPSET, OnnxStep, run_steps, to_onnx
from esl_train.data import load_data
from esl_train.models import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_DIGITS = 20
TIE = 1e-6  # float32 rounding of these sums is ~1e-7; a flip needs |u - v_th| below this
ARCHS: dict[str, dict[str, Any]] = {
    "mlp-direct": {"name": "mlp-lif", "sizes": [784, 64, 32, 10], "T": 5},
    "mlp-rate": {"name": "mlp-lif", "sizes": [784, 64, 32, 10], "T": 5, "encoding": "rate"},
    "vggsnn": {"name": "vggsnn", "in_shape": [1, 28, 28], "num_classes": 10, "width": 1 / 16, "T": 3},
    "resnet19": {"name": "resnet19", "in_shape": [1, 28, 28], "num_classes": 10, "width": 1 / 16, "T": 2},
}


@functools.cache
def _case(key: str) -> tuple[dict, Graph, onnx.ModelProto, dict[str, np.ndarray]]:
    """(masks, graph, step model, PyTorch's recorded run as numpy) of one architecture."""
    model, masks = spiking_model(ARCHS[key])
    graph = lower(model, masks)
    x = load_data("mnist-embedded").test.x[:N_DIGITS]
    torch.manual_seed(3)  # the rate-coded draw
    rec = {k: v.numpy() for k, v in model.layer_spikes(x).items()}
    return masks, graph, to_onnx(graph), rec


def _near_ties(graph: Graph, rec: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per LIF layer, the samples [B] whose float64 membrane potential came within TIE of
    threshold in that layer or an earlier one, each layer fed PyTorch's own spikes."""
    T, B = rec["input"].shape[:2]
    vals = {graph.input: rec["input"].astype(np.float64).reshape(T * B, -1)}
    close, ties = np.zeros(B, bool), {}
    for name, node in list(graph.nodes.items())[1:]:
        ins = [vals[p] for p in graph.predecessors(name)]
        if isinstance(node, Affine | Conv2d | AvgPool2d):
            y = np.asarray(reference.matrix(node) @ ins[0].T).T
            bias = getattr(node, "bias", None)
            if bias is not None:
                y = (y.reshape(T * B, len(bias), -1) + bias[None, :, None]).reshape(T * B, -1)
        elif isinstance(node, Add):
            y = sum(ins)
        elif isinstance(node, LIF):
            cur, fired = ins[0].reshape(T, B, -1), rec[name].reshape(T, B, -1)
            u = np.zeros(cur.shape[1:])
            for t in range(T):
                u = node.tau * u + cur[t]
                close |= (np.abs(u - node.v_th) < TIE).any(axis=1)
                u[fired[t] > 0] = 0.0
            ties[name] = close.copy()
            y = fired.reshape(T * B, -1).astype(np.float64)
        else:  # Flatten, Readout
            y = ins[0]
        vals[name] = y
    return ties


def _assert_spike_for_spike(graph: Graph, got: dict[str, np.ndarray], rec: dict[str, np.ndarray]) -> None:
    T, B = rec["input"].shape[:2]
    ties = _near_ties(graph, rec)
    lifs = [n for n, v in graph.nodes.items() if isinstance(v, LIF)]
    assert set(got) == {"output", *(f"spikes:{n}" for n in lifs)}
    assert set(rec) == {"input", "output", *lifs}
    for n in lifs:
        ref = rec[n]
        assert ref.any(), f"{n} never spikes"
        assert got[f"spikes:{n}"].shape == ref.shape
        bad = (got[f"spikes:{n}"] != ref).reshape(T, B, -1).any(axis=(0, 2))
        assert not (bad & ~ties[n]).any(), (f"{n}: spikes differ on samples {np.flatnonzero(bad & ~ties[n])} "
                                           f"(near-ties: {np.flatnonzero(ties[n])})")
        if bad.any():
            print(f"{n}: spikes differ on near-tie samples {np.flatnonzero(bad).tolist()}")
    keep = ~ties[lifs[-1]]
    assert keep.sum() >= B - 2, f"too many near-ties: {np.flatnonzero(~keep)}"
    np.testing.assert_allclose(got["output"][:, keep], rec["output"][:, keep], rtol=0, atol=1e-5)


@pytest.mark.parametrize("key", list(ARCHS))
def test_step_graph_matches_pytorch_spike_for_spike(key: str) -> None:
    _, graph, model, rec = _case(key)
    got = run_steps(model, rec["input"])
    _assert_spike_for_spike(graph, got, rec)
    if key == "mlp-rate":
        assert set(np.unique(rec["input"])) == {0.0, 1.0}


def test_fast_conv_layout_may_flip_only_near_ties() -> None:
    _, graph, model, rec = _case("vggsnn")
    _assert_spike_for_spike(graph, run_steps(model, rec["input"], fast_conv=True), rec)


def test_model_is_valid_onnx_and_runs_the_same_from_a_file(tmp_path: Path) -> None:
    _, graph, model, rec = _case("vggsnn")
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)]
    props = {p.key: p.value for p in model.metadata_props}
    assert props["format"] == "esl-snn/onnx-step" and props["format_version"] == "1"
    assert props["model"] == "vggsnn" and json.loads(props["encoding"]) == {"kind": "direct", "T": 3}
    assert json.loads(props["lif_nodes"]) == [n for n, v in graph.nodes.items() if isinstance(v, LIF)]
    lifs = [n for n, v in graph.nodes.items() if isinstance(v, LIF)]
    assert [i.name for i in model.graph.input] == ["input", *(f"u_in:{n}" for n in lifs)]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    path = tmp_path / "step.onnx"
    onnx.save(model, str(path))
    seq = rec["input"][:, :3]  # another batch size through the same graph
    direct, loaded = run_steps(model, seq), run_steps(path, seq)
    for k in direct:
        assert np.array_equal(direct[k], loaded[k]), k
    # stepping by hand with OnnxStep gives what run_steps gives
    runner = OnnxStep(path)
    states = runner.reset(3)
    for t in range(seq.shape[0]):
        out = runner.step(seq[t], states)
        states = runner.carry(out)
        assert np.array_equal(out["output"], direct["output"][t])


def test_hand_computed_lif_strict_threshold_reset_and_lif_output() -> None:
    """I = 1 every step, tau 0.5, v_th 1: u = 1 (equal, no spike), 1.5 (spike, reset),
    1, 1.5, ... A graph that ends in a LIF outputs its spikes."""
    graph = Graph({"input": Input((1,), {"kind": "direct", "T": 4}),
                   "fc": Affine(np.array([[0.5]], np.float32), None, np.ones((1, 1), bool)),
                   "lif": LIF((1,), tau=0.5, v_th=1.0)},
                  [("input", "fc"), ("fc", "lif")])
    runner = OnnxStep(to_onnx(graph))
    states, fired, kept = runner.reset(1), [], []
    for _ in range(4):
        out = runner.step(np.full((1, 1), 2.0), states)
        states = runner.carry(out)
        assert np.array_equal(out["output"], out["spikes:lif"])
        fired.append(float(out["output"][0, 0]))
        kept.append(float(out["u_out:lif"][0, 0]))
    assert fired == [0.0, 1.0, 0.0, 1.0] and kept == [1.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize("key", ["mlp-direct", "vggsnn"])
def test_masked_synapses_are_zeros_in_the_initializers(key: str) -> None:
    masks, graph, model, _ = _case(key)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for name in graph.connections():
        w, mask = inits[f"{name}.weight"], masks[f"{name}.weight"].numpy()
        assert w.shape == mask.shape and w.dtype == np.float32
        assert np.count_nonzero(w) <= mask.sum() and not w[~mask].any(), name


def test_single_spike_graph_is_refused_in_one_line() -> None:
    graph = lower(build_model({"name": "mlp-single-spike", "sizes": [784, 32, 10]}))
    with pytest.raises(GraphError) as err:
        to_onnx(graph)
    msg = str(err.value)
    assert "\n" not in msg and "SingleSpikeIF" in msg and "'neuron.0'" in msg
