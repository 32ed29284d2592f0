"""The single-spike (Mostafa 2018) MLP: the fast z-domain forward against a slow reference,
the neuron rule by hand, gradients, the arch round trip, and a few training steps."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from esl_train.models.single_spike import (
    SingleSpikeMLP,
    _layer_levels_autograd,
    _reference_layer,
    layer_levels,
    layer_sorted,
)


def _membrane(t: torch.Tensor, t_in: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """V(t) at the times ``t`` of a non-leaky IF neuron with exponentially decaying
    synaptic current (τ_syn = 1), inputs at ``t_in`` (inf = none) with weights ``w``."""
    dt = t.view(-1, 1) - t_in.view(1, -1)
    arrived = torch.isfinite(dt) & (dt > 0)
    kernel = torch.where(arrived, 1.0 - torch.exp(-dt.clamp(min=0.0)), 0.0)
    return (kernel * w.view(1, -1)).sum(dim=1)


def _onehot(lvl: torch.Tensor, L: int) -> torch.Tensor:
    return (lvl.unsqueeze(1) == torch.arange(L).view(1, L, 1)).double()


def _random_layer(seed: int, B: int = 6, n_in: int = 14, n_out: int = 9):
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(B, n_in, generator=g, dtype=torch.float64) * 2.0
    t[:, 3] = t[:, 7]  # ties in input times
    t[:, 8] = t[:, 7]
    t[0, 2] = math.inf  # silent inputs
    t[1, :5] = math.inf
    t[2, :] = math.inf  # a sample with no input spike at all
    w = torch.randn(n_out, n_in, generator=g, dtype=torch.float64) * 0.5 + 0.12
    w[0] = -0.1  # a neuron that can never fire
    return torch.exp(t), w


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sorted_layer_equals_reference(seed):
    z, w = _random_layer(seed)
    fast = layer_sorted(z, w)
    ref = _reference_layer(z, w)
    silent = torch.isinf(ref)
    assert torch.equal(torch.isinf(fast), silent)
    assert silent.any() and (~silent).any()
    assert silent[:, 0].all() and silent[2].all()
    torch.testing.assert_close(fast[~silent], ref[~silent], rtol=1e-9, atol=0)
    # float32 too, with a float tolerance
    fast32 = layer_sorted(z.float(), w.float())
    assert torch.equal(torch.isinf(fast32), silent)
    torch.testing.assert_close(fast32[~silent].double(), ref[~silent], rtol=1e-4, atol=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_level_layer_equals_reference(seed):
    g = torch.Generator().manual_seed(seed)
    B, L, n_in, n_out = 7, 5, 30, 11
    lvl = torch.randint(-1, L, (B, n_in), generator=g)  # many ties; -1 = never spikes
    lvl[3] = -1
    z_levels = torch.exp(torch.linspace(0.0, 2.0, L, dtype=torch.float64))
    w = torch.randn(n_out, n_in, generator=g, dtype=torch.float64) * 0.3 + 0.08
    w[1] = 0.01  # Σw < 1 everywhere: never fires
    z_in = torch.where(lvl >= 0, z_levels[lvl.clamp(min=0)], torch.full(lvl.shape, math.inf))
    ref = _reference_layer(z_in, w)
    fast = layer_levels(_onehot(lvl, L), z_levels, w)
    silent = torch.isinf(ref)
    assert silent.any() and (~silent).any()
    assert torch.equal(torch.isinf(fast), silent)
    torch.testing.assert_close(fast[~silent], ref[~silent], rtol=1e-9, atol=0)


def test_reference_matches_the_membrane_potential():
    """The z-domain rule is the first threshold crossing of V(t)."""
    z, w = _random_layer(5, B=3, n_out=6)
    ref = _reference_layer(z, w)
    t_in = torch.log(z)
    grid = torch.linspace(0.0, 10.0, 1001, dtype=torch.float64)
    for b in range(z.shape[0]):
        for o in range(w.shape[0]):
            t_out = math.log(ref[b, o]) if math.isfinite(ref[b, o]) else math.inf
            before = grid[grid < t_out - 1e-9]
            assert (_membrane(before, t_in[b], w[o]) < 1.0 + 1e-9).all()
            if math.isfinite(t_out):
                v = _membrane(torch.tensor([t_out], dtype=torch.float64), t_in[b], w[o])
                assert v.item() == pytest.approx(1.0, abs=1e-9)
            else:  # silent: V stays below 1 and V(∞) = Σ of the arrived weights ≤ 1
                assert (_membrane(grid, t_in[b], w[o]) < 1.0).all()
                assert float(w[o][torch.isfinite(t_in[b])].sum()) <= 1.0 + 1e-9


def test_causal_set_by_hand():
    """Three inputs at t = 0, ln 2, ln 4 (z = 1, 2, 4).

    Weights 0.7, 0.6, 0.5: prefix {1} has Σw = 0.7 ≤ 1; prefix {1, 2} has Σw = 1.3 and
    z = (0.7 + 1.2)/0.3 = 6.33 > z_3 = 4, so input 3 arrives first; prefix {1, 2, 3} has
    Σw = 1.8 and z = (0.7 + 1.2 + 2.0)/0.8 = 4.875 ≥ 4: the neuron fires at t = ln 4.875.
    Weights 0.7, 1.2, 0.5: prefix {1, 2} gives z = (0.7 + 2.4)/0.9 = 3.44 ∈ [2, 4]: causal,
    input 3 comes too late to matter.  Weights 0.7, 0.2, 0.05: Σw = 0.95, never fires.
    """
    z = torch.tensor([[1.0, 2.0, 4.0]], dtype=torch.float64)
    w = torch.tensor([[0.7, 0.6, 0.5], [0.7, 1.2, 0.5], [0.7, 0.2, 0.05]], dtype=torch.float64)
    out = layer_sorted(z, w)
    assert out[0, 0].item() == pytest.approx(3.9 / 0.8)
    assert out[0, 1].item() == pytest.approx(3.1 / 0.9)
    assert math.isinf(out[0, 2].item())  # Σw = 0.95 < 1: never fires
    torch.testing.assert_close(out, _reference_layer(z, w))
    # the same through the level path (levels at z = 1, 2, 4 and an empty one at 3)
    z_levels = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    lvl = torch.tensor([[0, 1, 3]])
    torch.testing.assert_close(layer_levels(_onehot(lvl, 4), z_levels, w), out)


def test_below_threshold_never_fires():
    m = SingleSpikeMLP({"sizes": [16, 4, 3]})
    with torch.no_grad():
        m.layers[0].weight.fill_(0.9 / 16)  # every hidden neuron: Σw = 0.9 < 1
    x = torch.rand(5, 16)
    times = m.spike_times(x)
    assert torch.isinf(times[0]).all()
    assert torch.isinf(times[1]).all()  # nothing to drive the output either
    out = m(x)
    assert torch.all(out == m.arch["z_nofire"])
    # one silent output among firing ones: finite, and ranked after all of them
    m = SingleSpikeMLP({"sizes": [16, 4, 3]})
    with torch.no_grad():
        m.layers[1].weight[0].fill_(0.2)  # Σw = 0.8
    times = m.spike_times(x)
    assert torch.isinf(times[1][:, 0]).all() and torch.isfinite(times[1][:, 1:]).all()
    out = m(x)
    assert torch.isfinite(out).all()
    assert (out[:, 0] > out[:, 1:].amax(dim=1)).all() and (out[:, 0] >= m.arch["z_nofire"]).all()
    assert (m.predict(out) != 0).all()


def test_analytic_gradient_equals_autograd():
    g = torch.Generator().manual_seed(3)
    B, L, n_in, n_out = 6, 5, 20, 7
    lvl = torch.randint(-1, L, (B, n_in), generator=g)
    z_levels = torch.exp(torch.linspace(0.0, 2.0, L, dtype=torch.float64))
    w0 = torch.randn(n_out, n_in, generator=g, dtype=torch.float64) * 0.4 + 0.12
    oh = _onehot(lvl, L)
    grads = []
    for fn in (layer_levels, _layer_levels_autograd):
        w = w0.clone().requires_grad_()
        z = fn(oh, z_levels, w)
        fired = torch.isfinite(z)
        assert fired.any() and (~fired).any()
        (torch.where(fired, z, 0.0) * torch.linspace(-1, 1, n_out)).sum().backward()
        grads.append(w.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-12)


def test_gradients_flow_and_are_finite():
    torch.manual_seed(0)
    m = SingleSpikeMLP({"sizes": [784, 40, 30, 10]})
    x = torch.rand(8, 1, 28, 28)
    x[:, :, :5] = 0.0
    y = torch.arange(8) % 10
    loss = m.loss(m(x), y)
    loss.backward()
    assert torch.isfinite(loss)
    for name, w in m.connection_weights().items():
        assert w.grad is not None and torch.isfinite(w.grad).all(), name
        assert w.grad.abs().sum() > 0, name


def test_backward_is_deterministic():
    torch.manual_seed(0)
    m = SingleSpikeMLP({"sizes": [784, 60, 30, 10]})
    x = torch.rand(32, 784)
    y = torch.arange(32) % 10
    grads = []
    for _ in range(3):
        m.zero_grad()
        m.loss(m(x), y).backward()
        grads.append([w.grad.clone() for w in m.connection_weights().values()])
    for again in grads[1:]:
        assert all(torch.equal(a, b) for a, b in zip(grads[0], again, strict=True))


def test_continuous_input_path_matches_reference():
    torch.manual_seed(1)
    m = SingleSpikeMLP({"sizes": [12, 5, 3], "levels": 0, "zero_pixels": "never"})
    x = torch.rand(4, 12)
    x[:, :3] = 0.0
    z_in = torch.exp(m.input_spike_times(x)).double()
    assert torch.isinf(z_in[:, :3]).all()
    hidden = _reference_layer(z_in, m.layers[0].weight)
    out = _reference_layer(hidden, m.layers[1].weight)
    times = m.spike_times(x)
    torch.testing.assert_close(times[0].double(), torch.log(hidden), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(times[1].double(), torch.log(out), rtol=1e-4, atol=1e-5)


def test_encoding_levels():
    m = SingleSpikeMLP({"sizes": [4, 2], "levels": 5, "t_max": 2.0})
    t = m.input_spike_times(torch.tensor([[1.0, 0.5, 0.0, 0.26]]))
    torch.testing.assert_close(t, torch.tensor([[0.0, 1.0, 2.0, 1.5]]))
    m = SingleSpikeMLP({"sizes": [4, 2], "levels": 5, "zero_pixels": "never"})
    assert math.isinf(m.input_spike_times(torch.tensor([[1.0, 0.5, 0.0, 0.3]]))[0, 2])
    enc = m.encoding()
    assert enc["kind"] == "latency" and enc["T"] == 5 and enc["t_max"] == m.arch["t_max"]
    assert m.neuron()["max_spikes"] == 1 and m.neuron()["threshold"] == 1.0


def test_arch_round_trip():
    m = SingleSpikeMLP({"name": "mlp-single-spike", "sizes": [784, 64, 32, 10], "levels": 8})
    for key, value in m.arch.items():
        assert isinstance(value, int | float | str | list), key
    twin = SingleSpikeMLP(m.arch)
    assert twin.arch == m.arch
    shapes = {k: v.shape for k, v in m.state_dict().items()}
    assert shapes == {k: v.shape for k, v in twin.state_dict().items()}
    assert list(m.connection_weights()) == ["layers.0.weight", "layers.1.weight", "layers.2.weight"]
    twin.load_state_dict(m.state_dict())
    x = torch.rand(3, 784)
    torch.testing.assert_close(twin(x), m(x))
    assert SingleSpikeMLP({}).arch["sizes"] == [784, 800, 10]
    with pytest.raises(ValueError):
        SingleSpikeMLP({"sizes": [784]})
    with pytest.raises(ValueError):
        SingleSpikeMLP({"zero_pixels": "sometimes"})


def test_a_few_steps_decrease_the_loss():
    """Adam on a small batch: the cross-entropy part falls steadily.  (The total loss
    also carries K × the weight-sum penalty, which jumps whenever a non-target output
    is pushed below Σw = 1 and then pulls it back: it is not monotone step by step.)"""
    torch.manual_seed(0)
    m = SingleSpikeMLP({"sizes": [784, 50, 10]})
    x = torch.rand(40, 784) ** 3
    y = torch.arange(40) % 10
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    ce = []
    for _ in range(12):
        out = m(x)
        ce.append(F.cross_entropy(-out, y).item())
        loss = m.loss(out, y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), m.default_hparams["clip_grad_norm"])
        opt.step()
    out = m(x)
    assert F.cross_entropy(-out, y).item() < 0.5 * ce[0]
    assert (m.predict(out) == y).float().mean() > 0.8
    assert torch.isfinite(m.loss(out, y))


def test_default_hparams_keys():
    hp = SingleSpikeMLP.default_hparams
    for key in ("optimizer", "lr", "lr_final", "lr_schedule", "batch_size", "epochs"):
        assert key in hp
    assert {"clip_grad_norm", "weight_decay"} <= set(hp)


def _grads_both_ways(fn, monkeypatch: pytest.MonkeyPatch):
    """``fn()`` -> (outputs, leaves) with the compiled kernels and with the tensor code."""
    from esl_train.models import single_spike_cpu

    with_kernels = fn()
    monkeypatch.setattr(single_spike_cpu, "usable", lambda *tensors: False)
    tensor_code = fn()
    monkeypatch.undo()
    return with_kernels, tensor_code


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compiled_layers_give_the_tensor_code_s_values_and_gradients_bit_for_bit(
        seed: int, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both layers, forward and backward, with silent inputs, tied input times, a sample
    with no input, a neuron that never fires, and a loss that weights outputs unevenly."""
    z0, w0 = _random_layer(seed, B=9, n_in=40, n_out=12)
    g = torch.Generator().manual_seed(10 + seed)
    B, L, n_in = 9, 6, 50
    lvl = torch.randint(-1, L, (B, n_in), generator=g)
    z_levels = torch.exp(torch.linspace(0.0, 2.0, L, dtype=torch.float64))
    w1 = torch.randn(n_in // 2, n_in, generator=g, dtype=torch.float64) * 0.3 + 0.06
    w1[2] = 0.01
    mix = torch.linspace(-1.0, 2.0, 12, dtype=torch.float64)

    def run():
        leaves = [t.to(dtype).clone().requires_grad_() for t in (z0, w0, w1)]
        za, wa, wb = leaves
        sorted_out = layer_sorted(za, wa)
        hidden = layer_levels(_onehot(lvl, L).to(dtype), z_levels.to(dtype), wb)
        chained = layer_sorted(hidden, wa[:, :n_in // 2].contiguous())
        outs = [sorted_out, hidden, chained]
        loss = sum((torch.where(torch.isfinite(o), o, 0.0) * mix[:o.shape[1]].to(dtype)).sum()
                   for o in (sorted_out, chained)) + torch.where(torch.isfinite(hidden), hidden, 0.0).sum()
        loss.backward()
        return outs, [t.grad for t in leaves]

    (outs_k, grads_k), (outs_t, grads_t) = _grads_both_ways(run, monkeypatch)
    fired = torch.isfinite(outs_t[0])
    assert fired.any() and (~fired).any() and torch.isfinite(outs_t[1]).any()
    for a, b in zip(outs_k + grads_k, outs_t + grads_t, strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b)
        assert a.stride() == b.stride()
    assert all(g.abs().sum() > 0 for g in grads_t)


def test_compiled_layers_train_the_same_weights_as_the_tensor_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """Five Adam steps of a 784-60-10 network on digits: every weight the same, bit for bit."""
    from esl_train.data import load_data
    from esl_train.train import TrainConfig, make_optimizer, train_step

    train = load_data("mnist-embedded").train

    def run():
        torch.manual_seed(0)
        m = SingleSpikeMLP({"sizes": [784, 60, 10]})
        opt = make_optimizer(TrainConfig(out="", epochs=1, batch_size=50, lr=0.01, optimizer="adam"),
                             m.parameters())
        losses = [train_step(m, opt, train.x[i:i + 50], train.y[i:i + 50], 1.0)[1].item()
                  for i in range(0, 250, 50)]
        return losses, [p.detach().clone() for p in m.parameters()]

    (losses_k, w_k), (losses_t, w_t) = _grads_both_ways(run, monkeypatch)
    assert losses_k == losses_t and losses_k[-1] != losses_k[0]
    assert all(torch.equal(a, b) for a, b in zip(w_k, w_t, strict=True))
