"""Ternary-weight training: the weights TrueNorth-style cores hold, learned as such.

A core's synapse is on or off and its weight is one of a few values per neuron, so the
TrueNorth lowering rounds each neuron's weights to {−α_j, 0, +α_j} (TWN: δ_j = 0.7·mean|w_j|
over the non-zero weights, α_j = mean |w_j| over |w_j| > δ_j). Trained with float weights,
a network loses accuracy to that rounding (2 points on the 784-800-10 core-aware model,
26 on a tiny VGGSNN). ``esl-train --weights ternary`` trains through it instead, as
BinaryConnect does: every forward and backward pass uses the ternary weights, the gradient
flows to latent float weights unchanged (straight-through), and the optimizer updates the
latent weights. The model file stores the ternary weights themselves, so every tool
(PyTorch, Lava, NIR, the cores) computes with the same numbers; the resume file keeps the
latent ones so an interrupted run continues exactly.

One row per output neuron: a Linear's row, a convolution's output channel (its kernel over
every input channel), which the lowering's per-row rounding of the unrolled matrix leaves
unchanged (a ternary row stays itself under the rule).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

WEIGHTS = ("float", "ternary")


def ternarize(w: torch.Tensor) -> torch.Tensor:
    """Per output neuron (dim 0): sign(w)·α where |w| > 0.7·mean|w| over the non-zero weights."""
    flat = w.detach().reshape(w.shape[0], -1)
    mag = flat.abs()
    nz = mag > 0
    count = nz.sum(1).clamp(min=1)
    delta = 0.7 * (mag * nz).sum(1) / count
    keep = mag > delta[:, None]
    alpha = (mag * keep).sum(1) / keep.sum(1).clamp(min=1)
    return (torch.sign(flat) * keep * alpha[:, None]).reshape(w.shape).to(w.dtype)


def connection_weights(model: nn.Module) -> list[torch.Tensor]:
    named = getattr(model, "connection_weights", None)
    if callable(named):
        return list(named().values())
    return [m.weight for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]


@contextmanager
def ternary_weights(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Within the block the model's connection weights are ternary; on exit the latent
    float weights are back (gradients computed inside stay, straight-through)."""
    if not enabled:
        yield
        return
    params = connection_weights(model)
    latent = [p.data for p in params]
    try:
        for p in params:
            p.data = ternarize(p.data)
        yield
    finally:
        for p, data in zip(params, latent, strict=True):
            p.data = data
