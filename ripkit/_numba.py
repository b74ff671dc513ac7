"""Lazy numba compilation shared by the kernels (nothing compiles at import time)."""
from __future__ import annotations

from numba import njit


def compile_kernel(fn, **options):
    """``njit(fn)`` with an on-disk cache when a cache directory is writable, in memory otherwise."""
    try:  # numba caches next to the source file, else in the user cache dir
        return njit(cache=True, **options)(fn)
    except RuntimeError:  # no writable cache location
        return njit(**options)(fn)
