"""ripkit._parallel: every backend and job count gives the same results, in task order."""
import pandas as pd
import pytest

from ripkit._parallel import parallel_map, resolve_jobs
from ripkit.rip.trials import rip_trials


def _square(x):
    return x * x


def test_resolve_jobs_follows_joblib():
    import os

    cores = len(os.sched_getaffinity(0))
    assert resolve_jobs(3) == 3
    assert resolve_jobs(-1) == cores
    with pytest.raises(ValueError, match="n_jobs=0 must be >= 1, or -1"):
        resolve_jobs(0)
    with pytest.raises(TypeError, match="n_jobs must be an int"):
        resolve_jobs(1.5)


@pytest.mark.parametrize("backend", ["loky", "threading"])
@pytest.mark.parametrize("n_jobs", [1, 2, -1])
def test_parallel_map_keeps_order(backend, n_jobs):
    seen = []
    assert parallel_map(_square, [(i,) for i in range(7)], n_jobs=n_jobs, backend=backend,
                        on_result=seen.append) == [i * i for i in range(7)]
    assert seen == [i * i for i in range(7)]


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="backend='spark' must be one of loky, threading, dask, ray"):
        parallel_map(_square, [(1,)], backend="spark")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["dask", "ray"])
def test_cluster_backends_give_identical_trials(backend):
    pytest.importorskip({"dask": "distributed", "ray": "ray"}[backend])
    kw = dict(sparsity=(3, 5), n_samples=40, trials=3, seed=7)
    ref = rip_trials(96, 64, 12, 8, **kw).records
    got = rip_trials(96, 64, 12, 8, n_jobs=2, backend=backend, **kw).records
    pd.testing.assert_frame_equal(ref, got)
