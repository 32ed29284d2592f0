"""ESLSparsifier: evolutionary sparse structure learning around any model and optimizer.

The user's training loop stays theirs::

    sparsifier = ESLSparsifier(model, optimizer, ESLConfig(eps=60))
    for x, y in batches:
        optimizer.zero_grad()
        model.loss(model(x), y).backward()
        optimizer.step()
        row = sparsifier.step()        # W ← M ⊙ W; every T_iter steps also prune/regrow

Semantics (the choices the paper leaves open, made here):

- **Masking**: weights are re-masked (``W ← M ⊙ W``) after every optimizer step, and once
  at construction, so masked weights are exactly zero in every forward pass and between
  updates. Gradients are *not* masked: a masked weight is a real zero in ``weight``, so
  autograd gives its dense gradient (summed over all time steps by backpropagation
  through time) — what the ``gradient`` rule ranks — and the optimizer's momentum of
  inactive connections keeps evolving, which the ``momentum`` rule ranks (Sparse Momentum,
  Dettmers & Zettlemoyer 2019). The optimizer's move of a masked weight is undone by the
  re-mask. One side effect: a global gradient-norm clip sees the dense gradient.
- **Schedule**: ``t`` counts calls of :meth:`step` (one per optimizer step). Step t
  ends with a mask update when ``t % T_iter == 0`` and ``t < T_end``; it prunes
  α_t = α/2·(1 + cos(tπ/T_end)) of each sparse layer's active connections and regrows as
  many. From T_end on the topology is frozen (the masks are still applied). ``t_end =
  None`` keeps α constant and never freezes (SET's original schedule); ``t_end = 0`` is a
  static mask (ER init, no updates).
- **Regrowth candidates** are the connections inactive *before* the update, so a
  connection pruned in an update is never regrown in the same update: pruned and regrown
  sets are disjoint and churn equals the regrown count. When a layer has fewer inactive
  connections than it would prune (density above 1/(1+α_t)), it prunes only as many.
- **Regrown connections** start at weight 0 and their per-element optimizer state (every
  state tensor shaped like the weight: Adam's exp_avg/exp_avg_sq, SGD's momentum_buffer)
  is zeroed. Pruned connections keep their optimizer state (it keeps following the dense
  gradient, which is the ``momentum`` rule's signal).
- **Counts**: every update leaves each layer's active count unchanged (asserted), unless
  ``redistribute`` is on.
- **Redistribution** (``redistribute="momentum"`` or ``"magnitude"``; Sparse Momentum,
  Dettmers & Zettlemoyer 2019): each layer still prunes α_t of its own active
  connections, but the regrowth budget (the total pruned) is split across layers in
  proportion to each layer's mean momentum magnitude over its active connections (Adam:
  |m/(√v+ε)|, SGD: |momentum buffer|), or to its mean |w| there; largest remainder, so the
  shares add up to the budget exactly, and a layer's share is capped at its free
  candidates (no layer goes above dense; the excess goes to the others). The network's
  total active count is unchanged by every update (asserted); layers drift apart in
  density. Within a layer the growth rule picks which connections.
- **Randomness** (ER masks, random growth, tie-breaking) comes from the sparsifier's own
  ``torch.Generator`` seeded with ``config.seed``; its state is in :meth:`state_dict`,
  so a resumed run continues the same mask trajectory. The global torch RNG is never
  touched, so a dense run with the same seed sees the same initial weights and batches.

Default sparse layers (``sparse_layers=None``): the model's ``default_sparse_layers``
attribute if it has one; otherwise, in the order of ``connection_weights()``, every
layer but the last for fully connected nets (the 784-800-10 MLP: only the hidden
784→800 layer, as in the paper) and every layer but the first and the last for nets
with a Conv2d.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from esl_train.esl.er import er_count, er_mask, solve_eps
from esl_train.esl.pools import Pools, draw_pools
from esl_train.esl.rules import GROW_RULES, PRUNE_RULES, alpha_at, grow, is_update_step, prune

REDISTRIBUTE: tuple[str, ...] = ("none", "momentum", "magnitude")


@dataclass
class ESLConfig:
    """ESL hyperparameters. Give exactly one of ``eps`` and ``density``.

    - ``eps``: ER parameter ε (p = ε·Σdims/Πdims per layer; p ≥ 1 → dense)
    - ``density``: target fraction of active connections over the sparse layers (ERK solve)
    - ``prune``: ``magnitude`` | ``set``; ``grow``: ``gradient`` | ``momentum`` | ``random``
      | ``random_unfired``
    - ``alpha``: initial prune fraction; ``t_iter``: optimizer steps between updates;
      ``t_end``: last step with updates (None: never freeze, α constant; 0: static mask)
    - ``sparse_layers``: weight names (``layers.0.weight``) or module-name globs
      (``features.*.conv``), ``["all"]`` for every connection layer; None: the default
    - ``pool_size``: core-aware masks (:mod:`esl_train.esl.pools`): each output neuron of a
      sparse Linear layer reads one pool of this many inputs; None: unconstrained
    - ``image``: the model's input (C, H, W); a sparse Linear layer reading it directly
      (``n_in = C·H·W``) gets square windows as pools, other layers random pools
    - ``redistribute``: ``none`` (every layer keeps its count) | ``momentum`` | ``magnitude``
      (the regrowth budget moves between layers, see the module docstring)
    - ``seed``: seeds the sparsifier's own generator
    """

    eps: float | None = None
    density: float | None = None
    prune: str = "magnitude"
    grow: str = "gradient"
    alpha: float = 0.3
    t_iter: int = 1000
    t_end: int | None = None
    sparse_layers: list[str] | None = None
    pool_size: int | None = None
    image: tuple[int, ...] | None = None
    redistribute: str = "none"
    seed: int = 0
    verbose: bool = True

    def __post_init__(self) -> None:
        if (self.eps is None) == (self.density is None):
            raise ValueError("give exactly one of eps and density")
        if self.eps is not None and not self.eps > 0:
            raise ValueError(f"eps must be positive, got {self.eps}")
        if self.density is not None and not 0.0 < self.density <= 1.0:
            raise ValueError(f"density must lie in (0, 1], got {self.density}")
        if self.prune not in PRUNE_RULES:
            raise ValueError(f"unknown prune rule {self.prune!r}; choose one of {', '.join(PRUNE_RULES)}")
        if self.grow not in GROW_RULES:
            raise ValueError(f"unknown grow rule {self.grow!r}; choose one of {', '.join(GROW_RULES)}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {self.alpha}")
        if self.redistribute not in REDISTRIBUTE:
            raise ValueError(f"unknown redistribution {self.redistribute!r}; choose one of "
                             f"{', '.join(REDISTRIBUTE)}")
        if self.t_iter < 1:
            raise ValueError(f"t_iter must be >= 1, got {self.t_iter}")
        if self.t_end is not None and self.t_end < 0:
            raise ValueError(f"t_end must be >= 0, got {self.t_end}")
        if self.pool_size is not None and self.pool_size < 1:
            raise ValueError(f"pool_size must be >= 1, got {self.pool_size}")
        if self.image is not None and (len(self.image) != 3 or min(self.image) < 1):
            raise ValueError(f"image must be (C, H, W) with positive sizes, got {self.image}")


def connection_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's synaptic weights by state-dict name (SNNModel's own list if it has one)."""
    if hasattr(model, "connection_weights"):
        return dict(model.connection_weights())
    return {f"{n}.weight": m.weight for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)}


