"""Training across processes with torch.distributed (gloo on CPU), and the device flag."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from esl_train import cli as train_cli
from esl_train.checkpoint import load_checkpoint, load_model
from esl_train.data import load_data
from esl_train.esl import ESLConfig, esl_factory
from esl_train.train import TrainConfig, evaluate, train

ROOT = Path(__file__).resolve().parent.parent


def _torchrun(out: Path, grow: str, single: Path) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", str(ROOT / "tests" / "dist_worker.py"), str(out), grow,
                           str(single)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.mark.parametrize("grow", ["gradient", "random_unfired"])
def test_two_processes_hold_identical_masks_and_weights_after_every_update(tmp_path: Path, grow: str) -> None:
    # the same run in one process (its checkpoint is also evaluated by the two ranks, below)
    one = train({"name": "mlp-lif", "sizes": [784, 48, 10], "T": 3}, load_data("mnist-embedded", limit=300),
                TrainConfig(out=str(tmp_path / "one" / "model.pt"), epochs=3, batch_size=30, lr=2e-3, seed=5,
                            save_every=4),
                sparsifier_factory=esl_factory(ESLConfig(eps=10, grow=grow, t_iter=2, t_end=40, seed=5,
                                                         verbose=False)), progress=False)
    rank0, rank1 = _torchrun(tmp_path, grow, tmp_path / "one" / "model.pt")
    records = rank0["records"]
    assert len(records) == 16  # the start, then 30 steps / T_iter 2 = 15 updates
    assert records == rank1["records"]  # masks, explored masks, every model tensor: bitwise
    assert rank0["batches"] != rank1["batches"]  # ...though each rank trained on its own samples
    first = records[0]["active"]
    assert all(r["active"] == first for r in records)  # the active count never moves
    assert all(r["masked_nonzero"] == 0 for r in records)  # masked weights are zero
    assert len({r["masks"]["fc.0.weight"] for r in records}) > 10  # the topology did evolve
    # an interrupted and resumed distributed run ends where the uninterrupted one does
    assert rank0["resumed_equal"] and rank1["resumed_equal"]

    # the checkpoint evaluates in one process to the accuracy the distributed run logged
    ckpt = load_checkpoint(tmp_path / "full" / "model.pt")
    model, _ = load_model(tmp_path / "full" / "model.pt")
    _, acc = evaluate(model, load_data("mnist-embedded", limit=300).test)
    assert acc == pytest.approx(ckpt.meta["test_acc"], abs=1e-12) == rank0["test_acc"] == rank1["test_acc"]
    # ... and the other way round: the single-process checkpoint evaluates, sharded over the two
    # ranks, to the accuracy the single-process run logged
    assert rank0["single_acc"] == rank1["single_acc"] == pytest.approx(one.test_acc, abs=1e-12)

    # the two ranks' half batches make up the single process's batch: the same run, up to rounding
    two = json.loads((tmp_path / "ref" / "model.log.json").read_text())
    epochs = [(r["train_loss"], r["val_acc"]) for r in two if r["kind"] == "epoch"]
    single = [(r["train_loss"], r["val_acc"]) for r in one.log if r["kind"] == "epoch"]
    assert len(epochs) == len(single) == 3
    for (loss2, acc2), (loss1, acc1) in zip(epochs, single, strict=True):
        assert loss2 == pytest.approx(loss1, rel=1e-5) and acc2 == pytest.approx(acc1, abs=0.01)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = train_cli.main(["--model", "mlp-lif", "--device", "cuda", "--out", str(tmp_path / "m.pt")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "no CUDA device" in err, err
    assert not any(tmp_path.iterdir())
