"""Time measured-mode operation counting: esl_energy's counter vs NeuroBench.

Both count the effective synaptic operations (MACs of analog input, ACs/SOPs of
spikes) of the same multi-spike LIF model on the same digits, with the same batch
size, in one process, one after the other; the counts are checked to be equal and
the wall-clock ratio is printed. Each side runs the model's forward itself (ours
records the spikes, NeuroBench hooks the layers and re-runs each with binarised
weights), so the times include inference. The forward is also timed on the tensor code
that the compiled LIF and pool kernels (``esl_train/models/lif_cpu.py``) replace, and its
outputs are checked to be identical.

The model is the PyTorch module as it is (the mlp-lif computes its constant
first-layer current once), so ours counts with ``direct_input="once"``; with
``--step-by-step`` NeuroBench runs the same modules one layer application per time
step and ours uses the default ``per-step``.

    python benchmarks/energy_count.py [--model LIF.pt] [--samples 1000] [--batch-size 100]
    python benchmarks/energy_count.py --model VGGSNN.pt      # a (tiny) VGGSNN, per-step

Without ``--model`` a 784-800-10 mlp-lif (T = 8) with an ε = 60 Erdős–Rényi mask
in the hidden layer and weights scaled so that it spikes is built (untrained).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from esl_energy.referee import StepByStep, neurobench_counter  # noqa: E402
from esl_energy.report import Loaded, load, measure  # noqa: E402
from esl_export.lower import lower  # noqa: E402
from esl_train.checkpoint import make_checkpoint  # noqa: E402
from esl_train.data import load_data  # noqa: E402
from esl_train.models import build_model, lif_cpu  # noqa: E402


def demo_model() -> Loaded:
    torch.manual_seed(0)
    model = build_model({"name": "mlp-lif", "sizes": [784, 800, 10], "T": 8})
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        w = model.fc[0].weight
        mask = torch.zeros(w.numel(), dtype=torch.bool)
        mask[torch.randperm(w.numel(), generator=g)[:95_040]] = True
        mask = mask.view_as(w)
        w.mul_(8.0 * mask)
        model.fc[1].weight.mul_(4.0)
    ckpt = make_checkpoint(model, masks={"fc.0.weight": mask})
    model.load_state_dict(ckpt.state_dict)
    return Loaded("built mlp-lif 784-800-10 T=8 (eps=60 hidden mask)", model.eval(), ckpt,
                  lower(model, ckpt.masks))


def best_time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="an mlp-lif model.pt (default: build one)")
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--repeat", type=int, default=3, help="best of this many runs each")
    p.add_argument("--step-by-step", action="store_true",
                   help="NeuroBench on the step-by-step forward, ours per-step")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    loaded = load(args.model) if args.model else demo_model()
    mlp = loaded.graph.meta.get("model") == "mlp-lif"
    if loaded.model is None or loaded.graph.meta.get("model") not in ("mlp-lif", "vggsnn", "resnet19"):
        print("energy_count: give a multi-spike LIF model.pt (mlp-lif, vggsnn, resnet19)", file=sys.stderr)
        return 2
    x = load_data("mnist-embedded", limit=args.samples).test.x
    shape = tuple(loaded.graph.nodes[loaded.graph.input].shape)  # type: ignore[union-attr]
    if not mlp:  # a conv net on the digits, as images of its input shape
        x = x.reshape(-1, 1, 28, 28)
        if x.shape[1:] != shape:
            x = torch.nn.functional.interpolate(x, size=shape[1:], mode="bilinear", align_corners=False)
    net = StepByStep(loaded.model) if args.step_by_step and mlp else loaded.model
    # the mlp-lif computes its constant first-layer current once; the conv nets every step
    direct = "once" if mlp and not args.step_by_step else "per-step"

    # rate-coded models draw their input spikes: both sides start from the same seed, so they
    # draw the same spikes batch by batch and their counts must be equal
    ours_fn = lambda: measure(loaded.model, loaded.graph, x, batch_size=args.batch_size,  # noqa: E731
                              direct_input=direct, seed=0)
    nb_counter = neurobench_counter(net, x, args.batch_size)

    def nb_fn() -> dict[str, float]:
        torch.manual_seed(0)
        return nb_counter()

    def forward_only() -> None:
        with torch.no_grad():
            for i in range(0, len(x), args.batch_size):
                net(x[i: i + args.batch_size])

    def outputs() -> torch.Tensor:
        torch.manual_seed(0)
        with torch.no_grad():
            return torch.cat([net(x[i: i + args.batch_size]) for i in range(0, len(x), args.batch_size)], 1)

    ours_fn(), nb_fn(), forward_only()  # warm-up (first-call allocations, lazy imports)
    t_fwd, _ = best_time(forward_only, args.repeat)
    # the same forward on the tensor code the compiled LIF and pool kernels replace: same outputs
    compiled_out = outputs()
    saved = lif_cpu.lif_infer, lif_cpu.pool2
    lif_cpu.lif_infer = lif_cpu.pool2 = lambda *a: None  # type: ignore[assignment]
    try:
        forward_only()
        t_tensor, _ = best_time(forward_only, args.repeat)
        same_forward = torch.equal(outputs(), compiled_out)
    finally:
        lif_cpu.lif_infer, lif_cpu.pool2 = saved
    t_ours, ours = best_time(ours_fn, args.repeat)
    t_nb, nb = best_time(nb_fn, args.repeat)

    equal = (abs(ours.macs - nb["Effective_MACs"]) < 1e-6 * max(1.0, ours.macs)
             and abs(ours.sops - nb["Effective_ACs"]) < 1e-6 * max(1.0, ours.sops))
    print(f"model: {loaded.label}; {len(x):,} mnist-embedded test digits, batch {args.batch_size}, "
          f"torch threads {torch.get_num_threads()}, best of {args.repeat}; direct input: {direct}")
    print(f"  esl_energy : {t_ours:7.3f} s   MACs/sample {ours.macs:,.1f}   SOPs/sample {ours.sops:,.1f}")
    print(f"  NeuroBench : {t_nb:7.3f} s   MACs/sample {nb['Effective_MACs']:,.1f}   "
          f"ACs/sample {nb['Effective_ACs']:,.1f}")
    print(f"  forward only (no counting): {t_fwd:.3f} s; on the tensor code instead of the compiled LIF "
          f"and pool kernels {t_tensor:.3f} s ({t_tensor / t_fwd:.2f}x), outputs identical: {same_forward}")
    print(f"  counts equal: {equal};  NeuroBench / esl_energy time = {t_nb / t_ours:.2f}x "
          f"(counting overhead beyond the forward: ours {max(0.0, t_ours - t_fwd):.3f} s, "
          f"NeuroBench {max(0.0, t_nb - t_fwd):.3f} s)")
    return 0 if equal and same_forward else 1


if __name__ == "__main__":
    raise SystemExit(main())
