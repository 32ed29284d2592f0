"""Run every experiment a scale needs, then write the report folder.

    DIR/report.md          what was run, on what, with which budget; every table and figure
    DIR/tables/*.md, *.csv  Table 1 (+ every platform, connections and measured mode),
                            Table 2, and the numbers behind each figure
    DIR/figure2.png, figure3a.png, figure3b.png, figure4.png
    DIR/cache/<run>-<hash>/ the runs themselves (model.pt, logs, resume file, config.json)
    DIR/esl-reproduce.json  marks the folder as this tool's (it refuses any other non-empty one)

Every number in the report is read back from a run's own files.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from esl_reproduce import figures
from esl_reproduce.experiments import Result, Run, is_done, read_result, train_run
from esl_reproduce.plan import PAPER_TABLE2, RECIPES, Scale, figure2, figure3, figure4, recipe_runs

MARKER = "esl-reproduce.json"


class ReproduceError(ValueError):
    """A bad output folder or request; one line."""


@dataclass
class Outcome:
    out: Path
    seconds: float
    trained: int
    reused: int
    files: list[Path]


def check_folder(out: Path) -> None:
    """The output folder must be new, empty, or one this tool wrote (it holds MARKER)."""
    if out.exists() and not out.is_dir():
        raise ReproduceError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise ReproduceError(f"{out}: is not empty and was not written by esl-reproduce; choose another -o")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _table(rows: Sequence[dict[str, Any]], fmt: str) -> str:
    from esl_energy.report import table

    if fmt == "csv":
        return table(rows, "csv") + "\n"
    shown = [{k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows]
    return table(shown, "markdown") + "\n"


def reproduce(scale: Scale, out: Path, *, recipes: Sequence[str] = (), recipe_dirs: dict[str, str | None]
              | None = None, recipe_epochs: int = 300, progress: bool = True,
              log: Callable[[str], None] = print) -> Outcome:
    t0 = time.perf_counter()
    check_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / MARKER).exists():
        _write(out / MARKER, json.dumps({"tool": "esl-reproduce", "scale": scale.name}) + "\n")
    cache = out / "cache"
    groups: dict[str, list[Run]] = {"fig2": figure2(scale), "fig3": figure3(scale), "fig4": figure4(scale)}
    for name in recipes:
        if name not in RECIPES:
            raise ReproduceError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
        groups[f"table2-{name}"] = recipe_runs(RECIPES[name], (recipe_dirs or {}).get(RECIPES[name].dataset),
                                               recipe_epochs)
    runs = list({r.key(): r for rs in groups.values() for r in rs}.values())
    reused = sum(is_done(r, cache) for r in runs)
    log(f"esl-reproduce {scale.name}: {len(runs)} runs ({reused} already in {cache})")
    bar = tqdm(total=len(runs), initial=reused, desc="runs", unit="run", disable=not progress)
    for run in runs:
        if is_done(run, cache):
            continue
        bar.set_postfix_str(run.name)
        train_run(run, cache)
        bar.update(1)
    bar.close()
    results = {g: [read_result(r, cache) for r in rs] for g, rs in groups.items()}
    files = _write_report(scale, out, results, time.perf_counter() - t0, len(runs) - reused, reused, recipes)
    return Outcome(out, time.perf_counter() - t0, len(runs) - reused, reused, files)


def _write_report(scale: Scale, out: Path, results: dict[str, list[Result]], seconds: float, trained: int,
                  reused: int, recipes: Sequence[str]) -> list[Path]:
    label = "quick: embedded digits" if scale.name == "quick" else scale.name
    tables: dict[str, list[dict[str, Any]]] = {}
    tables["figure2"] = figures.figure2(results["fig2"], out / "figure2.png", label)
    tables["figure3a"] = figures.figure3a(results["fig3"], out / "figure3a.png", label)
    sparse3 = [r for r in results["fig3"] if r.run.esl is not None]
    pick = min(sparse3, key=lambda r: abs(float(r.run.tags["density"]) - 0.1))
    tables["figure3b"] = figures.figure3b(pick, out / "figure3b.png", label)
    tables["figure4"] = figures.figure4(results["fig4"], out / "figure4.png", label)
    t1_md, t1_csv, energy_rows = _table1(scale, results["fig2"])
    tables["table1_platforms"] = energy_rows
    tables["sparsity_pays"] = sparsity_pays(energy_rows)
    tables["table2"] = _table2(results)
    cost = _redistribution_cost(pick)
    files = []
    for name, rows in tables.items():
        for fmt in ("md", "csv"):
            path = out / "tables" / f"{name}.{fmt}"
            _write(path, _table(rows, "csv" if fmt == "csv" else "markdown"))
            files.append(path)
    for fmt, text in (("md", t1_md), ("csv", t1_csv)):
        _write(out / "tables" / f"table1.{fmt}", text + "\n")
        files.append(out / "tables" / f"table1.{fmt}")
    report = _markdown(scale, results, tables, t1_md, cost, seconds, trained, reused, pick, recipes)
    _write(out / "report.md", report)
    files += [out / "report.md", *(out / f"figure{n}.png" for n in ("2", "3a", "3b", "4"))]
    return files


def _table1(scale: Scale, fig2: list[Result]) -> tuple[str, str, list[dict[str, Any]]]:
    """Table 1 beside the paper (GPU and TrueNorth, connections), then the same two models on every
    platform of hw_targets in connections and measured mode."""
    from esl_energy.report import evaluate, summary_rows
    from esl_energy.table1 import render_table1, table1_rows
    from hw_targets import builtin_platforms

    seed = scale.seeds[0]
    dense = next((r for r in fig2 if r.run.tags.get("eps") is None and r.run.seed == seed), None)
    esl = next((r for r in fig2 if r.run.tags.get("eps") == 60 and r.run.seed == seed), None)
    if dense is None or esl is None:
        return "Table 1 needs the dense and the ε = 60 runs of Figure 2.", "", []
    rows = table1_rows(dense.path, esl.path)
    platforms = list(builtin_platforms().values())
    measured = evaluate([dense.path, esl.path], platforms, ("connections", "measured", "memory"),
                        scale.mlp_data, data_dir=scale.data_dirs.get(scale.mlp_data), samples=1000, seed=0)
    energy = summary_rows(measured)
    for row, r in zip(energy, measured, strict=True):
        row["model"] = "dense" if Path(r.label) == dense.path else "ESL eps=60"
    return render_table1(rows, "markdown"), render_table1(rows, "csv"), energy


def sparsity_pays(energy: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Dense against ESL per platform and counting mode: how many times less the ESL model costs
    (memory mode prices weight reads, membranes and spikes too: does sparsity still pay?)."""
    rows = []
    for key in [k for k in (energy[0] if energy else {}) if k.endswith(" (J)")]:
        for mode in dict.fromkeys(r["mode"] for r in energy):
            pair = {r["model"]: r.get(key) for r in energy if r["mode"] == mode}
            d, e = pair.get("dense"), pair.get("ESL eps=60")
            if isinstance(d, float) and isinstance(e, float) and e > 0:
                rows.append({"platform": key[:-4], "mode": mode, "dense (J)": d, "ESL (J)": e,
                             "dense / ESL": round(d / e, 2)})
    return rows


