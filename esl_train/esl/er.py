"""Erdős–Rényi initial masks: how many connections each sparse layer starts with.

Linear layer ``[n_out, n_in]`` (Mocanu et al. 2018, ESL-SNNs):

    p = ε·(n_in + n_out) / (n_in·n_out)

Conv layer ``[c_out, c_in, k_h, k_w]``: the ER-kernel (ERK) generalisation of RigL
(Evci et al. 2020), which adds the kernel dimensions to the sum and the product:

    p = ε·(c_in + c_out + k_h + k_w) / (c_in·c_out·k_h·k_w)

Since N = the product of the dimensions, the number of active connections is
``p·N = ε·Σdims`` — computed that way so that it is exact in floating point (ε = 60
on 784→800 gives 60·1584 = 95,040), then rounded half up and capped at N. A layer
whose p would reach 1 stays dense.

Target-density mode (RigL's ERK): one global ε for all sparse layers such that the
active connections are ``density × Σ N`` over the sparse layers; a layer whose p would
exceed 1 is made dense and taken out of the solve, which is repeated until no layer
overflows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch


def round_half_up(x: float) -> int:
    """Round to the nearest integer, halves up (Python's round() goes to even)."""
    return math.floor(x + 0.5)


def er_scale(shape: Sequence[int]) -> float:
    """Σdims / Πdims: p = ε × this (``[out, in]`` or ``[out, in, kh, kw]``)."""
    return sum(shape) / math.prod(shape)


def er_count(shape: Sequence[int], eps: float) -> int:
    """Exact number of active connections of an ER layer with parameter ε."""
    n = math.prod(shape)
    return max(0, min(n, round_half_up(eps * sum(shape))))


def solve_eps(shapes: Mapping[str, Sequence[int]], density: float) -> tuple[float, set[str]]:
    """The global ε that gives ``density`` over ``shapes``, and the layers left dense.

    ε is inf when every layer ends up dense (density ≥ 1 or nothing left to solve for).
    """
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must lie in (0, 1], got {density}")
    total = sum(math.prod(s) for s in shapes.values())
    dense: set[str] = set()
    while True:
        free = {k: s for k, s in shapes.items() if k not in dense}
        if not free:
            return math.inf, dense
        budget = density * total - sum(math.prod(shapes[k]) for k in dense)
        # Σ_free p_l·N_l = ε·Σ_free Σdims_l
        eps = budget / sum(sum(s) for s in free.values())
        over = {k for k, s in free.items() if eps * er_scale(s) > 1.0}
        if not over:
            return eps, dense
        dense |= over


def er_mask(shape: Sequence[int], count: int, generator: torch.Generator,
            allowed: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean mask with exactly ``count`` True entries, uniformly placed (among the
    ``allowed`` entries when given: core-aware pools)."""
    n = math.prod(shape)
    flat = torch.zeros(n, dtype=torch.bool)
    if allowed is None:
        flat[torch.randperm(n, generator=generator)[:count]] = True
    else:
        where = allowed.reshape(-1).nonzero().squeeze(1)
        if count > where.numel():
            raise ValueError(f"{count:,} connections do not fit the {where.numel():,} allowed")
        flat[where[torch.randperm(where.numel(), generator=generator)[:count]]] = True
    return flat.view(*shape)
