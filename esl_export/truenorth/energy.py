"""Energy of an IR simulator run, priced with a hw_targets table.

Two terms: dynamic = SOPs × the platform's joules per ``sop``; static = cores ×
ticks × (chip power / cores per chip × tick length). The merolla2014 table's 26 pJ per
SOP already folds static power in at its operating point, so dynamic alone is that
paper's accounting and dynamic + static an upper estimate; both are returned.
"""

from __future__ import annotations

from dataclasses import dataclass

from esl_export.truenorth.ir import CoreIR, IRError
from esl_export.truenorth.simulate import SimResult


@dataclass(frozen=True)
class IREnergy:
    platform: str
    sops_per_sample: float
    dynamic_j: float  # per sample
    static_j: float  # per sample
    joules_per_sop: float
    static_w_per_core: float

    @property
    def total_j(self) -> float:
        return self.dynamic_j + self.static_j

    def summary(self) -> str:
        return (f"{self.platform}: {self.sops_per_sample:,.0f} SOPs per sample × "
                f"{self.joules_per_sop:.3g} J = {self.dynamic_j:.3e} J dynamic; "
                f"static {self.static_w_per_core:.3g} W per core → {self.static_j:.3e} J; "
                f"total {self.total_j:.3e} J")


def price_run(ir: CoreIR, sim: SimResult, platform: str = "truenorth-merolla2014") -> IREnergy:
    """Per-sample energy of a simulated run on ``platform``."""
    from hw_targets import load_platform

    plat = load_platform(platform)
    if plat.core is None or plat.chip_power_w is None or plat.tick_s is None:
        raise IRError(f"platform {platform!r} lacks core geometry, chip power or tick length")
    per_sop = plat.joules_per("sop")
    sops = float(sim.sops.sum()) / sim.samples
    w_core = plat.chip_power_w / plat.core.cores_per_chip
    static = ir.n_cores * sim.ticks * plat.tick_s * w_core
    return IREnergy(plat.name, sops, sops * per_sop, static, per_sop, w_core)
