"""Test helpers shared by several modules: models whose every layer spikes."""

from __future__ import annotations

import torch

from esl_train.models import build_model


def spiking_model(arch: dict, density: float = 0.6, seed: int = 0,
                  gain: float = 3.0) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """A masked model whose layers all spike: larger weights, a random mask per connection
    weight, BatchNorm statistics set; eval mode."""
    torch.manual_seed(seed)
    model = build_model(arch)
    masks = {}
    with torch.no_grad():
        for name, w in model.connection_weights().items():
            masks[name] = torch.rand_like(w) < density
            w.mul_(gain).mul_(masks[name])
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(1.0, 2.5)
                m.bias.uniform_(-0.1, 0.4)
    return model.eval(), masks
