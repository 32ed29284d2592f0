"""esl-export: turn a trained model.pt into a network for one deployment target.

    esl-export model.pt --target lava -o DIR

Targets are a small registry (``TARGETS``): each names its own options and an export
function; add one with ``register(Target(...))``. Every problem with the input gives
one line ``esl-export: error: ...`` and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn


@dataclass(frozen=True)
class Target:
    """One export target: ``options`` adds its flags, ``export(model, out, args)``
    writes the output and returns a one-line summary."""

    name: str
    help: str
    options: Callable[[argparse._ArgumentGroup], None]
    export: Callable[[Path, Path, argparse.Namespace], str]


TARGETS: dict[str, Target] = {}


def register(target: Target) -> None:
    if target.name in TARGETS:
        raise ValueError(f"target {target.name!r} is registered twice")
    TARGETS[target.name] = target


class ExportError(Exception):
    """A one-line problem a target reports (bad model, bad option, unwritable output)."""


# ------------------------------------------------------------------ the lava target


def _lava_options(group: argparse._ArgumentGroup) -> None:
    from esl_export.single_spike_dt import DEFAULT_DT, DEFAULT_WINDOW

    group.add_argument("--dt", type=float, default=DEFAULT_DT,
                       help="single-spike networks: time step in tau_syn units (default %(default).4g; "
                            "smaller is closer to the z-domain model, larger runs fewer steps)")
    group.add_argument("--window", type=float, default=DEFAULT_WINDOW,
                       help="single-spike networks: simulated time per sample in tau_syn units "
                            "(default %(default)g)")


def _lava_export(model: Path, out: Path, args: argparse.Namespace) -> str:
    from esl_export.graph import GraphError
    from esl_export.lava.artifact import ArtifactError
    from esl_export.lava.runner import export_model
    from esl_train.checkpoint import CheckpointError

    try:
        art = export_model(model, out, dt=args.dt, window=args.window)
    except (CheckpointError, GraphError, ArtifactError) as exc:
        raise ExportError(str(exc)) from None
    stages = ", ".join(f"{s.connection} {s.n_in}->{s.n_out} ({s.nnz():,} synapses)" for s in art.stages)
    timing = (f"dt {art.time['dt']:.4g} tau_syn, {art.steps_per_sample} steps per digit"
              if art.kind == "single-spike" else f"T = {art.steps_per_sample} steps per digit")
    return (f"wrote {out}: {art.source.get('model')} as {len(art.stages)} Lava stages [{stages}], {timing}; "
            f"run it with: esl-run {out} --samples 200")


register(Target("lava", "Lava processes (Sparse/Dense, LIF, single-spike) as a framework-neutral folder",
                _lava_options, _lava_export))


# ------------------------------------------------------------------ the truenorth target


def _truenorth_options(group: argparse._ArgumentGroup) -> None:
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


def _truenorth_export(model: Path, out: Path, args: argparse.Namespace) -> str:
    from esl_export.graph import GraphError
    from esl_export.truenorth.ir import IRError
    from esl_export.truenorth.runner import export_model, summary_lines
    from esl_train.checkpoint import CheckpointError
    from hw_targets import TargetError

    if args.readout_unit <= 0 or args.drain < 0 or args.quantum < 0:
        raise ExportError("--readout-unit must be positive, --drain >= 0 and --quantum >= 0")
    try:
        ir = export_model(model, out, args.platform, readout_unit=args.readout_unit, drain=args.drain,
                          mode=args.placement, quantum=args.quantum)
    except (CheckpointError, GraphError, IRError, TargetError) as exc:
        raise ExportError(str(exc)) from None
    return "\n".join([f"wrote {out}: TrueNorth core IR, validated", *summary_lines(ir),
                      f"run it with: esl-run {out} --samples 200"])


register(Target("truenorth", "TrueNorth-style core IR (cores, crossbars, axon types; validated)",
                _truenorth_options, _truenorth_export))


# ------------------------------------------------------------------ command line


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one line, like every other error."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="esl-export", description=__doc__.splitlines()[0])
    p.add_argument("model", help="model.pt written by esl-train")
    p.add_argument("--target", required=True, metavar="NAME",
                   help="one of: " + ", ".join(f"{t.name} ({t.help})" for t in TARGETS.values()))
    p.add_argument("-o", "--out", required=True, help="output folder (replaced atomically if it is an "
                   "earlier export)")
    for target in TARGETS.values():
        target.options(p.add_argument_group(f"{target.name} target"))
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    target = TARGETS.get(args.target)
    if target is None:
        parser.error(f"unknown target {args.target!r}; known: {', '.join(TARGETS)}")
    model, out = Path(args.model), Path(args.out)
    try:
        summary = target.export(model, out, args)
    except (ExportError, OSError) as exc:
        msg = " ".join(str(exc).split())
        parser.error(msg)
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
