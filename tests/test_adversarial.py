import itertools

import _adversarial_reference as reference
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


# --- identity with the implementation before issue 16 (tests/_adversarial_reference.py) -------------


def _kron_case(seed, m, n, a, b):
    rng = np.random.default_rng(seed)
    left, right = rng.standard_normal((m, a)) / np.sqrt(m), rng.standard_normal((b, n)) / np.sqrt(n)
    return left.T @ left, right @ right.T


@pytest.mark.parametrize("side", ["max", "min"])
@pytest.mark.parametrize("seed", range(20))
def test_same_results_as_before_on_kron_grams(side, seed):
    g_left, g_right = _kron_case(seed, 40, 30, 12, 6)
    for s in (1, 2, 4, 7):
        new = adversarial_search(KronGram(g_left, g_right), s, side, seed=seed, restarts=2,
                                 extra_starts=[[0, 5, 9]])
        old = reference.adversarial_search(reference.KronGram(g_left, g_right), s, side, seed=seed, restarts=2,
                                           extra_starts=[[0, 5, 9]])
        assert (new.eigenvalue, new.support, new.restarts) == (old.eigenvalue, old.support, old.restarts)


@pytest.mark.parametrize("side", ["max", "min"])
@pytest.mark.parametrize("seed", range(20))
def test_same_results_as_before_on_dense_grams(side, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((50, 30)) / np.sqrt(50)
    gram = x.T @ x
    for s in (1, 3, 6):
        new = adversarial_search(DenseGram(gram), s, side, seed=seed)
        old = reference.adversarial_search(reference.DenseGram(gram), s, side, seed=seed)
        assert (new.eigenvalue, new.support, new.restarts) == (old.eigenvalue, old.support, old.restarts)


@pytest.mark.parametrize("side", ["max", "min"])
def test_greedy_and_swap_steps_match_before(side):
    g_left, g_right = _kron_case(99, 60, 50, 16, 8)
    new_g, old_g = KronGram(g_left, g_right), reference.KronGram(g_left, g_right)
    for start in ([0], [3, 70], [127]):
        sup = greedy_support(new_g, 9, side, start)
        assert sup == reference.greedy_support(old_g, 9, side, start)
        assert swap_search(new_g, sup, side) == reference.swap_search(old_g, sup, side)


def test_kron_gram_blocks_and_couplings_against_dense():
    g_left, g_right = _factors(3)
    kg, dense = KronGram(g_left, g_right), np.kron(g_right, g_left)
    sup = [1, 4, 10]
    np.testing.assert_array_equal(kg.block(sup, [0, 2]), dense[np.ix_(sup, [0, 2])])
    vecs = np.random.default_rng(0).standard_normal((3, 2))
    np.testing.assert_allclose(kg.couplings(sup, vecs), vecs.T @ dense[sup], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(DenseGram(dense).couplings(sup, vecs), vecs.T @ dense[sup], rtol=1e-13)


@pytest.mark.parametrize("side", ["max", "min"])
@pytest.mark.parametrize("seed", range(6))
def test_torch_scoring_on_cpu_gives_the_same_search(side, seed):
    from ripkit.rip.torch_path import TorchKronGram

    g_left, g_right = _kron_case(seed, 40, 30, 12, 6)
    for s in (1, 3, 6):
        ref = adversarial_search(KronGram(g_left, g_right), s, side, seed=seed, extra_starts=[[2, 7]])
        res = adversarial_search(TorchKronGram(g_left, g_right, "cpu"), s, side, seed=seed, extra_starts=[[2, 7]])
        assert (res.eigenvalue, res.support, res.restarts) == (ref.eigenvalue, ref.support, ref.restarts)


# --- remembered search paths (``paths``) --------------------------------------------------------


@pytest.mark.parametrize("side", ["max", "min"])
@pytest.mark.parametrize("seed", range(6))
def test_shared_paths_give_the_results_of_fresh_searches(side, seed):
    g_left, g_right = _kron_case(seed, 40, 30, 12, 6)
    gram = g_left  # a factor: its searches at several sizes share one dict, as in rip_bracket
    paths = {}
    for s in (2, 4, 7, 4, 2):  # repeated sizes: their deterministic starts are answered from ``paths``
        shared = adversarial_search(DenseGram(gram), s, side, seed=seed + s, paths=paths)
        fresh = reference.adversarial_search(reference.DenseGram(gram), s, side, seed=seed + s)
        assert (shared.eigenvalue, shared.support, shared.restarts) == (fresh.eigenvalue, fresh.support, fresh.restarts)
    assert any(key[0] == "swap" for key in paths) and any(key[0] == "greedy" for key in paths)


def test_a_remembered_path_is_used_only_with_enough_rounds_left():
    g_left, g_right = _kron_case(99, 60, 50, 16, 8)
    kg = KronGram(g_left, g_right)
    sup = greedy_support(kg, 9, "max", [0])
    full = swap_search(kg, sup, "max")
    paths = {}
    assert swap_search(kg, sup, "max", paths=paths) == full
    needed = paths[("swap", "max", 3, tuple(sup), float(np.linalg.eigh(kg.block(sup, sup))[0][-1]))][2]
    assert needed >= 2  # this start takes several rounds: a cap below that must stop early, as before
    for cap in range(1, needed + 1):
        capped = swap_search(kg, sup, "max", max_rounds=cap, paths=paths)
        assert capped == reference.swap_search(reference.KronGram(g_left, g_right), sup, "max", max_rounds=cap)
