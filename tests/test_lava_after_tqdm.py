"""Lava still runs when something (here tqdm, as in training) fixed the default
multiprocessing context first; Lava's runtime import would otherwise raise."""

from __future__ import annotations

import subprocess
import sys


def test_lava_network_builds_after_tqdm_created_its_lock() -> None:
    code = (
        "import multiprocessing as mp\n"
        "from esl_export.lava import build  # imported before the context is fixed\n"
        "from tqdm import tqdm\n"
        "list(tqdm(range(2), disable=False))\n"
        "assert mp.get_start_method(allow_none=True) is not None\n"
        "build.allow_lava_start_method()\n"
        "from lava.proc.dense.process import Dense\n"
        "import numpy as np\n"
        "Dense(weights=np.eye(2))\n"
        "print('ok', mp.get_start_method())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("ok fork")
