"""Measured mode against a referee: NeuroBench's SynapticOperations on the same model
and the same data gives the same effective MACs, ACs (our SOPs) and dense count.

The models are loaded from model.pt through the one loader; NeuroBench wraps that
very module (TorchModel) and hooks its nn.Linear / nn.Conv2d layers. One subtlety,
tested both ways: the PyTorch mlp-lif computes its first layer once for direct
(constant) input, where the graph — and our default ``direct_input="per-step"`` —
applies it at every step. NeuroBench on the unmodified module equals our
``direct_input="once"``; NeuroBench on the same modules run step by step (a wrapper
whose output is asserted identical) equals the default.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from esl_energy.activity import reference_activity
from esl_energy.counting import DenseOps, MeasuredOps
from esl_energy.referee import StepByStep, neurobench_synops
from esl_energy.report import load, measure
from esl_train.checkpoint import make_checkpoint, save_checkpoint
from esl_train.data import load_data
from esl_train.models import build_model


def _spiking(arch: dict, density: float = 0.5, gain: float = 4.0, seed: int = 0) -> nn.Module:
    """A sparse model whose layers spike: masked, larger weights, BatchNorm statistics set."""
    torch.manual_seed(seed)
    model = build_model(arch)
    with torch.no_grad():
        for w in model.connection_weights().values():
            w.mul_(gain * (torch.rand_like(w) < density))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(1.0, 2.5)
                m.bias.uniform_(-0.1, 0.4)
    return model.eval()


def _saved(tmp_path: Path, arch: dict, **kw: float) -> Path:
    model = _spiking(arch, **kw)
    masks = {k: w != 0 for k, w in model.connection_weights().items()}
    path = tmp_path / f"{arch['name']}.pt"
    save_checkpoint(make_checkpoint(model, masks=masks), path)
    return path


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    return load_data("mnist-embedded", limit=48).test.x


def _assert_equal(ours, nb: dict[str, float]) -> None:
    assert ours.sops > 0
    assert ours.macs == pytest.approx(nb["Effective_MACs"], rel=1e-12)
    assert ours.sops == pytest.approx(nb["Effective_ACs"], rel=1e-12)


def test_lif_mlp_measured_equals_neurobench(tmp_path: Path, digits: torch.Tensor) -> None:
    arch = {"name": "mlp-lif", "sizes": [784, 200, 50, 10], "T": 4}
    loaded = load(_saved(tmp_path, arch))
    model, graph = loaded.model, loaded.graph

    # default: the graph's semantics, first layer at every step
    stepwise = StepByStep(model)
    with torch.no_grad():
        assert torch.equal(stepwise(digits), model(digits))
    nb = neurobench_synops(stepwise, digits, batch_size=16)
    ours = measure(model, graph, digits, batch_size=16)
    _assert_equal(ours, nb)
    assert ours.macs > 0 and ours.samples == len(digits)
    assert DenseOps()(graph).ops == pytest.approx(nb["Dense"])

    # the unmodified module computes the constant first-layer current once
    nb = neurobench_synops(model, digits, batch_size=16)
    once = measure(model, graph, digits, batch_size=24, direct_input="once")
    _assert_equal(once, nb)
    assert once.sops == ours.sops and once.macs == pytest.approx(ours.macs / 4)
    assert DenseOps("once")(graph).ops == pytest.approx(nb["Dense"])


def test_rate_coded_lif_mlp_counts_input_spikes_as_sops(tmp_path: Path, digits: torch.Tensor) -> None:
    arch = {"name": "mlp-lif", "sizes": [784, 100, 10], "T": 3, "encoding": "rate"}
    loaded = load(_saved(tmp_path, arch))
    torch.manual_seed(7)  # the same Bernoulli draws in both runs: same batches, same seed
    nb = neurobench_synops(loaded.model, digits, batch_size=16)
    torch.manual_seed(7)
    ours = measure(loaded.model, loaded.graph, digits, batch_size=16)
    assert nb["Effective_MACs"] == 0 and ours.macs == 0
    _assert_equal(ours, nb)


@pytest.mark.parametrize("arch", [
    {"name": "vggsnn", "in_shape": [1, 16, 16], "num_classes": 10, "width": 1 / 16, "T": 2},
    {"name": "resnet19", "in_shape": [3, 16, 16], "num_classes": 10, "width": 1 / 16, "T": 2},
], ids=["vggsnn", "resnet19"])
def test_conv_nets_measured_equal_neurobench(tmp_path: Path, arch: dict) -> None:
    """Conv layers, pooling before a layer (analog: MACs), residual shortcuts, BatchNorm
    folded into the lowered convolutions: still NeuroBench's counts."""
    loaded = load(_saved(tmp_path, arch, density=0.6, gain=3.0))
    x = torch.rand(4, *arch["in_shape"], generator=torch.Generator().manual_seed(3))
    nb = neurobench_synops(loaded.model, x, batch_size=2)
    ours = measure(loaded.model, loaded.graph, x, batch_size=4)
    _assert_equal(ours, nb)
    assert DenseOps()(loaded.graph).ops == pytest.approx(nb["Dense"])


def test_reference_executor_gives_the_model_counts(tmp_path: Path, digits: torch.Tensor) -> None:
    """The numpy reference executor of the graph (float64) counts what the model
    (float32) counts, up to a near-tie spike."""
    loaded = load(_saved(tmp_path, {"name": "mlp-lif", "sizes": [784, 100, 10], "T": 4}))
    ours = measure(loaded.model, loaded.graph, digits)
    metric = MeasuredOps(loaded.graph)
    ref = metric(reference_activity(loaded.graph, digits))
    assert ref.macs == ours.macs
    assert ref.sops == pytest.approx(ours.sops, rel=1e-3)
