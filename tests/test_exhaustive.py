"""Exact RIP by exhaustive enumeration, checked against independent references."""
import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

import ripkit.rip._enumerate as enumerate_kernels
import ripkit.rip.exhaustive as exhaustive
from ripkit.rip.exhaustive import (
    DEFAULT_MAX_SUPPORTS,
    ExactRip,
    enumeration_feasible,
    exact_rip,
    exact_rip_matrix,
    n_supports,
)

ATOL = 1e-12


def brute_force(gram, s):
    """Pure-Python reference: every support of size s, LAPACK eigvalsh on each block."""
    d = gram.shape[0]
    lam_max, lam_min, worst = -np.inf, np.inf, 0.0
    for support in itertools.combinations(range(d), s):
        w = np.linalg.eigvalsh(gram[np.ix_(support, support)])
        lam_max, lam_min = max(lam_max, w[-1]), min(lam_min, w[0])
        worst = max(worst, np.max(np.abs(w - 1.0)))  # eq. 18: max |‖Φα‖²/‖α‖² − 1|
    return lam_max, lam_min, worst


def random_phi(m, d, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, d)) / math.sqrt(m)


def block_extremes(gram, support):
    w = np.linalg.eigvalsh(gram[np.ix_(support, support)])
    return w[0], w[-1]


# --- agreement with the brute force ------------------------------------------------


@pytest.mark.parametrize(
    "m, d, seed",
    [(6, 9, 0), (12, 10, 1), (4, 7, 2), (20, 8, 3), (5, 5, 4), (3, 11, 5)],
    ids=["wide", "tall", "very-wide", "tall-short", "square", "rank-3"],
)
@pytest.mark.parametrize("s", [1, 2, 3, 4, 5])
def test_matches_brute_force(m, d, seed, s):
    phi = random_phi(m, d, seed)
    gram = phi.T @ phi
    lam_max, lam_min, worst = brute_force(gram, s)
    res = exact_rip(gram, s)
    assert_allclose(res.lam_max, lam_max, rtol=0, atol=ATOL)
    assert_allclose(res.lam_min, lam_min, rtol=0, atol=ATOL)
    assert_allclose(res.delta, worst, rtol=0, atol=ATOL)
    assert_allclose(res.delta_upper_side, lam_max - 1.0, rtol=0, atol=ATOL)
    assert_allclose(res.delta_lower_side, 1.0 - lam_min, rtol=0, atol=ATOL)
    assert res.n_supports == math.comb(d, s)


@pytest.mark.parametrize("s", [1, 2, 3, 4, 5, 7])
def test_full_support_d_equals_s(s):
    phi = random_phi(s + 2, s, seed=10 + s)
    gram = phi.T @ phi
    res = exact_rip(gram, s)
    w = np.linalg.eigvalsh(gram)
    assert res.n_supports == 1
    assert res.support_max == res.support_min == tuple(range(s))
    assert_allclose([res.lam_min, res.lam_max], [w[0], w[-1]], rtol=0, atol=ATOL)


@pytest.mark.parametrize("s", [6, 7, 8])
def test_matches_brute_force_jacobi_and_lapack_branches(s):
    # s = 6 is the last Jacobi size, s >= 7 goes through LAPACK inside numba
    phi = random_phi(9, 10, seed=20 + s)
    gram = phi.T @ phi
    lam_max, lam_min, _ = brute_force(gram, s)
    res = exact_rip(gram, s)
    assert_allclose([res.lam_min, res.lam_max], [lam_min, lam_max], rtol=0, atol=ATOL)


def test_matrix_convenience_equals_gram_route():
    phi = random_phi(7, 9, seed=30)
    a = exact_rip_matrix(phi, 3)
    b = exact_rip(phi.T @ phi, 3)
    assert_allclose([a.lam_min, a.lam_max, a.delta], [b.lam_min, b.lam_max, b.delta], atol=1e-14)
    assert (a.support_max, a.support_min) == (b.support_max, b.support_min)


