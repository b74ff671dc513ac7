"""Tests against chance for trained-model claims: seeds, nulls, intervals and a verdict rule.

Every trained-model study states its rule before looking (README, "Verdict rule"):

    **agrees**    the paper's direction holds and its test gives p < α (default 0.05);
    **disagrees** the opposite direction holds with p < α;
    **inconclusive** otherwise (too few seeds, or no effect either way).

The unit of replication is the training seed: layers of one run are not independent
draws.  Two kinds of evidence are combined here:

* **over seeds** — one number per seed (a run's mean over layers, an accuracy, a
  difference between methods trained with the same seed): :func:`seed_test` gives the
  exact sign test, the exact Wilcoxon signed-rank test and a bootstrap interval of the
  mean.  With n seeds the smallest one-sided sign-test p-value is 2⁻ⁿ, so
  p < 0.05 needs n ≥ 5 seeds all in one direction; with 3 seeds a seed-level test
  can at best say "inconclusive", which :func:`seed_test` reports rather than hides.
* **paired over seeds** — method A − method B trained with the same seed:
  :func:`paired_test` (the seed test of the differences, with a bootstrap interval of
  the mean difference).
* **against a null within a run** — a statistic of a trained matrix against many draws
  of a null (an equal-norm Gaussian core, a same-spectrum random matrix, random
  subspaces, random partitions): :func:`null_test` gives the Monte-Carlo p-value
  (1 + #{null at least as extreme}) / (1 + draws) (Davison & Hinkley 1997, eq. 4.11),
  which is exact (valid) for any number of draws; :func:`combine_pvalues` merges the
  per-layer or per-seed p-values (Fisher, Stouffer, or ``max`` — the
  intersection–union test, which says "in every seed").

:func:`seeds_null_test` runs one Monte-Carlo test per seed (each seed's statistic, e.g. its
mean over layers, against many null draws of the same statistic) and combines them:
``max`` (intersection–union: "in every seed"; valid whatever the dependence) is the
p-value the verdict uses, Fisher's beside it.  This design can reach p < 0.05 with three
seeds, where a seed-level sign test cannot; it tests "differs from the null in every
seed", not "the mean over seeds differs".  :func:`seed_verdict` and :func:`null_verdict`
apply the rule and say when the design could not have reached α.

Built on ``scipy.stats`` (``binomtest``, ``wilcoxon``, ``bootstrap``,
``combine_pvalues``); nothing here re-derives a distribution.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps

__all__ = ["ALPHA", "SeedTest", "NullTest", "seed_test", "null_test", "combine_pvalues",
           "bootstrap_ci", "verdict", "VERDICT_RULE", "paired_test", "SeedsNullTest", "seeds_null_test",
           "Verdict", "seed_verdict", "null_verdict"]

ALPHA = 0.05
ALTERNATIVES = ("greater", "less", "two-sided")

VERDICT_RULE = ("agrees: the paper's direction holds with p < 0.05; disagrees: the opposite direction "
                "holds with p < 0.05; inconclusive: neither (stated before the runs were looked at)")


def _values(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _check_alternative(alternative: str) -> str:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative={alternative!r} must be one of {', '.join(ALTERNATIVES)}")
    return alternative


def bootstrap_ci(values, *, level: float = 0.95, n_resamples: int = 9999, seed=0,
                 statistic=np.mean) -> tuple[float, float]:
    """Percentile-BCa bootstrap interval of ``statistic`` over ``values`` (``scipy.stats.bootstrap``).

    With fewer than 3 distinct values no interval can be resampled: returns (min, max)
    of the values, which is what the data can say.
    """
    x = _values(values, "values")
    if not 0 < level < 1:
        raise ValueError(f"level={level} must be in (0, 1)")
    if np.unique(x).size < 3:
        return float(x.min()), float(x.max())
    res = sps.bootstrap((x,), statistic, confidence_level=level, n_resamples=n_resamples,
                        method="BCa", random_state=np.random.default_rng(seed))
    lo, hi = res.confidence_interval
    if not (np.isfinite(lo) and np.isfinite(hi)):  # BCa degenerates on near-constant samples
        res = sps.bootstrap((x,), statistic, confidence_level=level, n_resamples=n_resamples,
                            method="percentile", random_state=np.random.default_rng(seed))
        lo, hi = res.confidence_interval
    return float(lo), float(hi)


@dataclass(frozen=True)
class SeedTest:
    """A test over seeds of per-seed values (or paired differences) against 0.

    ``p_sign`` (exact binomial sign test, zeros dropped) is the test the verdict uses:
    it assumes nothing about the shape of the distribution. ``p_wilcoxon`` (exact
    signed-rank) and the bootstrap interval of the mean are reported beside it.
    """

    n_seeds: int
    mean: float
    ci_low: float
    ci_high: float
    n_positive: int
    n_negative: int
    p_sign: float
    p_wilcoxon: float
    alternative: str
    min_attainable_p: float

    @property
    def p_value(self) -> float:
        return self.p_sign

    def to_dict(self) -> dict:
        return asdict(self) | {"p_value": self.p_value}


def seed_test(values, *, alternative: str = "greater", level: float = 0.95, seed=0) -> SeedTest:
    """Sign test, Wilcoxon signed-rank test and bootstrap CI of per-seed values against 0.

    Parameters
    ----------
    values : array_like, shape (n_seeds,)
        One number per seed: a statistic, or a paired difference (method A − method B
        trained with the same seed).
    alternative : {'greater', 'less', 'two-sided'}
        'greater' tests mean/median > 0 (the direction the caller expects).
    """
    x = _values(values, "values")
    _check_alternative(alternative)
    pos, neg = int((x > 0).sum()), int((x < 0).sum())
    n_nonzero = pos + neg
    if n_nonzero:
        p_sign = float(sps.binomtest(pos, n_nonzero, 0.5, alternative=alternative).pvalue)
        min_p = float(0.5 ** n_nonzero * (2 if alternative == "two-sided" else 1))
    else:
        p_sign, min_p = 1.0, 1.0
    if n_nonzero >= 1 and np.any(x != 0):
        p_wil = float(sps.wilcoxon(x, alternative=alternative, zero_method="wilcox",
                                   method="exact" if n_nonzero <= 50 else "approx").pvalue)
    else:
        p_wil = 1.0
    lo, hi = bootstrap_ci(x, level=level, seed=seed)
    return SeedTest(len(x), float(x.mean()), lo, hi, pos, neg, p_sign, p_wil, alternative, min(min_p, 1.0))


@dataclass(frozen=True)
class NullTest:
    """An observed statistic against ``n_draws`` draws of a null.

    ``p_value`` = (1 + #{null draws at least as extreme}) / (1 + n_draws): a valid
    Monte-Carlo p-value for any number of draws.  ``z`` = (observed − null mean)/null std.
    """

    observed: float
    null_mean: float
    null_std: float
    null_low: float
    null_high: float
    n_draws: int
    p_value: float
    z: float
    alternative: str

    def to_dict(self) -> dict:
        return asdict(self)


def null_test(observed: float, null_draws, *, alternative: str = "greater", level: float = 0.95) -> NullTest:
    """Monte-Carlo test of ``observed`` against ``null_draws`` (one statistic per null draw).

    ``alternative='greater'``: the observed value is larger than chance;
    'less': smaller; 'two-sided': twice the smaller one-sided p (capped at 1).
    ``null_low``/``null_high`` are the central ``level`` quantiles of the null.
    """
    obs = float(_values([observed], "observed")[0])
    null = _values(null_draws, "null_draws")
    _check_alternative(alternative)
    n = null.size
    p_greater = (1 + np.count_nonzero(null >= obs)) / (1 + n)
    p_less = (1 + np.count_nonzero(null <= obs)) / (1 + n)
    p = {"greater": p_greater, "less": p_less, "two-sided": min(1.0, 2 * min(p_greater, p_less))}[alternative]
    sd = float(null.std(ddof=1)) if n > 1 else 0.0
    z = (obs - null.mean()) / sd if sd > 0 else (0.0 if obs == null.mean() else np.copysign(np.inf, obs - null.mean()))
    q = (1 - level) / 2
    return NullTest(obs, float(null.mean()), sd, float(np.quantile(null, q)), float(np.quantile(null, 1 - q)),
                    n, float(p), float(z), alternative)


def combine_pvalues(pvalues, method: str = "fisher") -> float:
    """One p-value from independent tests: 'fisher', 'stouffer' (``scipy.stats.combine_pvalues``) or
    'max' (intersection–union: the claim holds in *every* test; valid without independence)."""
    p = _values(pvalues, "pvalues")
    if np.any((p < 0) | (p > 1)):
        raise ValueError("pvalues must lie in [0, 1]")
    if method == "max":
        return float(p.max())
    if method not in ("fisher", "stouffer"):
        raise ValueError(f"method={method!r} must be one of 'fisher', 'stouffer', 'max'")
    if p.size == 1:
        return float(p[0])
    return float(sps.combine_pvalues(np.clip(p, 1e-300, 1.0), method=method).pvalue)


def verdict(p_paper_direction: float, p_opposite_direction: float = 1.0, *, alpha: float = ALPHA) -> str:
    """The stated rule: 'agrees' / 'disagrees' / 'inconclusive' (see the module docstring)."""
    for name, p in (("p_paper_direction", p_paper_direction), ("p_opposite_direction", p_opposite_direction)):
        if not 0 <= p <= 1:
            raise ValueError(f"{name}={p} must be in [0, 1]")
    if p_paper_direction < alpha:
        return "agrees"
    if p_opposite_direction < alpha:
        return "disagrees"
    return "inconclusive"


def paired_test(a, b, *, alternative: str = "greater", level: float = 0.95, seed=0) -> SeedTest:
    """Seed test of the paired differences a − b (method A and B trained with the same seeds).

    ``a`` and ``b`` are aligned by seed; the bootstrap interval is that of the mean difference.
    """
    x, y = _values(a, "a"), _values(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must pair seed by seed, got {x.size} and {y.size} values")
    return seed_test(x - y, alternative=alternative, level=level, seed=seed)


@dataclass(frozen=True)
class SeedsNullTest:
    """One Monte-Carlo null test per seed, combined over seeds.

    ``p_value`` is the intersection–union p (the largest per-seed p): the statistic
    differs from its null in the stated direction *in every seed*.  ``p_fisher``
    (independent seeds) is reported beside it.  ``min_attainable_p`` = 1/(1 + draws).
    """

    n_seeds: int
    observed: tuple
    null_mean: tuple
    p_per_seed: tuple
    p_value: float
    p_fisher: float
    n_draws: int
    min_attainable_p: float
    alternative: str

    def to_dict(self) -> dict:
        return asdict(self)


def seeds_null_test(observed, null_draws, *, alternative: str = "greater") -> SeedsNullTest:
    """Per-seed :func:`null_test` of ``observed[s]`` against ``null_draws[s]``, combined.

    Parameters
    ----------
    observed : array_like, shape (n_seeds,)
        One statistic per seed (e.g. a run's mean over layers).
    null_draws : array_like, shape (n_seeds, draws) or (draws,)
        The same statistic on null draws, per seed or shared by all seeds.
    """
    obs = _values(observed, "observed")
    null = np.asarray(null_draws, dtype=np.float64)
    if null.ndim == 1:
        null = np.broadcast_to(null, (obs.size, null.size))
    if null.ndim != 2 or null.shape[0] != obs.size:
        raise ValueError(f"null_draws must be (n_seeds={obs.size}, draws) or (draws,), got {null.shape}")
    tests = [null_test(o, n, alternative=alternative) for o, n in zip(obs, null)]
    ps = [t.p_value for t in tests]
    return SeedsNullTest(obs.size, tuple(float(o) for o in obs), tuple(t.null_mean for t in tests), tuple(ps),
                         combine_pvalues(ps, "max"), combine_pvalues(ps, "fisher"), int(null.shape[1]),
                         1.0 / (1 + null.shape[1]), alternative)


@dataclass(frozen=True)
class Verdict:
    """The rule applied: ``verdict`` and a one-line ``note`` (p-values, seeds, attainable p)."""

    verdict: str
    p_paper: float
    p_opposite: float
    n_seeds: int
    min_attainable_p: float
    note: str

    def __str__(self) -> str:
        return self.note

    def to_dict(self) -> dict:
        return asdict(self)


_OPPOSITE = {"greater": "less", "less": "greater"}


def _verdict(p_paper, p_opposite, n_seeds, min_p, what, alpha) -> Verdict:
    v = verdict(p_paper, p_opposite, alpha=alpha)
    if v == "inconclusive" and min_p >= alpha:
        note = f"inconclusive ({n_seeds} seeds: smallest attainable p = {min_p:.3g})"
    else:
        note = f"{v} ({what}: p = {p_paper:.3g} in the paper's direction, {p_opposite:.3g} against; {n_seeds} seeds)"
    return Verdict(v, p_paper, p_opposite, n_seeds, min_p, note)


def seed_verdict(values, *, paper_direction: str = "greater", alpha: float = ALPHA) -> Verdict:
    """The rule on per-seed values (or paired differences): exact one-sided sign tests both ways."""
    if paper_direction not in _OPPOSITE:
        raise ValueError(f"paper_direction={paper_direction!r} must be 'greater' or 'less'")
    t = seed_test(values, alternative=paper_direction)
    opp = seed_test(values, alternative=_OPPOSITE[paper_direction])
    return _verdict(t.p_value, opp.p_value, t.n_seeds, t.min_attainable_p, "sign test over seeds", alpha)


def null_verdict(observed, null_draws, *, paper_direction: str = "greater", alpha: float = ALPHA) -> Verdict:
    """The rule on per-seed null tests combined by intersection–union (every seed, both ways)."""
    if paper_direction not in _OPPOSITE:
        raise ValueError(f"paper_direction={paper_direction!r} must be 'greater' or 'less'")
    t = seeds_null_test(observed, null_draws, alternative=paper_direction)
    opp = seeds_null_test(observed, null_draws, alternative=_OPPOSITE[paper_direction])
    return _verdict(t.p_value, opp.p_value, t.n_seeds, t.min_attainable_p,
                    f"Monte-Carlo null test in every seed, {t.n_draws} draws", alpha)
