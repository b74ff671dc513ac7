"""Λ(t) by branch and bound (ripkit.rip.branch_bound) against brute force and exhaustive enumeration."""
import itertools
import math

import numpy as np
import pytest

from ripkit.rip.branch_bound import branch_bound_max, prefix_count
from ripkit.rip.exhaustive import exact_rip


def _near_isometric_gram(seed, d, rows):
    """ΦᵀΦ/rows for a tall Gaussian Φ: λ_max over small supports barely varies, so the bound bites."""
    x = np.random.default_rng(seed).standard_normal((rows, d))
    return x.T @ x / rows


def _upper_bound(gram, prefix, r=2):
    """UB(P) of the module docstring, written out with LAPACK (an independent reference)."""
    d = gram.shape[0]
    cand = range(max(prefix) + 1, d)
    alpha = np.linalg.eigvalsh(gram[np.ix_(prefix, prefix)])[-1]
    beta2 = sum(sorted((sum(gram[p, j] ** 2 for p in prefix) for j in cand), reverse=True)[:r])
    gamma = max(np.linalg.eigvalsh(gram[np.ix_(pair, pair)])[-1] for pair in itertools.combinations(cand, r))
    return 0.5 * (alpha + gamma) + math.sqrt(0.25 * (alpha - gamma) ** 2 + beta2)


@pytest.mark.parametrize("seed", range(4))
def test_the_prefix_bound_holds_for_every_completion(seed):
    gram = _near_isometric_gram(seed, 11, 30)
    for prefix in itertools.combinations(range(9), 2):
        ub = _upper_bound(gram, list(prefix))
        for pair in itertools.combinations(range(prefix[-1] + 1, 11), 2):
            sup = list(prefix) + list(pair)
            assert np.linalg.eigvalsh(gram[np.ix_(sup, sup)])[-1] <= ub * (1 + 1e-12)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("t", [3, 4, 5, 6])
def test_equals_exhaustive_enumeration_with_any_attained_incumbent(seed, t):
    gram = _near_isometric_gram(seed, 26, 400)
    ex = exact_rip(gram, t, max_supports=10**7)
    weak = float(np.linalg.eigvalsh(gram[:t, :t])[-1])  # the first support's: attained, usually far below
    for incumbent in (ex.lam_max, weak):
        res = branch_bound_max(gram, t, incumbent, max_supports=10**7)
        assert res.lam_max == ex.lam_max and res.support_max == ex.support_max
        assert res.n_prefixes == prefix_count(26, t) == math.comb(24, t - 2)
        assert res.n_enumerated <= res.n_supports == math.comb(26, t)
    assert res.n_kept <= res.n_prefixes


def test_prunes_most_of_a_near_isometric_gram():
    gram = _near_isometric_gram(0, 60, 2000)
    ex = exact_rip(gram, 5, max_supports=10**7)
    res = branch_bound_max(gram, 5, ex.lam_max, max_supports=10**7)
    assert res.lam_max == ex.lam_max and res.support_max == ex.support_max
    assert res.n_enumerated < 0.2 * res.n_supports  # measured: a few per cent


def test_exact_ties_resolve_to_the_first_support():
    gram = np.eye(9)  # every support ties at λ_max = 1
    res = branch_bound_max(gram, 4, 1.0, max_supports=10**6)
    assert res.lam_max == 1.0 and res.support_max == (0, 1, 2, 3)


def test_refuses_what_it_cannot_do():
    gram = _near_isometric_gram(1, 20, 200)
    with pytest.raises(ValueError, match="symmetric square"):
        branch_bound_max(gram[:, :5], 4, 1.0, max_supports=10**6)
    asym = gram.copy()
    asym[0, 1] += 1e-3
    with pytest.raises(ValueError, match="must be symmetric"):
        branch_bound_max(asym, 4, 1.0, max_supports=10**6)
    with pytest.raises(ValueError, match="are too large"):
        branch_bound_max(np.diag([1.5e308] + [1.0] * 19), 4, 1.0, max_supports=10**6)
    with pytest.raises(ValueError, match="t=2 must be in"):
        branch_bound_max(gram, 2, 1.0, max_supports=10**6)
    with pytest.raises(ValueError, match="must be attained"):
        branch_bound_max(gram, 4, 10.0, max_supports=10**6)  # above every support: pruning would be unsound
    with pytest.raises(ValueError, match="finite"):
        branch_bound_max(gram, 4, np.nan, max_supports=10**6)
    weak = float(np.linalg.eigvalsh(gram[:4, :4])[-1])
    assert branch_bound_max(gram, 4, weak, max_supports=10) is None  # too many supports left
    assert branch_bound_max(gram, 4, weak, max_supports=10**6, max_prefixes=10) is None
