"""Training runs end to end, logs each epoch, and an interrupted run that resumes
ends with the same model as an uninterrupted one."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from esl_train.checkpoint import load_checkpoint, load_model
from esl_train.data import load_data
from esl_train.train import Interrupted, TrainConfig, run_paths, train

ARCH = {"name": "mlp-lif", "sizes": [784, 32, 10], "T": 3}


@pytest.fixture(scope="module")
def data():
    return load_data("mnist-embedded", limit=200)


def _cfg(out: Path) -> TrainConfig:
    return TrainConfig(out=str(out), epochs=3, batch_size=40, lr=3e-3, lr_final=1e-3,
                       lr_schedule="cosine", seed=7, save_every=2)


def test_interrupted_run_resumes_to_the_same_model(data, tmp_path: Path) -> None:
    full = train(ARCH, data, _cfg(tmp_path / "full" / "model.pt"), progress=False)

    cut = _cfg(tmp_path / "cut" / "model.pt")
    with pytest.raises(Interrupted):
        train(ARCH, data, cut, progress=False, stop_after_steps=7)  # mid-epoch 2
    saved = torch.load(run_paths(cut.out)["resume"], weights_only=True)
    assert saved["state"]["epoch"] == 1 and saved["state"]["step_in_epoch"] == 2
    assert not Path(cut.out).exists()
    resumed = train(ARCH, data, cut, resume=True, progress=False)

    a, b = full.checkpoint.state_dict, resumed.checkpoint.state_dict
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    assert resumed.test_acc == pytest.approx(full.test_acc)
    assert [r["val_acc"] for r in resumed.log] == pytest.approx([r["val_acc"] for r in full.log])


def test_logs_and_checkpoint_contents(data, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path / "model.pt")
    result = train(ARCH, data, cfg, progress=False)
    paths = run_paths(cfg.out)
    rows = list(csv.DictReader(paths["csv"].open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert json.loads(paths["json"].read_text())[-1]["epoch"] == 3
    ckpt = load_checkpoint(cfg.out)
    assert ckpt.meta["seed"] == 7 and ckpt.meta["dataset"] == "mnist-embedded"
    assert ckpt.meta["test_acc"] == pytest.approx(result.test_acc)
    best = max(float(r["val_acc"]) for r in rows)
    assert ckpt.meta["val_acc"] == pytest.approx(best)
    # the first epoch's loss is above the last one's: it learns
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])


def test_killed_cli_run_resumes_to_the_same_model(tmp_path: Path) -> None:
    """A real kill (SIGKILL) of esl-train mid-run, then --resume."""
    flags = ["--model", "mlp-lif", "--hidden", "32", "--T", "3", "--limit", "300", "--epochs", "4",
             "--batch-size", "30", "--seed", "3", "--save-every", "3", "--no-progress"]
    cmd = [sys.executable, "-m", "esl_train.cli", *flags]
    ref = subprocess.run([*cmd, "--out", str(tmp_path / "ref.pt")], capture_output=True, text=True,
                         timeout=300)
    assert ref.returncode == 0, ref.stderr

    out = tmp_path / "run" / "model.pt"
    proc = subprocess.Popen([*cmd, "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    resume_file = run_paths(out)["resume"]
    deadline = time.monotonic() + 240
    while not resume_file.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert resume_file.exists() and not out.exists(), "the kill must land mid-run"
    state = torch.load(resume_file, weights_only=True)["state"]
    assert not state["done"]

    again = subprocess.run([*cmd, "--out", str(out), "--resume"], capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    a, _ = load_model(tmp_path / "ref.pt")
    b, _ = load_model(out)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(va, vb, rtol=0, atol=1e-6, msg=k)
