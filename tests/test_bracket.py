import itertools

import _bracket_reference as reference
import numpy as np
import pytest

from ripkit.kron import KroneckerDictionary
from ripkit.rip.bracket import gram_gershgorin, kron_gershgorin, rip_bracket

SHAPES = [(12, 10, 4, 3), (9, 14, 3, 5), (6, 5, 5, 4)]  # the last has a > m: L is rank-deficient


def brute_force(gram, s, c=1.0):
    """Reference δ_s by itertools over every support (independent of the numba kernel)."""
    lam_max, lam_min = -np.inf, np.inf
    for sup in itertools.combinations(range(gram.shape[0]), s):
        ev = np.linalg.eigvalsh(gram[np.ix_(sup, sup)])
        lam_max, lam_min = max(lam_max, ev[-1]), min(lam_min, ev[0])
    return max(lam_max / c - 1, 1 - lam_min / c), lam_max / c - 1, 1 - lam_min / c


def _cases():
    for seed in range(12):
        for shape in SHAPES:
            yield seed, shape


@pytest.mark.parametrize("max_supports", [1, 2_000_000], ids=["no-enumeration", "enumeration"])
def test_every_bound_brackets_the_exact_constant(max_supports):
    hits = total = 0
    for seed, (m, n, a, b) in _cases():
        d = KroneckerDictionary.from_seed(m, n, a, b, seed=seed)
        g_left, g_right = d.gram_factors()
        gram = np.kron(g_right, g_left)
        for s in (1, 2, 3):
            exact, plus, minus = brute_force(gram, s)
            br = rip_bracket(d, s, n_random=30, seed=seed, max_supports=max_supports)
            assert br.lower <= exact + 1e-10 <= br.upper + 2e-10, (seed, m, n, a, b, s)
            for name, cand in br.lower_candidates.items():
                assert cand["delta"] <= exact + 1e-10, name
                sup = cand["support"]
                ev = np.linalg.eigvalsh(gram[np.ix_(sup, sup)])
                assert max(ev[-1] - 1, 1 - ev[0]) >= cand["delta"] - 1e-10, name  # the support attains it
            assert all(v >= plus - 1e-10 for v in br.upper_candidates["plus"].values())
            assert all(v >= minus - 1e-10 for v in br.upper_candidates["minus"].values())
            total += 1
            hits += abs(br.lower - exact) < 1e-9
    if max_supports == 1:
        # the adversarial + rectangle searches alone find the exact δ_s on most seeds
        assert hits >= 0.8 * total, (hits, total)
    else:
        assert hits == total  # C(ab, s) is small here, so Ψ itself is enumerated


def test_cosa_scale_bracket_equals_unit_bracket_up_to_its_factor():
    unit = rip_bracket(KroneckerDictionary.from_seed(20, 16, 5, 4, seed=2, scale="unit"), 3, seed=0)
    cosa = rip_bracket(KroneckerDictionary.from_seed(20, 16, 5, 4, seed=2, scale="cosa"), 3, seed=0)
    assert cosa.isometry_scale == pytest.approx(16.0)
    assert cosa.lower == pytest.approx(unit.lower, rel=1e-9) and cosa.upper == pytest.approx(unit.upper, rel=1e-9)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("s", [1, 2, 3, 5])
