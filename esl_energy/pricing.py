"""Pricing operation counts on a hardware target (every joule figure comes from hw_targets).

Which price an operation pays on a platform:

- ``connection`` (connections and dense modes): the platform's ``connection_op``
  — what it charges for one evaluated synapse (V100: one FLOP, TrueNorth: one SOP,
  45 nm CMOS: one accumulate). This is the ESL-SNNs convention.
- ``mac`` (measured, analog input): the platform's ``mac`` price if it has one,
  else its ``connection_op``.
- ``sop`` (measured, event input): its ``sop`` price, else its ``ac`` price (an
  accumulate is what a synaptic event costs on a digital accelerator), else its
  ``connection_op``.
- neuron updates: the ``neuron_update`` price if the platform has one; otherwise
  they stay unpriced (reported, not charged), as in the paper's Table 1.

So on the paper's two platforms one measured operation of either kind costs one
FLOP-equivalent on the GPU and one SOP on TrueNorth. A GPU does not really skip
zero activations: measured-mode GPU energy is the event-driven figure the paper's
convention gives, and ``dense`` mode is the upper bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from esl_energy.counting import OpCount
from hw_targets import Platform


@dataclass(frozen=True)
class Energy:
    """Joules per inference of one count on one platform."""

    platform: str
    joules: float  # synaptic + priced neuron updates
    synaptic_joules: float
    neuron_joules: float | None  # None: not counted by the mode, or not priced here
    layers: tuple[tuple[str, float], ...]  # per connection layer
    priced_as: tuple[tuple[str, str], ...]  # (op kind counted, price used), e.g. ("mac", "flop")
    neuron_updates_priced: bool


def price_kind(platform: Platform, op: str) -> str | None:
    """The price (an OP_KINDS key of the platform) that one ``op`` pays, or None."""
    if op == "connection":
        return platform.connection_op
    if op == "mac":
        return "mac" if "mac" in platform.energy else platform.connection_op
    if op == "sop":
        for kind in ("sop", "ac"):
            if kind in platform.energy:
                return kind
        return platform.connection_op
    if op == "neuron_update":
        return "neuron_update" if "neuron_update" in platform.energy else None
    raise ValueError(f"unknown op kind {op!r}")


def price(count: OpCount, platform: Platform) -> Energy:
    """Energy per inference of ``count`` on ``platform``."""
    layers = []
    used: dict[str, str] = {}
    for layer in count.layers:
        kind = price_kind(platform, layer.op)
        assert kind is not None
        used[layer.op] = kind
        layers.append((layer.name, layer.ops * platform.joules_per(kind)))
    synaptic = float(sum(j for _, j in layers))
    neuron: float | None = None
    nu_kind = price_kind(platform, "neuron_update")
    if count.neuron_updates is not None and nu_kind is not None:
        neuron = count.neuron_updates * platform.joules_per(nu_kind)
        used["neuron_update"] = nu_kind
    return Energy(
        platform=platform.name,
        joules=synaptic + (neuron or 0.0),
        synaptic_joules=synaptic,
        neuron_joules=neuron,
        layers=tuple(layers),
        priced_as=tuple(used.items()),
        neuron_updates_priced=neuron is not None,
    )
