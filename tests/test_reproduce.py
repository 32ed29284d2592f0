"""esl-reproduce end to end on a miniature configuration: every reported number is the
checkpoints' own, the cache is reused, foreign folders are refused."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from esl_reproduce import cli
from esl_reproduce.experiments import read_result
from esl_reproduce.plan import figure2, figure3, figure4, mini
from esl_reproduce.reproduce import ReproduceError, reproduce
from esl_train.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open()))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("repro") / "out"
    first = reproduce(mini(), out, progress=False, log=lambda _: None)
    assert first.trained == len(figure2(mini())) + len(figure3(mini())) + len(figure4(mini()))
    return out


def test_the_report_shows_the_checkpoints_numbers(folder: Path) -> None:
    scale, cache = mini(), folder / "cache"
    for name in ("report.md", "figure2.png", "figure3a.png", "figure3b.png", "figure4.png",
                 "tables/table1.md", "tables/table1.csv", "tables/table2.csv"):
        assert (folder / name).is_file(), name
    for png in folder.glob("figure*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000

    # Figure 2: per ε, the mean test accuracy and hidden connections of that ε's checkpoints
    rows = {r["eps"]: r for r in _csv(folder / "tables" / "figure2.csv")}
    for run in figure2(scale):
        ckpt = load_checkpoint(run.folder(cache) / "model.pt")
        key = "dense" if run.tags["eps"] is None else str(float(run.tags["eps"]))
        assert float(rows[key]["test acc mean (%)"]) == pytest.approx(100 * ckpt.meta["test_acc"])
        assert int(rows[key]["hidden connections"]) == int(ckpt.masks["layers.0.weight"].sum())

    # Figure 3(a) and Figure 4: one row per run, its checkpoint's accuracy
    got = {float(r["target density"]): float(r["test acc (%)"])
           for r in _csv(folder / "tables" / "figure3a.csv")}
    for run in figure3(scale):
        ckpt = load_checkpoint(run.folder(cache) / "model.pt")
        assert got[float(run.tags["density"])] == pytest.approx(100 * ckpt.meta["test_acc"])
    fig4 = _csv(folder / "tables" / "figure4.csv")
    assert len(fig4) == len(figure4(scale))
    for run in figure4(scale):
        ckpt = load_checkpoint(run.folder(cache) / "model.pt")
        grow = run.tags.get("grow", "- (dense)")
        row = next(r for r in fig4 if r["grow"] == grow and r["prune"] == run.tags.get("prune", "-"))
        assert float(row["test acc (%)"]) == pytest.approx(100 * ckpt.meta["test_acc"])

    # Table 1: our rows are the ε = 60 and dense runs, their accuracies and connection counts
    t1 = [r for r in _csv(folder / "tables" / "table1.csv") if r["source"] == "ours"]
    dense, esl = (load_checkpoint(r.folder(cache) / "model.pt") for r in figure2(scale)
                  if r.tags["eps"] in (None, 60))
    assert float(t1[0]["test acc (%)"]) == pytest.approx(100 * dense.meta["test_acc"])
    assert float(t1[1]["test acc (%)"]) == pytest.approx(100 * esl.meta["test_acc"])
    assert int(t1[1]["FLOPS"]) == esl.meta["connections"] == 103_040

    # Figure 3(b): the redistributed run's total is exact after every update, its layers drift apart
    run = next(r for r in figure3(scale) if r.esl is not None)
    result = read_result(run, cache)
    updates = [r for r in result.log if r["kind"] == "mask_update"]
    assert updates and len({u["active"] for u in updates}) == 1
    assert updates[-1]["active"] == sum(v for k, v in result.connections.items() if k in result.init_density)
    curve = _csv(folder / "tables" / "figure3b.csv")
    assert len(curve) == len(updates) + 1 and float(curve[0]["epoch"]) == 0.0
    last = {k: float(v) for k, v in curve[-1].items() if k != "epoch"}
    assert max(last.values()) >= 2 * min(last.values())
    assert any(float(curve[0][k]) != v for k, v in last.items())  # densities moved

    # sparsity under memory pricing: each ratio is the two models' joules in that mode
    energy = _csv(folder / "tables" / "table1_platforms.csv")
    pays = _csv(folder / "tables" / "sparsity_pays.csv")
    assert {r["mode"] for r in pays} == {"connections", "measured", "memory"}
    for row in pays:
        j = {r["model"]: float(r[f"{row['platform']} (J)"]) for r in energy if r["mode"] == row["mode"]}
        assert float(row["dense / ESL"]) == pytest.approx(j["dense"] / j["ESL eps=60"], rel=1e-2)
    assert any(r["platform"] == "cmos45nm" and r["mode"] == "memory" for r in pays)

    # Table 2: no row was run, and each says so
    assert all(r["ours ESL acc (%)"] == "not run" for r in _csv(folder / "tables" / "table2.csv"))


def test_a_second_call_reuses_every_run(folder: Path) -> None:
    before = (folder / "tables" / "figure2.csv").read_text()
    again = reproduce(mini(), folder, progress=False, log=lambda _: None)
    assert again.trained == 0 and again.reused > 0
    assert (folder / "tables" / "figure2.csv").read_text() == before
    assert json.loads((folder / "esl-reproduce.json").read_text())["tool"] == "esl-reproduce"


def test_a_foreign_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ReproduceError, match="not written by esl-reproduce"):
        reproduce(mini(), tmp_path, progress=False)
    assert cli.main(["--quick", "-o", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("esl-reproduce: error:"), err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    assert cli.main(["--full", "-o", str(tmp_path / "new")]) == 2
    assert "--mnist-dir" in capsys.readouterr().err
    assert cli.main(["--quick", "-o", str(tmp_path / "new"), "--recipe", "cifar10-resnet19"]) == 2
    assert "needs --cifar10-dir" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