# --- known values ----------------------------------------------------------------------


@pytest.mark.parametrize("s", [1, 2, 3, 4])
def test_orthonormal_columns_have_delta_zero(s):
    q, _ = np.linalg.qr(np.random.default_rng(40).standard_normal((12, 8)))
    res = exact_rip_matrix(q, s)
    assert_allclose([res.delta, res.lam_max, res.lam_min], [0.0, 1.0, 1.0], rtol=0, atol=1e-13)


def test_two_identical_normalized_columns_give_delta_2_equal_one():
    q, _ = np.linalg.qr(np.random.default_rng(41).standard_normal((10, 5)))
    phi = np.column_stack([q[:, 0], q[:, 1], q[:, 2], q[:, 1], q[:, 3]])  # columns 1 and 3 equal
    res = exact_rip_matrix(phi, 2)
    assert_allclose(res.lam_min, 0.0, rtol=0, atol=1e-14)
    assert_allclose(res.lam_max, 2.0, rtol=0, atol=1e-14)
    assert_allclose(res.delta, 1.0, rtol=0, atol=1e-14)
    assert res.support_min == (1, 3)
    assert res.support_max == (1, 3)


def test_isometry_scale_gives_delta_of_rescaled_matrix():
    phi = random_phi(6, 8, seed=50)
    c = 3.7
    scaled = exact_rip_matrix(math.sqrt(c) * phi, 3, isometry_scale=c)
    plain = exact_rip_matrix(phi, 3)
    assert_allclose(
        [scaled.delta, scaled.delta_upper_side, scaled.delta_lower_side],
        [plain.delta, plain.delta_upper_side, plain.delta_lower_side],
        rtol=0,
        atol=1e-13,
    )
    assert_allclose(scaled.lam_max, c * plain.lam_max, rtol=1e-13)  # raw eigenvalues reported
    assert scaled.isometry_scale == c


@pytest.mark.parametrize("magnitude", [1e-200, 1e250])
def test_extreme_magnitudes_are_scale_invariant(magnitude):
    phi = random_phi(6, 9, seed=60)
    gram = phi.T @ phi
    ref = exact_rip(gram, 4)
    res = exact_rip(magnitude * gram, 4)
    expected = [magnitude * ref.lam_min, magnitude * ref.lam_max]
    assert_allclose([res.lam_min, res.lam_max], expected, rtol=1e-12)


# --- structure: monotonicity and attaining supports -------------------------------------


def test_monotone_in_s_and_size_at_most_s_equals_size_s():
    gram = (lambda p: p.T @ p)(random_phi(5, 9, seed=70))
    results = [exact_rip(gram, s) for s in range(1, 10)]
    lam_max = [r.lam_max for r in results]
    lam_min = [r.lam_min for r in results]
    assert np.all(np.diff(lam_max) >= -ATOL)
    assert np.all(np.diff(lam_min) <= ATOL)
    assert np.all(np.diff([r.delta for r in results]) >= -ATOL)
    # brute force over all supports of size <= s equals the size-s enumeration
    for s in (2, 3, 4):
        refs = [brute_force(gram, k) for k in range(1, s + 1)]
        assert_allclose(max(r[0] for r in refs), results[s - 1].lam_max, rtol=0, atol=ATOL)
        assert_allclose(min(r[1] for r in refs), results[s - 1].lam_min, rtol=0, atol=ATOL)


@pytest.mark.parametrize("s", [1, 2, 3, 5, 8])
def test_attaining_supports_attain(s):
    gram = (lambda p: p.T @ p)(random_phi(7, 11, seed=80 + s))
    res = exact_rip(gram, s)
    for support in (res.support_max, res.support_min):
        assert len(support) == s and list(support) == sorted(set(support))
        assert all(isinstance(i, int) and 0 <= i < 11 for i in support)
    assert_allclose(block_extremes(gram, res.support_max)[1], res.lam_max, rtol=0, atol=ATOL)
    assert_allclose(block_extremes(gram, res.support_min)[0], res.lam_min, rtol=0, atol=ATOL)


