"""One back-end interface: every target exports a folder whose manifest names the back end
that runs it; esl-run and esl-energy dispatch on that manifest; the command users are
told to run works as written (no -o)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from spiking import spiking_model

from esl_energy import cli as energy_cli
from esl_export import backends, cli, run
from esl_train.checkpoint import make_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TARGETS = ("lava", "truenorth", "nir", "onnx")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rate-coded masked 784-32-10 mlp-lif (every target takes it)."""
    folder = tmp_path_factory.mktemp("backends")
    net, masks = spiking_model({"name": "mlp-lif", "sizes": [784, 32, 10], "T": 6, "encoding": "rate"},
                               density=0.5, gain=4.0)
    path = folder / "model.pt"
    save_checkpoint(make_checkpoint(net, masks, meta={"dataset": "mnist-embedded"}), path)
    return path


def test_the_registry_holds_every_target_with_its_own_format() -> None:
    found = backends.backends()
    assert tuple(found) == TARGETS
    formats = [f for b in found.values() for f in b.formats]
    assert len(formats) == len(set(formats))
    with pytest.raises(backends.BackendError, match="unknown target 'loihi9'; known: lava, truenorth"):
        backends.get("loihi9")


def test_esl_export_without_out_writes_next_to_the_model(model: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    for target in TARGETS:
        assert cli.main([str(model), "--target", target]) == 0, capsys.readouterr().err
        out = model.parent / f"model-{target}"
        printed = capsys.readouterr().out
        assert f"wrote {out}" in printed and f"esl-run {out}" in printed
        manifest = json.loads((out / "manifest.json").read_text())
        assert backends.for_folder(out).name == target and manifest["backend"] == target
        assert manifest["source"]["sha256"] and manifest["source"]["kind"] == "model"


@pytest.mark.parametrize("target", TARGETS)
def test_esl_run_dispatches_on_the_manifest_and_agrees_with_pytorch(
        model: Path, target: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = model.parent / f"model-{target}"
    if not out.exists():
        assert cli.main([str(model), "--target", target]) == 0
    assert run.main([str(out), "--samples", "10", "--no-progress", "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert "accuracy" in lines[0] and lines[1].startswith("PyTorch: accuracy")
    if target != "truenorth":  # the core IR quantises weights to ternary: close, not exact
        assert "agrees with PyTorch on 100.00%" in printed, printed
    assert run.main([str(out), "--samples", "10", "--no-progress", "--seed", "3"]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == lines[:2]  # the same draw: the same figures


def test_a_bare_onnx_file_and_the_onnx_folder_hold_the_same_step(model: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import onnx

    assert cli.main([str(model), "--target", "onnx", "-o", str(tmp_path / "step.onnx")]) == 0
    bare = onnx.load(str(tmp_path / "step.onnx"))
    onnx.checker.check_model(bare, full_check=True)
    folder = model.parent / "model-onnx"
    if not folder.exists():
        assert cli.main([str(model), "--target", "onnx"]) == 0
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["tensors"]["inputs"] == ["input", "u_in:lif.0"]
    assert manifest["tensors"]["outputs"] == ["output", "spikes:lif.0", "u_out:lif.0"]
    assert [i.name for i in bare.graph.input] == manifest["tensors"]["inputs"]
    (tmp_path / "other.onnx").write_bytes(b"not ours")
    assert cli.main([str(model), "--target", "onnx", "-o", str(tmp_path / "other.onnx")]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err


def test_esl_energy_dispatches_folders_on_their_manifest(model: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    for target in TARGETS:
        if not (model.parent / f"model-{target}").exists():
            assert cli.main([str(model), "--target", target]) == 0
    capsys.readouterr()
    rows = {}
    for entry in (model, model.parent / "model-nir", model.parent / "model-nir" / "network.nir",
                  model.parent / "model-lava", model.parent / "model-onnx"):
        assert energy_cli.main([str(entry), "--format", "json"]) == 0
        rows[entry.name] = json.loads(capsys.readouterr().out)[0]
    assert len({r["ops"] for r in rows.values()}) == 1  # one graph, however it is reached
    assert rows["model.pt"]["ops"] == sum(
        int(np.count_nonzero(m)) for m in spiking_model({"name": "mlp-lif", "sizes": [784, 32, 10], "T": 6},
                                                        density=0.5, gain=4.0)[1].values())
    assert energy_cli.main([str(model.parent / "model-truenorth"), "--samples", "4", "--format", "json"]) == 0
    (placed, *_) = json.loads(capsys.readouterr().out)
    assert placed["cores"] > 0 and placed["SOPs/sample"] > 0


def test_esl_energy_follows_a_moved_source_given_with_source(model: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    moved = tmp_path / "model.pt"
    shutil.copy(model, moved)
    assert cli.main([str(moved), "--target", "lava"]) == 0
    kept = tmp_path / "elsewhere.pt"
    moved.rename(kept)
    capsys.readouterr()
    assert energy_cli.main([str(tmp_path / "model-lava")]) == 2
    assert "which is not there (name it with --source)" in capsys.readouterr().err
    assert energy_cli.main([str(tmp_path / "model-lava"), "--source", str(kept), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["ops"] > 0
    assert energy_cli.main([str(model), "--source", str(kept)]) == 2
    assert "--source names the source of one export folder" in capsys.readouterr().err


def test_bad_folders_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "esl-snn/unknown"}))
    for main, prog in ((run.main, "esl-run"), (energy_cli.main, "esl-energy")):
        assert main([str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"{prog}: error:") and "not an esl-snn export" in err and "\n" not in err
    assert cli.main([str(tmp_path), "--target", "lava"]) == 2
    assert "a folder is read as a source only when it is a NIR export" in capsys.readouterr().err
