"""Single-spike (time-to-first-spike) MLP of Mostafa (2018), as used by ESL-SNNs (Eq. 3–6).

Neuron model
------------
Non-leaky integrate-and-fire neurons with exponentially decaying synaptic current
(τ_syn = 1, threshold 1); every neuron fires at most once.  An input spike at time
``t_i`` with weight ``w_i`` adds ``w_i·(1 − exp(−(t − t_i)))`` to the membrane
potential for ``t > t_i``.  In the z-domain (``z = exp(t)``) a neuron whose *causal
set* is ``C`` fires at

    z_out = Σ_{i∈C} w_i z_i / (Σ_{i∈C} w_i − 1).

The causal set is found by walking the inputs in order of spike time (inputs that
arrive at the same time enter together): the first prefix whose weight sum exceeds 1
and whose candidate ``z_out`` lies between the last included input time and the next
input time is the causal set.  A neuron for which no prefix qualifies never fires.

Times are in units of τ_syn.  Time 0 is the earliest possible input spike.

Non-firing neurons
------------------
Inside the network a neuron that never fires has ``z = +inf``; the next layer drops
such inputs (their weight and their ``w·z`` term are masked to zero, so no inf or NaN
reaches the gradient).  :meth:`SingleSpikeMLP.spike_times` reports them as ``inf``.
:meth:`SingleSpikeMLP.forward` returns finite values for training: an output neuron
that never fires gets ``z = max(arch["z_nofire"], 2 × the latest output z that fired)``
(a constant, so it carries no gradient and ranks last; the weight-sum penalty is what
makes silent neurons fire again, as in Mostafa 2018).

Input encoding (latency)
------------------------
A pixel of intensity ``x ∈ [0, 1]`` spikes once at ``t = t_max·(1 − x)``: the brightest
pixel at 0, the darkest at ``t_max``.  With ``levels = L > 1`` (default 16) the time is
quantised to L levels: ``l = round((1 − x)·(L − 1))``, ``t = t_max·l/(L − 1)``.
``zero_pixels`` decides what exactly-zero pixels do: ``"last"`` (default) — they spike at
``t_max`` like any other dark pixel; ``"never"`` — they do not spike at all.  With
``levels = 0`` input times are continuous (exact, but the first layer is then as slow
as any hidden layer).

Speed
-----
The first layer exploits the quantised input: one einsum over a one-hot of levels
gives every neuron's weight sum per level (``[B, L, out]``), and the causal-set search
runs over the L level boundaries instead of over the sorted inputs.  Empty levels are
harmless: a prefix that ends at an empty level has the same sums as the one before it,
and the level intervals tile the time axis.  Later layers (continuous times) sort their
inputs once per sample (the order is shared by all output neurons) and gather the
weights into ``[B, in, out]``.  Gradients flow through the selected prefix's ``z_out``
(and from there into the weights and the earlier layers' spike times).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from esl_train.models import single_spike_cpu as cpu
from esl_train.models.base import SNNModel
from esl_train.models.lif import as_int

_DEFAULT_ARCH: dict[str, Any] = {
    "name": "mlp-single-spike",
    "sizes": [784, 800, 10],
    "t_max": 2.0,
    "levels": 16,
    "zero_pixels": "last",
    "z_nofire": 1000.0,
    "penalty_k": 100.0,
    "init_weight_sum": 4.0,
    "init_std": 1.0,
}


def _first_valid(valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index ``[B, 1, out]`` of the first True along dim 1 of ``valid`` ``[B, K, out]``, and
    whether there is one (``[B, out]``).  (``amax`` of a descending rank: much faster on
    CPU than ``argmax`` over a strided dim.)"""
    K = valid.shape[1]
    dtype = torch.uint8 if K < 256 else torch.int32
    rank = torch.arange(K, 0, -1, dtype=dtype, device=valid.device).view(1, K, 1)
    score = (valid.to(dtype) * rank).amax(dim=1)  # K - first index; 0 if none
    fired = score > 0
    idx = (K - score.long()).clamp(max=K - 1).unsqueeze(1)
    return idx, fired


