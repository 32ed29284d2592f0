"""Model registry: architecture description (plain data) -> nn.Module."""

from __future__ import annotations

from typing import Any

from esl_train.models.base import SNNModel


def _registry() -> dict[str, type[SNNModel]]:
    from esl_train.models.conv import VGGSNN, ResNet19
    from esl_train.models.lif import LIFMLP
    from esl_train.models.single_spike import SingleSpikeMLP

    return {cls.name: cls for cls in (SingleSpikeMLP, LIFMLP, VGGSNN, ResNet19)}


MODEL_NAMES: tuple[str, ...] = ("mlp-single-spike", "mlp-lif", "vggsnn", "resnet19")


class ArchError(ValueError):
    """An architecture description that names no known model or does not fit it."""


def build_model(arch: dict[str, Any]) -> SNNModel:
    """Rebuild a model from its architecture description."""
    name = arch.get("name") if isinstance(arch, dict) else None
    cls = _registry().get(str(name))
    if cls is None:
        raise ArchError(f"unknown model {name!r}; known: {', '.join(MODEL_NAMES)}")
    try:
        return cls(arch)
    except (TypeError, ValueError, KeyError) as exc:
        raise ArchError(f"architecture for {name} does not fit: {exc}") from exc


__all__ = ["MODEL_NAMES", "ArchError", "SNNModel", "build_model"]