def test_ties_resolve_to_lexicographically_first_support():
    res = exact_rip(np.eye(7), 3)  # every support attains 1
    assert res.support_max == res.support_min == (0, 1, 2)


def test_enumeration_spans_many_parallel_chunks():
    # C(40, 3) = 9880 supports split over several chunks; the unique maximiser lies in the
    # last chunk, and the minimum is tied by every support holding two planted atoms
    gram = np.eye(40)
    planted = [36, 38, 39]
    for i, j in itertools.combinations(planted, 2):
        gram[i, j] = gram[j, i] = 0.3
    res = exact_rip(gram, 3)
    assert_allclose([res.lam_max, res.lam_min], [1.6, 0.7], rtol=0, atol=1e-14)
    assert res.support_max == (36, 38, 39)
    assert res.support_min == (0, 36, 38)  # lexicographically first of the ties


@pytest.mark.parametrize("d, s", [(1, 1), (5, 1), (6, 2), (7, 3), (8, 5), (6, 6)])
def test_unrank_and_successor_follow_itertools_order(d, s):
    binom = exhaustive._binomial_table(d, s)
    expected = list(itertools.combinations(range(d), s))
    walked = np.empty(s, np.int64)
    enumerate_kernels._unrank.py_func(0, d, s, binom, walked)
    for rank, combo in enumerate(expected):
        out = np.empty(s, np.int64)
        enumerate_kernels._unrank.py_func(rank, d, s, binom, out)
        assert tuple(out) == combo
        assert tuple(walked) == combo
        assert enumerate_kernels._successor.py_func(walked, d, s) == (rank < len(expected) - 1)


def test_every_support_is_visited_with_tiny_chunks(monkeypatch):
    # one task per leaf batch (the longest prefixes): plant a unique maximiser at
    # each of the C(9, 3) = 84 supports in turn and require the kernel to find it
    monkeypatch.setattr(exhaustive, "_MIN_TASKS", 10**6)
    for support in itertools.combinations(range(9), 3):
        gram = np.eye(9)
        for i, j in itertools.combinations(support, 2):
            gram[i, j] = gram[j, i] = 0.5
        res = exact_rip(gram, 3)
        assert res.support_max == support
        assert_allclose(res.lam_max, 2.0, rtol=0, atol=1e-14)


def test_result_record():
    res = exact_rip_matrix(random_phi(5, 6, seed=90), 2)
    assert isinstance(res, ExactRip)
    row = res.to_dict()
    assert set(row) >= {
        "s", "delta", "delta_upper_side", "delta_lower_side", "lam_max", "lam_min",
        "support_max", "support_min", "n_supports", "seconds", "supports_per_second",
    }
    assert row["n_supports"] == 15 and row["d"] == 6
    assert res.seconds >= 0 and res.supports_per_second > 0
    json.dumps(row)
    with pytest.raises(AttributeError):
        res.delta = 0.0


def test_counting_helpers():
    assert n_supports(64, 3) == 41664
    assert n_supports(5, 5) == 1
    assert enumeration_feasible(64, 3, 41664)
    assert not enumeration_feasible(64, 3, 41663)
    assert not enumeration_feasible(1000, 5)  # C(1000, 5) ≈ 8e12 > default
    assert DEFAULT_MAX_SUPPORTS == 50_000_000


# --- errors ---------------------------------------------------------------------------


GOOD = np.eye(4)


