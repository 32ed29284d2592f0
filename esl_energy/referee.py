"""NeuroBench as the referee for our measured counts: the one place that runs its
SynapticOperations metric on a model, used by the tests and the benchmark."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class StepByStep(nn.Module):
    """The mlp-lif forward without the hoisted first layer: fc.0 applied to the
    encoded input at every step, as the lowered graph (and Lava) do. Same modules,
    same output, so NeuroBench sees one first-layer application per step."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        cur = net.fc[0](net.encode(x))
        for k, lif in enumerate(net.lif):
            cur = net.fc[k + 1](lif(cur))
        return cur


def neurobench_counter(net: nn.Module, x: torch.Tensor, batch_size: int) -> Callable[[], dict[str, float]]:
    """A function that runs NeuroBench's SynapticOperations on ``net`` over ``x``
    (Effective_MACs, Effective_ACs, ... per sample); built once, so it can be timed."""
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.workload import SynapticOperations
    from neurobench.models import TorchModel
    from torch.utils.data import DataLoader, TensorDataset

    # its own generator: iterating must not draw from the global RNG (rate coding uses it)
    loader = DataLoader(TensorDataset(x, torch.zeros(len(x), dtype=torch.long)), batch_size=batch_size,
                        generator=torch.Generator())
    bench = Benchmark(TorchModel(net), loader, [], [], [[], [SynapticOperations]])
    return lambda: bench.run(quiet=True)["SynapticOperations"]


def neurobench_synops(net: nn.Module, x: torch.Tensor, batch_size: int) -> dict[str, float]:
    return neurobench_counter(net, x, batch_size)()
