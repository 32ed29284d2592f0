"""Energy of an IR simulator run, priced with a hw_targets table.

Two terms: dynamic = SOPs × the platform's joules per ``sop``; static = cores ×
ticks × (chip power / cores per chip × tick length), where the table gives chip power,
tick and core geometry (otherwise static is None and the total is the dynamic term).
The merolla2014 table's 26 pJ per SOP already folds static power in at its operating
point, so dynamic alone is that paper's accounting and dynamic + static an upper
estimate; both are returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from esl_export.truenorth.ir import CoreIR, IRError
from esl_export.truenorth.simulate import SimResult

if TYPE_CHECKING:
    from hw_targets import Platform


@dataclass(frozen=True)
class IREnergy:
    platform: str
    sops_per_sample: float
    dynamic_j: float  # per sample
    static_j: float | None  # per sample; None: the table has no chip power or tick
    joules_per_sop: float
    static_w_per_core: float | None

    @property
    def total_j(self) -> float:
        return self.dynamic_j + (self.static_j or 0.0)

    def summary(self) -> str:
        static = ("no static power in the table" if self.static_j is None else
                  f"static {self.static_w_per_core:.3g} W per core → {self.static_j:.3e} J")
        return (f"{self.platform}: {self.sops_per_sample:,.0f} SOPs per sample × "
                f"{self.joules_per_sop:.3g} J = {self.dynamic_j:.3e} J dynamic; "
                f"{static}; total {self.total_j:.3e} J")


def price_run(ir: CoreIR, sim: SimResult, platform: str | Platform = "truenorth-merolla2014") -> IREnergy:
    """Per-sample energy of a simulated run on ``platform`` (a name or a loaded table)."""
    from hw_targets import load_platform

    plat = load_platform(platform) if isinstance(platform, str) else platform
    if "sop" not in plat.energy:
        raise IRError(f"platform {plat.name!r} has no energy per synaptic operation (sop) to price an IR run")
    per_sop = plat.joules_per("sop")
    sops = float(sim.sops.sum()) / sim.samples
    w_core = static = None
    if plat.core is not None and plat.chip_power_w is not None and plat.tick_s is not None:
        w_core = plat.chip_power_w / plat.core.cores_per_chip
        static = ir.n_cores * sim.ticks * plat.tick_s * w_core
    return IREnergy(plat.name, sops, sops * per_sop, static, per_sop, w_core)