def _causal_prefix(
    Wc: torch.Tensor, Ac: torch.Tensor, z_lo: torch.Tensor, z_hi: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Find the first causal prefix along dim 1.

    ``Wc``/``Ac``: prefix sums of ``w`` and ``w·z``, ``[B, K, out]``; prefix k is valid on
    the interval ``[z_lo[k], z_hi[k]]`` (broadcastable to ``[B, K, 1]``).  Returns the
    prefix index ``[B, 1, out]``, whether the neuron fires ``[B, out]`` and the candidate
    ``z`` of every prefix ``[B, K, out]`` (finite everywhere).
    """
    above = Wc > 1.0
    # a safe denominator where the prefix is not above threshold: no inf, no NaN gradient
    c = Ac / torch.where(above, Wc - 1.0, torch.ones_like(Wc))
    valid = above & (c >= z_lo) & (c <= z_hi)
    idx, fired = _first_valid(valid)
    return idx, fired, c


class _LevelLayer(torch.autograd.Function):
    """First layer on level-quantised inputs, with the analytic gradient.

    Forward: per-level weight sums by one matmul over the one-hot, prefix sums over the
    L levels, first causal prefix.  Backward: for the inputs in the causal prefix,
    ``∂z_out/∂w_i = (z_i − z_out)/(Σ_C w − 1)`` — the exact derivative of
    ``Σ_C w_i z_i / (Σ_C w_i − 1)`` — summed per level and mapped back to the inputs by
    one matmul with the same one-hot.  (Letting autograd run through the prefix sums
    gives the same numbers, about half as fast.)
    """

    @staticmethod
    def forward(ctx, weight, onehot, z_levels):  # type: ignore[override]
        L = z_levels.shape[0]
        Wl = torch.matmul(onehot, weight.t())  # [B, L, out]
        if cpu.usable(Wl, z_levels):  # the element-wise part compiled, the same numbers
            out, idx, fired, z, w_sel = cpu.level_forward(Wl, z_levels)
            ctx.save_for_backward(onehot, z_levels, idx, fired, z, w_sel)
            return out
        Wc = Wl.cumsum(dim=1)
        Ac = (Wl * z_levels.view(1, L, 1)).cumsum(dim=1)
        z_hi = torch.cat([z_levels[1:], z_levels.new_full((1,), math.inf)])
        idx, fired, c = _causal_prefix(Wc, Ac, z_levels.view(1, L, 1), z_hi.view(1, L, 1))
        z = c.gather(1, idx).squeeze(1)
        w_sel = Wc.gather(1, idx).squeeze(1)
        ctx.save_for_backward(onehot, z_levels, idx, fired, z, w_sel)
        return torch.where(fired, z, torch.full_like(z, math.inf))

    @staticmethod
    def backward(ctx, grad_z):  # type: ignore[override]
        onehot, z_levels, idx, fired, z, w_sel = ctx.saved_tensors
        L = z_levels.shape[0]
        if cpu.usable(grad_z, z_levels, z):
            G = cpu.level_backward_g(grad_z, z_levels, idx, fired, z, w_sel)
        else:
            ok = fired & torch.isfinite(grad_z)
            coef = torch.where(ok, grad_z / torch.where(ok, w_sel - 1.0, torch.ones_like(w_sel)), 0.0)
            levels = torch.arange(L, device=idx.device).view(1, L, 1)
            G = (z_levels.view(1, L, 1) - z.unsqueeze(1)) * coef.unsqueeze(1)
            G = G * (levels <= idx).to(G.dtype)  # [B, L, out]
        grad_w = torch.matmul(G.flatten(0, 1).t(), onehot.flatten(0, 1))
        return grad_w, None, None


def layer_levels(onehot: torch.Tensor, z_levels: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """One layer whose inputs spike at one of L level times.

    ``onehot``: ``[B, L, in]`` (1 where input i spikes at level l; an all-zero column is an
    input that never spikes), ``z_levels``: ``[L]`` increasing, ``weight``: ``[out, in]``.
    Returns ``z_out`` ``[B, out]`` (``inf`` = no spike); differentiable in ``weight``.
    """
    return _LevelLayer.apply(weight, onehot, z_levels)


def _layer_levels_autograd(
    onehot: torch.Tensor, z_levels: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """:func:`layer_levels` with plain autograd (for tests of the analytic gradient)."""
    L = z_levels.shape[0]
    Wl = torch.einsum("bli,oi->blo", onehot, weight)
    Wc = Wl.cumsum(dim=1)
    Ac = (Wl * z_levels.view(1, L, 1)).cumsum(dim=1)
    z_hi = torch.cat([z_levels[1:], z_levels.new_full((1,), math.inf)])
    idx, fired, c = _causal_prefix(Wc, Ac, z_levels.view(1, L, 1), z_hi.view(1, L, 1))
    z = c.gather(1, idx).squeeze(1)
    return torch.where(fired, z, torch.full_like(z, math.inf))


def layer_sorted(z_in: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """One layer with continuous input spike times (exact sorting).

    ``z_in``: ``[B, in]`` (``inf`` = no spike), ``weight``: ``[out, in]``.
    Returns ``z_out`` ``[B, out]`` (``inf`` = no spike). On CPU float tensors a compiled
    version of the tensor code below (``single_spike_cpu.SortedLayer``): the same values
    and gradients, several times faster.
    """
    if cpu.usable(z_in, weight):
        return cpu.SortedLayer.apply(z_in, weight)
    return _layer_sorted_tensors(z_in, weight)


def _layer_sorted_tensors(z_in: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """:func:`layer_sorted` in tensor operations (any device; autograd's gradient)."""
    zs, perm = torch.sort(z_in, dim=1)
    fin = torch.isfinite(zs)
    zs0 = torch.where(fin, zs, torch.zeros_like(zs))
    # [B, in, out]: the weights in each sample's spike order.  (A gather, not ``W.t()[perm]``:
    # the backward of advanced indexing accumulates in a nondeterministic order on CPU.)
    n_out = weight.shape[0]
    Wp = weight.t().unsqueeze(0).expand(zs.shape[0], -1, -1)
    Wp = Wp.gather(1, perm.unsqueeze(-1).expand(-1, -1, n_out))
    Wp = Wp * fin.unsqueeze(-1).to(Wp.dtype)
    Wc = Wp.cumsum(dim=1)
    Ac = (Wp * zs0.unsqueeze(-1)).cumsum(dim=1)
    z_hi = torch.cat([zs[:, 1:], zs.new_full((zs.shape[0], 1), math.inf)], dim=1)
    # a prefix that ends at a silent input is never causal (z_lo = inf)
    idx, fired, c = _causal_prefix(Wc, Ac, zs.unsqueeze(-1), z_hi.unsqueeze(-1))
    z = c.gather(1, idx).squeeze(1)
    return torch.where(fired, z, torch.full_like(z, math.inf))


def _reference_layer(z_in: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Slow, obviously-correct z-domain layer (float64 loops), for tests.

    For each sample and neuron: walk the distinct input spike times in order, add all
    inputs arriving at that time, and stop at the first prefix whose candidate output
    lies in ``[this time, next time]`` with weight sum > 1.
    """
    zs: list[list[float]] = z_in.detach().double().tolist()
    ws: list[list[float]] = weight.detach().double().tolist()
    out = torch.full((len(zs), len(ws)), math.inf, dtype=torch.float64)
    for b, z_b in enumerate(zs):
        times = sorted({z for z in z_b if math.isfinite(z)})
        for o, w_o in enumerate(ws):
            w_sum = 0.0
            wz_sum = 0.0
            for k, t in enumerate(times):
                for z, w in zip(z_b, w_o, strict=True):
                    if z == t:
                        w_sum += w
                        wz_sum += w * z
                nxt = times[k + 1] if k + 1 < len(times) else math.inf
                if w_sum > 1.0:
                    cand = wz_sum / (w_sum - 1.0)
                    if t <= cand <= nxt:
                        out[b, o] = cand
                        break
    return out


class SingleSpikeMLP(SNNModel):
    """Fully connected single-spike network (Mostafa 2018), z-domain forward.

    ``arch`` keys (missing ones take the defaults in ``_DEFAULT_ARCH``):

    - ``sizes``: layer widths, input first (``[784, 800, 10]``); any number of hidden layers
    - ``t_max``: latest input spike time (τ_syn units); input times lie in ``[0, t_max]``
    - ``levels``: number of quantised input times L (0 = continuous input times)
    - ``zero_pixels``: ``"last"`` (spike at ``t_max``) or ``"never"``
    - ``z_nofire``: the z (at least) that :meth:`forward` reports for an output neuron that
      never fires
    - ``penalty_k``: K of the weight-sum penalty ``K·Σ_j max(0, 1 − Σ_i w_ij)``
    - ``init_weight_sum``, ``init_std``: weights start ~ N(init_weight_sum/fan_in,
      (init_std/√fan_in)²), so every neuron's weight sum starts well above threshold
    """

    name = "mlp-single-spike"
    default_hparams: ClassVar[dict[str, Any]] = {
        "optimizer": "adam",
        "lr": 0.01,
        "lr_final": 1e-4,
        "lr_schedule": "exp",
        "batch_size": 100,
        "epochs": 20,
        "clip_grad_norm": 1.0,
        "weight_decay": 0.0,
    }

    def __init__(self, arch: dict[str, Any] | None = None) -> None:
        full = dict(_DEFAULT_ARCH)
        full.update(arch or {})
        full["name"] = self.name
        raw = full["sizes"]
        if not isinstance(raw, list | tuple) or len(raw) < 2:
            raise ValueError(f"sizes must list at least two widths, got {raw!r}")
        sizes = [as_int({"sizes": s}, "sizes") for s in raw]
        full["sizes"] = sizes
        full["t_max"] = float(full["t_max"])
        full["levels"] = int(full["levels"])
        if full["t_max"] <= 0:
            raise ValueError(f"t_max must be positive, got {full['t_max']}")
        if full["levels"] == 1 or full["levels"] < 0:
            raise ValueError(f"levels must be 0 (continuous) or >= 2, got {full['levels']}")
        if full["zero_pixels"] not in ("last", "never"):
            raise ValueError(f"zero_pixels must be 'last' or 'never', got {full['zero_pixels']!r}")
        for key in ("z_nofire", "penalty_k", "init_weight_sum", "init_std"):
            full[key] = float(full[key])
        super().__init__(full)
        self.layers = nn.ModuleList(
            nn.Linear(n_in, n_out, bias=False) for n_in, n_out in itertools.pairwise(sizes)
        )
        self.reset_parameters()

    # -- construction -------------------------------------------------------------------

    def init_for_masks(self, masks: dict[str, torch.Tensor]) -> None:
        # the weight sums must start near init_weight_sum for the kept inputs too, or under a
        # sparse mask few hidden neurons can fire at all at the start of training
        self.reset_parameters(masks)

    def reset_parameters(self, masks: dict[str, torch.Tensor] | None = None) -> None:
        """Draw the weights: per neuron, mean ``init_weight_sum / fan_in`` and standard
        deviation ``init_std / √fan_in``, so each neuron's weight sum starts near
        ``init_weight_sum`` (> 1: every neuron fires once all inputs have arrived).

        ``masks`` (boolean, by ``connection_weights()`` name) makes ``fan_in`` the number of
        kept inputs of each neuron and zeroes the masked weights — for sparse layers, whose
        weight sums would otherwise start at density × ``init_weight_sum``.
        """
        masks = masks or {}
        with torch.no_grad():
            for k, layer in enumerate(self.layers):
                mask = masks.get(f"layers.{k}.weight")
                w = layer.weight
                if mask is None:
                    fan_in = torch.full((w.shape[0], 1), float(w.shape[1]), dtype=w.dtype)
                else:
                    mask = mask.to(device=w.device, dtype=torch.bool)
                    fan_in = mask.sum(dim=1, keepdim=True).clamp(min=1).to(w.dtype)
                mean = self.arch["init_weight_sum"] / fan_in
                std = self.arch["init_std"] / fan_in.sqrt()
                w.copy_(torch.randn_like(w) * std.to(w.device) + mean.to(w.device))
                if mask is not None:
                    w.mul_(mask)

    # -- encoding -----------------------------------------------------------------------

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1).to(self.layers[0].weight.dtype)
        if x.shape[1] != self.arch["sizes"][0]:
            raise ValueError(f"expected {self.arch['sizes'][0]} inputs per sample, got {x.shape[1]}")
        return x.clamp(0.0, 1.0)

    def _level_index(self, x: torch.Tensor) -> torch.Tensor:
        """Level per input, ``-1`` for an input that never spikes."""
        L = self.arch["levels"]
        lvl = torch.round((1.0 - x) * (L - 1)).long()
        if self.arch["zero_pixels"] == "never":
            lvl = torch.where(x > 0, lvl, torch.full_like(lvl, -1))
        return lvl

    def level_times(self) -> torch.Tensor:
        """The L quantised input spike times (empty for continuous input)."""
        L = self.arch["levels"]
        if L == 0:
            return torch.empty(0)
        return torch.linspace(0.0, self.arch["t_max"], L)

    def input_spike_times(self, x: torch.Tensor) -> torch.Tensor:
        """Input spike times ``[B, in]`` after encoding (``inf`` = no spike)."""
        x = self._flat(x)
        if self.arch["levels"]:
            lvl = self._level_index(x)
            t = self.level_times().to(x)[lvl.clamp(min=0)]
            return torch.where(lvl >= 0, t, torch.full_like(t, math.inf))
        t = self.arch["t_max"] * (1.0 - x)
        if self.arch["zero_pixels"] == "never":
            t = torch.where(x > 0, t, torch.full_like(t, math.inf))
        return t

    # -- forward ------------------------------------------------------------------------

    def _layer_z(self, x: torch.Tensor) -> list[torch.Tensor]:
        """z of every layer's output (``inf`` = no spike)."""
        x = self._flat(x)
        first = self.layers[0].weight
        if self.arch["levels"]:
            L = self.arch["levels"]
            lvl = self._level_index(x)
            # [B, L, in]; an input that never spikes (level -1) has an all-zero column (a
            # scatter of ones: the same 0/1 tensor as comparing with every level, 4x faster)
            onehot = torch.zeros(x.shape[0], L, x.shape[1], dtype=x.dtype, device=x.device)
            onehot.scatter_(1, lvl.clamp(min=0).unsqueeze(1), (lvl >= 0).to(x.dtype).unsqueeze(1))
            z = layer_levels(onehot, torch.exp(self.level_times().to(x)), first)
        else:
            z = layer_sorted(torch.exp(self.input_spike_times(x)), first)
        zs = [z]
        for layer in self.layers[1:]:
            z = layer_sorted(z, layer.weight)
            zs.append(z)
        return zs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Output-layer z = exp(first spike time), ``[B, classes]``.

        A silent output gets ``max(z_nofire, 2 × the sample's latest finite output z)``, a
        constant without gradient that ranks after every output that fires."""
        z = self._layer_z(x)[-1]
        fired = torch.isfinite(z)
        latest = torch.where(fired, z, torch.zeros_like(z)).amax(dim=1, keepdim=True).detach()
        silent = torch.clamp(2.0 * latest, min=self.arch["z_nofire"])
        return torch.where(fired, z, silent.expand_as(z))

    @torch.no_grad()
    def spike_times(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Spike time ``t = ln z`` of every layer's neurons (hidden first), ``inf`` = silent."""
        return [torch.log(z) for z in self._layer_z(x)]

    # -- training -----------------------------------------------------------------------

    def weight_sum_penalty(self) -> torch.Tensor:
        """``Σ_layers Σ_j max(0, 1 − Σ_i w_ij)`` (Mostafa 2018), without K."""
        return sum(F.relu(1.0 - layer.weight.sum(dim=1)).sum() for layer in self.layers)

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of softmax(−z) plus K × the weight-sum penalty."""
        return F.cross_entropy(-out, target) + self.arch["penalty_k"] * self.weight_sum_penalty()

    def predict(self, out: torch.Tensor) -> torch.Tensor:
        """The earliest output spike wins."""
        return out.argmin(dim=1)

    # -- description --------------------------------------------------------------------

    def neuron(self) -> dict[str, Any]:
        return {
            "model": "if-single-spike",
            "threshold": 1.0,
            "tau_syn": 1.0,
            "leak": 0.0,
            "max_spikes": 1,
            "synapse": "exponential",
            "domain": "z = exp(t / tau_syn)",
        }

    def encoding(self) -> dict[str, Any]:
        L = self.arch["levels"]
        return {
            "kind": "latency",
            "t_min": 0.0,
            "t_max": self.arch["t_max"],
            "mapping": "t = t_max * (1 - x)" + (", quantised to T levels" if L else ""),
            "zero_pixels": self.arch["zero_pixels"],
            "T": L or None,
        }


__all__ = ["SingleSpikeMLP", "layer_levels", "layer_sorted"]