def _table2(results: dict[str, list[Result]]) -> list[dict[str, Any]]:
    rows = []
    for name, recipe in RECIPES.items():
        paper = PAPER_TABLE2.get(name, {})
        ours = results.get(f"table2-{name}")
        row: dict[str, Any] = {"recipe": name, "setting": recipe.label,
                               "paper ESL acc (%)": "see the paper (not checkable here)",
                               "paper acc loss (%)": paper.get("acc_loss", "see the paper"),
                               "paper density": paper.get("density", "see the paper")}
        if not ours:
            row.update(dict.fromkeys(("ours ESL acc (%)", "ours dense acc (%)", "ours density",
                                      "ours acc loss (%)"), "not run"))
            row["seeds"] = 0
        else:
            esl = [r for r in ours if r.run.tags["kind"] == "esl"]
            dense = [r for r in ours if r.run.tags["kind"] == "dense"]
            e = statistics.mean(100 * r.test_acc for r in esl)
            d = statistics.mean(100 * r.test_acc for r in dense)
            sparse = [n for n in esl[0].connections if esl[0].density[n] < 1.0]
            dens = sum(esl[0].connections[n] for n in sparse) / max(1, sum(esl[0].numel[n] for n in sparse))
            row.update({"ours ESL acc (%)": round(e, 2), "ours dense acc (%)": round(d, 2),
                        "ours density": round(dens, 4), "ours acc loss (%)": round(e - d, 2),
                        "seeds": len(esl), "epochs": esl[0].run.epochs})
        rows.append(row)
    return rows


