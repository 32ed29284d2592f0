"""esl_energy: the paper's Table 1 counts and joules, the counting modes, the CLI.

The Table 1 checkpoints are built, not trained: a 784-800-10 single-spike network,
dense, and with an exact Erdős–Rényi mask of 95,040 connections (ε = 60) in the
hidden layer and a dense 8,000-connection output layer.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from esl_energy import Connections, DenseOps, MeasuredOps, energy_report, price
from esl_energy.activity import record
from esl_energy.cli import main
from esl_energy.counting import fan_out, steps
from esl_energy.report import load
from esl_energy.table1 import PAPER_TABLE1, table1_rows
from esl_export.graph import Conv2d
from esl_export.lower import lower
from esl_train.checkpoint import make_checkpoint, save_checkpoint
from esl_train.data import load_data
from esl_train.models import build_model
from hw_targets import load_platforms

ARCH = {"name": "mlp-single-spike", "sizes": [784, 800, 10]}
ESL_HIDDEN = 95_040  # ε·(784 + 800) with ε = 60


def _er_mask(shape: tuple[int, int], count: int, seed: int) -> torch.Tensor:
    flat = torch.zeros(shape[0] * shape[1], dtype=torch.bool)
    flat[torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(seed))[:count]] = True
    return flat.view(shape)


@pytest.fixture(scope="module")
def table1_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("table1")
    torch.manual_seed(0)
    model = build_model(ARCH)
    dense = folder / "dense.pt"
    save_checkpoint(make_checkpoint(model, meta={"test_acc": 0.915, "dataset": "mnist-embedded"}), dense)
    esl = folder / "esl.pt"
    mask = _er_mask((800, 784), ESL_HIDDEN, seed=1)
    save_checkpoint(make_checkpoint(model, masks={"layers.0.weight": mask},
                                    meta={"test_acc": 0.911, "dataset": "mnist-embedded"}), esl)
    return {"dense": dense, "esl": esl}


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _row(text: str, name: str) -> str:
    (line,) = [ln for ln in text.splitlines() if name in ln and "connections" in ln]
    return line


# --------------------------------------------------------------------------- Table 1


def test_connections_mode_prints_table1(capsys: pytest.CaptureFixture[str],
                                        table1_files: dict[str, Path]) -> None:
    rc, out, err = run(capsys, table1_files["dense"], table1_files["esl"], "--platforms", "gpu,truenorth")
    assert rc == 0, err
    dense, esl = _row(out, "dense.pt"), _row(out, "esl.pt")
    for cell in ("635,200", "1.13E-05", "7.95E-06"):
        assert cell in dense.split()
    for cell in ("103,040", "1.84E-06", "1.29E-06", "0.1622"):
        assert cell in esl.split()


def test_connections_count_and_price_to_three_digits(table1_files: dict[str, Path]) -> None:
    gpu, tn = load_platforms("gpu,truenorth")
    expect = {"dense": (635_200, 1.13e-05, 7.95e-06), "esl": (103_040, 1.84e-06, 1.29e-06)}
    for kind, (ops, gpu_j, tn_j) in expect.items():
        count = Connections()(load(table1_files[kind]).graph)
        assert count.ops == ops == count.connections
        assert [layer.synapses for layer in count.layers] == ([627_200, 8_000] if kind == "dense"
                                                              else [ESL_HIDDEN, 8_000])
        assert float(f"{price(count, gpu).joules:.2e}") == gpu_j
        assert float(f"{price(count, tn).joules:.2e}") == tn_j


def test_table1_command_beside_the_paper(capsys: pytest.CaptureFixture[str],
                                         table1_files: dict[str, Path]) -> None:
    rc, out, err = run(capsys, "table1", "--dense", table1_files["dense"], "--esl", table1_files["esl"],
                       "--format", "csv")
    assert rc == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["model"], r["source"]) for r in rows] == [
        ("dense", "paper"), ("dense", "ours"), ("ESL (eps=60)", "paper"), ("ESL (eps=60)", "ours")]
    paper_dense, ours_dense, paper_esl, ours_esl = rows
    assert paper_dense["test acc (%)"] == "96.7" and paper_esl["test acc (%)"] == "96.58"
    assert paper_esl["acc. loss (%)"] == "-0.12" and ours_esl["acc. loss (%)"] == "-0.4"
    assert float(paper_dense["density"]) == 1.0
    assert ours_dense["FLOPS"] == "635200" and ours_esl["FLOPS"] == "103040"
    assert f"{float(ours_esl['density']):.3f}" == "0.162"
    for paper, ours in ((paper_dense, ours_dense), (paper_esl, ours_esl)):
        for col in ("GPU (J)", "TrueNorth (J)"):
            assert f"{float(ours[col]):.2E}" == f"{float(paper[col]):.2E}"

    rc, out, _ = run(capsys, "table1", "--dense", table1_files["dense"], "--esl", table1_files["esl"])
    assert rc == 0
    assert "96.58" in out and "103,040" in out and "1.29E-06" in out and "91.10" in out


def test_table1_rows_api(table1_files: dict[str, Path]) -> None:
    rows = table1_rows(table1_files["dense"], table1_files["esl"])
    ours = {r.model: r for r in rows if r.source == "ours"}
    assert ours["esl"].flops == 103_040 and ours["dense"].flops == 635_200
    assert PAPER_TABLE1["esl"]["gpu_joules"] == 1.84e-06  # the printed values, for comparison only


def test_table1_training_needs_the_esl_sparsifier(capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                  table1_files: dict[str, Path]) -> None:
    """With the sparsifier unavailable, asking Table 1 to train the ESL model fails on
    one line before anything is trained."""
    monkeypatch.setitem(sys.modules, "esl_train.esl", None)
    rc, out, err = run(capsys, "table1", "--dense", table1_files["dense"], "--out", tmp_path)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("esl-energy: error: ") and "--esl" in err
    assert list(tmp_path.iterdir()) == []


def test_table1_trains_what_it_is_not_given(capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The wiring of the training path, without training: esl_train's train() is stood
    in for; the recipe, ε = 60 and the ESL schedule handed to the sparsifier are checked."""
    import esl_train.esl
    import esl_train.train

    calls: list[tuple[str, object]] = []

    def esl_factory(config: esl_train.esl.ESLConfig) -> str:
        assert (config.eps, config.prune, config.grow, config.alpha) == (60, "magnitude", "gradient", 0.3)
        assert (config.t_iter, config.t_end, config.seed) == (36, 540, 3)  # 36 steps/epoch, 75 % of 20
        return "esl(eps=60)"

    monkeypatch.setattr(esl_train.esl, "esl_factory", esl_factory)

    def fake_train(arch: dict, data: object, cfg: esl_train.train.TrainConfig, *,
                   sparsifier_factory: object = None, **_: object) -> None:
        calls.append((Path(cfg.out).name, sparsifier_factory))
        assert arch == ARCH and cfg.dataset == "mnist-embedded" and cfg.seed == 3
        assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.optimizer) == (20, 100, 0.01, "adam")
        masks = {"layers.0.weight": _er_mask((800, 784), ESL_HIDDEN, 2)} if sparsifier_factory else None
        save_checkpoint(make_checkpoint(build_model(arch), masks=masks, meta={"test_acc": 0.9}), cfg.out)

    monkeypatch.setattr(esl_train.train, "train", fake_train)
    rc, out, err = run(capsys, "table1", "--out", tmp_path, "--seed", "3", "--format", "json")
    assert rc == 0, err
    assert calls == [("dense.pt", None), ("esl.pt", "esl(eps=60)")]
    ours = [r for r in json.loads(out) if r["source"] == "ours"]
    assert [r["flops"] for r in ours] == [635_200, 103_040]
    # a second run reuses both files
    calls.clear()
    assert run(capsys, "table1", "--out", tmp_path)[0] == 0 and calls == []


