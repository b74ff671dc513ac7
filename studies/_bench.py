"""What every benchmark shares: pinned threads, interleaved timing and the run's environment.

The machines here are shared (other jobs, a niced training campaign), so a benchmark
reports *ratios measured in one run*: the candidates are timed interleaved (round
r runs every candidate once, in a rotated order) and each keeps its best time, so
a burst of load hits all of them alike.  BLAS, numba and torch threads are pinned
(``pin_threads``): a multi-threaded GEMM whose second thread waits for a busy core
turns a 1 ms product into 50 ms of noise.
"""
from __future__ import annotations

import os
import platform
import time

import numpy as np

__all__ = ["pin_threads", "interleaved_best", "environment", "environment_lines"]


def pin_threads(n: int) -> None:
    """Limit BLAS/OpenMP (threadpoolctl), numba and torch to ``n`` threads for the whole process."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n)
    import numba

    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        import torch
    except ImportError:  # torch is a dependency, but a benchmark of BLAS alone must not need it
        return
    torch.set_num_threads(n)


def interleaved_best(candidates: dict, repeats: int, *, drop_above: float = 1.5, keep=()) -> dict:
    """Best wall time (s) of each zero-argument callable over up to ``repeats`` interleaved rounds.

    After two rounds a candidate whose best is over ``drop_above`` × the best of all
    is no longer re-timed (it cannot be the fastest; its ratio is already clear),
    unless it is named in ``keep``.
    """
    best = {name: np.inf for name in candidates}
    names = list(candidates)
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            candidates[name]()
            best[name] = min(best[name], time.perf_counter() - t0)
        if r >= 1:
            fastest = min(best.values())
            names = [nm for nm in names if nm in keep or best[nm] <= drop_above * fastest]
    return best


def environment(threads: int) -> dict:
    """Load average, thread counts and library versions, for the report of a run."""
    import numba
    import scipy
    from threadpoolctl import threadpool_info

    blas = [f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)"
            for i in threadpool_info() if i.get("user_api") == "blas"]
    env = {"threads": threads, "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(),
           "python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
           "numba": numba.__version__, "numba_threads": numba.get_num_threads(), "blas": "; ".join(blas),
           "load_average": os.getloadavg()}
    try:
        import torch
        env["torch"], env["torch_threads"] = torch.__version__, torch.get_num_threads()
        env["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return env


def environment_lines(start: dict, end: dict) -> list[str]:
    """Markdown lines describing the environment, with the load average at the start and the end."""
    def load(e):
        return ", ".join(f"{v:.2f}" for v in e["load_average"])

    libs = ", ".join(f"{k} {start[k]}" for k in ("numpy", "scipy", "numba", "torch") if k in start)
    return [f"Machine: {start['cpu_count']} CPU cores ({start['machine']}), Python {start['python']}, {libs}; "
            f"BLAS: {start['blas']}; threads pinned to {start['threads']} (BLAS, numba "
            f"{start['numba_threads']}, torch {start.get('torch_threads', '-')}); "
            f"GPU: {start.get('cuda') or 'none'}.",
            f"Load average (1, 5, 15 min) at the start: {load(start)}; at the end: {load(end)}. "
            "The machine is shared: read ratios measured in this run, not absolute times."]
