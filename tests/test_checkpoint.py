"""model.pt: round trips for every model, and every kind of bad file gives one
clear line and runs no code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from esl_train.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
    load_model,
    make_checkpoint,
    save_checkpoint,
)
from esl_train.models import build_model

TINY = {
    "mlp-single-spike": {"name": "mlp-single-spike", "sizes": [784, 40, 10]},
    "mlp-lif": {"name": "mlp-lif", "sizes": [784, 40, 10], "T": 3},
    "vggsnn": {"name": "vggsnn", "in_shape": [1, 28, 28], "num_classes": 10, "width": 1 / 16, "T": 2},
    "resnet19": {"name": "resnet19", "in_shape": [3, 32, 32], "num_classes": 10, "width": 1 / 16,
                 "T": 2},
}


def _inputs(arch: dict) -> torch.Tensor:
    shape = arch.get("in_shape", [1, 28, 28])
    return torch.rand(4, *shape, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", sorted(TINY))
def test_round_trip_gives_identical_outputs(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(TINY[name])
    x = _inputs(TINY[name])
    if name in ("vggsnn", "resnet19"):  # give BatchNorm non-trivial running statistics
        model.train()
        with torch.no_grad():
            model(x)
    model.eval()
    with torch.no_grad():
        before = model(x)
    path = tmp_path / "model.pt"
    save_checkpoint(make_checkpoint(model, meta={"dataset": "test"}), path)
    raw = torch.load(path, weights_only=True)  # the contract: no pickled classes
    assert raw["format"] == "esl-snn/model" and raw["version"] == FORMAT_VERSION
    loaded, ckpt = load_model(path)
    with torch.no_grad():
        after = loaded(x)
    assert torch.equal(before, after)
    assert ckpt.arch == model.arch
    assert set(ckpt.masks) == set(model.connection_weights())
    assert all(bool(m.all()) for m in ckpt.masks.values())  # dense: all-true masks
    assert ckpt.meta["dataset"] == "test" and ckpt.meta["connections"] == ckpt.connections()
    assert ckpt.neuron == model.neuron() and ckpt.encoding == model.encoding()


def test_masked_weights_are_exactly_zero_in_the_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(TINY["mlp-lif"])
    name = next(iter(model.connection_weights()))
    mask = torch.rand_like(model.connection_weights()[name]) < 0.2
    path = tmp_path / "m.pt"
    save_checkpoint(make_checkpoint(model, masks={name: mask}), path)
    ckpt = load_checkpoint(path)
    assert torch.equal(ckpt.masks[name], mask)
    assert bool((ckpt.state_dict[name][~mask] == 0).all())
    assert ckpt.connections() == int(mask.sum()) + sum(
        m.numel() for k, m in ckpt.masks.items() if k != name
    )
    assert ckpt.density()[name] == pytest.approx(float(mask.float().mean()))


@pytest.fixture
def good(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "good.pt"
    save_checkpoint(make_checkpoint(build_model(TINY["mlp-lif"])), path)
    return path


def _tampered(good: Path, tmp_path: Path, change) -> Path:
    raw = torch.load(good, weights_only=True)
    change(raw)
    path = tmp_path / f"bad-{change.__name__}.pt"
    torch.save(raw, path)
    return path


class Boom:
    """A pickled object whose loading would run a command."""

    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def _bad_files(good: Path, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    corrupted = tmp_path / "corrupted.pt"
    mid = len(data) // 2
    corrupted.write_bytes(data[:mid] + bytes(b ^ 0xFF for b in data[mid : mid + 4096]) + data[mid + 4096 :])
    text = tmp_path / "notes.pt"
    text.write_text("not a model\n")
    foreign = tmp_path / "foreign.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), foreign)
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": "esl-snn/model", "payload": Boom()}, pickled)

    def newer(raw):
        raw["version"] = FORMAT_VERSION + 1

    def shape(raw):
        k = next(iter(raw["masks"]))
        raw["masks"][k] = raw["masks"][k][:, :-1]

    def nonzero(raw):
        k = next(iter(raw["masks"]))
        raw["masks"][k][0, 0] = False
        raw["state_dict"][k][0, 0] = 1.0

    def arch(raw):
        raw["arch"]["name"] = "transformer"

    def weights(raw):
        k = next(iter(raw["masks"]))
        raw["state_dict"][k] = raw["state_dict"][k][:-1]
        raw["masks"][k] = raw["masks"][k][:-1]
        raw["explored"][k] = raw["explored"][k][:-1]

    def missing(raw):
        del raw["masks"]

    return {
        "missing file": (tmp_path / "nope.pt", "no such"),
        "directory": (tmp_path, "directory"),
        "truncated": (truncated, "not a torch"),
        "corrupted": (corrupted, "corrupted"),
        "text": (text, "not a torch"),
        "foreign": (foreign, "not an esl-snn model file"),
        "pickled object": (pickled, "pickled Python objects"),
        "newer version": (_tampered(good, tmp_path, newer), "newer"),
        "mask shape": (_tampered(good, tmp_path, shape), "has shape"),
        "non-zero masked weight": (_tampered(good, tmp_path, nonzero), "non-zero where its mask is off"),
        "unknown architecture": (_tampered(good, tmp_path, arch), "unknown model 'transformer'"),
        "wrong weight shape": (_tampered(good, tmp_path, weights), "needs"),
        "missing field": (_tampered(good, tmp_path, missing), "missing field"),
    }


def test_each_bad_file_gives_one_clear_line(good: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cases = _bad_files(good, tmp_path)
    for case, (path, expected) in cases.items():
        before = path.read_bytes() if path.is_file() else None
        with pytest.raises(CheckpointError) as info:
            load_model(path)
        msg = str(info.value)
        assert expected in msg, f"{case}: {msg}"
        assert "\n" not in msg and str(path) in msg, case
        if before is not None:
            assert path.read_bytes() == before, f"{case}: the input was modified"
    assert not (tmp_path / "pwned.txt").exists(), "loading a model file ran code"


def test_cli_reports_a_bad_input_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "esl_train.cli", "--model", "mlp-lif", "--data", "mnist",
         "--data-dir", str(tmp_path / "absent"), "--out", str(tmp_path / "m.pt")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("esl-train: error:"), proc.stderr
    assert "absent" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "m.pt").exists()