# --------------------------------------------------------------------------- modes


def test_dense_mode_ignores_the_mask_and_counts_steps(table1_files: dict[str, Path], tmp_path: Path) -> None:
    esl = load(table1_files["esl"]).graph
    assert DenseOps()(esl).ops == 635_200 and steps(esl) == 1  # latency: one event per synapse
    lif = build_model({"name": "mlp-lif", "sizes": [784, 100, 10], "T": 6})
    graph = lower(lif)
    assert DenseOps()(graph).ops == 6 * (78_400 + 1_000)
    assert DenseOps("once")(graph).ops == 78_400 + 6 * 1_000
    assert DenseOps()(graph).neuron_updates == 6 * 100


def test_single_spike_measured_counts_events_times_fan_out(table1_files: dict[str, Path]) -> None:
    loaded = load(table1_files["esl"])
    x = load_data("mnist-embedded", limit=20).test.x
    metric = MeasuredOps(loaded.graph)
    count = metric(record(loaded.model, loaded.graph, x))
    # by hand: every pixel spikes once (zero_pixels "last"), each hidden neuron at most once
    w0, w1 = (loaded.checkpoint.state_dict[f"layers.{k}.weight"] for k in (0, 1))
    fired = torch.isfinite(loaded.model.spike_times(x)[0])
    hidden_sops = float((fired.double() @ (w1 != 0).double().sum(0)).mean())
    assert count.layers[0].ops == float((w0 != 0).sum()) == ESL_HIDDEN
    assert count.layers[1].ops == pytest.approx(hidden_sops)
    assert count.macs == 0 and count.sops == count.ops and count.samples == 20
    assert count.neuron_updates == 810


