"""IR-simulator ticks per second against Lava steps per second, same network, one run.

    python benchmarks/truenorth_vs_lava.py runs/tn/esl.pt --samples 50

Exports the model to the TrueNorth IR and to Lava (temporary folders), draws the
rate-coded input once with PyTorch, and streams the same digits through both:
the IR simulator one sample at a time (as Lava streams) and in batches of 100, Lava
floating_pt. One IR tick and one Lava step each advance the whole network by one
time step; a sample takes ``ticks_per_sample`` IR ticks (T plus pipeline offsets
plus the readout drain) and T Lava steps, so samples/s is printed as well. Lava's
compile time is excluded, as esl-run does.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="an mlp-lif model.pt trained with --encoding rate")
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--json", default=None, help="also write the numbers here")
    args = p.parse_args(argv)
    if args.samples < 1:
        print("truenorth_vs_lava: error: --samples must be >= 1", file=sys.stderr)
        return 2
    import torch

    from esl_export.lava import artifact
    from esl_export.lava.runner import export_model as lava_export
    from esl_export.lava.runner import pytorch_side
    from esl_export.lava.runner import simulate as lava_simulate
    from esl_export.truenorth.ir import IRError
    from esl_export.truenorth.runner import export_model as tn_export
    from esl_export.truenorth.simulate import simulate
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
    one = simulate(ir, seq, batch=1)
    many = simulate(ir, seq, batch=100)
    lava = lava_simulate(art, x, input_seq=seq)
    lava_preds = lava.sums.argmax(1) if lava.sums is not None else np.full(len(x), -1)
    res = {
        "model": args.model, "samples": args.samples, "cores": ir.n_cores,
        "ir_ticks_per_sample": one.ticks, "lava_steps_per_sample": art.steps_per_sample,
        "ir_ticks_per_s_batch1": one.ticks_per_s, "ir_ticks_per_s_batch100": many.ticks_per_s,
        "lava_steps_per_s": lava.steps_per_s,
        "ratio_batch1": one.ticks_per_s / lava.steps_per_s,
        "ratio_batch100": many.ticks_per_s / lava.steps_per_s,
        "ir_samples_per_s_batch1": args.samples / one.seconds,
        "ir_samples_per_s_batch100": args.samples / many.seconds,
        "lava_samples_per_s": args.samples / lava.sim_seconds,
        "ir_agrees_with_pytorch": float(np.mean(one.predictions() == preds)),
        "lava_agrees_with_pytorch": float(np.mean(lava_preds == preds)),
    }
    print(f"{args.model}: {ir.n_cores} cores; {args.samples} digits")
    print(f"IR simulator, batch 1:   {res['ir_ticks_per_s_batch1']:,.0f} ticks/s "
          f"({res['ir_samples_per_s_batch1']:.1f} digits/s at {one.ticks} ticks per digit)")
    print(f"IR simulator, batch 100: {res['ir_ticks_per_s_batch100']:,.0f} ticks/s "
          f"({res['ir_samples_per_s_batch100']:.1f} digits/s)")
    print(f"Lava floating_pt:        {res['lava_steps_per_s']:,.0f} steps/s "
          f"({res['lava_samples_per_s']:.1f} digits/s at {art.steps_per_sample} steps per digit)")
    print(f"ticks/s ratio IR : Lava = {res['ratio_batch1']:.2f} (batch 1), {res['ratio_batch100']:.2f} "
          f"(batch 100)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