@pytest.mark.parametrize(
    "gram, s, kwargs, error, match",
    [
        (np.ones((3, 4)), 2, {}, ValueError, r"gram must be square, got shape \(3, 4\)"),
        (np.ones(4), 2, {}, ValueError, r"gram must be a 2-D array"),
        (np.triu(np.ones((4, 4))), 2, {}, ValueError, r"gram must be symmetric: max \|gram - gram"),
        (np.diag([1.0, np.nan, 1.0, 1.0]), 2, {}, ValueError, r"gram contains NaN or infinite"),
        (np.diag([1.5e308, 1.0, 1.0, 1.0]), 2, {}, ValueError, r"gram entries up to 1.5e\+308 are too large"),
        (GOOD, 0, {}, ValueError, r"s=0 must be >= 1"),
        (GOOD, 5, {}, ValueError, r"s=5 must be <= d=4"),
        (GOOD, 2.0, {}, TypeError, r"s must be an int"),
        (GOOD, 2, {"isometry_scale": 0.0}, ValueError, r"isometry_scale=0.0 must be a finite num"),
        (GOOD, 2, {"isometry_scale": np.inf}, ValueError, r"isometry_scale=inf must be"),
        (GOOD, 2, {"max_supports": 0}, ValueError, r"max_supports=0 must be >= 1"),
        (GOOD, 2, {"max_supports": "many"}, TypeError, r"max_supports must be a number"),
        (
            GOOD, 2, {"max_supports": 5}, ValueError,
            r"s=2, d=4 needs C\(4, 2\) = 6 supports, more than max_supports=5",
        ),
    ],
    ids=[
        "not-square", "1-D", "asymmetric", "nan", "overflow", "s-zero", "s-above-d", "s-float",
        "scale-zero", "scale-inf", "max-supports-zero", "max-supports-str", "too-many",
    ],
)
def test_errors(gram, s, kwargs, error, match):
    with pytest.raises(error, match=match):
        exact_rip(gram, s, **kwargs)


def test_default_limit_refuses_huge_enumeration_before_work():
    match = r"C\(200, 6\) = 82408626300 supports, more than max_supports=50000000"
    with pytest.raises(ValueError, match=match):
        exact_rip(np.eye(200), 6)


def test_int64_rank_space_is_refused_even_without_limit():
    match = r"C\(70, 35\) = 112186277816662845432 supports, more than max_supports=inf"
    with pytest.raises(ValueError, match=match):
        exact_rip(np.eye(70), 35, max_supports=math.inf)


def test_matrix_errors_name_phi():
    with pytest.raises(ValueError, match=r"phi must be a 2-D array"):
        exact_rip_matrix(np.ones(5), 1)
    with pytest.raises(ValueError, match=r"s=4 must be <= d=3"):
        exact_rip_matrix(np.ones((5, 3)), 4)


def test_counting_helper_errors():
    with pytest.raises(ValueError, match=r"s=7 must be <= d=6"):
        n_supports(6, 7)
    with pytest.raises(ValueError, match=r"d=0 must be >= 1"):
        n_supports(0, 1)
    with pytest.raises(ValueError, match=r"max_supports=0.5 must be >= 1"):
        enumeration_feasible(6, 2, 0.5)


# --- property test ----------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    m=st.integers(1, 8),
    d=st.integers(1, 8),
    s_frac=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([1.0, 0.5, 2.0]),
)
def test_property_matches_brute_force(m, d, s_frac, seed, scale):
    s = 1 + min(d - 1, int(s_frac * d))
    phi = random_phi(m, d, seed)
    gram = phi.T @ phi
    lam_max, lam_min, _ = brute_force(gram, s)
    res = exact_rip(gram, s, isometry_scale=scale)
    assert_allclose([res.lam_min, res.lam_max], [lam_min, lam_max], rtol=0, atol=ATOL)
    assert_allclose(res.delta, max(lam_max / scale - 1, 1 - lam_min / scale), rtol=0, atol=ATOL)
    assert_allclose(block_extremes(gram, res.support_max)[1], lam_max, rtol=0, atol=ATOL)
    assert_allclose(block_extremes(gram, res.support_min)[0], lam_min, rtol=0, atol=ATOL)


# --- the certified enumeration reports what solving every block reported (before issue 16) ------------
from numba import njit  # noqa: E402

from ripkit.rip._enumerate import block_extremes as solve_block  # noqa: E402


