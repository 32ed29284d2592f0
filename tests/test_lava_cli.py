"""esl-export --target lava and esl-run: clear one-line errors, atomic output, and
Lava always stopped (no process left behind after an error)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from esl_export import cli, run
from esl_export.lava import artifact
from esl_export.lava.build import Inputs, LavaNetwork
from esl_train.checkpoint import make_checkpoint, save_checkpoint
from esl_train.models import build_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small mlp-lif model.pt and its export."""
    folder = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    model = build_model({"name": "mlp-lif", "sizes": [784, 16, 10], "T": 4})
    with torch.no_grad():
        model.fc[0].weight.mul_(4.0)
    save_checkpoint(make_checkpoint(model), folder / "model.pt")
    assert cli.main([str(folder / "model.pt"), "--target", "lava", "-o", str(folder / "lava")]) == 0
    return folder / "model.pt", folder / "lava"


def _one_line_error(capsys: pytest.CaptureFixture[str], fn: object, argv: list[str], prog: str,
                    match: str) -> str:
    assert fn(argv) == 2  # type: ignore[operator]
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"{prog}: error: "), err
    assert match in err, err
    return err


def test_export_writes_a_checked_framework_neutral_folder(exported: tuple[Path, Path]) -> None:
    model, out = exported
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "esl-snn/lava-network" and manifest["version"] == 2
    assert manifest["source"]["sha256"] == artifact.sha256_file(model)
    assert manifest["time"]["clock"] == "pipelined" and manifest["time"]["steps_per_sample"] == 4
    assert [s["neuron"]["type"] for s in manifest["stages"]] == ["lif", "readout"]
    lif = manifest["stages"][0]["neuron"]
    assert lif["du"] == 1.0 and lif["dv"] == 0.5 and lif["vth"] == 1.0 and lif["reset"] == "zero"
    assert manifest["stages"][0]["connection"] == "dense"  # an unmasked layer stays Dense
    with np.load(out / "stage_00.npz", allow_pickle=False) as npz:
        assert set(npz.files) == {"dense", "bias"}
    art = artifact.read(out)
    assert art.stages[0].weight.shape == (16, 784)


