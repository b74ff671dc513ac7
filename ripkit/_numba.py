"""Lazy numba compilation shared by the kernels (nothing compiles at import time)."""
from __future__ import annotations

import functools
import threading

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


def _touch(x):
    return x + 1


_touch_kernel = lazy_kernel(_touch)


def start_warm_up() -> threading.Thread:
    """Start numba's one-off start-up in a background thread; returns the thread (join it when done).

    The first kernel a process loads costs about 0.3 s more than the next ones (numba builds
    its CPU target and typing registries then); loading a trivial cached kernel pays it.  A
    caller that starts this before GIL-free work (random draws, BLAS, LAPACK, hashing) gets
    that cost off its critical path; results are unaffected (no kernel's inputs or outputs
    are touched).  Any failure is left for the real kernel to raise in the caller's thread.
    """
    def warm():
        try:
            _touch_kernel(1.0)
        except Exception:  # noqa: BLE001 - the caller's own first kernel reports it properly
            pass

    thread = threading.Thread(target=warm, name="ripkit-numba-warm-up", daemon=True)
    thread.start()
    return thread
