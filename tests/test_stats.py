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


# ---- paired tests, per-seed null tests and the verdict notes ------------------------------------
from ripkit.stats import null_verdict, paired_test, seed_verdict, seeds_null_test  # noqa: E402


def test_paired_test_is_the_seed_test_of_differences():
    a, b = np.array([0.80, 0.75, 0.78, 0.79, 0.81]), np.array([0.76, 0.74, 0.77, 0.70, 0.80])
    t = paired_test(a, b)
    assert t.p_sign == pytest.approx(1 / 32) and t.n_positive == 5
    assert t.mean == pytest.approx(np.mean(a - b))
    with pytest.raises(ValueError, match="must pair seed by seed"):
        paired_test(a, b[:3])


def test_seeds_null_test_intersection_union_and_fisher():
    null = np.arange(99.0)
    t = seeds_null_test([98.5, 97.5, 120.0], null)
    # per seed (1 + #null ≥ obs)/100: 1/100, 2/100, 1/100; the claim "in every seed" gets the largest
    assert t.p_per_seed == pytest.approx((0.01, 0.02, 0.01))
    assert t.p_value == pytest.approx(0.02)
    assert t.p_fisher == pytest.approx(sps.combine_pvalues([0.01, 0.02, 0.01]).pvalue)
    assert t.min_attainable_p == pytest.approx(0.01)
    per_seed = seeds_null_test([1.0, 2.0], np.array([[0.0, 0.5, 3.0], [0.0, 0.5, 3.0]]))
    assert per_seed.p_per_seed == pytest.approx((0.5, 0.5))
    with pytest.raises(ValueError, match="null_draws must be"):
        seeds_null_test([1.0, 2.0], np.zeros((3, 4)))


def test_seeds_null_test_is_valid_under_the_null():
    # observed drawn from the null itself: P(p_max < 0.05) must be at most 0.05 (here ~0.05³)
    rng = np.random.default_rng(0)
    hits = sum(seeds_null_test(rng.standard_normal(3), rng.standard_normal((3, 199))).p_value < 0.05
               for _ in range(300))
    assert hits / 300 <= 0.05


def test_verdict_notes_say_when_the_design_cannot_reach_alpha():
    v = seed_verdict([0.1, 0.2, 0.3])
    assert v.verdict == "inconclusive"
    assert str(v) == "inconclusive (3 seeds: smallest attainable p = 0.125)"
    v5 = seed_verdict([0.1, 0.2, 0.3, 0.4, 0.5])
    assert v5.verdict == "agrees" and v5.p_paper == pytest.approx(1 / 32)
    assert seed_verdict([-0.1, -0.2, -0.3, -0.4, -0.5]).verdict == "disagrees"
    null = np.arange(199.0)
    assert null_verdict([250.0, 300.0, 199.5], null).verdict == "agrees"
    assert null_verdict([-1.0, -2.0, -3.0], null).verdict == "disagrees"
    assert null_verdict([250.0, 100.0, 300.0], null).verdict == "inconclusive"
    with pytest.raises(ValueError, match="paper_direction='up'"):
        seed_verdict([1.0], paper_direction="up")
