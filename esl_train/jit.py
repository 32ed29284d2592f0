"""numba's ``njit`` with its on-disk cache wherever one can be written.

The compiled kernels (the core IR simulator, the single-spike layers, measured counting)
keep their machine code next to their source or in the user's cache directory, so a
process loads it instead of compiling (1-4 s per kernel). Where numba finds no writable
place for it (a read-only install and no writable home), it refuses ``cache=True`` at
import; then the kernels compile once per process instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from numba import njit

F = TypeVar("F", bound=Callable[..., Any])


def compiled(fn: F) -> F:
    """``numba.njit(nogil=True)`` of ``fn``, cached on disk where possible."""
    try:
        return njit(cache=True, nogil=True)(fn)  # type: ignore[return-value]
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return njit(nogil=True)(fn)  # type: ignore[return-value]
