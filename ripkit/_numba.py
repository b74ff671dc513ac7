"""Lazy numba compilation shared by the kernels (nothing compiles at import time)."""
from __future__ import annotations

import functools

from numba import njit


def compile_kernel(fn, **options):
    """``njit(fn)`` with an on-disk cache when a cache directory is writable, in memory otherwise."""
    try:  # numba caches next to the source file, else in the user cache dir
        return njit(cache=True, **options)(fn)
    except RuntimeError:  # no writable cache location
        return njit(**options)(fn)


def lazy_kernel(fn, **options):
    """``fn`` compiled by :func:`compile_kernel` on its first call (then reused); ``.py_func`` is ``fn``."""
    compiled = functools.cache(lambda: compile_kernel(fn, **options))

    @functools.wraps(fn)
    def call(*args):
        return compiled()(*args)

    call.py_func = fn
    return call
