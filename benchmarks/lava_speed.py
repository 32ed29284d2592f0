"""Lava simulation speed of the 784-800-10 network: Sparse (density 0.16) vs Dense,
stock vs esl-snn's Sparse model, and the PyTorch reference on the same samples.

    .venv/bin/python benchmarks/lava_speed.py [--samples 200] [--repeats 3]
    .venv/bin/python benchmarks/lava_speed.py --model runs/mem/esl-e20.pt     # trained weights
    .venv/bin/python benchmarks/lava_speed.py --model ESL_DIRECT.pt            # graded (direct) input

With ``--model`` a trained 784-800-10 mlp-lif model.pt is timed instead of the built one
(its own encoding: a direct-coded model sends graded pixels into the hidden Sparse
process, ``num_message_bits > 0``). ``--encoding direct`` builds a direct-coded network.
Every variant first runs ``--warmup`` untimed times.

The network is the paper's MNIST MLP as a LIF network (mlp-lif 784-800-10, T = 8,
rate-coded input so every connection sees binary spikes, as on the chip). Only the
hidden layer is masked, with exactly round(0.16 · 784 · 800) random connections
(ESL's density at ε = 60); the 800 → 10 readout stays dense. Weights are set, not
trained (speed does not depend on them; they are scaled so that about a tenth of
the hidden neurons fire per step). Every variant is exported through the same
esl-export path and streams the same digits with the same input draw:

- dense:        both stages as Lava Dense
- sparse-stock: hidden stage as Lava Sparse with Lava's own floating_pt model
- sparse-fast:  hidden stage as Lava Sparse with esl_export.lava.procs.sparse's model

- sparse-idle:  (``--bound``) the fast model with the product left out (it sends zeros):
                not a result, the ceiling of any Sparse model in this network, since
                Lava's per-step cost of the other processes stays

Steps per second count simulator steps over the time inside Lava's run calls
(compilation excluded); variants run in turn, ``--repeats`` times, and the median
(and the best run) is reported, since other jobs share the CPU. The readout sums of
the three variants are compared (sparse-stock and sparse-fast bit for bit). PyTorch
runs the same digits one at a time (batch 1, the way the simulator sees them) and as
one batch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from esl_export.lava.runner import export_model, pytorch_side, simulate
from esl_train.checkpoint import make_checkpoint, save_checkpoint
from esl_train.data import load_data
from esl_train.models import build_model

DENSITY = 0.16


def build(seed: int = 0, encoding: str = "rate") -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    model = build_model({"name": "mlp-lif", "sizes": [784, 800, 10], "T": 8, "encoding": encoding})
    w = model.fc[0].weight
    n = w.numel()
    keep = torch.randperm(n)[: round(DENSITY * n)]
    mask = torch.zeros(n, dtype=torch.bool)
    mask[keep] = True
    mask = mask.reshape(w.shape)
    with torch.no_grad():
        w.normal_(-0.015, 0.2).mul_(mask)
        model.fc[0].bias.zero_()
    return model.eval(), {"fc.0.weight": mask}


@contextmanager
def idle_sparse(on: bool) -> Iterator[None]:
    """While ``on``: the fast Sparse model receives and sends as usual but computes nothing
    (Lava forks its processes, so they inherit the patch)."""
    from esl_export.lava.procs.sparse import PySparseFastModelFloat

    if not on:
        yield
        return
    real = PySparseFastModelFloat.run_spk

    def run_spk(self: PySparseFastModelFloat) -> None:
        self.a_out.send(self.a_buff)
        self.s_in.recv()
        self.a_buff = np.zeros(self.a_out.shape[0])

    PySparseFastModelFloat.run_spk = run_spk  # type: ignore[method-assign]
    try:
        yield
    finally:
        PySparseFastModelFloat.run_spk = real  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1, help="untimed runs of every variant first")
    p.add_argument("--model", default=None, help="a trained 784-800-10 mlp-lif model.pt (default: build one)")
    p.add_argument("--encoding", default="rate", choices=("rate", "direct"), help="of the built network")
    p.add_argument("--bound", action="store_true",
                   help="also time a Sparse model that does no work (the ceiling of any Sparse model)")
    args = p.parse_args(argv)

    x = load_data("mnist-embedded").test.x[: args.samples].numpy()
    with tempfile.TemporaryDirectory(prefix="esl-bench-") as tmp:
        if args.model:
            from esl_train.checkpoint import load_model

            path = Path(args.model)
            model, _ = load_model(path)
            model.eval()
        else:
            model, masks = build(encoding=args.encoding)
            path = Path(tmp) / "model.pt"
            save_checkpoint(make_checkpoint(model, masks), path)
        art = export_model(path, Path(tmp) / "lava")
    encoding = str(art.input.get("encoding", {}).get("kind", "?"))
    graded = bool(art.stages[0].graded_input)
    torch.manual_seed(1)
    _, seq = pytorch_side(model, x)  # PyTorch's own rate-coded draw, fed to Lava as well
    if graded:
        seq = None  # analog pixels: Lava encodes them itself, every step
    T = model.n_steps
    print(f"784-800-10 mlp-lif ({'trained: ' + str(args.model) if args.model else 'built'}), T = {T}, "
          f"{encoding} input ({'graded' if graded else 'spike'} messages into the hidden stage), "
          f"{args.samples} digits; hidden stage "
          f"{art.stages[0].connection} {art.stages[0].nnz():,} synapses (density "
          f"{art.stages[0].nnz() / (784 * 800):.3f}), readout {art.stages[1].connection}")

    variants = {"dense": {"connections": "dense", "sparse_model": "fast"},
                "sparse-stock": {"connections": "auto", "sparse_model": "stock"},
                "sparse-fast": {"connections": "auto", "sparse_model": "fast"}}
    if args.bound:
        variants["sparse-idle"] = {"connections": "auto", "sparse_model": "fast"}
    rates: dict[str, list[float]] = {k: [] for k in variants}
    sums: dict[str, np.ndarray] = {}
    steps = 0
    for name, kw in variants.items():
        for _ in range(args.warmup):
            with idle_sparse(name == "sparse-idle"):
                simulate(art, x, input_seq=seq, chunk_samples=args.samples, **kw)
    for r in range(args.repeats):
        for name, kw in variants.items():
            with idle_sparse(name == "sparse-idle"):
                out = simulate(art, x, input_seq=seq, chunk_samples=args.samples, **kw)
            rates[name].append(out.steps_per_s)
            sums[name] = out.sums if out.sums is not None else np.zeros(0)
            steps = out.steps
            print(f"  run {r + 1} {name:13s} {out.steps_per_s:8.0f} steps/s "
                  f"(compile {out.compile_seconds:.1f} s)", flush=True)
    assert np.array_equal(sums["sparse-stock"], sums["sparse-fast"]), "fast Sparse model changed the output"
    dense_diff = float(np.abs(sums["dense"] - sums["sparse-fast"]).max())

    # PyTorch on the same digits and draw: one digit at a time, then one batch
    if seq is None:  # direct coding: the same pixels at every step
        seq = np.repeat(x.reshape(1, len(x), -1), T, axis=0)
    seq_t = torch.as_tensor(seq, dtype=torch.float32)

    def torch_forward(batch: torch.Tensor) -> torch.Tensor:
        cur = model.fc[0](batch)
        for k, lif in enumerate(model.lif):
            cur = model.fc[k + 1](lif(cur))
        return cur

    with torch.no_grad():
        torch_forward(seq_t[:, :1])  # warm-up
        t0 = time.perf_counter()
        for i in range(args.samples):
            torch_forward(seq_t[:, i:i + 1])
        t_single = time.perf_counter() - t0
        t0 = time.perf_counter()
        out_b = torch_forward(seq_t)
        t_batch = time.perf_counter() - t0
        model.lif[0].record = True
        torch_forward(seq_t)
        hidden_rate = float(model.lif[0].recorded.mean())
    torch_steps = args.samples * T
    torch_single, torch_batch = torch_steps / t_single, torch_steps / t_batch
    lava_pred = sums["sparse-fast"].argmax(1)
    torch_pred = out_b.mean(0).argmax(-1).numpy()

    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"\nmedian over {args.repeats} runs, {steps} simulator steps each ({args.samples} digits x {T} "
          f"steps + pipeline drain), torch threads {torch.get_num_threads()}:")
    for name in variants:
        print(f"  Lava {name:13s} {med[name]:8.0f} steps/s   (best {max(rates[name]):.0f})")
    print(f"  PyTorch batch 1    {torch_single:8.0f} steps/s")
    print(f"  PyTorch batch {args.samples:<4d} {torch_batch:8.0f} steps/s")
    print(f"  (activity: {100 * float(seq.mean()):.1f}% of inputs and {100 * hidden_rate:.1f}% of hidden "
          "neurons spike per step)")
    print("ratios:")
    print(f"  sparse-fast / dense         {med['sparse-fast'] / med['dense']:.2f}")
    print(f"  sparse-stock / dense        {med['sparse-stock'] / med['dense']:.2f}")
    print(f"  sparse-fast / sparse-stock  {med['sparse-fast'] / med['sparse-stock']:.2f}")
    if "sparse-idle" in med:
        ceiling = med["sparse-idle"] / med["sparse-stock"]
        print(f"  sparse-idle / sparse-stock  {ceiling:.2f}   (the ceiling: a Sparse model doing nothing)")
    print(f"  sparse-fast / PyTorch b1    {med['sparse-fast'] / torch_single:.3f}")
    print(f"  dense / PyTorch b1          {med['dense'] / torch_single:.3f}")
    print(f"same output: sparse-stock == sparse-fast bit for bit; dense differs by at most {dense_diff:.1e}; "
          f"Lava predictions agree with PyTorch on {100 * np.mean(lava_pred == torch_pred):.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
