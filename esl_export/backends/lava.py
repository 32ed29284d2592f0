"""The Lava back end: Lava processes (Sparse/Dense, LIF, fire-once) in Lava's simulator.

Export and run live in ``esl_export.lava`` (artifact, build, runner); this module is
their entry in the back-end registry.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from esl_export.backends import Backend
from esl_export.runs import RunReport, RunRequest
from esl_export.sources import Source


def _options(group: argparse._ArgumentGroup) -> None:
    from esl_export.single_spike_dt import DEFAULT_DT, DEFAULT_WINDOW

    group.add_argument("--dt", type=float, default=DEFAULT_DT,
                       help="single-spike networks: time step in tau_syn units (default %(default).4g; "
                            "smaller is closer to the z-domain model, larger runs fewer steps)")
    group.add_argument("--window", type=float, default=DEFAULT_WINDOW,
                       help="single-spike networks: simulated time per sample in tau_syn units "
                            "(default %(default)g)")


def _export(source: Source, out: Path, args: argparse.Namespace) -> list[str]:
    from esl_export.lava.runner import export_graph

    if not (args.dt > 0 and args.window > 0):
        raise ValueError("--dt and --window must be positive")
    art = export_graph(source, out, dt=args.dt, window=args.window)
    stages = ", ".join(f"{s.connection} {s.n_in}->{s.n_out} ({s.nnz():,} synapses)" for s in art.stages)
    timing = (f"dt {art.time['dt']:.4g} tau_syn, {art.steps_per_sample} steps per digit"
              if art.kind == "single-spike" else f"T = {art.steps_per_sample} steps per digit")
    masked = sum(node.synapses() for node in source.graph.connections().values())
    relays = [s for s in art.stages if s.neuron.get("relay")]
    deployed = sum(s.nnz() for s in art.stages if not (s.neuron.get("counts") or s.neuron.get("relay")))
    lines = [f"wrote {out}: {source.label} as {len(art.stages)} Lava stages [{stages}], {timing}",
             f"synapses: {masked:,} active in the masks, {deployed:,} deployed (zero weights dropped; "
             f"pooling and convolution counted per unrolled connection)"]
    if relays:
        copies = sum(s.nnz() for s in relays)
        lines.append(f"residual paths: {len(relays)} relay stages ({copies:,} identity synapses) delay each "
                     f"shortcut to meet its block's second convolution")
    return lines


def _run_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--config", choices=("floating_pt", "fixed_pt"), default="floating_pt",
                       help="Lava run config: float, or Loihi's fixed point with 8-bit weights")
    group.add_argument("--sparse-model", choices=("fast", "stock"), default="fast",
                       help="floating_pt model of Lava's Sparse process (default: esl-snn's faster one)")


def _run(folder: Path, req: RunRequest) -> RunReport:
    from esl_export.lava.runner import run_artifact

    return run_artifact(folder, req.samples, req.options.get("config", "floating_pt"),
                        model_path=req.source, compare=req.compare, data=req.data, data_dir=req.data_dir,
                        offset=req.offset, progress=req.progress,
                        sparse_model=req.options.get("sparse_model", "fast"), seed=req.seed)


BACKEND = Backend("lava", "Lava processes (Sparse/Dense, LIF, single-spike) run in Lava's simulator",
                  ("esl-snn/lava-network",), _export, _run, _options, _run_options)
