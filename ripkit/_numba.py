"""Lazy numba: nothing imports numba (~0.2 s) or compiles at import time.

Modules that define kernels with numba's own decorators (``ripkit.rip._enumerate``,
``_search_kernels``, ``branch_bound``) import numba themselves; their callers import them
inside the functions that need them, so that ``import ripkit.rip.cli`` stays free of numba
and :func:`start_warm_up` can pay numba's start-up in the background.
"""
from __future__ import annotations

import functools
import importlib
import threading


def compile_kernel(fn, **options):
    """``numba.njit(fn)`` with an on-disk cache when a cache directory is writable, in memory otherwise."""
    from numba import njit  # here, not at import: see the module docstring

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


def start_warm_up(*modules: str) -> threading.Thread:
    """Start numba's one-off start-up in a background thread; returns the thread (join it when done).

    Importing numba and loading the first kernel cost about 0.5 s (numba builds its CPU
    target and typing registries then), mostly Python holding the GIL; a caller that
    starts this before GIL-free work (random draws, BLAS, LAPACK, hashing) gets that cost
    off its critical path.  ``modules`` (dotted names of kernel modules) are imported
    there too.  Results are unaffected (no kernel's inputs or outputs are touched); any
    failure is left for the caller's own first use to raise in its thread.
    """
    def warm():
        try:
            _touch_kernel(1.0)
            for name in modules:
                importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the caller's own first use reports it properly
            pass

    thread = threading.Thread(target=warm, name="ripkit-numba-warm-up", daemon=True)
    thread.start()
    return thread
