"""Ctrl-C in a terminal sends SIGINT to the whole process group: esl-run, and Lava's own
processes with it. Whenever it comes (while Python imports, while Lava compiles and
starts its processes, mid-run), esl-run must exit 130 within seconds with one line, no
child traceback, and no process of its group left running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from spiking import spiking_model

from esl_export import cli
from esl_train.checkpoint import make_checkpoint, save_checkpoint

LAUNCH = "import sys; from esl_train.cli_common import esl_run; sys.exit(esl_run())"
#: before Lava starts (imports, data), while it compiles and forks, mid-run
MOMENTS = (0.3, 1.3, 3.0)
ROUNDS = 10


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sigint")
    torch.manual_seed(0)
    net, masks = spiking_model({"name": "mlp-lif", "sizes": [784, 32, 10], "T": 8})
    save_checkpoint(make_checkpoint(net, masks), folder / "m.pt")
    assert cli.main([str(folder / "m.pt"), "--target", "lava"]) == 0
    return folder / "m-lava"


def _live_group(pgid: int) -> list[str]:
    """Processes of the group that still run (zombies are dead; init reaps them)."""
    ps = subprocess.run(["ps", "-o", "pid=,stat=", "-g", str(pgid)], capture_output=True, text=True).stdout
    return [line for line in ps.splitlines() if line.split()[1:] and not line.split()[1].startswith("Z")]


def _interrupt(export: Path, delay: float) -> tuple[int, float, str, list[str]]:
    proc = subprocess.Popen([sys.executable, "-c", LAUNCH, str(export), "--samples", "1000", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group, like a terminal job
    time.sleep(delay)
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"esl-run did not exit within 10 s of Ctrl-C at {delay} s")
    took = time.monotonic() - sent
    deadline = time.monotonic() + 3
    while _live_group(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _live_group(proc.pid)
    if left:  # so that one failure does not leak into the next round
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, took, err, left


def test_ctrl_c_at_any_moment_exits_130_with_one_line_and_no_process_left(export: Path) -> None:
    for round_ in range(ROUNDS):
        for delay in MOMENTS:
            rc, took, err, left = _interrupt(export, delay)
            where = f"round {round_ + 1}, Ctrl-C at {delay} s"
            assert rc == 130, f"{where}: exit {rc}, stderr {err[-400:]!r}"
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("esl-run: interrupted"), f"{where}: {err[-800:]!r}"
            assert took < 10, where
            assert not left, f"{where}: processes left running: {left}"
