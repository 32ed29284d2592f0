"""The single-spike network on TrueNorth-style cores: accuracy, first-spike error, cores, SOPs.

    python benchmarks/truenorth_single_spike.py runs/ss/esl.pt --samples 500
    python benchmarks/truenorth_single_spike.py runs/ss/esl.pt --copies 4 --tick 4/15 --partial rate

The model is lowered with the given options (``single_spike.lower_single_spike``), the
test digits are streamed through the IR simulator with every spike recorded, and one
JSON line is printed: cores (and the lower bound), ticks per digit, PyTorch / IR /
discrete-time-reference accuracy, agreement with PyTorch, SOPs per digit, joules per
digit (truenorth and truenorth-merolla2014), and per layer the mean |t_IR − t_PyTorch|
of first spikes (τ_syn, over neurons that fire in both) and the fraction of neurons whose
fire/no-fire status differs, over all time and within the reference's window.
"""

from __future__ import annotations

import argparse
import json
from fractions import Fraction

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="an mlp-single-spike model.pt")
    p.add_argument("--samples", type=int, default=500)
    p.add_argument("--tick", default="2/15", help="tau_syn per tick (default %(default)s)")
    p.add_argument("--copies", type=int, default=8)
    p.add_argument("--partial", choices=("levels", "rate"), default="levels")
    p.add_argument("--level-budget", type=int, default=None, help="most level neurons per wide neuron")
    args = p.parse_args(argv)
    import torch

    from esl_export import single_spike_dt as sdt
    from esl_export.sources import load_source
    from esl_export.truenorth import single_spike as ss
    from esl_export.truenorth.energy import price_run
    from esl_export.truenorth.ir import Geometry
    from esl_export.truenorth.simulate import simulate
    from esl_train.data import load_data

    if args.level_budget:
        ss.LEVEL_BUDGET = args.level_budget
    src = load_source(args.model)
    dt = float(Fraction(args.tick))
    ir = ss.lower_single_spike(src.graph, Geometry.from_platform(), dt=dt, copies=args.copies,
                               partial=args.partial)
    test = load_data("mnist-embedded").test
    n = args.samples
    x, y = test.x[:n].numpy(), test.y[:n].numpy()
    assert src.model is not None
    with torch.no_grad():
        torch_pred = src.model.predict(src.model(torch.as_tensor(x))).numpy()
        t_torch = [torch.log(z).numpy() for z in src.model._layer_z(torch.as_tensor(x))]
    raster = ss.input_raster(ir, x.reshape(n, -1))
    firsts: list[list[np.ndarray]] = [[] for _ in t_torch]
    preds, sops, batch = [], 0.0, 25
    sims = []
    for i in range(0, n, batch):
        sim = simulate(ir, raster[:, i:i + batch], batch=batch, record=True, host=True)
        assert sim.spikes is not None
        preds.append(sim.predictions("first-spike"))
        sops += float(sim.sops.sum())
        for k in range(len(t_torch)):
            cn = np.asarray(ir.meta["neuron_map"][k])
            ok = cn[:, 0] >= 0
            sp = sim.spikes[:, cn[ok, 0], :, cn[ok, 1]]  # [placed, ticks, B]
            f = np.full((sp.shape[2], len(cn)), -1.0)
            f[:, ok] = np.where(sp.any(1), sp.argmax(1), -1).T
            firsts[k].append(f)
        sim.spikes = None
        sims.append(sim)
    pred = np.concatenate(preds)
    net = sdt.network(src.graph, dt=dt)
    ref = sdt.run(net, net.input_steps(x))
    report = ir.meta["report"]
    out: dict = {"model": args.model, "samples": n, "tick": args.tick, "copies": args.copies,
                 "partial": args.partial, "level_budget": args.level_budget, "cores": ir.n_cores,
                 "lower_bound": report["lower_bound"], "ticks": ir.meta["timing"]["ticks_per_sample"],
                 "modes": [lay["mode"] for lay in report["layers"]],
                 "pytorch_acc": float((torch_pred == y).mean()), "ir_acc": float((pred == y).mean()),
                 "agreement": float((pred == torch_pred).mean()),
                 "dt_reference_acc": float((ref.predict() == y).mean()), "sops_per_digit": sops / n}
    window = (net.steps - 1) * dt + 1e-9
    for k, name in enumerate(("hidden", "output") if len(t_torch) == 2 else map(str, range(len(t_torch)))):
        f = np.concatenate(firsts[k])
        t_ir = np.where(f >= 0, (f - ir.meta["timing"]["layer_offsets"][k]["spike"]) * dt, np.inf)
        both = np.isfinite(t_ir) & np.isfinite(t_torch[k])
        t_irw, t_tw = (np.where(t <= window, t, np.inf) for t in (t_ir, t_torch[k]))
        out[name] = {"mean_abs_dt": float(np.abs(t_ir[both] - t_torch[k][both]).mean()),
                     "flipped": float((np.isfinite(t_ir) != np.isfinite(t_torch[k])).mean()),
                     "flipped_in_window": float((np.isfinite(t_irw) != np.isfinite(t_tw)).mean())}
    whole = sims[0]
    whole.sops = sum(s.sops for s in sims)
    whole.samples = n
    for plat in ("truenorth", "truenorth-merolla2014"):
        e = price_run(ir, whole, plat)
        out[plat] = {"dynamic_j": e.dynamic_j, "static_j": e.static_j, "total_j": e.total_j}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
