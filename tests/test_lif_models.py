"""LIF neuron, mlp-lif, vggsnn, resnet19 and the TET loss."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from esl_train.losses import TET_LAMBDA, TET_PHI, tet_loss
from esl_train.models import ArchError, build_model
from esl_train.models.conv import VGGSNN, ResNet19
from esl_train.models.lif import LIF, LIFMLP

HPARAM_KEYS = {
    "optimizer", "lr", "lr_final", "lr_schedule", "batch_size", "epochs",
    "clip_grad_norm", "weight_decay",
}


def run_lif(current: list[float], tau: float = 0.5, v_th: float = 1.0) -> list[float]:
    x = torch.tensor(current, dtype=torch.float32).reshape(-1, 1)
    return LIF(tau, v_th)(x).flatten().tolist()


# --- the neuron --------------------------------------------------------------------------


def test_lif_leak_integrates_with_tau():
    # u: 0.6, 0.9, 1.05 -> spike, reset 0, 0.6
    assert run_lif([0.6, 0.6, 0.6, 0.6]) == [0, 0, 1, 0]
    # without leak (tau = 1) the same input crosses one step earlier: 0.6, 1.2 -> spike
    assert run_lif([0.6, 0.6, 0.6, 0.6], tau=1.0) == [0, 1, 0, 1]
    # fully leaky (tau = 0): only the present input counts
    assert run_lif([0.9, 0.9, 1.1], tau=0.0) == [0, 0, 1]


def test_lif_threshold_is_strict():
    assert run_lif([1.0]) == [0]  # exactly v_th: no spike
    assert run_lif([0.5, 0.75]) == [0, 0]  # 0.25 + 0.75 == 1.0 exactly: no spike
    assert run_lif([1.0, 1.0]) == [0, 1]  # 1.5 > 1
    assert run_lif([2.0, 1.0], v_th=2.0) == [0, 0]  # 2.0, then 1.0 + 1.0 == 2.0: no spike
    assert run_lif([2.0, 1.5], v_th=2.0) == [0, 1]  # 2.0, then 2.5


def test_lif_resets_to_zero():
    # 2.0 spikes and resets to 0, so 0.9 stays below (without reset: 2, 1, 1.4 -> spike)
    assert run_lif([2.0, 0.0, 0.9]) == [1, 0, 0]
    # reset to zero, not subtraction: after 3.0 a subtractive reset would leave 2.0
    # and 0.5·2.0 + 0.6 = 1.6 would spike again
    assert run_lif([3.0, 0.6]) == [1, 0]
    # the state starts at 0 on every call
    lif = LIF()
    x = torch.full((3, 2), 0.6)
    assert torch.equal(lif(x), lif(x))


def test_lif_shape_and_dtype():
    x = torch.rand(5, 3, 4, 6, 6, dtype=torch.float64) * 2
    s = LIF()(x)
    assert s.shape == x.shape and s.dtype == torch.float64
    assert set(s.unique().tolist()) <= {0.0, 1.0}


def test_lif_surrogate_gradient():
    x = torch.tensor([[1.0], [0.5]], requires_grad=True)  # T=2, B=1
    s = LIF()(x)
    s[0].sum().backward()
    # arctan surrogate with α = 2 at the threshold: ∂s/∂u = 1
    assert x.grad[0].item() == pytest.approx(1.0)
    assert x.grad[1].item() == 0.0  # s(0) cannot depend on I(1)
    # away from threshold: 1 / (1 + (π·(u − 1))²)
    x = torch.tensor([[0.5]], requires_grad=True)
    LIF()(x).sum().backward()
    assert x.grad.item() == pytest.approx(1 / (1 + (math.pi * 0.5) ** 2))


def test_lif_reset_is_detached():
    # s(0) = 1, so u(1) = τ·u(0)·(1 − s(0)) + I(1) = I(1); with the reset detached,
    # s(1) gets no gradient from I(0) through the reset (only through u, which is 0·…)
    x = torch.tensor([[2.0], [0.5]], requires_grad=True)
    s = LIF()(x)
    s[1].sum().backward()
    assert x.grad[0].item() == 0.0
    assert x.grad[1].item() != 0.0


def test_lif_matches_lava_floating_pt_equations():
    """v = v·(1 − dv) + u, u = a_in (du = 1), spike v > vth, v ← 0 — in float64."""
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(20, 64, generator=gen, dtype=torch.float64) * 1.2
    tau, v_th = 0.5, 1.0
    spikes = LIF(tau, v_th)(x).numpy()
    dv = 1.0 - tau
    v = np.zeros(64)
    ref = []
    for a_in in x.numpy():
        v = v * (1 - dv) + a_in
        s = v > v_th
        v[s] = 0.0
        ref.append(s)
    assert np.array_equal(spikes, np.array(ref, dtype=np.float64))
    assert 0 < spikes.mean() < 1


# --- TET loss ------------------------------------------------------------------------------


def test_tet_loss_hand_computed():
    out = torch.tensor([[[0.0, 0.0]], [[1.0, 0.0]]])  # T=2, B=1, C=2
    y = torch.tensor([0])
    ce = (math.log(2) + math.log(1 + math.exp(-1))) / 2  # per-step CE, averaged over t
    mse = (1 + 1 + 0 + 1) / 4  # (O − φ)² with φ = 1, mean over all entries
    assert tet_loss(out, y, lam=0.5, phi=1.0).item() == pytest.approx(0.5 * ce + 0.5 * mse)
    assert tet_loss(out, y, lam=0.0).item() == pytest.approx(ce)
    # φ = 0: MSE = (0 + 0 + 1 + 0) / 4
    assert tet_loss(out, y, lam=0.2, phi=0.0).item() == pytest.approx(0.8 * ce + 0.2 * 0.25)
    assert (TET_LAMBDA, TET_PHI) == (1e-3, 1.0)


def test_tet_loss_is_mean_of_per_step_losses():
    gen = torch.Generator().manual_seed(0)
    out, y = torch.randn(4, 3, 5, generator=gen), torch.tensor([0, 4, 2])
    per_step = torch.stack([F.cross_entropy(out[t], y) for t in range(4)]).mean()
    mse = ((out - 1.0) ** 2).mean()
    lam = 0.1
    assert tet_loss(out, y, lam=lam).item() == pytest.approx(
        ((1 - lam) * per_step + lam * mse).item(), rel=1e-6)
    with pytest.raises(ValueError):
        tet_loss(out[0], y)


# --- models -------------------------------------------------------------------------------

SMALL = {
    "mlp": ({"name": "mlp-lif", "sizes": [784, 64, 10], "T": 4}, (16, 1, 28, 28), 1e-3),
    "vgg": ({"name": "vggsnn", "in_shape": [1, 28, 28], "width": 1 / 16, "T": 2},
            (4, 1, 28, 28), 1e-2),
    "resnet": ({"name": "resnet19", "in_shape": [3, 32, 32], "width": 1 / 16, "T": 2},
               (4, 3, 32, 32), 1e-2),
}


@pytest.mark.parametrize(("arch", "shape", "out_shape"), [
    ({"name": "mlp-lif"}, (3, 1, 28, 28), (8, 3, 10)),
    ({"name": "mlp-lif", "sizes": [784, 20, 30, 7], "encoding": "rate", "T": 3}, (2, 784),
     (3, 2, 7)),
    (SMALL["vgg"][0], (2, 1, 28, 28), (2, 2, 10)),
    ({"name": "vggsnn", "in_shape": [3, 32, 32], "width": 1 / 16, "num_classes": 100, "T": 1},
     (2, 3, 32, 32), (1, 2, 100)),
    ({"name": "vggsnn", "in_shape": [3, 2, 16, 16], "width": 1 / 16}, (2, 3, 2, 16, 16),
     (3, 2, 10)),
    (SMALL["resnet"][0], (2, 3, 32, 32), (2, 2, 10)),
    ({"name": "resnet19", "in_shape": [2, 1, 16, 16], "width": 1 / 16, "num_classes": 4},
     (3, 2, 1, 16, 16), (2, 3, 4)),
])
def test_output_shape(arch, shape, out_shape):
    torch.manual_seed(0)
    model = build_model(arch)
    out = model(torch.rand(*shape))
    assert tuple(out.shape) == out_shape
    assert tuple(model.predict(out).shape) == (shape[0],)
    assert model.encoding()["T"] == out_shape[0]


@pytest.mark.parametrize("key", ["mlp", "vgg", "resnet"])
def test_arch_round_trip(key):
    arch, shape, _ = SMALL[key]
    torch.manual_seed(1)
    model = build_model(arch)
    x = torch.rand(*shape)
    model.train()
    model(x)  # move the BatchNorm running statistics off their initial values
    model.eval()
    # the arch is plain data, complete, and rebuilds the same network
    again = json.loads(json.dumps(model.arch))
    assert again == model.arch
    twin = build_model(again)
    assert twin.arch == model.arch
    twin.load_state_dict(model.state_dict())
    twin.eval()
    with torch.no_grad():
        assert torch.equal(model(x), twin(x))
    assert type(model)(model.arch).arch == model.arch


def test_rate_encoding_uses_global_rng():
    model = LIFMLP({"sizes": [784, 32, 10], "encoding": "rate", "T": 5})
    x = torch.rand(3, 784)
    torch.manual_seed(7)
    a = model(x)
    torch.manual_seed(7)
    b = model(x)
    assert torch.equal(a, b)
    enc = model.encode(torch.tensor([[0.0] * 392 + [1.0] * 392]))
    assert enc.shape == (5, 1, 784)
    assert enc[:, :, :392].sum() == 0 and enc[:, :, 392:].min() == 1


@pytest.mark.parametrize("key", ["mlp", "vgg", "resnet"])
def test_adam_steps_decrease_loss(key):
    arch, shape, lr = SMALL[key]
    torch.manual_seed(0)
    model = build_model(arch)
    x = torch.rand(*shape)
    y = torch.arange(shape[0]) % 10
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(4):
        opt.zero_grad()
        loss = model.loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(b < a for a, b in itertools.pairwise(losses)), losses


@pytest.mark.parametrize("cls", [LIFMLP, VGGSNN, ResNet19])
def test_descriptions(cls):
    model = cls({"width": 1 / 16} if cls is not LIFMLP else {})
    assert model.neuron() == {"model": "lif", "tau": 0.5, "v_th": 1.0, "reset": "zero",
                              "threshold_compare": ">", "du": 1.0, "dv": 0.5}
    kind = {"mlp-lif": "direct", "vggsnn": "frames", "resnet19": "direct"}[cls.name]
    T = {"mlp-lif": 8, "vggsnn": 10, "resnet19": 4}[cls.name]
    assert model.encoding() == {"kind": kind, "T": T}
    assert set(cls.default_hparams) == HPARAM_KEYS
    assert cls.default_hparams["optimizer"] == "adam"
    assert cls.default_hparams["batch_size"] == (100 if cls is LIFMLP else 64)
    assert all(isinstance(m, torch.nn.Linear | torch.nn.Conv2d)
               for m in model.modules() if hasattr(m, "weight") and m.weight.dim() > 1)
    assert model.connection_weights()


def test_bad_architectures():
    for arch in (
        {"name": "mlp-lif", "encoding": "latency"},
        {"name": "mlp-lif", "sizes": [784]},
        {"name": "mlp-lif", "width": 0.5},  # not a key of mlp-lif
        {"name": "mlp-lif", "tau": 1.5},
        {"name": "vggsnn", "in_shape": [1, 8, 8]},  # too small for four pools
        {"name": "vggsnn", "in_shape": [10, 2, 48, 48], "T": 4},  # frames fix T
        {"name": "resnet19", "in_shape": [3, 32]},
        {"name": "resnet19", "width": 0},
        {"name": "resnet19", "in_shape": [3, 32, 32], "encoding": "frames"},
    ):
        with pytest.raises(ArchError):
            build_model(arch)
    model = build_model(SMALL["vgg"][0])
    with pytest.raises(ValueError, match="shape"):
        model(torch.rand(2, 3, 28, 28))


# --- spike recording -------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["direct", "rate"])
def test_mlp_layer_spikes_match_lava_equations(encoding):
    """Replay the recorded input through Lava's floating-point LIF equations (float64):
    Dense a_in = W·s, v = v·(1 − dv) + a_in + bias, spike v > vth, v ← 0; the readout is
    a LIF with du = dv = 1 (v = a_in + bias) and no threshold."""
    torch.manual_seed(2)
    model = LIFMLP({"sizes": [784, 100, 50, 10], "T": 6, "encoding": encoding}).double()
    with torch.no_grad():  # make the hidden layers busy
        for fc in model.fc[:-1]:
            fc.weight.mul_(4.0)
    model.eval()
    rec = model.layer_spikes(torch.rand(5, 1, 28, 28, dtype=torch.float64))
    assert list(rec) == ["input", "lif.0", "lif.1", "output"]
    assert rec["input"].shape == (6, 5, 784)
    assert not model.lif[0].record and model.lif[0].recorded is None
    dv = model.neuron()["dv"]
    s = rec["input"].numpy()
    for k, fc in enumerate(model.fc):
        W, b = fc.weight.detach().numpy(), fc.bias.detach().numpy()
        a_in = np.einsum("oi,tbi->tbo", W, s)
        if k == len(model.fc) - 1:
            np.testing.assert_allclose(a_in + b, rec["output"].numpy(), rtol=0, atol=1e-12)
            break
        v, out = np.zeros(a_in.shape[1:]), []
        for t in range(a_in.shape[0]):
            v = v * (1 - dv) + a_in[t] + b
            fired = v > 1.0
            v[fired] = 0.0
            out.append(fired)
        s = np.array(out, dtype=np.float64)
        got = rec[f"lif.{k}"].numpy()
        assert np.array_equal(s, got), f"layer {k}: {np.abs(s - got).sum()} spikes differ"
        assert 0.01 < s.mean() < 0.99


def test_conv_layer_spikes_are_recorded_in_forward_order():
    torch.manual_seed(0)
    model = build_model(SMALL["resnet"][0]).eval()
    x = torch.rand(2, 3, 32, 32)
    rec = model.layer_spikes(x)
    names = list(rec)
    assert names[0] == "input" and names[-1] == "output"
    assert names[1:-1] == list(model.lif_layers())
    assert names[1] == "lif1" and names[-2] == "lif_fc1" and "layer2.0.lif2" in names
    assert rec["input"].shape == (2, 2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(rec["output"], model(x))
        # the readout is the last Linear of the recorded spikes
        assert torch.allclose(rec["output"], model.fc2(rec["lif_fc1"]))
    for name, s in rec.items():
        if name not in ("input", "output"):
            assert set(s.unique().tolist()) <= {0.0, 1.0}
    vgg = build_model({"name": "vggsnn", "in_shape": [3, 2, 16, 16], "width": 1 / 16}).eval()
    frames = torch.rand(2, 3, 2, 16, 16)
    rec = vgg.layer_spikes(frames)
    assert torch.equal(rec["input"], frames.transpose(0, 1))
    assert list(rec)[1:-1] == [f"features.{i}.lif" for i in (0, 1, 3, 4, 6, 7, 9, 10)]


def test_the_vggsnn_spike_pool_is_avg_pool2d_bit_for_bit_on_spikes() -> None:
    from esl_train.models.conv import SpikePool2d, pool2_spikes
    g = torch.Generator().manual_seed(0)
    for shape in [(3, 5, 7, 9), (2, 4, 28, 28), (1, 1, 3, 3), (6, 2, 16, 17)]:
        x = (torch.rand(shape, generator=g) < 0.4).float()
        for t in (x, x.double(), x.to(torch.bfloat16)):
            assert torch.equal(pool2_spikes(t), F.avg_pool2d(t, 2)), (shape, t.dtype)
    m = build_model({"name": "vggsnn", "in_shape": [1, 16, 16], "width": 1 / 16, "T": 2})
    assert sum(isinstance(layer, SpikePool2d) for layer in m.features) == 4


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_lif_inference_gives_the_tensor_code_s_spikes_bit_for_bit(
        dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    """lif_cpu.lif_infer against LIF._infer's tensor code: τ and v_th not representable in
    the dtype, currents at the threshold, NaN and ±inf."""
    from esl_train.models import lif_cpu

    g = torch.Generator().manual_seed(0)
    cur = (torch.randn(5, 7, 3, 11, 13, generator=g) * 0.8).to(dtype)
    cur[0, 0, 0, 0, :3] = torch.tensor([math.nan, math.inf, -math.inf], dtype=dtype)
    cur[1, 1, 1, 1, :4] = torch.tensor([0.3, 0.71, 1.0, 0.29999998], dtype=dtype)
    for tau, v_th in [(0.5, 1.0), (0.9, 0.3), (1.0, 1.0), (0.37, 0.71)]:
        lif = LIF(tau, v_th)
        lif.record = True
        compiled = lif_cpu.lif_infer(cur, tau, v_th)
        with torch.no_grad():
            via_module = lif(cur)
        assert lif.recorded is via_module
        with monkeypatch.context() as m:
            m.setattr(lif_cpu, "lif_infer", lambda *args: None)
            with torch.no_grad():
                tensor_code = lif(cur)
        assert 0 < tensor_code.mean() < 1
        for out in (compiled, via_module):
            assert out is not None and out.dtype == dtype and torch.equal(out, tensor_code), (tau, v_th)
    assert lif_cpu.lif_infer(cur.transpose(0, 1), 0.5, 1.0) is None  # not contiguous: the tensor code