@njit
def _solve_every_block(g, s):
    """The enumeration before issue 16: every support solved, strict > keeps the lexicographically first."""
    d = g.shape[0]
    c = np.arange(s)
    a = np.empty((s, s))
    hi, lo = -np.inf, np.inf
    best_hi, best_lo = c.copy(), c.copy()
    while True:
        lam_lo, lam_hi = solve_block(g, c, s, a)
        if lam_hi > hi:
            hi, best_hi = lam_hi, c.copy()
        if lam_lo < lo:
            lo, best_lo = lam_lo, c.copy()
        i = s - 1
        while i >= 0 and c[i] == d - s + i:
            i -= 1
        if i < 0:
            return hi, lo, best_hi, best_lo
        c[i] += 1
        for j in range(i + 1, s):
            c[j] = c[j - 1] + 1


def _grams():
    for seed in range(8):
        rng = np.random.default_rng(seed)
        d = int(rng.integers(8, 16))
        phi = rng.standard_normal((int(rng.integers(3, 30)), d)) / 4
        yield f"gauss-{seed}", phi.T @ phi
    yield "ties", np.eye(10) + 0.25 * (np.arange(10)[:, None] % 3 == np.arange(10)[None, :] % 3)
    yield "rounded", (lambda p: p.T @ p)(np.round(np.random.default_rng(5).standard_normal((6, 12)), 0))


@pytest.mark.parametrize("name, gram", list(_grams()), ids=[n for n, _ in _grams()])
@pytest.mark.parametrize("workers", [1, 4])
def test_certified_enumeration_is_bit_identical_to_solving_every_block(name, gram, workers, monkeypatch):
    monkeypatch.setattr(exhaustive, "_PARALLEL_MIN_SUPPORTS", 0 if workers > 1 else 10**12)
    monkeypatch.setattr(exhaustive, "_MIN_TASKS", 7)
    for s in range(2, min(9, gram.shape[0]) + 1):
        hi, lo, sup_hi, sup_lo = _solve_every_block(np.ascontiguousarray(gram), s)
        res = exact_rip(gram, s)
        assert (res.lam_max, res.lam_min) == (hi, lo), (name, s)
        assert (res.support_max, res.support_min) == (tuple(sup_hi), tuple(sup_lo)), (name, s)
        assert 1 <= res.n_solved <= res.n_supports


def test_most_supports_are_certified_not_solved():
    phi = random_phi(64, 24, seed=3)
    res = exact_rip(phi.T @ phi, 6)
    assert res.n_solved < 0.01 * res.n_supports


@pytest.mark.parametrize("name, gram", list(_grams())[::3], ids=[n for n, _ in _grams()][::3])
def test_torch_path_on_cpu_equals_numba_path(name, gram, monkeypatch):
    import ripkit.rip.torch_path as torch_path

    for s in range(2, min(7, gram.shape[0]) + 1):
        ref = exact_rip(gram, s)
        monkeypatch.setattr(torch_path, "CHUNK_BYTES", 48 * s * s * 100)  # chunks of 100: many records
        res = exact_rip(gram, s, device="torch-cpu")
        assert (res.lam_max, res.lam_min, res.support_max, res.support_min) == \
            (ref.lam_max, ref.lam_min, ref.support_max, ref.support_min), (name, s)


def test_torch_unrank_follows_itertools_order():
    import torch

    from ripkit.rip.torch_path import _prefix_counts, _unrank

    for d, s in [(1, 1), (6, 2), (8, 3), (9, 5), (6, 6)]:
        got = _unrank(torch.arange(math.comb(d, s)), d, s, torch.as_tensor(_prefix_counts(d, s)))
        assert [tuple(r) for r in got.tolist()] == list(itertools.combinations(range(d), s))


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_device_without_cuda_is_refused():
    with pytest.raises(ValueError, match="device='cuda:0': no CUDA device"):
        exact_rip(np.eye(4), 2, device="cuda:0")
