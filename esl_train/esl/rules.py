"""Prune and growth rules on one flattened layer, and the cosine schedule.

Every function works on flat views (``weight.view(-1)`` etc.) and returns flat indices,
so a Linear and a Conv2d weight are treated alike.

Ties (equal magnitudes, equal scores — e.g. the many exactly-zero gradients of
connections from always-dark pixels) are broken uniformly at random with the
sparsifier's generator: a fixed order would always favour low indices.
"""

from __future__ import annotations

import math

import torch

from esl_train.esl.er import round_half_up

PRUNE_RULES: tuple[str, ...] = ("magnitude", "set")
GROW_RULES: tuple[str, ...] = ("gradient", "momentum", "random", "random_unfired")


def alpha_at(t: int, alpha: float, t_end: int | None) -> float:
    """α_t = α/2·(1 + cos(tπ/T_end)); 0 from T_end on; α itself when there is no T_end."""
    if t_end is None:
        return alpha
    if t >= t_end:
        return 0.0
    return alpha / 2.0 * (1.0 + math.cos(t * math.pi / t_end))


def is_update_step(t: int, t_iter: int, t_end: int | None) -> bool:
    """Whether optimizer step ``t`` (1-based) ends with a mask update: every T_iter steps,
    strictly before T_end (at T_end α_t is 0 and the topology is frozen)."""
    return t > 0 and t % t_iter == 0 and (t_end is None or t < t_end)


def _best(scores: torch.Tensor, k: int, *, largest: bool, generator: torch.Generator) -> torch.Tensor:
    """Positions of the k largest (or smallest) scores, ties at the cut broken at random.

    O(n): the k-th value by selection (no full sort), everything strictly better than it,
    and the rest drawn uniformly among the entries equal to it.
    """
    n = scores.numel()
    if k <= 0:
        return torch.empty(0, dtype=torch.long, device=scores.device)
    if k >= n:
        return torch.arange(n, device=scores.device)
    s = -scores if largest else scores  # the k smallest of s
    cut = torch.kthvalue(s, k).values
    better = (s < cut).nonzero().squeeze(1)
    tied = (s == cut).nonzero().squeeze(1)
    draw = torch.randperm(tied.numel(), generator=generator)[: k - better.numel()].to(tied.device)
    return torch.cat([better, tied[draw]])


def set_split(alpha: float, n_pos: int, n_neg: int) -> tuple[int, int]:
    """How many positive and negative weights SET removes.

    Each sign loses the fraction α of its own count; the total is round(α·n) (n = all
    active), apportioned by largest remainder (ties to the positive side), so the
    per-sign counts are floor or ceil of α·n_sign and add up exactly.
    """
    total = round_half_up(alpha * (n_pos + n_neg))
    exact = (alpha * n_pos, alpha * n_neg)
    counts = [math.floor(x) for x in exact]
    rest = total - sum(counts)
    for i in sorted(range(2), key=lambda i: -(exact[i] - counts[i]))[: max(0, rest)]:
        counts[i] += 1
    return min(counts[0], n_pos), min(counts[1], n_neg)


def prune(
    weight: torch.Tensor, mask: torch.Tensor, alpha: float, rule: str, generator: torch.Generator
) -> torch.Tensor:
    """Flat indices of the active connections to remove.

    ``magnitude``: the round(α·n) active weights of smallest |w|.
    ``set``: per sign (Mocanu et al. 2018): among active w ≥ 0 the smallest, among active
    w < 0 the largest (both: closest to zero), each the fraction α of its own sign
    (see :func:`set_split`); an active weight that is exactly 0 counts as positive.
    """
    w = weight.detach().reshape(-1)
    active = mask.reshape(-1)
    if rule == "magnitude":
        idx = active.nonzero().squeeze(1)
        k = round_half_up(alpha * idx.numel())
        return idx[_best(w[idx].abs(), k, largest=False, generator=generator)]
    if rule == "set":
        pos = (active & (w >= 0)).nonzero().squeeze(1)
        neg = (active & (w < 0)).nonzero().squeeze(1)
        k_pos, k_neg = set_split(alpha, pos.numel(), neg.numel())
        return torch.cat([
            pos[_best(w[pos], k_pos, largest=False, generator=generator)],
            neg[_best(w[neg], k_neg, largest=True, generator=generator)],
        ])
    raise ValueError(f"unknown prune rule {rule!r}; choose one of {', '.join(PRUNE_RULES)}")


def _random_pick(idx: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    perm = torch.randperm(idx.numel(), generator=generator).to(idx.device)
    return idx[perm[:k]]


def grow(
    candidates: torch.Tensor,
    k: int,
    rule: str,
    generator: torch.Generator,
    *,
    score: torch.Tensor | None = None,
    explored: torch.Tensor | None = None,
) -> torch.Tensor:
    """Flat indices of k connections to activate, chosen among ``candidates`` (bool).

    ``gradient`` / ``momentum``: the k largest ``|score|`` (the dense gradient, or the
    optimizer's momentum signal; the caller supplies it). ``random``: k uniformly.
    ``random_unfired``: k uniformly among candidates never active so far (not in
    ``explored``); when fewer than k are left, all of them plus the rest uniformly from
    the other candidates, so the count stays exact.
    """
    cand = candidates.reshape(-1).nonzero().squeeze(1)
    k = min(k, cand.numel())
    if rule in ("gradient", "momentum"):
        if score is None:
            raise ValueError(f"grow rule {rule!r} needs a score")
        s = score.detach().reshape(-1)[cand].abs()
        return cand[_best(s, k, largest=True, generator=generator)]
    if rule == "random":
        return _random_pick(cand, k, generator)
    if rule == "random_unfired":
        if explored is None:
            raise ValueError("grow rule 'random_unfired' needs the explored mask")
        fresh_mask = ~explored.reshape(-1)[cand]
        fresh, used = cand[fresh_mask], cand[~fresh_mask]
        if fresh.numel() >= k:
            return _random_pick(fresh, k, generator)
        return torch.cat([fresh, _random_pick(used, k - fresh.numel(), generator)])
    raise ValueError(f"unknown grow rule {rule!r}; choose one of {', '.join(GROW_RULES)}")
