"""Core-aware masks: each neuron draws its inputs from one pool a core can hold whole.

A crossbar core (TrueNorth: 256 axons × 256 neurons) gives every neuron placed on it
the same axons. An unstructured sparse mask spreads each neuron's inputs over the
whole input, so neurons sharing a core share few inputs and a sparse layer needs as
many cores as its dense twin (the crossbar is used at its density). Pools fix that at
training time, the way TrueNorth's own training (Esser et al. 2016) constrains fan-in:

- the layer's inputs are covered by ``G`` pools of exactly ``size`` inputs each;
- *windows* (a layer that reads an image, ``image = (C, H, W)``): square patches of
  ``w = floor(sqrt(size / C))`` pixels a side, all channels, on a ``ceil(H / w) ×
  ceil(W / w)`` grid spread evenly over the image (neighbours overlap a little), each
  topped up to ``size`` with pixels drawn from outside it. Local receptive fields suit
  images: on the embedded digits (784-800-10 LIF, ε = 60, seeds 0 / 1) windows give
  93.8 / 94.1 % against 93.4 / 94.0 % for an unconstrained ESL mask, where random pools
  gave 91.9 / 92.6 %;
- *random* (any other layer): a random partition into ``ceil(n_in / size)`` near-equal
  parts, each topped up to ``size`` with inputs drawn from the other parts;
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

    def allowed_for(self, shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
        """``allowed`` shaped like a weight ``[n_out, n_in, *kernel]``: a conv's kernel pixels
        follow the input channel they belong to."""
        allowed = self.allowed(shape[1])
        return allowed.view(*allowed.shape, *[1] * (len(shape) - 2)).expand(*shape)

    def state(self) -> dict[str, torch.Tensor]:
        return {"members": self.members.clone(), "of_output": self.of_output.clone()}


def draw_pools(n_out: int, n_in: int, size: int, generator: torch.Generator,
               image: tuple[int, ...] | None = None) -> Pools:
    """Pools of ``size`` inputs covering all ``n_in``, one per group of outputs: windows
    when the layer reads an ``image`` (C, H, W) of ``n_in`` pixels, random otherwise."""
    if size < 1:
        raise ValueError(f"pool size must be >= 1, got {size}")
    size = min(size, n_in)
    if image is not None and len(image) == 3 and math.prod(image) == n_in and size >= image[0]:
        cores = _windows((image[0], image[1], image[2]), size)
    else:
        cores = list(torch.tensor_split(torch.randperm(n_in, generator=generator), math.ceil(n_in / size)))
    members = []
    for core in cores:
        others = torch.ones(n_in, dtype=torch.bool)
        others[core] = False
        rest = others.nonzero().squeeze(1)
        extra = rest[torch.randperm(rest.numel(), generator=generator)[: size - core.numel()]]
        members.append(torch.sort(torch.cat([core, extra])).values)
    groups = torch.tensor_split(torch.randperm(n_out, generator=generator), len(members))
    of_output = torch.empty(n_out, dtype=torch.long)
    for g, outs in enumerate(groups):
        of_output[outs] = g
    return Pools(torch.stack(members), of_output)


def _windows(image: tuple[int, int, int], size: int) -> list[torch.Tensor]:
    """Flat indices (C-major, as ``x.flatten()``) of square all-channel windows on a grid."""
    C, H, W = image
    w = max(1, min(H, W, math.isqrt(size // C)))
    index = torch.arange(C * H * W).view(C, H, W)

    def starts(extent: int) -> list[int]:
        n = math.ceil(extent / w)
        return [round(i * (extent - w) / (n - 1)) if n > 1 else 0 for i in range(n)]

    return [index[:, r:r + w, c:c + w].reshape(-1) for r in starts(H) for c in starts(W)]


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
