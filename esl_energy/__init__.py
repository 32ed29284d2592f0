"""esl_energy: count the operations of a spiking network on its lowered graph and
price them per hardware platform (the prices come from hw_targets).

Counting modes (``esl_energy.counting``): ``connections`` (the ESL-SNNs paper's one
operation per non-zero synapse per inference), ``dense`` (no mask, every step) and
``measured`` (effective MACs and SOPs of a run on data, as NeuroBench counts them).
"""

from esl_energy.counting import (
    MODES,
    Connections,
    DenseOps,
    EnergyError,
    LayerCount,
    MeasuredOps,
    NeuronUpdates,
    OpCount,
)
from esl_energy.pricing import Energy, price
from esl_energy.report import energy_report, evaluate, measure, render

__all__ = [
    "MODES",
    "Connections",
    "DenseOps",
    "Energy",
    "EnergyError",
    "LayerCount",
    "MeasuredOps",
    "NeuronUpdates",
    "OpCount",
    "energy_report",
    "evaluate",
    "measure",
    "price",
    "render",
]
