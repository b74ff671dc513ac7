"""ripkit.stats against scipy and exact enumeration."""
import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats as sps

from ripkit.stats import bootstrap_ci, combine_pvalues, null_test, seed_test, verdict


def test_sign_test_matches_enumeration():
    # five seeds all positive: P(5 of 5 | p = 1/2) = 1/32, the smallest one-sided p with five seeds
    t = seed_test([0.3, 0.1, 0.2, 0.05, 0.4], alternative="greater")
    assert t.p_sign == pytest.approx(1 / 32)
    assert t.min_attainable_p == pytest.approx(1 / 32)
    assert t.p_wilcoxon == pytest.approx(1 / 32)
    # three seeds can never reach 0.05 one-sided: the test says so
    t3 = seed_test([1.0, 2.0, 3.0])
    assert t3.p_sign == pytest.approx(1 / 8) and t3.min_attainable_p == pytest.approx(1 / 8)
    assert verdict(t3.p_value) == "inconclusive"


def test_wilcoxon_matches_exact_enumeration():
    x = np.array([0.4, -0.1, 0.3, 0.25, 0.6, -0.05])
    ranks = sps.rankdata(np.abs(x))
    observed = ranks[x > 0].sum()
    sums = [sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product([0, 1], repeat=len(x))]
    exact = np.mean(np.array(sums) >= observed)
    assert seed_test(x).p_wilcoxon == pytest.approx(exact)


def test_null_test_monte_carlo_p_value():
    null = np.arange(99.0)
    t = null_test(97.5, null, alternative="greater")
    assert t.p_value == pytest.approx((1 + 1) / 100)  # one draw (98) at least as large
    assert null_test(-1.0, null, alternative="less").p_value == pytest.approx(1 / 100)
    assert null_test(50.0, null, alternative="two-sided").p_value == pytest.approx(1.0)
    assert t.null_mean == pytest.approx(49.0)


def test_combine_pvalues():
    p = [0.01, 0.2, 0.04]
    assert combine_pvalues(p, "fisher") == pytest.approx(sps.combine_pvalues(p, method="fisher").pvalue)
    assert combine_pvalues(p, "max") == 0.2
    with pytest.raises(ValueError, match="method='mean' must be one of"):
        combine_pvalues(p, "mean")


def test_bootstrap_ci_covers_the_mean_and_is_seeded():
    x = np.random.default_rng(0).normal(1.0, 1.0, 40)
    lo, hi = bootstrap_ci(x, seed=3)
    assert lo < x.mean() < hi
    assert (lo, hi) == bootstrap_ci(x, seed=3)
    assert_allclose(bootstrap_ci([1.0, 1.0]), (1.0, 1.0))


def test_verdict_rule():
    assert verdict(0.01) == "agrees"
    assert verdict(0.3, 0.01) == "disagrees"
    assert verdict(0.3, 0.2) == "inconclusive"
    with pytest.raises(ValueError, match="p_paper_direction=1.5 must be in"):
        verdict(1.5)


@pytest.mark.parametrize("bad, message", [([], "values must not be empty"), ([1.0, np.nan], "NaN")])
def test_bad_input(bad, message):
    with pytest.raises(ValueError, match=message):
        seed_test(bad)
