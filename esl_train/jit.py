"""numba's ``njit`` with its on-disk cache wherever one can be written.

The compiled kernels (the core IR simulator, the single-spike layers, measured counting)
keep their machine code next to their source or in the user's cache directory, so a
process loads it instead of compiling (1-4 s per kernel). Where numba finds no writable
place for it (a read-only install and no writable home), it refuses ``cache=True`` at
import; then the kernels compile once per process instead.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import torch
from numba import njit

F = TypeVar("F", bound=Callable[..., Any])


def compiled(fn: F) -> F:
    """``numba.njit(nogil=True)`` of ``fn``, cached on disk where possible."""
    try:
        return njit(cache=True, nogil=True)(fn)  # type: ignore[return-value]
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return njit(nogil=True)(fn)  # type: ignore[return-value]


#: worker threads for the second and later shares of ``split_run`` (the kernels release the GIL)
_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0


def split_run(run: Callable[[int, int], object], n: int) -> None:
    """``run(lo, hi)`` over ``0..n`` in ``torch.get_num_threads()`` contiguous shares, the
    first in this thread. For kernels that fill disjoint parts of their outputs: each entry
    is computed by one share the same way whatever the split, so the bits do not depend on
    the thread count."""
    global _POOL, _POOL_SIZE
    parts = max(1, min(torch.get_num_threads(), n))
    if parts == 1:
        run(0, n)
        return
    if _POOL is None or _POOL_SIZE < parts - 1:
        _POOL = ThreadPoolExecutor(max_workers=parts - 1, thread_name_prefix="esl-kernel")
        _POOL_SIZE = parts - 1
    cuts = [round(j * n / parts) for j in range(parts + 1)]
    futures = [_POOL.submit(run, cuts[j], cuts[j + 1]) for j in range(1, parts)]
    run(cuts[0], cuts[1])
    for f in futures:
        f.result()
