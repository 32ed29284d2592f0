"""The paper's figures from finished runs (matplotlib, written as PNG).

Each function takes results (read back from the runs' own files) and a path, draws one
figure and returns the rows it plotted, so the report's tables and the figure show the
same numbers.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from esl_reproduce.experiments import Result


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def figure2(results: Sequence[Result], path: Path, label: str) -> list[dict[str, Any]]:
    """Connections of the sparse hidden layer (bars) and test accuracy (line: mean over seeds,
    bars from the lowest to the highest seed) against ε; the dense run as a dashed line."""
    by_eps: dict[float, list[Result]] = {}
    dense: list[Result] = []
    for r in results:
        eps = r.run.tags.get("eps")
        (dense if eps is None else by_eps.setdefault(float(eps), [])).append(r)
    rows: list[dict[str, Any]] = []
    for eps in sorted(by_eps):
        rs = by_eps[eps]
        accs = [100 * r.test_acc for r in rs]
        hidden = [r.connections[next(iter(r.connections))] for r in rs]
        rows.append({"eps": eps, "hidden connections": int(statistics.mean(hidden)),
                     "density": statistics.mean(next(iter(r.density.values())) for r in rs),
                     "test acc mean (%)": statistics.mean(accs), "test acc min (%)": min(accs),
                     "test acc max (%)": max(accs), "seeds": len(rs)})
    fig, ax = plt.subplots(figsize=(7, 4.2))
    xs = [r["eps"] for r in rows]
    ax.bar(xs, [r["hidden connections"] for r in rows], width=6, color="#9ecae1",
           label="connections of the 784→800 layer")
    ax.set_xlabel("ε (Erdős–Rényi)")
    ax.set_ylabel("connections (hidden layer)")
    ax2 = ax.twinx()
    mean = [r["test acc mean (%)"] for r in rows]
    err = [[m - r["test acc min (%)"] for m, r in zip(mean, rows, strict=True)],
           [r["test acc max (%)"] - m for m, r in zip(mean, rows, strict=True)]]
    ax2.errorbar(xs, mean, yerr=err, color="#d62728", marker="o", capsize=3, label="ESL test accuracy")
    if dense:
        d = statistics.mean(100 * r.test_acc for r in dense)
        ax2.axhline(d, color="#555555", ls="--", lw=1, label=f"dense {d:.1f} %")
        hidden0 = dense[0].connections[next(iter(dense[0].connections))]
        rows.append({"eps": "dense", "hidden connections": hidden0,
                     "density": 1.0, "test acc mean (%)": d,
                     "test acc min (%)": min(100 * r.test_acc for r in dense),
                     "test acc max (%)": max(100 * r.test_acc for r in dense), "seeds": len(dense)})
    ax2.set_ylabel("test accuracy (%)")
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax2.legend(handles, [str(h.get_label()) for h in handles], loc="lower right", fontsize=8)
    ax.set_title(f"Figure 2: ε sweep, 784-800-10 single-spike ({label})", fontsize=10)
    _save(fig, path)
    return rows


def figure3a(results: Sequence[Result], path: Path, label: str) -> list[dict[str, Any]]:
    """Test accuracy against the sparse layers' density."""
    rows = []
    for r in sorted(results, key=lambda r: -float(r.run.tags["density"])):
        rows.append({"target density": float(r.run.tags["density"]),
                     "network density": sum(r.connections.values()) / sum(r.numel.values()),
                     "test acc (%)": 100 * r.test_acc, "val acc (%)": 100 * r.val_acc})
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["target density"] for r in rows], [r["test acc (%)"] for r in rows], "o-", color="#2171b5")
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("connection density of the sparse layers (log)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.set_title(f"Figure 3(a): SET + random_unfired, momentum redistribution ({label})", fontsize=9)
    _save(fig, path)
    return rows


def figure3b(result: Result, path: Path, label: str) -> list[dict[str, Any]]:
    """Density of every sparse layer against training epoch (one point per mask update)."""
    steps = int(result.run.tags.get("steps_per_epoch") or 1)
    updates = [r for r in result.log if r.get("kind") == "mask_update"]
    layers = [k.split("/", 1)[1] for k in (updates[0] if updates else {}) if k.startswith("density/")]
    rows = [{"epoch": u["t"] / steps, **{n: u[f"density/{n}"] for n in layers}} for u in updates]
    if layers and all(n in result.init_density for n in layers):  # the ER start, before any update
        rows.insert(0, {"epoch": 0.0, **{n: float(result.init_density[n]) for n in layers}})
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for n in layers:
        ax.plot([r["epoch"] for r in rows], [r[n] for r in rows], label=n.removesuffix(".weight"))
    ax.set_xlabel("epoch")
    ax.set_ylabel("density")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    target = result.run.tags.get("density")
    ax.set_title(f"Figure 3(b): per-layer density, target {target} ({label})", fontsize=10)
    _save(fig, path)
    return rows


def figure4(results: Sequence[Result], path: Path, label: str) -> list[dict[str, Any]]:
    """Test accuracy of each growth rule at each density, magnitude (a) and SET (b) pruning."""
    dense = [r for r in results if r.run.esl is None]
    rows = [{"prune": r.run.tags["prune"], "grow": r.run.tags["grow"],
             "density": float(r.run.tags["density"]), "test acc (%)": 100 * r.test_acc}
            for r in results if r.run.esl is not None]
    grows = list(dict.fromkeys(r["grow"] for r in rows))
    densities = sorted({r["density"] for r in rows} | ({1.0} if dense else set()), reverse=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    width = 0.8 / max(1, len(grows))
    for ax, prune, tag in zip(axes, ("magnitude", "set"), ("(a) magnitude pruning", "(b) SET pruning"),
                              strict=True):
        for i, g in enumerate(grows):
            ys = []
            for d in densities:
                if d >= 1.0 and dense:
                    ys.append(100 * dense[0].test_acc)
                    continue
                hit = [r["test acc (%)"] for r in rows if r["prune"] == prune and r["grow"] == g
                       and r["density"] == d]
                ys.append(hit[0] if hit else float("nan"))
            ax.bar([k + (i - (len(grows) - 1) / 2) * width for k in range(len(densities))], ys, width,
                   label=g)
        ax.set_xticks(range(len(densities)), [f"{d:g}" for d in densities])
        ax.set_xlabel("density")
        ax.set_title(tag, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    lo = min([r["test acc (%)"] for r in rows] + [100 * r.test_acc for r in dense] + [100.0])
    axes[0].set_ylim(max(0.0, lo - 5), 100)
    axes[0].set_ylabel("test accuracy (%)")
    axes[1].legend(fontsize=8, title="growth rule", title_fontsize=8)
    fig.suptitle(f"Figure 4: growth rules ({label})", fontsize=10)
    _save(fig, path)
    if dense:
        rows.insert(0, {"prune": "-", "grow": "- (dense)", "density": 1.0,
                        "test acc (%)": 100 * dense[0].test_acc})
    return rows
