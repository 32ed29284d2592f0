"""Model registry: architecture description (plain data) -> nn.Module."""

from __future__ import annotations

from typing import Any

import torch

from esl_train.models.base import SNNModel


def _registry() -> dict[str, type[SNNModel]]:
    from esl_train.models.conv import VGGSNN, ResNet19
    from esl_train.models.lif import LIFMLP
    from esl_train.models.single_spike import SingleSpikeMLP

    return {cls.name: cls for cls in (SingleSpikeMLP, LIFMLP, VGGSNN, ResNet19)}


MODEL_NAMES: tuple[str, ...] = ("mlp-single-spike", "mlp-lif", "vggsnn", "resnet19")


class ArchError(ValueError):
    """An architecture description that names no known model or does not fit it."""


#: the most parameters and buffers a model may have (1 GiB of float32): an architecture
#: read from a file is sized before anything is allocated
MAX_TENSOR_ELEMENTS = 1 << 28


def build_model(arch: dict[str, Any]) -> SNNModel:
    """Rebuild a model from its architecture description (ArchError if it does not fit
    or would be larger than ``MAX_TENSOR_ELEMENTS``)."""
    name = arch.get("name") if isinstance(arch, dict) else None
    cls = _registry().get(str(name))
    if cls is None:
        raise ArchError(f"unknown model {name!r}; known: {', '.join(MODEL_NAMES)}")
    rng = torch.get_rng_state()  # sizing must not move the seeded initialisation
    try:
        with torch.device("meta"):  # shapes only, no memory: size it first
            sized = cls(arch)
    except (TypeError, ValueError, KeyError, OverflowError, RuntimeError) as exc:
        raise ArchError(f"architecture for {name} does not fit: {exc}") from exc
    finally:
        torch.set_rng_state(rng)
    count = sum(t.numel() for t in (*sized.parameters(), *sized.buffers()))
    if count > MAX_TENSOR_ELEMENTS:
        raise ArchError(f"architecture for {name} has {count:,} parameters and buffers; esl-snn builds "
                        f"models up to {MAX_TENSOR_ELEMENTS:,}")
    return cls(arch)


__all__ = ["MODEL_NAMES", "ArchError", "SNNModel", "build_model"]
