"""The main job (README: `make demo`): the whole flow on the embedded MNIST digits.

1. Train the paper's 784-800-10 single-spike network densely and with ESL
   (ε = 60: 95,040 + 8,000 = 103,040 connections). Budget: the model's recipe
   (Adam, batch 100, learning rate 0.01 -> 0.0001 exponentially, 20 epochs) on
   the 3,600 training digits, the best validation epoch kept, tested on the
   1,000 held-out digits (esl_energy.table1.train_table1).
2. Print the paper's Table 1 beside ours.
3. Export both models to Lava and run test digits through Lava's simulator,
   printing Lava's accuracy beside PyTorch's on the same digits.
4. Export the ESL model as a NIR file (what other frameworks read), read it back,
   and run the NIR file's own Lava export on the same digits: its predictions must
   equal those of the model.pt's export.
5. Print the energy table (GPU and TrueNorth; connections and measured modes).

Re-running reuses finished models and continues an interrupted training run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from esl_energy.counting import EnergyError
from esl_energy.report import energy_report
from esl_energy.table1 import render_table1, table1_rows, train_table1
from esl_export.cli import main as export_main
from esl_export.lava import run_model
from esl_export.lava.artifact import ArtifactError
from esl_export.lava.build import LavaRunError
from esl_train.checkpoint import CheckpointError, load_checkpoint
from esl_train.data import DataError
from hw_targets import TargetError


def nir_cli(argv: list[str]) -> None:
    """esl-export, as a user would type it; its failure is this job's failure."""
    if export_main(argv) != 0:
        raise ValueError(f"esl-export {' '.join(argv)} failed")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="esl-demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/demo", help="folder for models, logs and exports")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's 20 epochs")
    p.add_argument("--lava-samples", type=int, default=200, help="test digits run through Lava")
    p.add_argument("--energy-samples", type=int, default=1000, help="test digits for measured mode")
    args = p.parse_args(argv)
    out = Path(args.out)
    try:
        print("[1/5] training the 784-800-10 single-spike network, dense and ESL (eps=60)")
        paths = train_table1(out, epochs=args.epochs, seed=args.seed)
        for kind, path in paths.items():
            meta = load_checkpoint(path).meta
            print(f"  {kind}: test accuracy {100 * meta['test_acc']:.2f}% on the 1,000 held-out digits "
                  f"({meta['connections']:,} connections, best epoch {meta['best_epoch']}) -> {path}")

        print("\n[2/5] Table 1 (ESL-SNNs, AAAI 2023) beside ours")
        print(render_table1(table1_rows(paths["dense"], paths["esl"])))

        print(f"\n[3/5] Lava: export and run {args.lava_samples} test digits")
        results = {}
        for kind, path in paths.items():
            results[kind] = run_model(path, samples=args.lava_samples, out_dir=out / f"{kind}-lava")
            print(f"  {kind}:")
            for line in results[kind].summary().splitlines():
                print(f"    {line}")

        print("\n[4/5] NIR: the ESL model as a NIR file, read back and run in Lava")
        nir_file = out / "esl.nir"
        nir_cli(["--target", "nir", str(paths["esl"]), "-o", str(nir_file)])
        nir_lava = run_model(nir_file, samples=args.lava_samples, out_dir=out / "esl-nir-lava",
                             compare=False)
        same = int((nir_lava.predictions == results["esl"].predictions).sum())
        print(f"  Lava run of the NIR file's export: {same} of {args.lava_samples} predictions equal to "
              f"the model.pt export's (accuracy {100 * nir_lava.accuracy:.2f}%)")

        print(f"\n[5/5] energy per inference (measured mode on {args.energy_samples} test digits)")
        print(energy_report([paths["dense"], paths["esl"]], platforms="gpu,truenorth",
                            modes=("connections", "measured"), samples=args.energy_samples,
                            progress=True))
    except (DataError, CheckpointError, ArtifactError, LavaRunError, EnergyError, TargetError,
            ValueError) as exc:
        print(f"esl-demo: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
