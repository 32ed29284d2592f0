"""The OpenMP wait policy the commands choose before torch loads (esl_train/openmp.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from esl_train.openmp import busy_cpus, choose_wait_policy

CHOOSE = "from esl_train.openmp import choose_wait_policy; print(choose_wait_policy())"
BUSY = "while True: pass"


def _fresh(env: dict[str, str]) -> str:
    """choose_wait_policy() in a fresh interpreter (no torch loaded), its answer."""
    out = subprocess.run([sys.executable, "-c", CHOOSE], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads /proc/stat")
def test_passive_waiting_is_chosen_beside_busy_processes_and_never_over_the_user() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(2)]
    try:
        time.sleep(0.3)
        assert (busy_cpus() or 0.0) >= 1.0  # two busy loops: well over one CPU's worth
        assert _fresh(env) == "PASSIVE"
        assert _fresh({**env, "OMP_WAIT_POLICY": "ACTIVE"}) == "None"  # the user's choice stands
        assert _fresh({**env, "GOMP_SPINCOUNT": "1000"}) == "None"
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def test_nothing_changes_once_torch_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch  # noqa: F401  (libgomp has read its variables)

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert choose_wait_policy(threshold=0.0) is None and "OMP_WAIT_POLICY" not in os.environ
