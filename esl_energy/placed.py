"""Energy of a placed network: stream test digits through a TrueNorth-style core IR
(``esl-export --target truenorth``) and price what the cores did.

Unlike the model counts (``counting.py``), which price operations of the abstract
graph, this counts what the placement costs: SOPs are measured per core by the
tick-accurate simulator, so partial-sum neurons, replica neurons and the readout's
drain ticks are in them, and static power is charged per core for every tick a sample
occupies (``esl_export.truenorth.energy``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from esl_export.truenorth import ir as ir_mod
from esl_export.truenorth.energy import IREnergy, price_run
from esl_export.truenorth.runner import IRRun, run_export
from hw_targets import Platform

#: the platforms an IR is priced on when none are named
DEFAULT_IR_PLATFORMS = "truenorth-merolla2014,truenorth"


@dataclass(frozen=True)
class PlacedEnergy:
    path: str
    run: IRRun
    cores: int
    energies: list[IREnergy]


def price_placed(path: str | os.PathLike[str], platforms: Sequence[Platform], samples: int, *,
                 model_path: str | None = None, data: str | None = None,
                 data_dir: str | None = None, seed: int = 0) -> PlacedEnergy:
    """One simulator run of the IR at ``path`` on ``samples`` test digits, priced per platform."""
    ir = ir_mod.read(path)
    run = run_export(ir, samples, model_path=model_path, data=data, data_dir=data_dir, seed=seed)
    return PlacedEnergy(str(path), run, ir.n_cores, [price_run(ir, run.sim, p) for p in platforms])


def placed_rows(results: Sequence[PlacedEnergy]) -> list[dict[str, Any]]:
    """One row per (IR, platform): raw values, joules per sample."""
    rows = []
    for res in results:
        for e in res.energies:
            rows.append({"ir": res.path, "platform": e.platform, "cores": res.cores,
                         "ticks/sample": res.run.sim.ticks, "samples": res.run.samples,
                         "accuracy": res.run.accuracy, "SOPs/sample": e.sops_per_sample,
                         "dynamic (J)": e.dynamic_j, "static (J)": e.static_j, "total (J)": e.total_j})
    return rows