def default_sparse_layers(model: nn.Module, names: list[str], weights: dict[str, torch.Tensor]) -> list[str]:
    declared = getattr(model, "default_sparse_layers", None)
    if declared is not None:
        return select_layers(names, list(declared))
    if any(weights[n].dim() == 4 for n in names):
        return names[1:-1]
    return names[:-1]


def select_layers(names: list[str], patterns: list[str]) -> list[str]:
    """The weight names matched by any pattern (weight name or module-name glob), in model order."""
    if any(p == "all" for p in patterns):
        return list(names)
    chosen: set[str] = set()
    for pattern in patterns:
        hits = {n for n in names if fnmatch.fnmatchcase(n, pattern)
                or fnmatch.fnmatchcase(n.removesuffix(".weight"), pattern)}
        if not hits:
            raise ValueError(f"sparse layer {pattern!r} matches no connection weight; "
                             f"the model has: {', '.join(names)}")
        chosen |= hits
    return [n for n in names if n in chosen]


class ESLSparsifier:
    """Masks, prune/regrow updates and their state for one model and optimizer
    (satisfies ``esl_train.train.Sparsifier``); see the module docstring."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, config: ESLConfig) -> None:
        self.model, self.optimizer, self.config = model, optimizer, config
        weights = connection_weights(model)
        names = list(weights)
        layers = (default_sparse_layers(model, names, weights) if config.sparse_layers is None
                  else select_layers(names, config.sparse_layers))
        if not layers:
            raise ValueError("no sparse layers selected")
        self.params: dict[str, torch.Tensor] = {n: weights[n] for n in layers}
        if config.grow == "momentum" or config.redistribute == "momentum":
            self._check_momentum_optimizer()
        shapes = {n: tuple(p.shape) for n, p in self.params.items()}
        if config.density is not None:
            eps, _ = solve_eps(shapes, config.density)
        else:
            eps = float(config.eps)  # type: ignore[arg-type]
        self.eps = eps
        self.generator = torch.Generator().manual_seed(config.seed)
        self.masks: dict[str, torch.Tensor] = {}
        self.explored: dict[str, torch.Tensor] = {}
        self.init_counts: dict[str, int] = {}
        self.pools: dict[str, Pools] = {}
        self.allowed: dict[str, torch.Tensor] = {}  # core-aware: where connections may be
        # core inputs each input of a layer stands for (a conv's input channel: its kernel's
        # pixels, times the pooling window fused in front of it; see pools.py)
        fan = getattr(model, "core_inputs_per_input", None)
        per_input: dict[str, int] = fan() if callable(fan) else {}
        for n, shape in shapes.items():
            count = math.prod(shape) if math.isinf(eps) else er_count(shape, eps)
            if config.pool_size is not None:
                if len(shape) not in (2, 4):
                    raise ValueError(f"core-aware pools are for Linear and Conv2d layers; {n} has shape "
                                     f"{shape}")
                unit = per_input.get(n, math.prod(shape[2:]) if len(shape) == 4 else 1)
                size = max(1, config.pool_size // unit)
                image = config.image if len(shape) == 2 else None
                self._set_pools(n, draw_pools(shape[0], shape[1], size, self.generator, image))
            try:
                mask = er_mask(shape, count, self.generator, self.allowed.get(n)).to(self.params[n].device)
            except ValueError:  # only pools can leave too little room
                raise ValueError(f"{n}: {count:,} connections do not fit pools of {size} inputs "
                                 f"({int(self.allowed[n].sum()):,} allowed); lower eps or the density"
                                 ) from None
            self.masks[n], self.explored[n] = mask, mask.clone()
            self.init_counts[n] = count
        self.t = 0
        self.apply_masks()
        if config.verbose:
            print(self.summary(weights))

    def _set_pools(self, name: str, pools: Pools) -> None:
        """Pools of one layer and the allowed region they give, on the weight's device."""
        p = self.params[name]
        self.pools[name] = pools
        self.allowed[name] = pools.allowed_for(p.shape).to(p.device)

    # -- the loop's side -------------------------------------------------------------------

    @torch.no_grad()
    def apply_masks(self) -> None:
        """W ← M ⊙ W for every sparse layer."""
        for n, p in self.params.items():
            p.mul_(self.masks[n])

    def step(self) -> dict[str, Any] | None:
        """Call once after every ``optimizer.step()``. Returns the log row of a mask
        update, None on other steps."""
        self.t += 1
        self.apply_masks()
        if not is_update_step(self.t, self.config.t_iter, self.config.t_end):
            return None
        return self.update(alpha_at(self.t, self.config.alpha, self.config.t_end))

    @torch.no_grad()
    def update(self, alpha: float) -> dict[str, Any]:
        """Prune the fraction ``alpha`` of every sparse layer and regrow as many (per layer,
        or across layers with redistribution); log row."""
        row: dict[str, Any] = {"t": self.t, "alpha": alpha}
        before = sum(int(m.sum()) for m in self.masks.values())
        # the signal is read before anything moves: the layers' state as training left it
        signal = self._layer_signal() if self.config.redistribute != "none" else None
        candidates = {n: ~m & self.allowed[n] if n in self.allowed else ~m for n, m in self.masks.items()}
        stats: dict[str, dict[str, Any]] = {}
        if signal is None:  # each layer regrows what it pruned, one layer after the other
            for n in self.params:
                pruned = self._prune_layer(n, alpha, int(candidates[n].sum()))
                stats[n] = self._regrow_layer(n, pruned, candidates[n], int(pruned.numel()))
        else:  # all layers prune, then the pruned total is shared out
            cut = {n: self._prune_layer(n, alpha, int(candidates[n].sum())) for n in self.params}
            budget = apportion(sum(int(idx.numel()) for idx in cut.values()), signal,
                               {n: int(c.sum()) for n, c in candidates.items()})
            row.update({f"share/{n}": v for n, v in budget.items()})
            stats = {n: self._regrow_layer(n, cut[n], candidates[n], budget[n]) for n in self.params}
        total = 0
        for n, layer in stats.items():
            for key, value in layer.items():
                row[f"{key}/{n}"] = value
            total += layer["active"]
        if total != before:
            raise AssertionError(f"the network's active count changed {before} -> {total}")
        row["active"] = total
        return row

    def _layer_signal(self) -> dict[str, float]:
        """Per layer, what its share of the regrowth is proportional to: the mean momentum
        magnitude, or the mean |w|, over its active connections."""
        out = {}
        for n, p in self.params.items():
            value = self._momentum(n) if self.config.redistribute == "momentum" else p.detach()
            active = self.masks[n]
            out[n] = float(value.abs()[active].mean()) if bool(active.any()) else 0.0
        return out

    def _prune_layer(self, name: str, alpha: float, room: int) -> torch.Tensor:
        """Flat indices to prune: α of the layer's active connections, at most ``room`` (its
        regrowth candidates) when every layer keeps its count; with redistribution the
        pruned total must fit all layers' candidates, which the same cap guarantees."""
        p, mask = self.params[name], self.masks[name]
        pruned = prune(p, mask, alpha, self.config.prune, self.generator)
        if pruned.numel() > room:  # too dense to regrow as many elsewhere
            keep = torch.sort(p.detach().reshape(-1)[pruned].abs(), stable=True).indices[:room]
            pruned = pruned[keep]
        return pruned

    def _regrow_layer(self, name: str, pruned: torch.Tensor, inactive: torch.Tensor,
                      k: int) -> dict[str, Any]:
        p, mask, explored = self.params[name], self.masks[name], self.explored[name]
        before = int(mask.sum())
        score = self._grow_score(name) if self.config.grow in ("gradient", "momentum") else None
        grown = grow(inactive, k, self.config.grow, self.generator, score=score, explored=explored)
        flat = mask.view(-1)
        flat[pruned] = False
        flat[grown] = True
        is_new = torch.zeros_like(mask)
        is_new.view(-1)[grown] = True
        p.masked_fill_(is_new, 0.0)  # regrown connections start at zero
        self._reset_optimizer_state(p, is_new)
        p.mul_(mask)
        explored |= mask
        after = int(mask.sum())
        if after != before - int(pruned.numel()) + int(grown.numel()) or \
                (self.config.redistribute == "none" and after != before):
            raise AssertionError(f"{name}: active count changed {before} -> {after}")
        return {
            "density": after / mask.numel(),
            "active": after,
            "pruned": int(pruned.numel()),
            "regrown": int(grown.numel()),
            "churn": int(grown.numel()) / max(1, after),
            "explored": float(explored.float().mean()),
        }

    # -- optimizer signals -----------------------------------------------------------------

    def _group(self, p: torch.Tensor) -> dict[str, Any]:
        for group in self.optimizer.param_groups:
            if any(q is p for q in group["params"]):
                return group
        raise ValueError("a sparse weight is not in the optimizer")

    def _check_momentum_optimizer(self) -> None:
        for p in self.params.values():
            group = self._group(p)
            if "betas" not in group and not group.get("momentum", 0):
                raise ValueError("grow='momentum' needs an optimizer with momentum "
                                 "(SGD with momentum > 0, or Adam)")

    def _grow_score(self, name: str) -> torch.Tensor:
        p = self.params[name]
        if self.config.grow == "gradient":
            if p.grad is None:
                raise RuntimeError(f"grow='gradient': {name} has no gradient at the update; call "
                                   "step() after optimizer.step() and before zero_grad()")
            return p.grad
        return self._momentum(name)

    def _momentum(self, name: str) -> torch.Tensor:
        """The optimizer's momentum signal of a weight (Adam: m/(√v+ε); SGD: its buffer)."""
        p = self.params[name]
        state = self.optimizer.state.get(p, {})
        if "exp_avg" in state and "exp_avg_sq" in state:
            eps = float(self._group(p).get("eps", 1e-8))
            return state["exp_avg"] / (state["exp_avg_sq"].sqrt() + eps)
        if state.get("momentum_buffer") is not None:
            return state["momentum_buffer"]
        raise RuntimeError(f"the momentum signal: the optimizer has no momentum for {name} yet")

    def _reset_optimizer_state(self, p: torch.Tensor, where: torch.Tensor) -> None:
        for value in self.optimizer.state.get(p, {}).values():
            if isinstance(value, torch.Tensor) and value.shape == p.shape:
                value.masked_fill_(where, 0)

    # -- state -----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Masks, explored masks, schedule step and generator state (weights_only-safe)."""
        return {
            "t": self.t,
            "layers": list(self.params),
            "masks": {n: m.detach().cpu().clone() for n, m in self.masks.items()},
            "explored": {n: m.detach().cpu().clone() for n, m in self.explored.items()},
            "generator": self.generator.get_state(),
            "config": {k: v for k, v in asdict(self.config).items() if k != "verbose"},
            "pools": {n: p.state() for n, p in self.pools.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if list(state["layers"]) != list(self.params):
            raise ValueError(f"sparsifier state is for layers {state['layers']}, "
                             f"this one has {list(self.params)}")
        for n in self.params:
            for key, target in (("masks", self.masks), ("explored", self.explored)):
                saved = state[key][n]
                if saved.shape != target[n].shape:
                    raise ValueError(f"sparsifier state: {key}[{n}] has shape {tuple(saved.shape)}")
                target[n].copy_(saved.to(torch.bool))
        saved_pools = state.get("pools") or {}
        if set(saved_pools) != set(self.pools):
            raise ValueError(f"sparsifier state has pools for {sorted(saved_pools)}, "
                             f"this one for {sorted(self.pools)}")
        for n, saved in saved_pools.items():
            pools = Pools(saved["members"].long(), saved["of_output"].long())
            if pools.members.shape != self.pools[n].members.shape or \
                    pools.of_output.shape != self.pools[n].of_output.shape:
                raise ValueError(f"sparsifier state: the pools of {n} have another shape")
            self._set_pools(n, pools)
        self.t = int(state["t"])
        self.generator.set_state(state["generator"])
        self.apply_masks()

    # -- description -----------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """ESL hyperparameters and initial topology, as plain data (model.pt meta["esl"])."""
        cfg = self.config
        return {
            "eps": cfg.eps,
            "density": cfg.density,
            "solved_eps": None if math.isinf(self.eps) else self.eps,
            "prune": cfg.prune,
            "grow": cfg.grow,
            "alpha": cfg.alpha,
            "t_iter": cfg.t_iter,
            "t_end": cfg.t_end,
            "sparse_layers": list(self.params),
            "pool_size": cfg.pool_size,
            "image": None if cfg.image is None else list(cfg.image),
            "pools": {n: int(p.members.shape[0]) for n, p in self.pools.items()},
            "redistribute": cfg.redistribute,
            "seed": cfg.seed,
            "init_connections": dict(self.init_counts),
            "init_density": {n: c / self.masks[n].numel() for n, c in self.init_counts.items()},
        }

    def summary(self, weights: dict[str, torch.Tensor] | None = None) -> str:
        """One line per connection layer: active connections and density."""
        weights = weights if weights is not None else connection_weights(self.model)
        eps = "dense" if math.isinf(self.eps) else f"{self.eps:.4g}"
        lines = [f"ESL: eps {eps}, prune {self.config.prune}, grow {self.config.grow}, "
                 f"alpha {self.config.alpha}, T_iter {self.config.t_iter}, T_end {self.config.t_end}"
                 + (f", core-aware pools of {self.config.pool_size} inputs" if self.pools else "")]
        active = total = 0
        for n, w in weights.items():
            count = int(self.masks[n].sum()) if n in self.masks else w.numel()
            kind = "sparse" if n in self.masks else "dense "
            lines.append(f"  {kind} {n:<32} {tuple(w.shape)!s:<20} {count:>10,} / {w.numel():>10,}"
                         f"  density {count / w.numel():.4f}")
            active, total = active + count, total + w.numel()
        lines.append(f"  total {active:,} / {total:,} connections, density {active / max(1, total):.4f}")
        return "\n".join(lines)


def esl_factory(config: ESLConfig) -> Callable[[nn.Module, torch.optim.Optimizer], ESLSparsifier]:
    """What ``train(..., sparsifier_factory=...)`` takes."""

    def make(model: nn.Module, optimizer: torch.optim.Optimizer) -> ESLSparsifier:
        return ESLSparsifier(model, optimizer, config)

    return make


def apportion(total: int, weights: dict[str, float], caps: dict[str, int]) -> dict[str, int]:
    """Integers summing to ``total``, in proportion to ``weights`` (non-negative; all zero:
    equal), none above its cap: layers whose exact share reaches their cap take the cap and
    the rest is split again among the others; largest remainder, ties to the earlier name.
    Needs ``total <= sum(caps)``."""
    if total > sum(caps.values()):
        raise ValueError(f"cannot place {total} connections in {sum(caps.values())} free places")
    out = dict.fromkeys(weights, 0)
    free = [n for n in weights if caps[n] > 0]
    left = total
    while left > 0 and free:
        w = {n: max(weights[n], 0.0) for n in free}
        wsum = sum(w.values())
        exact = {n: left * (w[n] / wsum if wsum > 0 else 1.0 / len(free)) for n in free}
        full = [n for n in free if exact[n] >= caps[n] - out[n]]
        if full:
            for n in full:
                left -= caps[n] - out[n]
                out[n] = caps[n]
            free = [n for n in free if n not in full]
            continue
        floors = {n: math.floor(exact[n]) for n in free}
        rest = left - sum(floors.values())
        order = sorted(free, key=lambda n: (-(exact[n] - floors[n]), free.index(n)))
        for n in free:
            out[n] += floors[n]
        for n in order[:rest]:
            out[n] += 1
        left = 0
    return out