def _redistribution_cost(result: Result) -> dict[str, float]:
    """Median seconds of a mask update (redistribution included) against a training step."""
    updates = [float(r["update_seconds"]) for r in result.log if r.get("kind") == "mask_update"
               and "update_seconds" in r]
    epochs = [r for r in result.log if r.get("kind") == "epoch"]
    steps = int(result.run.tags.get("steps_per_epoch") or 1)
    step = (statistics.median(float(r.get("train_seconds", r["seconds"])) / steps for r in epochs)
            if epochs else 0.0)
    update = statistics.median(updates) if updates else 0.0
    return {"update_s": update, "step_s": step, "share": update / step if step else float("nan"),
            "updates": float(len(updates))}


def _markdown(scale: Scale, results: dict[str, list[Result]], tables: dict[str, list[dict[str, Any]]],
              table1: str, cost: dict[str, float], seconds: float, trained: int, reused: int, pick: Result,
              recipes: Sequence[str]) -> str:
    f2 = [r for r in tables["figure2"] if r["eps"] != "dense"]
    best = max(f2, key=lambda r: r["test acc mean (%)"]) if f2 else None
    final3b = tables["figure3b"][-1] if tables["figure3b"] else {}
    layer_d = {k: v for k, v in final3b.items() if k != "epoch"}
    spread = (max(layer_d.values()) / max(min(layer_d.values()), 1e-12)) if layer_d else float("nan")
    lines = [
        "# ESL-SNNs reproduced",
        "",
        f"Scale: **{scale.name}**. {trained} runs trained and {reused} reused from the cache; this command "
        f"took {seconds:.0f} s. Seeds: {', '.join(map(str, scale.seeds))} (Figure 2; the other figures "
        f"seed {scale.seeds[0]}). Every number below is read from the runs' own model.pt and logs in "
        "`cache/`.",
        "",
        "## Differences from the paper's setting",
        "",
        *[f"- {n}" for n in scale.notes],
        "",
        "## Table 1",
        "",
        table1,
        "",
        "The same two models on every platform in hw_targets, in connections, measured and memory mode "
        "(measured: 1,000 test digits, seed 0; memory: the measured run with weight reads, membrane "
        "reads and writes and spike events priced where the platform's table has the prices): "
        "`tables/table1_platforms.md`.",
        "",
        _table(tables["table1_platforms"], "markdown"),
        "",
        "Does sparsity still pay once memory is priced? Dense over ESL energy, per platform and mode "
        "(`tables/sparsity_pays.md`):",
        "",
        _table(tables["sparsity_pays"], "markdown"),
        "## Figure 2: ε sweep",
        "",
        "![Figure 2](figure2.png)",
        "",
        _table(tables["figure2"], "markdown"),
        (f"Highest mean ESL test accuracy at ε = {best['eps']:g} ({best['test acc mean (%)']:.2f} %)."
         if best else ""),
        "",
        "## Figure 3(a): accuracy against density",
        "",
        "![Figure 3(a)](figure3a.png)",
        "",
        _table(tables["figure3a"], "markdown"),
        "## Figure 3(b): per-layer density during training",
        "",
        f"Run `{pick.run.name}` (target density {pick.run.tags['density']}), one point per mask update.",
        "",
        "![Figure 3(b)](figure3b.png)",
        "",
        f"At the last update the sparse layers' densities span a factor of {spread:.1f} "
        f"({min(layer_d.values(), default=0):.3f} to {max(layer_d.values(), default=0):.3f}).",
        f"A mask update (prune, redistribute, regrow) took {1e3 * cost['update_s']:.1f} ms (median of "
        f"{cost['updates']:.0f}) against {1e3 * cost['step_s']:.1f} ms per training step: "
        f"{100 * cost['share']:.1f} % of a step, once every "
        f"{pick.run.esl['t_iter'] if pick.run.esl else '-'} steps.",
        "",
        "## Figure 4: growth rules",
        "",
        "![Figure 4](figure4.png)",
        "",
        _table(tables["figure4"], "markdown"),
        "## Table 2",
        "",
        "Runnable as `esl-reproduce --recipe NAME` with the data set's folder (lr 0.001, batch 64, "
        "300 epochs, T_iter 1000, momentum redistribution, 10 % validation, best-validation model, "
        "mean of two seeds). The paper's Table 2 cells other than the abstract's DVS-CIFAR10 figure "
        "could not be checked here and are not filled in; a row not run says so.",
        "",
        _table(tables["table2"], "markdown"),
    ]
    if recipes:
        lines.append(f"Recipes run: {', '.join(recipes)}.")
    return "\n".join(lines) + "\n"
