"""Core-aware masks: each neuron draws its inputs from one pool a core can hold whole.

A crossbar core (TrueNorth: 256 axons × 256 neurons) gives every neuron placed on it
the same axons. An unstructured sparse mask spreads each neuron's inputs over the
whole input, so neurons sharing a core share few inputs and a sparse layer needs as
many cores as its dense twin (the crossbar is used at its density). Pools fix that at
training time, the way TrueNorth's own training (Esser et al. 2016) constrains fan-in:

- the layer's inputs are covered by ``G = ceil(n_in / size)`` pools of exactly
  ``size`` inputs: a random partition into G near-equal parts, each topped up to
  ``size`` with inputs drawn from the other parts (so every pool is full and inputs
  appear in one or two pools);
- the outputs are split into G near-equal groups at random, group g reads pool g;
- ER init and every regrowth stay inside the allowed region ``pool(out) ∋ in``.

``size = (axons - 1) // 2`` fits a pool on one core with both signs of every input
(a ternary or signed neuron needs an excitatory and an inhibitory axon per input) and
one bias line; :func:`pool_size_for` reads the axons from a hw_targets platform.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Pools:
    """Input pools of one ``[n_out, n_in]`` layer."""

    members: torch.Tensor  # long [G, size]: the inputs of each pool
    of_output: torch.Tensor  # long [n_out]: the pool each output neuron reads

    def __post_init__(self) -> None:
        if self.members.dim() != 2 or self.of_output.dim() != 1:
            raise ValueError("pools: members must be [G, size] and of_output [n_out]")
        if self.of_output.numel() and not 0 <= int(self.of_output.min()) <= int(self.of_output.max()) \
                < self.members.shape[0]:
            raise ValueError("pools: an output neuron names a pool that does not exist")

    @property
    def size(self) -> int:
        return int(self.members.shape[1])

    def allowed(self, n_in: int) -> torch.Tensor:
        """bool ``[n_out, n_in]``: the connections the pools allow."""
        if int(self.members.max()) >= n_in:
            raise ValueError(f"pools name input {int(self.members.max())}, the layer has {n_in}")
        in_pool = torch.zeros(self.members.shape[0], n_in, dtype=torch.bool)
        in_pool.scatter_(1, self.members, True)
        return in_pool[self.of_output]

    def state(self) -> dict[str, torch.Tensor]:
        return {"members": self.members.clone(), "of_output": self.of_output.clone()}


def draw_pools(n_out: int, n_in: int, size: int, generator: torch.Generator) -> Pools:
    """Random pools of ``size`` inputs covering all ``n_in``, one per group of outputs."""
    if size < 1:
        raise ValueError(f"pool size must be >= 1, got {size}")
    size = min(size, n_in)
    G = math.ceil(n_in / size)
    parts = torch.tensor_split(torch.randperm(n_in, generator=generator), G)
    members = []
    for part in parts:
        others = torch.ones(n_in, dtype=torch.bool)
        others[part] = False
        rest = others.nonzero().squeeze(1)
        extra = rest[torch.randperm(rest.numel(), generator=generator)[: size - part.numel()]]
        members.append(torch.sort(torch.cat([part, extra])).values)
    groups = torch.tensor_split(torch.randperm(n_out, generator=generator), G)
    of_output = torch.empty(n_out, dtype=torch.long)
    for g, outs in enumerate(groups):
        of_output[outs] = g
    return Pools(torch.stack(members), of_output)


def pool_size_for(platform: str) -> int:
    """The pool size that fits one core of a hw_targets platform: (axons − 1) // 2."""
    from hw_targets import load_platform

    plat = load_platform(platform)
    if plat.core is None:
        raise ValueError(f"platform {plat.name!r} has no core geometry; core-aware masks need one")
    size = (plat.core.axons - 1) // 2
    if size < 1:
        raise ValueError(f"platform {plat.name!r}: {plat.core.axons} axons hold no pool")
    return size
