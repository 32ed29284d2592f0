"""The interface every esl-snn model implements, so one training loop, one
checkpoint format and one lowering serve them all."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn


class SNNModel(nn.Module):
    """A spiking network rebuilt from ``arch`` (plain data) alone.

    Subclasses set ``name`` and implement ``forward``, ``loss`` and ``predict``.
    ``forward`` takes a batch of raw samples (floats in [0, 1], shape
    ``[B, *in_shape]``) and does its own input encoding, so a checkpoint fully
    describes what the network sees.
    """

    name: str = ""
    #: training defaults the CLI uses when the user gives no flag
    default_hparams: ClassVar[dict[str, Any]] = {}

    def __init__(self, arch: dict[str, Any]) -> None:
        super().__init__()
        self.arch = dict(arch)

    def loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, out: torch.Tensor) -> torch.Tensor:
        """Class index per sample from the output of ``forward``."""
        raise NotImplementedError

    def neuron(self) -> dict[str, Any]:
        """The neuron model and its parameters, as plain data."""
        raise NotImplementedError

    def encoding(self) -> dict[str, Any]:
        """The input encoding and number of time steps, as plain data."""
        raise NotImplementedError

    def init_for_masks(self, masks: dict[str, torch.Tensor]) -> None:
        """Re-initialise the weights for the connections a sparse mask keeps, where the
        model's initialisation depends on fan-in (called once the masks are drawn)."""

    def connection_weights(self) -> dict[str, nn.Parameter]:
        """Synaptic weight tensors by state-dict name: every Linear and Conv2d weight,
        in forward order. Masks are kept per entry of this dict."""
        return {
            f"{name}.weight": m.weight
            for name, m in self.named_modules()
            if isinstance(m, nn.Linear | nn.Conv2d)
        }
