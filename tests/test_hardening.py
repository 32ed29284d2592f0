"""Damaged and hostile files: one line, a non-zero exit, no traceback, nothing overwritten.

Each test writes a valid file, damages it the way a bad disk, an editor or an attacker
would, and runs the command a user would run on it."""

from __future__ import annotations

import json
import re
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from spiking import spiking_model

from esl_energy import cli as energy_cli
from esl_export import cli, run
from esl_export.files import sha256_file
from esl_train import cli as train_cli
from esl_train.checkpoint import make_checkpoint, save_checkpoint
from esl_train.models import ArchError, build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _one_line(capsys: pytest.CaptureFixture[str], rc: int, prog: str, *words: str) -> str:
    out, err = capsys.readouterr()
    assert rc == 2, (rc, err)
    err = err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"{prog}: error: "), err
    assert "Traceback" not in out + err
    for w in words:
        assert w in err, err
    return err


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hard")
    net, masks = spiking_model({"name": "mlp-lif", "sizes": [784, 24, 10], "T": 4, "encoding": "rate"})
    path = folder / "model.pt"
    save_checkpoint(make_checkpoint(net, masks, meta={"dataset": "mnist-embedded"}), path)
    return path


# ------------------------------------------------------------------------------ esl-train


def test_esl_train_refuses_to_replace_what_it_did_not_write(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    folder = tmp_path / "models"
    folder.mkdir()
    base = ["--model", "mlp-lif", "--hidden", "8", "--epochs", "1", "--limit", "40", "--no-progress"]
    t0 = time.perf_counter()
    _one_line(capsys, train_cli.main([*base, "--out", str(notes)]), "esl-train", "refusing to overwrite")
    _one_line(capsys, train_cli.main([*base, "--out", str(folder)]), "esl-train", "is a directory")
    assert time.perf_counter() - t0 < 5, "refused before any data was read or training ran"
    assert notes.read_text() == "mine" and list(folder.iterdir()) == []
    log = tmp_path / "m.log.json"  # a log file the run would write, but not ours
    log.write_text("precious")
    _one_line(capsys, train_cli.main([*base, "--out", str(tmp_path / "m.pt")]), "esl-train", "m.log.json")
    assert log.read_text() == "precious" and not (tmp_path / "m.pt").exists()
    log.unlink()
    assert train_cli.main([*base, "--out", str(tmp_path / "m.pt")]) == 0  # then: ours, and replaced
    assert train_cli.main([*base, "--out", str(tmp_path / "m.pt")]) == 0


# ------------------------------------------------------------------------------ model.pt


def _raw(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def test_model_files_with_nan_or_absurd_sizes_are_one_line(model: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    raw = _raw(model)
    raw["state_dict"]["fc.1.bias"][0] = float("nan")
    torch.save(raw, tmp_path / "nan.pt")
    for main, prog in ((cli.main, "esl-export"), (energy_cli.main, "esl-energy")):
        argv = [str(tmp_path / "nan.pt")] + (["--target", "lava"] if prog == "esl-export" else [])
        _one_line(capsys, main(argv), prog, "fc.1.bias", "NaN or infinite")
    for key, value, words in (("sizes", [784, 10**9, 10], "sizes must be in"),
                              ("T", 10**9, "T must be in")):
        raw = _raw(model)
        raw["arch"][key] = value
        torch.save(raw, tmp_path / "big.pt")
        _one_line(capsys, cli.main([str(tmp_path / "big.pt"), "--target", "lava"]), "esl-export", words)
    with pytest.raises(ArchError, match="parameters and buffers"):
        build_model({"name": "vggsnn", "in_shape": [3, 32, 32], "num_classes": 10, "width": 64})
    assert not list(tmp_path.glob("*-lava"))


# ------------------------------------------------------------------------------ Lava folders


def _rewrite_stage(folder: Path, **arrays: np.ndarray) -> None:
    """Replace arrays of stage 0 and fix its checksum, as a careful attacker would."""
    npz = folder / "stage_00.npz"
    with np.load(npz) as z:
        data = {k: z[k] for k in z.files}
    data.update(arrays)
    with open(npz, "wb") as f:
        np.savez(f, **data)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["stage_00.npz"] = sha256_file(npz)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _lava_copy(model: Path, tmp_path: Path, name: str) -> Path:
    out = tmp_path / name
    assert cli.main([str(model), "--target", "lava", "-o", str(out)]) == 0
    return out


def test_lava_folders_with_bad_arrays_or_fields_are_one_line(model: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = _lava_copy(model, tmp_path, "a")
    with np.load(out / "stage_00.npz") as z:
        indices, indptr, data = z["indices"].copy(), z["indptr"].copy(), z["data"].copy()
    capsys.readouterr()
    bad = indices.copy()
    bad[3] = 10**6  # out of range, checksum consistent: used to crash Lava's process
    _rewrite_stage(out, indices=bad)
    _one_line(capsys, run.main([str(out), "--samples", "4"]), "esl-run", "column indices outside")
    wrong = indptr.copy()
    wrong[5] = wrong[4] - 1
    _rewrite_stage(out, indices=indices, indptr=wrong)
    _one_line(capsys, run.main([str(out), "--samples", "4"]), "esl-run", "row pointers")
    nan = data.copy()
    nan[0] = np.inf
    _rewrite_stage(out, indptr=indptr, data=nan)
    _one_line(capsys, run.main([str(out), "--samples", "4"]), "esl-run", "not a finite")
    out = _lava_copy(model, tmp_path, "b")
    capsys.readouterr()
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["time"]["steps_per_sample"] = 7  # contradicts the encoding's T = 4
    (out / "manifest.json").write_text(json.dumps(manifest))
    _one_line(capsys, run.main([str(out), "--samples", "4"]), "esl-run", "steps_per_sample")
    manifest["time"]["steps_per_sample"] = 4
    manifest["stages"][0]["neuron"]["dv"] = 3.0
    (out / "manifest.json").write_text(json.dumps(manifest))
    _one_line(capsys, run.main([str(out), "--samples", "4"]), "esl-run", "dv = 3.0 is out of range")
    manifest["stages"][0]["neuron"]["dv"] = 0.5
    for sources, words in (([1], "sources"), ([2], "sources"), ("x", "sources"), ([-1, 0], "its sources")):
        manifest["stages"][1]["sources"] = sources  # itself, a later stage, junk, or too many columns
        (out / "manifest.json").write_text(json.dumps(manifest))
        _one_line(capsys, run.main([str(out), "--samples", "4"]), "esl-run", words)


# ------------------------------------------------------------------------------ IR folders


def test_ir_folders_truncated_or_inconsistent_are_one_line(model: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tn"
    assert cli.main([str(model), "--target", "truenorth", "-o", str(out)]) == 0
    capsys.readouterr()
    good = (out / "cores.npz").read_bytes()
    (out / "cores.npz").write_bytes(good[: len(good) // 2])
    _one_line(capsys, run.main([str(out), "--samples", "4"]), "esl-run", "cores.npz", "unreadable")
    (out / "cores.npz").write_bytes(good)
    manifest = json.loads((out / "manifest.json").read_text())
    for field, value, words in ((("geometry", "axons"), 0, "axons = 0"),
                                (("timing", "ticks_per_sample"), 1, "do not fit together"),
                                (("inputs", "n_data"), "784", "is not an integer")):
        edited = json.loads(json.dumps(manifest))
        edited[field[0]][field[1]] = value
        (out / "manifest.json").write_text(json.dumps(edited))
        _one_line(capsys, run.main([str(out), "--samples", "4"]), "esl-run", *words.split(" | "))
        _one_line(capsys, energy_cli.main([str(out), "--samples", "4"]), "esl-energy")
    edited = json.loads(json.dumps(manifest))
    edited["inputs"]["bias_lines"][0]["ticks"] = 10**6
    (out / "manifest.json").write_text(json.dumps(edited))
    _one_line(capsys, run.main([str(out), "--samples", "4"]), "esl-run", "bias line")


def test_a_zip_bomb_stage_file_is_refused_before_loading(model: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from esl_export.lava import artifact

    monkeypatch.setattr(artifact, "MAX_STAGE_BYTES", 1 << 22)  # the same check, at a size a test can write
    out = _lava_copy(model, tmp_path, "bomb")
    npz = out / "stage_00.npz"
    with zipfile.ZipFile(npz, "a", compression=zipfile.ZIP_DEFLATED) as z:  # 8 MiB of zeros, compressed
        z.writestr("pad.npy", bytes(8 << 20))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["stage_00.npz"] = sha256_file(npz)
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(artifact.ArtifactError, match="refusing to load"):
        artifact.read(out)


def test_leftover_temporary_export_folders_are_cleaned(model: Path, tmp_path: Path) -> None:
    stale = tmp_path / ".lava.abcd1234.tmp"
    stale.mkdir()
    (stale / "stage_00.npz").write_bytes(b"half")
    other = tmp_path / ".lava-notes"  # not a name an export gives: kept
    other.mkdir()
    _lava_copy(model, tmp_path, "lava")
    assert not stale.exists() and other.exists()


def test_ir_thresholds_and_leaks_must_fit_truenorth_bits(model: Path, tmp_path: Path) -> None:
    from esl_export.truenorth import ir as ir_mod

    out = tmp_path / "tn"
    assert cli.main([str(model), "--target", "truenorth", "-o", str(out)]) == 0
    ir = ir_mod.read(out)
    assert int(ir.threshold.max()) <= ir_mod.THRESHOLD_MAX  # unused neurons included
    good = dict(np.load(out / "cores.npz"))
    for name, value, rule in (("threshold", ir_mod.THRESHOLD_MAX + 1, "[threshold]"),
                              ("leak", -300, "[leak]")):
        arrays = {k: v.copy() for k, v in good.items()}
        arrays[name][0, 0] = value
        with open(out / "cores.npz", "wb") as f:
            np.savez_compressed(f, **arrays)
        with pytest.raises(ir_mod.IRError, match=re.escape(rule)):
            ir_mod.read(out)


def test_rate_coded_counts_repeat_with_the_seed(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same command on the same digits prints the same counts (the draw is seeded)."""
    runs = []
    for seed in ("0", "0", "1"):
        assert energy_cli.main([str(model), "--mode", "measured", "--samples", "20", "--format", "json",
                                "--no-progress", "--seed", seed]) == 0
        runs.append(json.loads(capsys.readouterr().out)[0]["sops"])
    assert runs[0] == runs[1] and runs[0] != runs[2]


# ------------------------------------------------------------------------------ resume files


@pytest.fixture(scope="module")
def resume_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path]:
    """A finished core-aware ESL run: its flags and its folder (model.pt, model.resume.pt)."""
    folder = tmp_path_factory.mktemp("resume")
    flags = ["--model", "mlp-lif", "--hidden", "16", "--T", "2", "--limit", "60", "--epochs", "1",
             "--batch-size", "20", "--eps", "1", "--grow", "random_unfired", "--core-aware", "truenorth",
             "--t-iter", "1", "--no-progress", "--out", str(folder / "model.pt")]
    assert train_cli.main(flags) == 0
    return flags, folder


def _damage_resume(saved: dict, case: str) -> None:
    mask = next(iter(saved["sparsifier"]["masks"]))
    weight = next(k for k in saved["model"] if k.endswith("weight"))
    if case == "weight shape":
        saved["model"][weight] = saved["model"][weight][:, :-1]
    elif case == "nan weight":
        saved["model"][weight][0, 0] = float("nan")
    elif case == "epoch type":
        saved["state"]["epoch"] = "1"
    elif case == "step past the epoch":
        saved["state"]["step_in_epoch"] = 10**9
    elif case == "optimizer moment shape":
        entry = next(iter(saved["optimizer"]["state"].values()))
        entry["exp_avg"] = entry["exp_avg"].reshape(-1)
    elif case == "mask count":
        m = saved["sparsifier"]["masks"][mask]
        m.view(-1)[: m.numel() // 2] = True
    elif case == "pool index":
        pools = next(iter(saved["sparsifier"]["pools"].values()))
        pools["members"][0, 0] = 10**6
    elif case == "rng state":
        saved["rng"] = saved["rng"][:10]
    elif case == "best state nan":
        saved["state"]["best_state"][weight] = saved["state"]["best_state"][weight] * float("inf")
    elif case == "not a dict":
        saved.clear()
        saved["x"] = 1
    else:
        raise AssertionError(case)


@pytest.mark.parametrize("case", ["weight shape", "nan weight", "epoch type", "step past the epoch",
                                  "optimizer moment shape", "mask count", "pool index", "rng state",
                                  "best state nan", "not a dict", "truncated"])
def test_damaged_resume_files_are_one_line_and_overwrite_nothing(
        resume_run: tuple[list[str], Path], tmp_path: Path, case: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    flags, folder = resume_run
    out = tmp_path / "model.pt"
    resume = tmp_path / "model.resume.pt"
    (tmp_path / "model.pt").write_bytes((folder / "model.pt").read_bytes())
    if case == "truncated":
        data = (folder / "model.resume.pt").read_bytes()
        resume.write_bytes(data[: len(data) // 2])
    else:
        saved = torch.load(folder / "model.resume.pt", weights_only=True)
        _damage_resume(saved, case)
        torch.save(saved, resume)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    capsys.readouterr()
    rc = train_cli.main([*flags[:-1], str(out), "--resume"])
    err = _one_line(capsys, rc, "esl-train", "model.resume.pt")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before, err


def test_an_intact_resume_file_passes_the_checks(resume_run: tuple[list[str], Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The checks refuse damage, not the files esl-train writes: the finished run resumes."""
    flags, _ = resume_run
    assert train_cli.main([*flags, "--resume"]) == 0, capsys.readouterr().err
