"""Cores, utilisation and accuracy of TrueNorth IR exports, side by side.

    python benchmarks/truenorth_cores.py runs/tn/dense.pt runs/tn/esl.pt runs/tn/esl_core.pt --samples 500

Each model.pt (an mlp-lif trained with --encoding rate) is exported to the core IR
(validated), and the same test digits with PyTorch's own rate-coded draw are streamed
through the IR simulator. One markdown row per model: cores (and the lower bound),
first-layer placement, crossbar utilisation, replica and splitter neurons, partial-sum
neurons, IR and PyTorch accuracy, agreement, SOPs per digit and energy per digit
(truenorth-merolla2014: dynamic + static).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", help="mlp-lif model.pt files trained with --encoding rate")
    p.add_argument("--samples", type=int, default=500)
    args = p.parse_args(argv)
    from esl_export.graph import GraphError
    from esl_export.truenorth.ir import IRError
    from esl_export.truenorth.runner import export_model, run_export
    from esl_train.checkpoint import CheckpointError

    print("| model | cores | lower bound | layer 1 | utilisation | replicas | splitters | partial-sum "
          "neurons | IR acc. | PyTorch acc. | agreement | SOPs/digit | J/digit |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for model in args.models:
        try:
            with tempfile.TemporaryDirectory(prefix="tn-cores-") as tmp:
                ir = export_model(model, Path(tmp) / "tn")
            run = run_export(ir, args.samples, model_path=model)
        except (CheckpointError, IRError, GraphError) as exc:
            print(f"truenorth_cores: error: {' '.join(str(exc).split())}", file=sys.stderr)
            return 2
        rep, st = ir.meta["report"], ir.stats()
        layers = rep["layers"]
        print(f"| {model} | {st['cores']} | {rep['lower_bound']} | {layers[0]['mode']}, {layers[0]['cores']} "
              f"cores | {100 * st['utilisation']:.2f} % | {sum(lay['replicas'] for lay in layers)} | 0 | "
              f"{sum(lay['partial_neurons'] for lay in layers)} | {100 * run.accuracy:.1f} % | "
              f"{100 * (run.pytorch_accuracy or 0):.1f} % | {100 * (run.agreement or 0):.1f} % | "
              f"{run.sim.sops.sum() / run.samples:,.0f} | {run.energy.total_j:.3e} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
