"""Ternary-weight training (esl-train --weights ternary): per-neuron ternary weights in the
model file, exact on TrueNorth-style cores."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from esl_export import cli as export_cli
from esl_export.lower import lower_file
from esl_export.truenorth.lower import lower_graph
from esl_train import cli as train_cli
from esl_train.checkpoint import load_checkpoint, load_model
from esl_train.data import load_data
from esl_train.ternary import ternarize, ternary_weights
from esl_train.train import evaluate

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _levels(w: torch.Tensor) -> set[int]:
    """Distinct non-zero magnitudes per output neuron."""
    flat = w.reshape(w.shape[0], -1)
    return {len(torch.unique(row[row != 0].abs())) for row in flat}


def test_ternarize_is_per_neuron_sign_times_alpha_and_idempotent() -> None:
    w = torch.tensor([[0.1, -0.9, 1.1, 0.0], [0.5, 0.5, -0.5, 0.05]])
    t = ternarize(w)
    # row 0: mean |w| over non-zeros 0.7, delta 0.49: keep -0.9, 1.1, alpha 1.0
    assert torch.allclose(t[0], torch.tensor([0.0, -1.0, 1.0, 0.0]))
    # row 1: mean 0.3875, delta 0.271: keep the three 0.5s, alpha 0.5
    assert torch.allclose(t[1], torch.tensor([0.5, 0.5, -0.5, 0.0]))
    conv = torch.randn(6, 3, 3, 3)
    assert _levels(ternarize(conv)) == {1}
    assert torch.allclose(ternarize(ternarize(conv)), ternarize(conv), rtol=1e-6, atol=0)  # idempotent


def test_a_ternary_run_stores_ternary_weights_that_deploy_exactly(tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    assert train_cli.main(["--model", "mlp-lif", "--hidden", "32", "--T", "4", "--encoding", "rate",
                           "--limit", "300", "--epochs", "2", "--eps", "2", "--weights", "ternary",
                           "--no-progress", "--out", str(out)]) == 0
    ckpt = load_checkpoint(out)
    for name in ("fc.0.weight", "fc.1.weight"):
        w = ckpt.state_dict[name]
        assert _levels(w) <= {0, 1}, name  # one magnitude per neuron (0: a neuron with no synapse)
        assert not bool((w * ~ckpt.masks[name]).any())  # masked weights stay zero
    # the file evaluates, in a fresh model, to the accuracy the run logged
    model, _ = load_model(out)
    torch.manual_seed(0)
    _, acc = evaluate(model, load_data("mnist-embedded", limit=300).test)
    assert abs(acc - ckpt.meta["test_acc"]) < 0.05  # rate coding: another draw
    with ternary_weights(model):  # already ternary: nothing changes (up to the last bit of alpha)
        torch.testing.assert_close(model.fc[0].weight.detach(), ckpt.state_dict["fc.0.weight"], rtol=1e-6,
                                   atol=0)
    # on cores the hidden and output weights are represented exactly
    graph, _ = lower_file(out)
    ir = lower_graph(graph, readout_unit=1.0)
    errors = [q["weight_rel_rms"] for q in ir.meta["report"]["quantisation"]["layers"]]
    assert max(errors) < 1e-6, errors
    assert export_cli.main([str(out), "--target", "truenorth", "-o", str(tmp_path / "tn")]) == 0
