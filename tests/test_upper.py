"""Certified upper bounds of ripkit.rip.upper against brute force."""
import itertools

import numpy as np
import pytest

from ripkit.rip.upper import factor_profile, gershgorin_profile, gram_gershgorin, group_bound
from _brute import exact_profile, small_kron


@pytest.mark.parametrize("d", [1, 2, 3, 7])
def test_gershgorin_profile_equals_gram_gershgorin_at_every_size(d):
    x = np.random.default_rng(d).standard_normal((5, d))
    hi, lo = gershgorin_profile(x.T @ x, 6)
    for t in range(1, min(6, d) + 1):
        np.testing.assert_allclose((hi[t], lo[t]), gram_gershgorin(x.T @ x, t), rtol=1e-13)


def test_factor_profile_is_monotone_and_brackets_the_exact_constants():
    x = np.random.default_rng(1).standard_normal((6, 9))
    gram = x.T @ x
    hi, lo = factor_profile(gram, 5, {}, np.linalg.eigvalsh(gram), max_supports=1)  # bounds only
    ex_hi, ex_lo = exact_profile(gram, 5)
    assert np.all(np.diff(hi[1:]) >= 0) and np.all(np.diff(lo[1:]) <= 0)
    assert np.all(hi[1:] >= ex_hi[1:] - 1e-12) and np.all(lo[1:] <= ex_lo[1:] + 1e-12)
    hi, lo = factor_profile(gram, 5, {}, np.linalg.eigvalsh(gram), max_supports=10**6)  # exact
    np.testing.assert_allclose(hi[1:], ex_hi[1:], rtol=1e-12)
    np.testing.assert_allclose(lo[1:], ex_lo[1:], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(10))
def test_group_bound_holds_for_every_support(seed):
    """The per-support inequality λ_max(G_S) ≤ min(Λ_L(g_R)Λ_R(|J|), Λ_L(|I|)Λ_R(g_L)) (and its λ_min twin)
    on every support, and the shape-maximised bound above the exact λ⁺ (below λ⁻)."""
    m, n, a, b = 3 + seed % 4, 4 + seed % 3, 4, 3
    d, g_left, g_right, gram = small_kron(seed, m, n, a, b)
    for s in (2, 3, 4, 5):
        hl, ll = exact_profile(g_left, s)
        hr, lr = exact_profile(g_right, s)
        lam_plus, lam_minus = -np.inf, np.inf
        for sup in itertools.combinations(range(a * b), s):
            ks, ls = [j % a for j in sup], [j // a for j in sup]
            p, q = len(set(ks)), len(set(ls))
            g_r, g_l = max(ls.count(l) for l in set(ls)), max(ks.count(k) for k in set(ks))  # largest R-/L-group
            ev = np.linalg.eigvalsh(gram[np.ix_(sup, sup)])
            assert ev[-1] <= min(hl[g_r] * hr[q], hl[p] * hr[g_l]) * (1 + 1e-12) + 1e-12
            assert ev[0] >= max(ll[g_r] * lr[q], ll[p] * lr[g_l]) * (1 - 1e-12) - 1e-12
            lam_plus, lam_minus = max(lam_plus, ev[-1]), min(lam_minus, ev[0])
        up, dn = group_bound(hl, ll, hr, lr, s)
        assert up >= lam_plus - 1e-12 and dn <= lam_minus + 1e-12
        # with bounded (not exact) factor constants it stays a bound
        ev_l, ev_r = d.gram_eigenvalues()
        up2, dn2 = group_bound(*factor_profile(g_left, s, {}, ev_l, max_supports=1),
                               *factor_profile(g_right, s, {}, ev_r, max_supports=1), s)
        assert up2 >= lam_plus - 1e-12 and dn2 <= lam_minus + 1e-12


def test_group_bound_is_exact_on_diagonal_factors_and_never_above_kron_product():
    # diagonal factors: λ_max(G_S) is the largest product d_L(k)·d_R(l) on S and the group bound is exact;
    # on random factors it is never above the Kronecker-product bound built from the same constants
    g_left, g_right = np.diag([1.0, 2.0, 3.0]), np.diag([1.0, 1.5])
    hl, ll = exact_profile(g_left, 3)
    hr, lr = exact_profile(g_right, 3)
    assert group_bound(hl, ll, hr, lr, 3) == pytest.approx((4.5, 1.0))
    for seed in range(20):
        rng = np.random.default_rng(seed)
        x, y = rng.standard_normal((5, 4)), rng.standard_normal((6, 3))
        hl, ll = exact_profile(x.T @ x, 3)
        hr, lr = exact_profile(y.T @ y, 3)
        up, dn = group_bound(hl, ll, hr, lr, 3)
        assert up <= hl[3] * hr[3] * (1 + 1e-15) and dn >= ll[3] * lr[3] * (1 - 1e-15)


def test_abs_off_diagonal_is_the_dense_formula_bit_for_bit():
    from ripkit.rip.upper import _abs_off_diagonal

    rng = np.random.default_rng(4)
    for d in (1, 2, 7, 40):
        x = rng.standard_normal((d + 3, d))
        gram = x.T @ x
        np.testing.assert_array_equal(_abs_off_diagonal(gram), np.abs(gram - np.diag(np.diag(gram))))


def test_factor_profile_takes_the_largest_eigenvalues_from_branch_and_bound():
    x = np.random.default_rng(4).standard_normal((300, 22))
    gram = x.T @ x / 300
    ev = np.linalg.eigvalsh(gram)
    bounds_hi, bounds_lo = factor_profile(gram, 5, {}, ev, max_supports=1)
    hi, lo = factor_profile(gram, 5, {}, ev, max_supports=1, pruned_supports=10**6)
    ex_hi, ex_lo = exact_profile(gram, 5)
    np.testing.assert_allclose(hi[3:], ex_hi[3:], rtol=1e-12)  # t ≥ 3: exact Λ(t)
    assert ex_hi[2] <= hi[2] <= hi[3] and np.all(hi[1:] <= bounds_hi[1:])  # t = 2: Λ(2) ≤ Λ(3), a bound
    np.testing.assert_array_equal(lo, bounds_lo)  # the λ side keeps its bounds
    assert np.all(lo[1:] <= ex_lo[1:] + 1e-12)
