"""Run independent, seeded tasks in parallel through joblib, on a backend the user picks.

Every task ripkit parallelises (a RIP trial, a layer of an adapter) is a pure
function of its arguments and draws its randomness from its own seed, so the
results are bit-identical for every backend and job count; ``parallel_map``
returns them in task order.

Backends: ``loky`` (processes, joblib's default), ``threading``, ``dask``
(``distributed``: connects to the scheduler named by Dask's own configuration,
e.g. ``DASK_SCHEDULER_ADDRESS=tcp://host:8786``, else starts a local cluster) and
``ray`` (``ray.init(address="auto")`` when ``RAY_ADDRESS`` is set, else a local
Ray).
"""
from __future__ import annotations

import contextlib
import numbers
import os
from typing import Callable, Iterable, Sequence

__all__ = ["BACKENDS", "resolve_jobs", "check_backend", "parallel_map"]

BACKENDS = ("loky", "threading", "dask", "ray")


def available_cores() -> int:
    """CPU cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def resolve_jobs(n_jobs, name: str = "n_jobs") -> int:
    """``n_jobs`` as a positive count: ≥ 1 as given, -1 all cores, -2 all but one, … (joblib's rule)."""
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(n_jobs).__name__} ({n_jobs!r})")
    cores = available_cores()
    if n_jobs >= 1:
        return int(n_jobs)
    if n_jobs < 0 and cores + 1 + n_jobs >= 1:
        return cores + 1 + int(n_jobs)
    raise ValueError(f"{name}={n_jobs} must be >= 1, or -1 (all {cores} cores), -2 (all but one), ...")


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} must be one of {', '.join(BACKENDS)}")
    return backend


@contextlib.contextmanager
def _backend_context(backend: str):
    """joblib's ``parallel_config`` for ``backend``, starting or joining its cluster if needed."""
    from joblib import parallel_config

    if backend in ("loky", "threading"):
        with parallel_config(backend=backend):
            yield
        return
    if backend == "dask":
        try:
            from distributed import Client, get_client
        except ImportError as exc:
            raise ValueError("backend='dask' needs `pip install 'dask[distributed]'`") from exc
        try:
            client, own = get_client(), False  # a Client the caller already made
        except ValueError:
            client, own = Client(), True
        try:
            with parallel_config(backend="dask"):
                yield
        finally:
            if own:
                client.close()
        return
    try:
        import ray
        from ray.util.joblib import register_ray
    except ImportError as exc:
        raise ValueError("backend='ray' needs `pip install ray`") from exc
    own = not ray.is_initialized()
    if own:
        ray.init(address="auto" if os.environ.get("RAY_ADDRESS") else None, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    register_ray()
    try:
        with parallel_config(backend="ray"):
            yield
    finally:
        if own:
            ray.shutdown()


def parallel_map(fn: Callable, tasks: Iterable[Sequence], *, n_jobs=1, backend: str = "loky",
                 on_result: Callable | None = None) -> list:
    """``[fn(*task) for task in tasks]``, in task order, on ``n_jobs`` workers of ``backend``.

    Parameters
    ----------
    fn : callable
        A module-level function (it is pickled for process and cluster backends).
    tasks : iterable of argument tuples
    n_jobs : int, default=1
        Workers; -1 means all cores.  With 1 and a local backend the tasks run
        in this process, one after another.
    backend : {'loky', 'threading', 'dask', 'ray'}
    on_result : callable, optional
        Called once per finished task (for progress bars), in task order.
    """
    tasks = [tuple(t) for t in tasks]
    jobs = resolve_jobs(n_jobs)
    check_backend(backend)
    tick = on_result or (lambda _res: None)
    if jobs == 1 and backend in ("loky", "threading"):
        out = []
        for task in tasks:
            out.append(fn(*task))
            tick(out[-1])
        return out
    from joblib import Parallel, delayed

    with _backend_context(backend):
        # "generator" streams results to the progress bar in order; Ray's backend cannot
        # stream, so it collects the whole list.
        mode = "list" if backend == "ray" else "generator"
        results = Parallel(n_jobs=jobs, return_as=mode)(delayed(fn)(*t) for t in tasks)
        out = []
        for res in results:
            out.append(res)
            tick(res)
    return out
