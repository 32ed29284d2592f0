"""The multi-spike LIF neuron (ESL-SNNs Eq. 7–9) and the LIF multilayer perceptron.

Neuron
------
Per time step, with the state starting at 0 for every forward pass::

    u(t) = τ·u(t−1) + I(t)          leak, then integrate (τ = 0.5)
    s(t) = 1 if u(t) > v_th else 0   strict ">" (u == v_th does not spike), v_th = 1.0
    u(t) ← 0 where s(t) = 1          hard reset to zero, in the same step

This is Lava's ``floating_pt`` LIF with ``du = 1`` (its current ``u`` is just the
input of this step), ``dv = 1 − τ`` (``v = v·(1 − dv) + u``, i.e. ``v = τ·v + I``),
``vth = v_th``, spike when ``v > vth``, ``v ← 0``.  Two numerical caveats for a
spike-for-spike comparison: Lava adds its ``bias`` after ``τ·v + a_in`` while here
the bias is part of ``I``, and Lava computes in float64 where torch trains in float32.

Surrogate gradient: the forward is the exact strict comparison ``u > v_th`` (written
as its own autograd function rather than snntorch's ``atan``, whose forward compares
the shifted ``u − v_th > 0``); the backward is snntorch's arctan surrogate with α = 2,
``∂s/∂u = (α/2) / (1 + (π·α·(u − v_th)/2)²)``, peak 1 at threshold.

The reset is **detached**: ``u ← u·(1 − s)`` with ``s`` taken out of the graph, so the
gradient does not flow through the reset (as snntorch does by default; Zenke & Vogels
2021 found this trains at least as well).  Gradient still flows through ``u`` for the
neurons that did not spike.  The forward is the same either way.

Recording
---------
Every LIF module has a ``record`` flag; while it is set the module keeps its last output
spike train in ``recorded`` (``[T, B, ...]``, detached).  ``LIFNet.layer_spikes(x)``
sets the flags, runs one forward and returns ``{"input": encoded input, <LIF module
name>: spikes, ..., "output": readout}`` in forward order, which is what a Lava run
must reproduce step for step.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, ClassVar

import torch
from torch import nn

from esl_train.losses import TET_LAMBDA, TET_PHI, tet_loss
from esl_train.models import lif_cpu
from esl_train.models.base import SNNModel

#: α of the arctan surrogate (snntorch's default)
SURROGATE_ALPHA = 2.0


class _StrictSpike(torch.autograd.Function):
    """Heaviside ``u > v_th`` forward, arctan surrogate backward."""

    @staticmethod
    def forward(ctx: Any, u: torch.Tensor, v_th: float, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(u)
        ctx.v_th, ctx.alpha = v_th, alpha
        return (u > v_th).to(u.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (u,) = ctx.saved_tensors
        x = math.pi / 2 * ctx.alpha * (u - ctx.v_th)
        return grad * (ctx.alpha / 2) / (1 + x * x), None, None


def spike(u: torch.Tensor, v_th: float = 1.0, alpha: float = SURROGATE_ALPHA) -> torch.Tensor:
    """Spikes ``(u > v_th)`` as floats, with the arctan surrogate gradient."""
    return _StrictSpike.apply(u, v_th, alpha)


class LIF(nn.Module):
    """LIF neurons over a whole sequence: input current ``[T, B, ...]`` → spikes ``[T, B, ...]``."""

    def __init__(self, tau: float = 0.5, v_th: float = 1.0) -> None:
        super().__init__()
        self.tau, self.v_th = float(tau), float(v_th)
        self.record = False
        self.recorded: torch.Tensor | None = None

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        if not (torch.is_grad_enabled() and current.requires_grad):
            return self._infer(current)
        u = torch.zeros_like(current[0])
        spikes = []
        for t in range(current.shape[0]):
            u = self.tau * u + current[t]
            s = spike(u, self.v_th)
            u = u * (1.0 - s.detach())  # hard reset to 0, not differentiated
            spikes.append(s)
        out = torch.stack(spikes)
        if self.record:
            self.recorded = out.detach()
        return out

    def _infer(self, current: torch.Tensor) -> torch.Tensor:
        """The same arithmetic in place, for inference: τ·u then + I (two roundings, as above),
        spikes compared straight into one preallocated tensor, the reset a multiply by the
        complement (u·0 = 0 exactly, u·1 = u); bit-identical, 2-3x faster on small batches.
        On the CPU one compiled pass does the same arithmetic (``lif_cpu``), about 3x faster on
        VGGSNN-sized layers."""
        out = lif_cpu.lif_infer(current, self.tau, self.v_th)
        if out is None:
            u = torch.zeros_like(current[0])
            out = torch.empty_like(current)
            keep = torch.empty_like(u)
            for t in range(current.shape[0]):
                u.mul_(self.tau).add_(current[t])
                torch.gt(u, self.v_th, out=out[t])
                torch.le(u, self.v_th, out=keep)
                u.mul_(keep)
        if self.record:
            self.recorded = out
        return out

    def extra_repr(self) -> str:
        return f"tau={self.tau}, v_th={self.v_th}"


# ---------------------------------------------------------------------------------------
# architecture helpers shared with conv.py


def complete_arch(
    arch: dict[str, Any] | None, name: str, defaults: dict[str, Any]
) -> dict[str, Any]:
    """``defaults`` updated with ``arch``; unknown keys and a foreign name are errors."""
    full = dict(defaults)
    given = dict(arch or {})
    if given.get("name", name) != name:
        raise ValueError(f"architecture is for {given['name']!r}, not {name!r}")
    unknown = sorted(set(given) - set(defaults) - {"name"})
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} for {name}; known: {sorted(defaults)}")
    full.update(given)
    full["name"] = name
    return full


#: no size or step count read from a file may exceed this (it would be allocated)
MAX_COUNT = 1 << 24


def as_int(arch: dict[str, Any], key: str, minimum: int = 1, maximum: int = MAX_COUNT) -> int:
    value = arch[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or int(value) != value:
        raise ValueError(f"{key} must be an integer, got {value!r}")
    if not minimum <= value <= maximum:
        raise ValueError(f"{key} must be in {minimum}..{maximum}, got {value!r}")
    arch[key] = int(value)
    return arch[key]


def as_float(arch: dict[str, Any], key: str, positive: bool = False) -> float:
    value = arch[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{key} must be positive, got {value!r}")
    arch[key] = float(value)
    return arch[key]


def check_neuron_keys(arch: dict[str, Any]) -> None:
    """Validate the keys every LIF model shares: T, tau, v_th, tet_lambda, tet_phi."""
    as_int(arch, "T", maximum=100_000)
    tau = as_float(arch, "tau")
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must lie in [0, 1], got {tau}")
    as_float(arch, "v_th", positive=True)
    lam = as_float(arch, "tet_lambda")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"tet_lambda must lie in [0, 1], got {lam}")
    as_float(arch, "tet_phi")


class LIFNet(SNNModel):
    """What the LIF models share: TET loss, mean-over-time prediction, neuron and
    encoding descriptions, and spike recording.

    Subclasses fill ``self.arch`` (with ``T``, ``tau``, ``v_th``, ``tet_lambda``,
    ``tet_phi``), set ``encoding_kind`` and implement ``encode`` (raw batch → the
    ``[T, B, ...]`` sequence the first connection sees) and ``forward``; ``forward``
    must call ``self._note_input(seq)`` with that sequence.
    """

    encoding_kind: str = "direct"

    def __init__(self, arch: dict[str, Any]) -> None:
        super().__init__(arch)
        self._recording = False
        self._recorded_input: torch.Tensor | None = None

    @property
    def n_steps(self) -> int:
        """Number of time steps T."""
        return int(self.arch["T"])

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return tet_loss(out, target, lam=self.arch["tet_lambda"], phi=self.arch["tet_phi"])

    def predict(self, out: torch.Tensor) -> torch.Tensor:
        return out.mean(dim=0).argmax(dim=-1)

    def neuron(self) -> dict[str, Any]:
        tau = float(self.arch["tau"])
        return {
            "model": "lif",
            "tau": tau,
            "v_th": float(self.arch["v_th"]),
            "reset": "zero",
            "threshold_compare": ">",
            "du": 1.0,
            "dv": 1.0 - tau,
        }

    def encoding(self) -> dict[str, Any]:
        return {"kind": self.encoding_kind, "T": self.n_steps}

    def lif_layers(self) -> dict[str, LIF]:
        """The LIF modules by module name, in forward order."""
        return {name: m for name, m in self.named_modules() if isinstance(m, LIF)}

    def _note_input(self, seq: torch.Tensor) -> None:
        if self._recording:
            self._recorded_input = seq.detach()

    @torch.no_grad()
    def layer_spikes(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """One forward pass of the batch ``x`` with every layer recorded.

        Returns ``{"input": [T, B, ...] encoded input (for rate coding the very
        Bernoulli draw used), <LIF name>: [T, B, ...] spikes, ..., "output": [T, B, C]
        readout}``.  Runs in the current mode: call ``eval()`` first to compare with an
        export (BatchNorm then uses its running statistics).
        """
        lifs = self.lif_layers()
        self._recording = True
        for m in lifs.values():
            m.record, m.recorded = True, None
        try:
            out = self(x)
            rec = {"input": self._recorded_input}
            rec.update({name: m.recorded for name, m in lifs.items()})
            rec["output"] = out
        finally:
            self._recording, self._recorded_input = False, None
            for m in lifs.values():
                m.record, m.recorded = False, None
        return rec


# ---------------------------------------------------------------------------------------
# the LIF multilayer perceptron

_MLP_DEFAULTS: dict[str, Any] = {
    "name": "mlp-lif",
    "sizes": [784, 800, 10],
    "T": 8,
    "tau": 0.5,
    "v_th": 1.0,
    "encoding": "direct",
    "bias": True,
    "tet_lambda": TET_LAMBDA,
    "tet_phi": TET_PHI,
}


class LIFMLP(LIFNet):
    """Fully connected LIF network ``sizes[0] → … → sizes[-1]`` (``"mlp-lif"``).

    ``arch`` keys (defaults in ``_MLP_DEFAULTS``):

    - ``sizes``: layer widths, input first, e.g. ``[784, 800, 10]``
    - ``T``: time steps (8); ``tau`` (0.5), ``v_th`` (1.0): the neuron
    - ``encoding``: ``"direct"`` — the analog input is the first layer's input at every
      step; ``"rate"`` — Bernoulli spikes with p = pixel, drawn each step from torch's
      global RNG (so seeded runs repeat; note it also draws in eval mode)
    - ``bias``: whether the Linear layers have biases (True)
    - ``tet_lambda`` (1e-3), ``tet_phi`` (1.0): the TET loss

    Modules: ``fc.k`` (``nn.Linear``) feeds ``lif.k`` for every hidden layer; the last
    ``fc`` is a non-spiking readout whose per-step output ``O(t) = W·s(t) + b`` is the
    logits ``[T, B, classes]``.  In Lava that readout is a LIF with ``du = dv = 1``
    (``u = a_in``, ``v = u + bias``: no memory) and an unreachable threshold, read
    through its ``v``.

    ``forward(x)``: ``x`` is ``[B, 1, 28, 28]`` or ``[B, 784]`` (anything whose trailing
    dims multiply to ``sizes[0]``) → ``[T, B, sizes[-1]]``.
    """

    name = "mlp-lif"
    default_hparams: ClassVar[dict[str, Any]] = {
        "optimizer": "adam",
        "lr": 1e-3,
        "lr_final": 1e-5,
        "lr_schedule": "cosine",
        "batch_size": 100,
        "epochs": 20,
        "clip_grad_norm": None,
        "weight_decay": 0.0,
    }

    def __init__(self, arch: dict[str, Any] | None = None) -> None:
        full = complete_arch(arch, self.name, _MLP_DEFAULTS)
        sizes = full["sizes"]
        if not isinstance(sizes, list | tuple) or len(sizes) < 2:
            raise ValueError(f"sizes must list at least two widths, got {sizes!r}")
        full["sizes"] = [as_int({"sizes": s}, "sizes") for s in sizes]
        check_neuron_keys(full)
        if full["encoding"] not in ("direct", "rate"):
            raise ValueError(f"encoding must be 'direct' or 'rate', got {full['encoding']!r}")
        if not isinstance(full["bias"], bool):
            raise ValueError(f"bias must be true or false, got {full['bias']!r}")
        super().__init__(full)
        self.encoding_kind = full["encoding"]
        sizes, tau, v_th = full["sizes"], full["tau"], full["v_th"]
        self.fc = nn.ModuleList(
            nn.Linear(n_in, n_out, bias=full["bias"])
            for n_in, n_out in itertools.pairwise(sizes)
        )
        self.lif = nn.ModuleList(LIF(tau, v_th) for _ in sizes[1:-1])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Raw batch ``[B, ...]`` → input sequence ``[T, B, sizes[0]]``."""
        x = self._flat(x)
        seq = x.unsqueeze(0).expand(self.n_steps, *x.shape)
        if self.encoding_kind == "rate":
            seq = torch.bernoulli(seq.clamp(0.0, 1.0))
        return seq

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1)
        if x.shape[1] != self.arch["sizes"][0]:
            raise ValueError(f"input has {x.shape[1]} features, the model takes "
                             f"{self.arch['sizes'][0]}")
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.encoding_kind == "direct":
            # the same current every step: compute the first layer once
            flat = self._flat(x)
            self._note_input(flat.unsqueeze(0).expand(self.n_steps, *flat.shape))
            cur = self.fc[0](flat).unsqueeze(0).expand(self.n_steps, -1, -1)
        else:
            seq = self.encode(x)
            self._note_input(seq)
            cur = self.fc[0](seq)
        for k, lif in enumerate(self.lif):
            cur = self.fc[k + 1](lif(cur))
        return cur
