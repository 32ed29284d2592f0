"""The TrueNorth back end: a validated core IR (crossbars, axon types, 9-bit weights)
run by its own tick-accurate simulator and priced per core and tick.

Lowering, placement, the IR, its simulator and energy live in ``esl_export.truenorth``;
this module is their entry in the back-end registry.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from esl_export.backends import Backend
from esl_export.runs import RunReport, RunRequest
from esl_export.sources import Source


def _options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--platform", default="truenorth-merolla2014",
                       help="hw_targets platform whose core geometry to place on (default %(default)s)")
    group.add_argument("--placement", choices=("auto", "direct", "partial"), default="auto",
                       help="fan-in scheme per layer: whole fan-in in one core, partial sums, or the "
                            "one with fewer cores (default)")
    group.add_argument("--readout-unit", type=float, default=2.0,
                       help="logit units per readout spike (default %(default)g)")
    group.add_argument("--quantum", type=int, default=0,
                       help="units of a neuron's ±1 weight that one partial-sum spike carries "
                            "(default 0: per neuron, about half its threshold)")
    group.add_argument("--drain", type=int, default=64,
                       help="extra ticks per sample in which the readout spikes out its count "
                            "(default %(default)d)")


def _export(source: Source, out: Path, args: argparse.Namespace) -> list[str]:
    from esl_export.truenorth.runner import export_graph, summary_lines

    if not args.readout_unit > 0 or args.drain < 0 or args.quantum < 0:
        raise ValueError("--readout-unit must be positive, --drain >= 0 and --quantum >= 0")
    ir = export_graph(source, out, args.platform, readout_unit=args.readout_unit, drain=args.drain,
                      mode=args.placement, quantum=args.quantum)
    return [f"wrote {out}: TrueNorth core IR, validated", *summary_lines(ir)]


def _run_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--platforms", "--platform", dest="platforms", default="truenorth-merolla2014",
                       help="comma-separated hw_targets platforms to price the run on (default %(default)s)")


def _run(folder: Path, req: RunRequest) -> RunReport:
    from esl_export.truenorth.runner import run_export

    platforms = [p.strip() for p in str(req.options.get("platforms", "truenorth-merolla2014")).split(",")]
    return run_export(folder, req.samples, model_path=req.source, offset=req.offset, data=req.data,
                      data_dir=req.data_dir, seed=req.seed, compare=req.compare,
                      platforms=[p for p in platforms if p])


BACKEND = Backend("truenorth", "TrueNorth-style core IR (cores, crossbars, axon types; validated), run by "
                  "a tick-accurate simulator", ("esl-snn-truenorth-ir",), _export, _run, _options,
                  _run_options, energy="placed")
