"""RIP estimates over independent dictionaries (trials), as in CoSA Table 4.

Seeding: trial t's dictionary is drawn from ``SeedSequence(seed, spawn_key=(t, 0))``
and its samples for sparsity s from ``SeedSequence(seed, spawn_key=(t, 1, s))``.
Each trial therefore depends only on (seed, t), so results are bit-identical
whatever the number of parallel jobs or the order trials finish in.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ripkit._checks import check_choice, check_positive_int
from ripkit._numba import start_warm_up
from ripkit._parallel import check_backend, parallel_map, resolve_jobs
from ripkit.coherence import kron_coherence
from ripkit.kron import KroneckerDictionary
from ripkit.projections import as_generator
from ripkit.rip.bracket import rip_bracket
from ripkit.rip.estimators import estimate_rip, sample_sparse_vectors, support_rip

__all__ = ["ESTIMATORS", "RipTrials", "trial_dictionary", "estimate_dictionary", "run_trial", "rip_trials"]

ESTIMATORS = ("percentile", "support", "bracket")


def trial_dictionary(m, n, a, b, seed, trial, *, scale="unit", kind="gaussian") -> KroneckerDictionary:
    """The dictionary of trial ``trial`` of a run seeded with ``seed``."""
    ss = np.random.SeedSequence(seed, spawn_key=(trial, 0))
    return KroneckerDictionary.from_seed(m, n, a, b, ss, scale=scale, kind=kind)


def estimate_dictionary(d: KroneckerDictionary, *, seed, trial, sparsity, n_samples, estimators,
                        percentile=95.0, budget_seconds=None, device=None, max_supports=None) -> list[dict]:
    """Every s and estimator on one dictionary; one row per (s, estimator).

    Samples for sparsity s come from ``SeedSequence(seed, spawn_key=(trial, 1, s))`` and
    the bracket's search from ``(trial, 2, s)``; 'support' and 'bracket' share the
    sampled supports (the bracket's 'random' lower bound is the support estimate).
    """
    gram = d.gram_factors()
    rows = []
    for s in sparsity:
        samples = sample_sparse_vectors(d.shape[1], s, n_samples, np.random.SeedSequence(seed, spawn_key=(trial, 1, s)))
        base = {"trial": trial, "s": s}
        if "percentile" in estimators:
            est = estimate_rip(d, s, samples=samples, gram=gram, percentile=percentile)
            rows.append({**base, "estimator": "percentile", **est.to_dict()})
        if "support" in estimators or "bracket" in estimators:
            sup = support_rip(d, s, samples=samples, gram=gram)
            if "support" in estimators:
                rows.append({**base, "estimator": "support", **sup.to_dict()})
        if "bracket" in estimators:
            br = rip_bracket(d, s, random_lower=sup, budget_seconds=budget_seconds, device=device,
                             max_supports=max_supports,
                             seed=np.random.SeedSequence(seed, spawn_key=(trial, 2, s)))
            rows.append({**base, "estimator": "bracket", **br.to_dict()})
    return rows


def run_trial(m, n, a, b, *, seed, trial, scale, kind, **kwargs) -> tuple[list[dict], dict]:
    """Trial ``trial``'s dictionary through :func:`estimate_dictionary`.  Returns (rows, coherence row)."""
    d = trial_dictionary(m, n, a, b, seed, trial, scale=scale, kind=kind)
    coh = kron_coherence(d)
    rows = estimate_dictionary(d, seed=seed, trial=trial, **kwargs)
    return rows, {"trial": trial, "mu": coh.mu, "pair": coh.pair, "fingerprints": d.fingerprints(),
                  "isometry_scale": d.isometry_scale}


@dataclass(frozen=True)
class RipTrials:
    """All estimates of a run: one row per (trial, s, estimator), and one coherence row per trial.

    ``rows`` and ``coherence_rows`` are the plain dicts; ``records`` and ``coherence`` are the
    same rows as pandas DataFrames, built (and pandas imported, ~0.2 s) on first use only.
    """

    config: dict
    rows: list = field(repr=False)
    coherence_rows: list = field(repr=False)

    @cached_property
    def records(self):
        import pandas as pd

        return pd.DataFrame(self.rows)

    @cached_property
    def coherence(self):
        import pandas as pd

        return pd.DataFrame(self.coherence_rows)

    def summary_rows(self) -> list[dict]:
        """Mean, std (ddof=1, a spread over dictionaries; 0 for one trial), min, max and count of δ
        per (s, estimator), sorted by (s, estimator), without pandas.  Mean and std are correctly
        rounded (``statistics``), so they may differ from pandas' groupby in the last bit."""
        groups: dict = {}
        for r in self.rows:
            groups.setdefault((r["s"], r["estimator"]), []).append(float(r["delta"]))
        return [{"s": s, "estimator": e, **_describe(groups[s, e])} for s, e in sorted(groups)]

    def summary(self):
        """``summary_rows`` as a DataFrame (columns s, estimator, mean, std, min, max, count)."""
        import pandas as pd

        return pd.DataFrame(self.summary_rows(), columns=["s", "estimator", "mean", "std", "min", "max", "count"])

    def to_dict(self) -> dict:
        return {"config": self.config, "records": self.records.to_dict("records"),
                "coherence": self.coherence.to_dict("records")}


def _describe(values: list[float]) -> dict:
    """Mean and std (ddof=1; 0 for one value) correctly rounded (``statistics``: fsum, exact fractions),
    min, max and count."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std, "min": min(values), "max": max(values),
            "count": len(values)}


def rip_trials(m, n, a, b, *, sparsity=(5, 10, 20), n_samples=1000, trials=10, seed=0, scale="unit",
               kind="gaussian", estimators=("percentile",), percentile=95.0, n_jobs=1, progress=False,
               budget_seconds=None, backend="loky", device=None, max_supports=None) -> RipTrials:
    """Run the RIP estimators on ``trials`` independent dictionaries Ψ = Rᵀ⊗L.

    Parameters
    ----------
    m, n, a, b : int
        L is (m, a), R is (b, n).
    sparsity : sequence of int
        Sparsity levels s (each 1 ≤ s ≤ ab).
    n_samples : int
        N random supports per (trial, s).
    trials : int
        Number of independent dictionaries.
    estimators : sequence of {'percentile', 'support', 'bracket'}
    n_jobs : int
        Trials in parallel through joblib (-1: all cores); results are identical for any value.
    backend : {'loky', 'threading', 'dask', 'ray'}
        joblib backend (``ripkit._parallel``); results are identical for every backend.
    budget_seconds : float, optional
        Time budget of the adversarial search per (trial, s) for 'bracket'.
    device, max_supports
        Passed to ``rip_bracket`` (where exact enumeration and scoring run; its cap).
    """
    for name, v in (("m", m), ("n", n), ("a", a), ("b", b), ("n_samples", n_samples), ("trials", trials)):
        check_positive_int(name, v)
    n_jobs = resolve_jobs(n_jobs)
    check_backend(backend)
    as_generator(seed)  # type and sign check before any SeedSequence is built
    sparsity = tuple(sorted({check_positive_int("sparsity level s", s) for s in sparsity}))
    if not sparsity:
        raise ValueError("sparsity must contain at least one level")
    if sparsity[-1] > a * b:
        raise ValueError(f"sparsity level s={sparsity[-1]} must be <= ab={a * b}")
    for e in estimators:
        check_choice("estimator", e, ESTIMATORS)
    kwargs = dict(sparsity=sparsity, n_samples=n_samples, scale=scale, kind=kind, estimators=tuple(estimators),
                  percentile=percentile, budget_seconds=budget_seconds, device=device, max_supports=max_supports)
    # In-process trials: numba's import and start-up overlap drawing the first dictionary and its Gram factors.
    warm_up = start_warm_up("ripkit.rip._search_kernels", "ripkit.rip._enumerate") if n_jobs == 1 else None
    try:
        results = _map_trials(m, n, a, b, seed, trials, n_jobs, backend, progress, kwargs)
    finally:
        if warm_up is not None:
            warm_up.join()
    rows = [r for trial_rows, _ in results for r in trial_rows]
    coh = [c for _, c in results]
    config = {"m": m, "n": n, "a": a, "b": b, "sparsity": list(sparsity), "n_samples": n_samples,
              "trials": trials, "seed": seed, "scale": scale, "kind": kind, "estimators": list(estimators),
              "percentile": percentile, "budget_seconds": budget_seconds, "device": device,
              "max_supports": max_supports}
    return RipTrials(config, rows, coh)


def _trial_task(m, n, a, b, seed, trial, kwargs):
    return run_trial(m, n, a, b, seed=seed, trial=trial, **kwargs)


def _map_trials(m, n, a, b, seed, trials, n_jobs, backend, progress, kwargs):
    tasks = [(m, n, a, b, seed, t, kwargs) for t in range(trials)]
    if not progress:  # tqdm.auto imports asyncio & co.: ~0.2 s of start-up for a bar nobody sees
        return parallel_map(_trial_task, tasks, n_jobs=n_jobs, backend=backend)
    from tqdm.auto import tqdm

    bar = tqdm(total=trials, desc="trials", unit="trial", delay=2.0, leave=False)
    try:
        return parallel_map(_trial_task, tasks, n_jobs=n_jobs, backend=backend, on_result=lambda _: bar.update())
    finally:
        bar.close()
