"""IR simulator against Lava, digits per second on the same network and digits, one run.

    python benchmarks/truenorth_vs_lava.py runs/tn/esl.pt --samples 200

Exports the model to the TrueNorth IR and to Lava (temporary folders), draws the
rate-coded input once with PyTorch, and streams the same digits through:

- the IR simulator's compiled engine (``fast``), one digit at a time (as Lava streams)
  and in batches of 100 (split over this process's CPUs);
- its numpy engine (``reference``, the simulator before the compiled one), batch 1 and
  100, to show that the fast engine's counts, first spikes and SOPs are the same,
  digit for digit, and by how much it is faster;
- Lava floating_pt (its compile time excluded, as esl-run does).

A digit takes ``ticks_per_sample`` IR ticks (T, pipeline offsets, the readout's drain)
and T Lava steps; digits per second is the comparison that counts. Every IR variant runs
once untimed first (the compiled engine's compile or cache load), then ``--repeat``
times; the median is printed. Lava runs once (its steps/s is steady over 200 digits).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="an mlp-lif model.pt trained with --encoding rate")
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--repeat", type=int, default=3, help="timed runs of each IR variant (median)")
    p.add_argument("--json", default=None, help="also write the numbers here")
    args = p.parse_args(argv)
    if args.samples < 1 or args.repeat < 1:
        print("truenorth_vs_lava: error: --samples and --repeat must be >= 1", file=sys.stderr)
        return 2
    import torch

    from esl_export.lava import artifact
    from esl_export.lava.runner import export_model as lava_export
    from esl_export.lava.runner import pytorch_side
    from esl_export.lava.runner import simulate as lava_simulate
    from esl_export.truenorth.ir import IRError
    from esl_export.truenorth.runner import export_model as tn_export
    from esl_export.truenorth.simulate import SimResult, Simulator, raster
    from esl_train.checkpoint import CheckpointError, load_model
    from esl_train.data import load_data

    try:
        model, ckpt = load_model(args.model)
        with tempfile.TemporaryDirectory(prefix="tn-bench-") as tmp:
            ir = tn_export(args.model, Path(tmp) / "tn")
            lava_export(args.model, Path(tmp) / "lava")
            art = artifact.read(Path(tmp) / "lava")
    except (CheckpointError, IRError, artifact.ArtifactError) as exc:
        print(f"truenorth_vs_lava: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    test = load_data(ckpt.meta.get("dataset") or "mnist-embedded").test
    x = test.x[:args.samples].numpy()
    torch.manual_seed(0)
    preds, seq = pytorch_side(model.eval(), x)
    assert seq is not None
    seq = seq.reshape(seq.shape[0], seq.shape[1], -1)
    sim = Simulator(ir)
    lines = raster(ir, seq)

    def stream(engine: str, batch: int) -> SimResult:
        return SimResult.join([sim.run(lines[:, i:i + batch], engine=engine)
                               for i in range(0, args.samples, batch)])

    variants = {(e, b): [] for e in ("fast", "reference") for b in (1, 100)}
    results: dict[tuple[str, int], SimResult] = {}
    for key in variants:  # warm-up: compile or load the kernel, touch every array
        results[key] = stream(*key)
    for _ in range(args.repeat):  # interleaved, so a slow spell of the machine hits all alike
        for key in variants:
            results[key] = stream(*key)
            variants[key].append(args.samples / results[key].seconds)
    rate = {f"{e}_batch{b}": statistics.median(v) for (e, b), v in variants.items()}
    ref, fast = results[("reference", 100)], results[("fast", 1)]
    same = all(np.array_equal(getattr(results[k], f), getattr(ref, f))
               for k in results for f in ("counts", "first", "sops"))
    lava = lava_simulate(art, x, input_seq=seq)
    lava_rate = args.samples / lava.sim_seconds
    lava_preds = lava.sums.argmax(1) if lava.sums is not None else np.full(len(x), -1)
    res = {
        "model": args.model, "samples": args.samples, "cores": ir.n_cores, "repeat": args.repeat,
        "ir_ticks_per_sample": fast.ticks, "lava_steps_per_sample": art.steps_per_sample,
        "ir_digits_per_s": rate, "lava_digits_per_s": lava_rate, "lava_steps_per_s": lava.steps_per_s,
        "ratio_to_lava": {k: v / lava_rate for k, v in rate.items()},
        "fast_over_reference": {b: rate[f"fast_batch{b}"] / rate[f"reference_batch{b}"] for b in (1, 100)},
        "identical_counts_first_sops": same,
        "ir_agrees_with_pytorch": float(np.mean(fast.predictions() == preds)),
        "lava_agrees_with_pytorch": float(np.mean(lava_preds == preds)),
    }
    print(f"{args.model}: {ir.n_cores} cores; {args.samples} digits; IR {fast.ticks} ticks per digit, "
          f"Lava {art.steps_per_sample} steps; median of {args.repeat} IR runs")
    for (e, b) in variants:
        r = rate[f"{e}_batch{b}"]
        print(f"IR {e:9s} batch {b:3d}: {r:8.1f} digits/s  ({r * fast.ticks:10,.0f} ticks/s)  "
              f"{r / lava_rate:6.2f}x Lava")
    print(f"Lava floating_pt:         {lava_rate:8.1f} digits/s  ({lava.steps_per_s:10,.0f} steps/s)")
    print(f"fast / reference: {res['fast_over_reference'][1]:.1f}x (batch 1), "
          f"{res['fast_over_reference'][100]:.1f}x (batch 100); counts, first spikes and SOPs identical "
          f"across all four IR runs: {'yes' if same else 'NO'}")
    print(f"agreement with PyTorch: IR {res['ir_agrees_with_pytorch']:.3f}, "
          f"Lava {res['lava_agrees_with_pytorch']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