def test_kron_gershgorin_equals_dense_gershgorin(seed, s):
    rng = np.random.default_rng(seed)
    left, right = rng.standard_normal((7, 5)), rng.standard_normal((3, 6))
    g_left, g_right = left.T @ left, right @ right.T
    np.testing.assert_allclose(kron_gershgorin(g_left, g_right, s, chunk_entries=50),
                               gram_gershgorin(np.kron(g_right, g_left), s), rtol=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_theorem_41_on_unit_norm_columns(seed):
    """Theorem 4.1 / Duarte–Baraniuk: max(δ_s(L), δ_s(Rᵀ)) ≤ δ_s(Rᵀ⊗L) ≤ (1+δ_s(L))(1+δ_s(Rᵀ)) − 1."""
    d = KroneckerDictionary.from_seed(8, 7, 4, 3, seed=seed).normalized()
    g_left, g_right = d.gram_factors()
    for s in (2, 3):
        dl, dr = brute_force(g_left, min(s, 4))[0], brute_force(g_right, min(s, 3))[0]
        dpsi = brute_force(np.kron(g_right, g_left), s)[0]
        assert max(dl, dr) <= dpsi + 1e-12
        assert dpsi <= (1 + dl) * (1 + dr) - 1 + 1e-12


def test_theorem_41_lower_side_needs_unit_norm_columns():
    """Counterexample recorded in the bracket study: with ‖L_k‖² = 1.1 and ‖R_l‖² = 0.9 every
    column of Ψ has norm² 0.99, so δ_1(Ψ) = 0.01 < δ_1(L) = 0.1."""
    left = np.sqrt(1.1) * np.eye(3)
    right = np.sqrt(0.9) * np.eye(2)
    d = KroneckerDictionary(left, right)
    br = rip_bracket(d, 1, seed=0)
    assert br.upper == pytest.approx(0.01) and br.lower == pytest.approx(0.01)
    assert brute_force(left.T @ left, 1)[0] == pytest.approx(0.1)


def test_bracket_errors():
    d = KroneckerDictionary.from_seed(6, 5, 2, 2, seed=0)
    with pytest.raises(ValueError, match=r"s=5 must be in \[1, ab=4\]"):
        rip_bracket(d, 5)


def test_bracket_seed_types():
    d = KroneckerDictionary.from_seed(10, 9, 3, 3, seed=1)
    a = rip_bracket(d, 2, seed=np.random.default_rng(5), max_supports=1)
    b = rip_bracket(d, 2, seed=np.random.default_rng(5), max_supports=1)
    assert a.lower == b.lower and a.lower_support == b.lower_support
    with pytest.raises(ValueError, match="seed=-1 must be >= 0"):
        rip_bracket(d, 2, seed=-1)


# --- identity with the implementation before issue 16 (tests/_bracket_reference.py) -------------------
def _gram_pair(seed, rounded):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(1, 12, 2)
    left, right = rng.standard_normal((rng.integers(1, 15), a)), rng.standard_normal((b, rng.integers(1, 15)))
    if rounded:  # many exact ties among |G| entries
        left, right = np.round(left, 1), np.round(right, 1)
    return left.T @ left, right @ right.T


@pytest.mark.parametrize("rounded", [False, True], ids=["generic", "ties"])
def test_kron_gershgorin_bit_identical_to_before(rounded):
    for seed in range(60):
        g_left, g_right = _gram_pair(seed, rounded)
        for s in (1, 2, 3, 5, 8, 20):
            assert kron_gershgorin(g_left, g_right, s) == reference.kron_gershgorin(g_left, g_right, s, chunk_entries=64)


@pytest.mark.parametrize("shape", [(512, 256, 32, 8), (40, 30, 12, 6), (12, 10, 4, 3)])
@pytest.mark.parametrize("seed", range(4))
def test_rip_bracket_identical_to_before(shape, seed):
    """Same pre-issue-16 upper candidates and lower candidates; the new upper candidates (group,
    coupling) can only tighten the upper bound; the rectangles built from the coupling bound's
    extra exact enumerations, and the search on Ψ with the over-full rectangles' starts added
    (``ripkit.rip.grids``), can only raise the lower bound."""
    d = KroneckerDictionary.from_seed(*shape, seed=seed)
    for s in (2, 5, 9):
        new = rip_bracket(d, s, n_random=50, seed=seed).to_dict()
        old = reference.rip_bracket(d, s, n_random=50, seed=seed).to_dict()
        for rec in (new, old):
            rec.pop("seconds")
            for side in ("left", "right"):
                rec["factor_exact"][side].pop("supports_per_second")
        added = {side: [new["upper_candidates"][side].pop(k) for k in ("group", "coupling")
                        if k in new["upper_candidates"][side]] for side in ("plus", "minus")}
        new_upper, old_upper = new.pop("upper"), old.pop("upper")
        new_by, old_by = new.pop("upper_by"), old.pop("upper_by")
        lower_new = {k: new.pop(k) for k in ("lower", "lower_by", "lower_support", "delta", "lower_candidates")}
        lower_old = {k: old.pop(k) for k in ("lower", "lower_by", "lower_support", "delta", "lower_candidates")}
        assert new == old, (shape, seed, s)
        for name, cand in lower_old["lower_candidates"].items():
            if name.startswith(("rectangle", "adversarial")):
                assert lower_new["lower_candidates"][name]["delta"] >= cand["delta"]
            else:
                assert lower_new["lower_candidates"][name] == cand
        assert lower_new["lower"] >= lower_old["lower"]
        if not lower_new["lower_by"].startswith(("rectangle", "adversarial")):
            assert [lower_new[k] for k in ("lower", "lower_by", "lower_support")] == \
                [lower_old[k] for k in ("lower", "lower_by", "lower_support")]
        assert new_upper <= old_upper
        if not new_by.startswith(("group", "coupling")):
            assert (new_upper, new_by) == (old_upper, old_by)
        else:
            assert new_upper == pytest.approx(max(min(*added["plus"], *old["upper_candidates"]["plus"].values()),
                                                  min(*added["minus"], *old["upper_candidates"]["minus"].values())),
                                              rel=1e-11)


@pytest.mark.parametrize("seed", range(3))
def test_torch_path_gives_the_same_bracket(seed):
    """device='torch-cpu' runs the torch code (what CUDA runs) on the CPU: same bracket as numba."""
    d = KroneckerDictionary.from_seed(40, 30, 12, 6, seed=seed)
    for s in (2, 4):
        ref = rip_bracket(d, s, n_random=50, seed=seed, max_supports=50_000).to_dict()
        res = rip_bracket(d, s, n_random=50, seed=seed, max_supports=50_000, device="torch-cpu").to_dict()
        for rec in (ref, res):
            rec.pop("seconds")
            for side in ("left", "right"):
                rec["factor_exact"][side].pop("supports_per_second")
        assert res == ref


@pytest.mark.parametrize("seed", range(4))
def test_branch_and_bound_brackets_contain_the_exact_delta(seed, monkeypatch):
    """With a tiny default cap and no extra enumeration budget, the coupling bound's Λ(t) come from
    branch and bound (ripkit.rip.branch_bound): the bracket still contains δ_s, enumerated on Ψ itself."""
    import ripkit.rip.bracket as bracket_module
    from ripkit.rip.exhaustive import exact_rip

    monkeypatch.setattr(bracket_module, "MAX_SUPPORTS", 100)
    monkeypatch.setattr(bracket_module, "COUPLING_SUPPORTS", 0)
    for s in (3, 4, 5):
        d = KroneckerDictionary.from_seed(40, 30, 12, 6, seed=seed)
        br = rip_bracket(d, s, n_random=50, seed=seed)
        memo_keys = d.__dict__["_memo"]
        assert any(k[1] == "branch_bound_max" and memo_keys[k] is not None for k in memo_keys)  # it ran
        ex = exact_rip(np.kron(*reversed(d.gram_factors())), s, max_supports=10**8)
        assert br.lower <= ex.delta + 1e-10 <= br.upper + 2e-10, (seed, s)
        monkeypatch.setattr(bracket_module, "BRANCH_BOUND_SUPPORTS", 0)
        without = rip_bracket(KroneckerDictionary.from_seed(40, 30, 12, 6, seed=seed), s, n_random=50, seed=seed)
        monkeypatch.setattr(bracket_module, "BRANCH_BOUND_SUPPORTS", 10**9)
        assert br.upper <= without.upper
