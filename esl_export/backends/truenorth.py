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
    group.add_argument("--readout-unit", default="auto", metavar="UNITS|auto",
                       help="logit units per readout spike; auto (default): calibrated on the source's "
                            "training digits so that the winning class's count fills the readout window")
    group.add_argument("--calibration-samples", type=int, default=500,
                       help="training digits the readout is calibrated on (default %(default)d)")
    group.add_argument("--data-dir", default=None,
                       help="folder of the source's dataset, for the calibration (not needed for the "
                            "embedded digits)")
    group.add_argument("--quantum", type=int, default=0,
                       help="units of a neuron's ±1 weight that one partial-sum spike carries "
                            "(default 0: per neuron, about half its threshold)")
    group.add_argument("--tick", default=None, metavar="TAU_SYN",
                       help="single-spike models: one core tick in tau_syn units, a number or a fraction "
                            "(default 2/15; --window is shared with the lava target)")
    group.add_argument("--copies", type=int, default=None, metavar="K",
                       help="single-spike models: delayed arrivals per spike that stand in for the decaying "
                            "synaptic current (default 8)")
    group.add_argument("--drain", type=int, default=64,
                       help="extra ticks per sample in which the readout spikes out its count "
                            "(default %(default)d)")


#: logit units per readout spike where nothing calibrates it
FIXED_UNIT = 2.0


def _readout_unit(source: Source, args: argparse.Namespace) -> tuple[float, str]:
    """The readout unit the flags ask for, and how it was chosen."""
    if args.readout_unit != "auto":
        try:
            unit = float(args.readout_unit)
        except ValueError:
            raise ValueError(f"--readout-unit must be a number or auto, got {args.readout_unit!r}") from None
        if not 0 < unit < float("inf"):
            raise ValueError("--readout-unit must be positive")
        return unit, "given"
    import math

    from esl_export.graph import Readout

    if not isinstance(source.graph.nodes[source.graph.output], Readout):
        return FIXED_UNIT, "unused (the output layer's own spikes are counted)"
    from esl_export.truenorth.calibrate import readout_unit
    from esl_train.data import load_data

    if not 1 <= args.calibration_samples <= 100_000:
        raise ValueError("--calibration-samples must be in 1..100000")
    dataset = source.info.get("dataset")
    if not dataset:
        return FIXED_UNIT, "the source records no dataset to calibrate on; give --readout-unit"
    x = load_data(dataset, args.data_dir, limit=args.calibration_samples).train.x.numpy()
    if math.prod(x.shape[1:]) != math.prod(source.graph.nodes[source.graph.input].output_shape):
        raise ValueError(f"{dataset} samples do not fit the model's input; give --readout-unit")
    unit = readout_unit(source.graph, x, args.drain)
    return unit, f"calibrated on {len(x)} {dataset} training digits"


def _export(source: Source, out: Path, args: argparse.Namespace) -> list[str]:
    from esl_export.truenorth.runner import export_graph, summary_lines

    if args.drain < 0 or args.quantum < 0:
        raise ValueError("--drain and --quantum must be >= 0")
    unit, how = _readout_unit(source, args)
    tick = None
    if args.tick is not None:
        from fractions import Fraction

        try:
            tick = float(Fraction(args.tick))
        except (ValueError, ZeroDivisionError, OverflowError):
            raise ValueError(f"--tick must be a number or a fraction such as 2/15, got {args.tick!r}") \
                from None
    ir = export_graph(source, out, args.platform, readout_unit=unit, drain=args.drain,
                      mode=args.placement, quantum=args.quantum, dt=tick, copies=args.copies,
                      window=getattr(args, "window", None))
    if ir.meta.get("kind") == "single-spike":
        return [f"wrote {out}: TrueNorth core IR of the single-spike network, validated", *summary_lines(ir)]
    return [f"wrote {out}: TrueNorth core IR, validated; readout unit {unit:.4g} logit units per spike "
            f"({how})", *summary_lines(ir)]


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
