import itertools

import numpy as np
import pytest

from ripkit.rip.adversarial import DenseGram, KronGram, adversarial_search, greedy_support, swap_search


def _factors(seed, m=9, n=8, a=4, b=3):
    rng = np.random.default_rng(seed)
    left, right = rng.standard_normal((m, a)) / np.sqrt(m), rng.standard_normal((b, n)) / np.sqrt(n)
    return left.T @ left, right @ right.T


def test_kron_gram_rows_match_numpy_kron():
    g_left, g_right = _factors(0)
    kg, dense = KronGram(g_left, g_right), np.kron(g_right, g_left)
    np.testing.assert_allclose(kg.rows([0, 5, 11]), dense[[0, 5, 11]], rtol=1e-14)
    np.testing.assert_allclose(kg.diag(), np.diag(dense), rtol=1e-14)


@pytest.mark.parametrize("side", ["max", "min"])
@pytest.mark.parametrize("seed", range(5))
def test_search_finds_brute_force_optimum_on_small_cases(side, seed):
    g_left, g_right = _factors(seed)
    dense = np.kron(g_right, g_left)
    s = 3
    best = (max if side == "max" else min)(
        (lambda ev: ev[-1] if side == "max" else ev[0])(np.linalg.eigvalsh(dense[np.ix_(c, c)]))
        for c in itertools.combinations(range(12), s))
    res = adversarial_search(KronGram(g_left, g_right), s, side, seed=seed, restarts=4)
    ev = np.linalg.eigvalsh(dense[np.ix_(res.support, res.support)])
    assert (ev[-1] if side == "max" else ev[0]) == pytest.approx(res.eigenvalue, rel=1e-12)  # attained
    if side == "max":
        assert res.eigenvalue <= best + 1e-12
    else:
        assert res.eigenvalue >= best - 1e-12
    assert res.eigenvalue == pytest.approx(best, rel=1e-9)


def test_swap_never_worsens_greedy():
    g_left, g_right = _factors(7, m=20, n=18, a=8, b=6)
    kg = KronGram(g_left, g_right)
    dense = np.kron(g_right, g_left)
    sup = greedy_support(kg, 5, "max", [0])
    before = np.linalg.eigvalsh(dense[np.ix_(sup, sup)])[-1]
    sup2, after = swap_search(kg, sup, "max")
    assert after >= before - 1e-12 and len(set(sup2)) == 5


def test_budget_cuts_and_reports():
    gram = DenseGram(np.eye(50) + 0.01)
    res = adversarial_search(gram, 4, "max", restarts=8, budget_seconds=1e-9)
    assert res.budget_exhausted and res.restarts >= 1


def test_side_error():
    with pytest.raises(ValueError, match="side='up' must be 'max' or 'min'"):
        adversarial_search(DenseGram(np.eye(3)), 2, "up")
