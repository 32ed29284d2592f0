"""Speed of the ONNX step graph in onnxruntime vs the PyTorch model, one thread each.

    .venv/bin/python benchmarks/onnx_step.py MODEL.pt [--samples 200] [--repeats 3]

The model is lowered and exported with ``esl_export.onnx_step.to_onnx``; onnxruntime
runs it one time step per call, the membrane potentials fed back by the caller (what a
deployment that streams steps does), on PyTorch's own encoded input of the first
``--samples`` mnist-embedded test digits. PyTorch runs the model's forward over all T
steps at once (for a direct-coded mlp-lif that computes the constant first-layer
current once, which the step graph recomputes every step). Both at batch 1 (one digit
at a time) and batch ``--batch``, after a warm-up, 1 intra-op thread each; variants run
in turn ``--repeats`` times and the median is reported (other jobs share the CPU).
Per step = time / (calls · T) for a whole batch; per sample = time / samples. The spikes
of the timed onnxruntime runs are compared with PyTorch's on the same samples.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from esl_energy.referee import StepByStep
from esl_export.graph import GraphError
from esl_export.lower import lower
from esl_export.onnx_step import OnnxStep, to_onnx
from esl_train.checkpoint import load_model
from esl_train.data import load_data


def onnx_run(runner: OnnxStep, seq: np.ndarray, batch: int) -> dict[str, np.ndarray]:
    """All samples of ``seq`` [T, N, ...] in chunks of ``batch``; the spikes and outputs."""
    keys = ["output", *(f"spikes:{n}" for n in runner.lif_nodes)]
    chunks: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for i in range(0, seq.shape[1], batch):
        states = runner.reset(min(batch, seq.shape[1] - i))
        steps: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        for x in seq[:, i:i + batch]:
            out = runner.step(x, states)
            states = runner.carry(out)
            for k in keys:
                steps[k].append(out[k])
        for k in keys:
            chunks[k].append(np.stack(steps[k]))
    return {k: np.concatenate(v, axis=1) for k, v in chunks.items()}


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", help="a trained LIF model.pt")
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=100, help="the large batch size (besides 1)")
    p.add_argument("--fast-conv", action="store_true", help="onnxruntime's NCHWc conv layout too")
    args = p.parse_args(argv)
    if not args.model:
        print("onnx_step: a trained model is needed, e.g. "
              "esl-train --model mlp-lif --out runs/lif/dense.pt; then "
              "benchmarks/onnx_step.py runs/lif/dense.pt", file=sys.stderr)
        return 2

    torch.set_num_threads(1)
    model, ckpt = load_model(args.model)
    model.eval()
    try:
        step_model = to_onnx(lower(model, ckpt.masks, source=str(args.model)))
    except GraphError as exc:
        print(f"onnx_step: {exc}", file=sys.stderr)
        return 2
    runner = OnnxStep(step_model, threads=1, fast_conv=args.fast_conv)
    x = load_data("mnist-embedded").test.x[: args.samples]
    arch_name = model.arch["name"]
    n = len(x)
    torch.manual_seed(0)
    rec = {k: v.numpy() for k, v in model.layer_spikes(x).items()}  # PyTorch's encoding and spikes
    seq = rec["input"].astype(np.float32)
    T = seq.shape[0]
    batches = sorted({1, min(args.batch, n)})

    def torch_run(batch: int) -> None:
        with torch.no_grad():
            for i in range(0, n, batch):
                model(x[i:i + batch])

    # the mlp-lif forward computes a direct-coded first layer once for all T steps; the step
    # graph (like Lava) recomputes it every step: time PyTorch that way too, same modules
    stepwise = StepByStep(model) if arch_name == "mlp-lif" else None

    def torch_steps(batch: int) -> None:
        assert stepwise is not None
        with torch.no_grad():
            for i in range(0, n, batch):
                stepwise(x[i:i + batch])

    onnx_run(runner, seq[:, :2], 1)  # warm-up (allocations, first-call set-up)
    torch_run(n) if n <= 2 else torch_run(2)
    times: dict[tuple[str, int], list[float]] = {}
    outs: dict[int, dict[str, np.ndarray]] = {}
    for _ in range(args.repeats):
        for b in batches:
            dt, out = timed(lambda b=b: onnx_run(runner, seq, b))
            times.setdefault(("onnx", b), []).append(dt)
            outs[b] = out  # type: ignore[assignment]
            dt, _ = timed(lambda b=b: torch_run(b))
            times.setdefault(("torch", b), []).append(dt)
            if stepwise is not None:
                dt, _ = timed(lambda b=b: torch_steps(b))
                times.setdefault(("steps", b), []).append(dt)

    arch = model.arch
    shape = "-".join(map(str, arch["sizes"])) if "sizes" in arch else f"width {arch.get('width')}"
    print(f"model: {args.model} ({arch['name']} {shape}, T = {T}, {model.encoding()['kind']} input, "
          f"{len(runner.lif_nodes)} LIF layers); {n} mnist-embedded test digits; 1 thread each "
          f"(torch {torch.get_num_threads()}), median of {args.repeats}"
          + (", NCHWc conv layout" if args.fast_conv else ""))
    print(f"{'':8s}{'per step (ms)':>36s}   {'per sample (ms)':>34s}")
    print(f"{'batch':>6s}  {'onnxruntime':>12s} {'PyTorch':>10s} {'ONNX/PT':>9s}   "
          f"{'onnxruntime':>12s} {'PyTorch':>10s} {'ONNX/PT':>9s}")
    for b in batches:
        calls = -(-n // b)
        t_onnx = statistics.median(times[("onnx", b)])
        t_torch = statistics.median(times[("torch", b)])
        step_o, step_t = 1e3 * t_onnx / (calls * T), 1e3 * t_torch / (calls * T)
        samp_o, samp_t = 1e3 * t_onnx / n, 1e3 * t_torch / n
        print(f"{b:6d}  {step_o:12.4f} {step_t:10.4f} {step_o / step_t:9.2f}   "
              f"{samp_o:12.4f} {samp_t:10.4f} {samp_o / samp_t:9.2f}")
    if stepwise is not None:
        print("PyTorch with the first layer recomputed every step, as the step graph does:")
        for b in batches:
            calls = -(-n // b)
            t_onnx, t_steps = statistics.median(times[("onnx", b)]), statistics.median(times[("steps", b)])
            step_o, step_s = 1e3 * t_onnx / (calls * T), 1e3 * t_steps / (calls * T)
            print(f"{b:6d}  {step_o:12.4f} {step_s:10.4f} {step_o / step_s:9.2f}   "
                  f"{1e3 * t_onnx / n:12.4f} {1e3 * t_steps / n:10.4f} {t_onnx / t_steps:9.2f}")

    ok = True
    for b, out in outs.items():
        diff = {name: int((out[f"spikes:{name}"] != rec[name]).sum()) for name in runner.lif_nodes}
        total = sum(int(rec[name].size) for name in runner.lif_nodes)
        logit = float(np.abs(out["output"] - rec["output"]).max())
        print(f"spikes, batch {b}: {sum(diff.values())} of {total:,} differ from PyTorch "
              f"({', '.join(f'{k} {v}' for k, v in diff.items())}); logits max |diff| {logit:.1e}")
        ok &= not any(diff.values())
    print("spike rates per step: " + ", ".join(f"{name} {100 * rec[name].mean():.1f}%"
                                                 for name in runner.lif_nodes))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