def test_export_errors_are_one_line(exported: tuple[Path, Path], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    model, _ = exported
    _one_line_error(capsys, cli.main, [str(model), "--target", "loihi9", "-o", str(tmp_path / "x")],
                    "esl-export", "unknown target 'loihi9'; known: lava, truenorth, nir, onnx")
    _one_line_error(capsys, cli.main, [str(tmp_path / "none.pt"), "--target", "lava", "-o",
                                       str(tmp_path / "x")], "esl-export", "no such model file")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00not a model" * 10)
    _one_line_error(capsys, cli.main, [str(junk), "--target", "lava", "-o", str(tmp_path / "x")],
                    "esl-export", "not a torch model file")
    _one_line_error(capsys, cli.main, [str(model), "--target", "lava", "-o", str(model)],
                    "esl-export", "would overwrite the input")
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    _one_line_error(capsys, cli.main, [str(model), "--target", "lava", "-o", str(other)],
                    "esl-export", "refusing to overwrite")
    assert (other / "keep.txt").read_text() == "mine"
    _one_line_error(capsys, cli.main, [str(model)], "esl-export", "required")
    assert not list(tmp_path.glob(".*tmp")), "no temporary folder may be left behind"


def test_export_replaces_an_earlier_export_atomically(exported: tuple[Path, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    model, _ = exported
    out = tmp_path / "lava"
    assert cli.main([str(model), "--target", "lava", "-o", str(out)]) == 0
    before = (out / "manifest.json").read_text()
    assert cli.main([str(model), "--target", "lava", "-o", str(out)]) == 0  # an earlier Lava export
    assert (out / "manifest.json").read_text() == before
    (out / "notes.txt").write_text("mine")  # a file the export did not write: refused, kept
    assert cli.main([str(model), "--target", "lava", "-o", str(out)]) == 2
    assert "did not write (notes.txt)" in capsys.readouterr().err and (out / "notes.txt").is_file()
    (out / "notes.txt").unlink()
    for target in ("onnx", "nir", "truenorth"):  # an export of another kind is not replaced
        assert cli.main([str(model), "--target", target, "-o", str(out)]) == 2
        assert "not an esl-snn" in capsys.readouterr().err
    assert (out / "manifest.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lava"]


def test_run_errors_are_one_line(exported: tuple[Path, Path], tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    _, out = exported
    _one_line_error(capsys, run.main, [str(tmp_path / "missing")], "esl-run", "no such export directory")
    _one_line_error(capsys, run.main, [str(tmp_path)], "esl-run", "no manifest.json")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "manifest.json").write_text(json.dumps({"format": "nir", "version": 1}))
    _one_line_error(capsys, run.main, [str(foreign)], "esl-run", "not an esl-snn export (format 'nir'")
    (foreign / "manifest.json").write_text("{truncated")
    _one_line_error(capsys, run.main, [str(foreign)], "esl-run", "unreadable manifest")
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in out.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["version"] = 99
    (broken / "manifest.json").write_text(json.dumps(manifest))
    _one_line_error(capsys, run.main, [str(broken)], "esl-run", "newer than this esl-snn reads")
    manifest["version"] = 1
    (broken / "manifest.json").write_text(json.dumps(manifest))
    data = bytearray((broken / "stage_00.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (broken / "stage_00.npz").write_bytes(bytes(data))
    _one_line_error(capsys, run.main, [str(broken)], "esl-run", "checksum does not match")
    (broken / "stage_00.npz").write_bytes((out / "stage_00.npz").read_bytes())
    manifest["stages"][0]["neuron"]["vth"] = "high"
    (broken / "manifest.json").write_text(json.dumps(manifest))
    _one_line_error(capsys, run.main, [str(broken)], "esl-run", "vth = 'high' is not a number")
    _one_line_error(capsys, run.main, [str(out), "--config", "exact_pt"], "esl-run", "invalid choice")
    _one_line_error(capsys, run.main, [str(out), "--samples", "5000", "--no-compare"], "esl-run",
                    "test samples")


def test_run_reports_accuracy_agreement_and_speed(exported: tuple[Path, Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _, out = exported
    assert run.main([str(out), "--samples", "6", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "Lava floating_pt: accuracy" in text and "agrees with PyTorch on 100.00%" in text
    assert "steps/s" in text


def _children() -> set[int]:
    """Live (non-zombie) child processes of this process, from /proc."""
    me, kids = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != "Z":
            kids.add(int(entry))
    return kids


def _no_new_children(before: set[int]) -> None:
    deadline = time.time() + 20
    while _children() - before and time.time() < deadline:
        time.sleep(0.2)
    assert not _children() - before, "Lava left processes behind"


def test_an_error_inside_a_run_leaves_no_process_behind(exported: tuple[Path, Path]) -> None:
    _, out = exported
    art = artifact.read(out)
    before = _children()
    x = np.random.default_rng(0).random((4, 784))

    def boom(done: int) -> None:
        raise RuntimeError("stop here")

    # an exception in the caller while Lava runs (here: in the progress callback)
    net = LavaNetwork(art, Inputs(x, "hold", 4))
    with pytest.raises(RuntimeError, match="stop here"):
        net.run(chunk_samples=1, progress=boom)
    _no_new_children(before)
    # an exception inside a Lava process (a sample that does not fit the source's port)
    net = LavaNetwork(art, Inputs(np.zeros((2, 3, 784)), "hold", 4))
    with pytest.raises(Exception):  # noqa: B017 (Lava reports a child's error its own way)
        net.run()
    _no_new_children(before)


def test_the_custom_process_package_imports_no_torch() -> None:
    # Lava executes every file of procs/ while it looks for process models
    code = ("import sys, pathlib, importlib.util as u\n"
            "import esl_export.lava.procs as p\n"
            "for f in sorted(pathlib.Path(p.__file__).parent.glob('*.py')):\n"
            "    spec = u.spec_from_file_location(f.stem, f)\n"
            "    spec.loader.exec_module(u.module_from_spec(spec))\n"
            "assert 'torch' not in sys.modules, 'procs imported torch'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