def test_conv_fan_out_matches_the_unrolled_graph() -> None:
    rng = np.random.default_rng(0)
    for stride, pad, k in (((1, 1), (1, 1), 3), ((2, 2), (1, 1), 3), ((2, 1), (0, 2), 2)):
        w = rng.normal(size=(4, 3, k, k)).astype(np.float32)
        mask = rng.random(w.shape) < 0.5
        node = Conv2d(w * mask, None, mask, (3, 7, 6), stride, pad)
        assert np.array_equal(fan_out(node).numpy(), node.fan_out())
        assert int(fan_out(node).sum()) == node.synapses()


def test_energy_report_for_the_demo(table1_files: dict[str, Path]) -> None:
    x = load_data("mnist-embedded", limit=10).test.x
    text = energy_report([table1_files["esl"]], "gpu,truenorth", ("connections", "measured"), x)
    assert "1.84E-06" in text and "measured" in text and "10 given samples" in text
    items = json.loads(energy_report([table1_files["esl"]], ["gpu", "loihi"], "measured", x, fmt="json",
                                     layers=True))
    (item,) = items
    assert item["sops"] == pytest.approx(sum(layer["ops"] for layer in item["layers"]))
    loihi = item["energy"]["loihi"]
    assert loihi["neuron_joules"] is not None and item["energy"]["v100"]["neuron_joules"] is None
    assert math.isclose(loihi["joules"], loihi["synaptic_joules"] + loihi["neuron_joules"])


# --------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv", "json", "latex"])
def test_formats(capsys: pytest.CaptureFixture[str], table1_files: dict[str, Path], fmt: str) -> None:
    rc, out, err = run(capsys, table1_files["esl"], "--mode", "connections,dense", "--layers",
                       "--format", fmt)
    assert rc == 0, err
    if fmt == "json":
        modes = [(m["mode"], m["ops"], len(m["layers"])) for m in json.loads(out)]
        assert modes == [("connections", 103_040, 2), ("dense", 635_200, 2)]
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        assert [(r["layer"], r["ops"]) for r in rows][:2] == [("all", "103040.0"), ("all", "635200.0")]
        assert {r["layer"] for r in rows} == {"all", "layers.0", "layers.1"}
    else:
        assert "103,040" in out and "95,040" in out
        assert {"markdown": "|---", "latex": "\\begin{tabular}", "table": "-----"}[fmt] in out


def test_measured_mode_from_the_cli(capsys: pytest.CaptureFixture[str],
                                    table1_files: dict[str, Path]) -> None:
    rc, out, err = run(capsys, table1_files["dense"], "--mode", "measured", "--samples", "10", "--format",
                       "json", "--no-progress")
    assert rc == 0, err
    (item,) = json.loads(out)
    assert item["samples"] == 10 and item["macs"] == 0 and item["sops"] > 627_200
    assert item["data"] == "10 test samples of mnist-embedded"


def _one_error_line(capsys: pytest.CaptureFixture[str], *argv: object) -> str:
    rc, out, err = run(capsys, *argv)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("esl-energy: error: "), err
    return err


def test_bad_input_gives_one_line(capsys: pytest.CaptureFixture[str], table1_files: dict[str, Path],
                                  tmp_path: Path) -> None:
    model = table1_files["dense"]
    assert "unknown platform 'tpu'" in _one_error_line(capsys, model, "--platforms", "gpu,tpu")
    bad_yaml = tmp_path / "mine.yaml"
    bad_yaml.write_text("name: mine\nenergy: [unclosed\n")
    assert "invalid YAML" in _one_error_line(capsys, model, "--targets-file", bad_yaml)
    incomplete = tmp_path / "chip.yaml"
    incomplete.write_text("name: chip\ndescription: x\nkind: asic\nconnection_op: sop\nenergy: {}\n")
    assert "energy" in _one_error_line(capsys, model, "--platforms", incomplete)
    assert "no such model file" in _one_error_line(capsys, tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a model")
    assert "garbage.pt" in _one_error_line(capsys, garbage)
    assert "unknown mode" in _one_error_line(capsys, model, "--mode", "fast")
    assert "--format" in _one_error_line(capsys, model, "--format", "xml")
    assert "required" in _one_error_line(capsys)
    # data of the wrong shape: 784-pixel digits into a 100-input network
    small = tmp_path / "small.pt"
    save_checkpoint(make_checkpoint(build_model({"name": "mlp-lif", "sizes": [100, 20, 10], "T": 2})), small)
    err = _one_error_line(capsys, small, "--mode", "measured", "--samples", "5")
    assert "[1, 28, 28]" in err and "[100]" in err
    assert "unknown dataset" in _one_error_line(capsys, model, "--mode", "measured", "--data", "imagenet")
    assert "Table 1" in _one_error_line(capsys, "table1", "--dense", small, "--esl", model)
