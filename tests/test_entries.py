"""ripkit._entries: exact counts of |(U·V)_ij| below thresholds and max |(U·V)_ij|, against the dense float64 product."""
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from ripkit._entries import dense_entry_stats, entry_stats


def dense_counts(w, thresholds):
    a = np.abs(w)
    return tuple(int(np.count_nonzero(a < t)) for t in thresholds), float(a.max(initial=0.0))


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 150), n=st.integers(1, 2500), k=st.integers(1, 24), seed=st.integers(0, 2**32 - 1),
       log_u=st.floats(-30, 30), log_v=st.floats(-30, 30), q=st.floats(0.01, 0.99))
def test_counts_and_max_equal_the_dense_product(m, n, k, seed, log_u, log_v, q):
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((m, k)) * 10.0 ** log_u
    v = rng.standard_normal((k, n)) * 10.0 ** log_v
    w = u @ v
    # thresholds between entries (a threshold *at* an entry is decided on that entry's float64 rounding,
    # which two float64 computations may do differently; see test_ties_are_decided_in_float64)
    t1 = float(np.quantile(np.abs(w), q)) * (1 + 1e-9)
    t2 = float(np.abs(w).max()) * 1e-3
    got = entry_stats(u, v, (t1, t2))
    want, top = dense_counts(w, (t1, t2))
    assert got.below == want and got.n_entries == m * n
    assert abs(got.max_abs - top) <= 8 * np.finfo(float).eps * top


def test_entries_within_float32_error_of_a_threshold_are_exact():
    # thresholds 1e-9 above and below real entries: float32 cannot decide them, float64 must
    rng = np.random.default_rng(1)
    u, v = rng.standard_normal((300, 16)), rng.standard_normal((16, 900))
    w = np.abs(u @ v)
    for x in w.ravel()[rng.integers(0, w.size, 20)]:
        for t in (x * (1 + 1e-9), x * (1 - 1e-9)):
            assert entry_stats(u, v, (t,)).below == dense_counts(w, (t,))[0]


def test_ties_are_decided_in_float64():
    # small integers times powers of two: every product and sum is exact in any order
    rng = np.random.default_rng(2)
    u = rng.integers(-3, 4, (120, 12)).astype(float) * 2.0 ** -7
    v = rng.integers(-3, 4, (12, 700)).astype(float)
    w = u @ v
    for t in np.unique(np.abs(w))[:6]:
        got = entry_stats(u, v, (t, 0.5 * t))
        assert got.below == dense_counts(w, (t, 0.5 * t))[0] and got.max_abs == np.abs(w).max()


def test_zero_update_is_fast_and_exact():
    u, v = np.zeros((2000, 16)), np.ones((16, 3000))
    t0 = time.perf_counter()
    got = entry_stats(u, v, (1e-4, 0.0))  # a threshold of 0 counts nothing (|x| < 0 never holds)
    assert time.perf_counter() - t0 < 5  # no entry falls back to float64
    assert got.below == (6_000_000, 0) and got.max_abs == 0.0
    u[7, 3] = 1e-3  # one non-zero row
    got = entry_stats(u, v, (1e-4,))
    assert got.below == (6_000_000 - 3000,) and got.max_abs == 1e-3


def test_threads_do_not_change_the_result():
    rng = np.random.default_rng(3)
    u, v = rng.standard_normal((700, 8)), rng.standard_normal((8, 5000)) * 1e-2
    results = {entry_stats(u, v, (1e-3, 1e-5), threads=t) for t in (1, 2, 3, 64)}
    assert len(results) == 1


def test_dense_entry_stats_and_bad_input():
    w = np.random.default_rng(4).standard_normal((600, 40))
    got = dense_entry_stats(w, (0.1, 1.0), rows=7)
    assert (got.below, got.max_abs) == dense_counts(w, (0.1, 1.0)) and got.fractions()[0] == got.below[0] / w.size
    with pytest.raises(ValueError, match="one or two finite numbers"):
        entry_stats(w[:, :3], w[:3], (1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="one or two finite numbers"):
        entry_stats(w[:, :3], w[:3], (np.nan,))
    with pytest.raises(ValueError, match="do not chain"):
        entry_stats(w[:, :3], w[:4], (1.0,))


def test_tile_edges(monkeypatch):
    import ripkit._entries as entries

    rng = np.random.default_rng(5)
    u, v = rng.standard_normal((23, 5)), rng.standard_normal((5, 41))
    want = dense_counts(u @ v, (0.5, 2.0))
    monkeypatch.setattr(entries, "TILE_ROWS", 4)
    monkeypatch.setattr(entries, "TILE_COLS", 7)
    got = entries.entry_stats(u, v, (0.5, 2.0), threads=2)
    assert (got.below, got.max_abs) == (want[0], pytest.approx(want[1], rel=1e-15))


def test_extreme_scales_and_thresholds():
    rng = np.random.default_rng(6)
    u, v = rng.standard_normal((40, 3)), rng.standard_normal((3, 50))
    w = u @ v
    # entries around 1e-280 and 1e+280: the float32 screen is skipped, float64 blocks decide
    for scale in (1e-140, 1e140):
        got = entry_stats(u * scale, v * scale, (0.5 * scale ** 2, 2.0 * scale ** 2))
        want = dense_counts((u * scale) @ (v * scale), (0.5 * scale ** 2, 2.0 * scale ** 2))
        assert got.below == want[0] and got.max_abs == pytest.approx(want[1], rel=1e-15)
    # a threshold far above every entry, or far below
    assert entry_stats(u, v, (1e300, 1e-300)).below == (w.size, 0)
