"""Losses for the multi-spike (LIF) models.

TET loss (Deng et al., ICLR 2022, "Temporal Efficient Training of Spiking Neural
Network via Gradient Re-weighting"; ESL-SNNs Eq. 10).  The network's readout gives
logits at every time step, ``O(t)`` for ``t = 1..T``; instead of one cross entropy
on the time-averaged output, TET takes the cross entropy at every step and averages:

    L_TET   = 1/T · Σ_t CE(O(t), y)
    L_MSE   = 1/T · Σ_t MSE(O(t), φ)          (mean over batch and classes too)
    L_total = (1 − λ) · L_TET + λ · L_MSE

The MSE term pulls every output towards the constant φ (the "means" of the TET code,
1.0) so no single step's logits run away.  The ``(1 − λ)`` weighting on the cross
entropy is the reference implementation's (``functions.TET_loss`` of the TET code,
which the ESL-SNNs code base builds on); with the default λ = 1e-3 it differs from
"CE + λ·MSE" by 0.1 % of the CE term.

λ default 1e-3: the ``--lamb`` default of the TET reference training script
(``main_training_parallel.py``), with ``--means`` (φ) 1.0.  λ = 0 gives the plain
per-step cross entropy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: λ of the TET loss: the TET reference code's default (``--lamb 1e-3``)
TET_LAMBDA = 1e-3
#: φ of the TET loss: the TET reference code's default (``--means 1.0``)
TET_PHI = 1.0


def tet_loss(
    out: torch.Tensor, target: torch.Tensor, lam: float = TET_LAMBDA, phi: float = TET_PHI
) -> torch.Tensor:
    """TET loss of per-step logits ``out`` ``[T, B, C]`` for class indices ``target`` ``[B]``.

    Returns the scalar ``(1 − λ)·mean_t CE(O(t), y) + λ·mean (O − φ)²``.
    """
    if out.dim() != 3:
        raise ValueError(f"tet_loss wants per-step logits [T, B, C], got shape {tuple(out.shape)}")
    T, B = out.shape[:2]
    if target.shape != (B,):
        raise ValueError(f"target must have shape [{B}], got {tuple(target.shape)}")
    # every step has B rows, so the mean over T·B rows is the mean over t of per-step means
    ce = F.cross_entropy(out.reshape(T * B, -1), target.repeat(T))
    if lam == 0:
        return ce
    mse = F.mse_loss(out, torch.full_like(out, phi))
    return (1.0 - lam) * ce + lam * mse
