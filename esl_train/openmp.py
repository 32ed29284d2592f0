"""OpenMP's wait policy, chosen before torch loads (torch-free on purpose).

Why: torch's OpenMP threads (libgomp) spin after each parallel region, waiting for the
next. Beside a busy process on a 2-core machine the spinning thread holds the core its
partner needs, so every region waits a scheduler time slice: training ran 3.1x (single
spike) and 2.9x (LIF) slower beside one busy process on 2 cores, where losing one core
should cost at most 2x (``benchmarks/train_throughput.py --neighbours 1 --policy default``).
Passive waiting (threads sleep) brings that to 1.8-2.1x but costs up to a third of the
quiet speed of small operations, so the commands choose it only when other processes
already keep half a CPU busy as they start. The policy changes no number: the same
threads split the same work.

The user's own ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` always wins, and nothing is
changed once torch is loaded (libgomp reads the variables once, at start).
"""

from __future__ import annotations

import os
import sys
import time

#: CPUs' worth of work by other processes at which passive waiting pays
BUSY_THRESHOLD = 0.5


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat, or None where there is none."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


def busy_cpus(interval: float = 0.1) -> float | None:
    """How many CPUs' worth of work the machine did over ``interval`` seconds (this process
    sleeps meanwhile, so it is other processes' work), or None where it cannot tell."""
    first = _cpu_times()
    if first is None:
        return None
    time.sleep(interval)
    second = _cpu_times()
    if second is None or second[1] <= first[1]:
        return None
    return (second[0] - first[0]) / (second[1] - first[1]) * (os.cpu_count() or 1)


def choose_wait_policy(threshold: float = BUSY_THRESHOLD) -> str | None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` when other processes keep ``threshold`` CPUs busy;
    returns the policy set, or None when it left the environment as it was."""
    if "torch" in sys.modules or "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return None
    busy = busy_cpus()
    if busy is None or busy < threshold:
        return None
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return "PASSIVE"
