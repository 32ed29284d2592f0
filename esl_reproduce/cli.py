"""esl-reproduce: the paper's Figures 2, 3(a), 3(b), 4 and Tables 1-2 in one folder.

    esl-reproduce --quick -o runs/repro          # embedded digits, 2 CPU cores, < 20 minutes
    esl-reproduce --full -o runs/paper --mnist-dir D --dvs-dir D [--cifar10-dir D --cifar100-dir D]
    esl-reproduce --quick -o runs/repro --recipe cifar10-resnet19 --cifar10-dir D   # one Table 2 row

Each run is cached under DIR/cache by a hash of its configuration: rerunning the command
reuses finished runs and resumes an interrupted one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from esl_train.cli_common import LineParser, add_progress, run_command, show_progress

PROG = "esl-reproduce"


def build_parser() -> argparse.ArgumentParser:
    from esl_reproduce.plan import RECIPES

    p = LineParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    scale = p.add_mutually_exclusive_group(required=True)
    scale.add_argument("--quick", action="store_true", help="the embedded digits and small budgets")
    scale.add_argument("--full", action="store_true", help="the paper's data and budgets (folders below)")
    p.add_argument("-o", "--out", required=True, help="output folder (new, empty, or an earlier one of ours)")
    p.add_argument("--recipe", action="append", default=[], choices=sorted(RECIPES),
                   help="also run this Table 2 row (two seeds); repeatable")
    p.add_argument("--recipe-epochs", type=int, default=300, help="epochs per recipe run (paper: 300)")
    for name in ("mnist", "dvs", "cifar10", "cifar100"):
        p.add_argument(f"--{name}-dir", default=None, help=f"the {name} data folder (see README: Data)")
    add_progress(p)
    return p


def _run(argv: list[str] | None) -> int:
    from esl_reproduce.plan import RECIPES, full, quick
    from esl_reproduce.reproduce import ReproduceError, reproduce

    args = build_parser().parse_args(argv)
    dirs = {"mnist": args.mnist_dir, "dvs-cifar10": args.dvs_dir, "cifar10": args.cifar10_dir,
            "cifar100": args.cifar100_dir}
    if args.full:
        missing = [f"--{k}-dir" for k, v in (("mnist", args.mnist_dir), ("dvs", args.dvs_dir)) if v is None]
        if missing:
            raise ReproduceError(f"--full needs {' and '.join(missing)} (the paper's MNIST and DVS-CIFAR10)")
    for name in args.recipe:
        if dirs.get(RECIPES[name].dataset) is None:
            flag = {"cifar10": "--cifar10-dir", "cifar100": "--cifar100-dir", "dvs-cifar10": "--dvs-dir"}
            raise ReproduceError(f"--recipe {name} needs {flag[RECIPES[name].dataset]}")
    if args.recipe_epochs < 1:
        raise ReproduceError(f"--recipe-epochs must be >= 1, got {args.recipe_epochs}")
    scale = full(dirs) if args.full else quick()
    result = reproduce(scale, Path(args.out), recipes=args.recipe, recipe_dirs=dirs,
                       recipe_epochs=args.recipe_epochs, progress=show_progress(args.progress))
    print(f"wrote {result.out / 'report.md'} ({len(result.files)} files) in {result.seconds:.0f} s: "
          f"{result.trained} runs trained, {result.reused} reused")
    return 0


def _errors() -> tuple[type[BaseException], ...]:
    from esl_energy.counting import EnergyError
    from esl_export.backends import input_errors

    return (*input_errors(), EnergyError)


def main(argv: list[str] | None = None) -> int:
    return run_command(PROG, lambda: _run(argv), _errors,
                       interrupted="interrupted; run the same command again to continue (finished runs "
                                   "are kept)")


if __name__ == "__main__":
    sys.exit(main())
