"""ripkit._thin_gemm: C = A·U with a small inner dimension, against exact arithmetic and numpy."""
from fractions import Fraction

import numpy as np
import pytest

from ripkit import _thin_gemm
from ripkit._thin_gemm import MR, NR, faster_than_blas, thin_matmul

# (N, k, m, K): whole tiles, ragged rows and columns, fewer rows/columns than one tile, k = 0, 1
SHAPES = [(MR, 3, NR, 1), (2 * MR + 1, 5, 2 * NR + 3, 1), (3, 4, 5, 2), (1, 1, 1, 1), (9, 0, 11, 1),
          (0, 3, 4, 1), (5, 2, 0, 1), (7, 6, 17, 3)]


def _fma_chain(a_row, u_col):
    """fma(a[k-1], u[k-1], … fma(a[0], u[0], 0)): each step rounded once, exactly (Fraction → float)."""
    c = 0.0
    for x, y in zip(a_row, u_col):
        c = float(Fraction(x) * Fraction(y) + Fraction(c))
    return c


@pytest.mark.parametrize("shape", SHAPES)
def test_every_entry_is_the_ascending_fma_chain_bit_for_bit(shape):
    n_rows, k, m, n_items = shape
    rng = np.random.default_rng(sum(shape))
    a, u = rng.standard_normal((n_rows, k)), rng.standard_normal((n_items, k, m))
    got = thin_matmul(a, u)
    assert got.shape == (n_items, n_rows, m) and got.flags.c_contiguous
    want = np.array([[[_fma_chain(a[i], u[t, :, j]) for j in range(m)] for i in range(n_rows)]
                     for t in range(n_items)]).reshape(got.shape)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape", [(257, 9, 515, 1), (64, 128, 512, 4), (33, 40, 70, 2)])
def test_agrees_with_numpy_matmul_within_the_gemm_error_bound(shape):
    n_rows, k, m, n_items = shape
    rng = np.random.default_rng(k)
    a, u = rng.standard_normal((n_rows, k)), rng.standard_normal((n_items, k, m))
    gamma = 2 * k * np.finfo(float).eps / (1 - 2 * k * np.finfo(float).eps)  # both sides' rounding
    assert np.all(np.abs(thin_matmul(a, u) - a @ u) <= gamma * (np.abs(a) @ np.abs(u)))


def test_operand_layouts_do_not_change_a_bit():
    rng = np.random.default_rng(0)
    a, u = rng.standard_normal((13, 6)), rng.standard_normal((6, 21))
    ref = thin_matmul(a, u)
    big_u = np.zeros((6, 42))
    big_u[:, ::2] = u
    for a_view in (np.asfortranarray(a), np.ascontiguousarray(a.T).T):
        for u_view in (np.asfortranarray(u), big_u[:, ::2], np.ascontiguousarray(u.T).T):
            np.testing.assert_array_equal(thin_matmul(a_view, u_view), ref)
    np.testing.assert_array_equal(thin_matmul(a, u[None])[0], ref)


@pytest.mark.parametrize("a, u, error, match", [
    (np.ones((3, 2)), np.ones((3, 4)), ValueError, r"a \(N, k\) and u"),
    (np.ones(3), np.ones((3, 4)), ValueError, r"a \(N, k\) and u"),
    (np.ones((3, 2)), np.ones((1, 1, 2, 4)), ValueError, r"a \(N, k\) and u"),
    (np.ones((3, 2), dtype=np.float32), np.ones((2, 4)), TypeError, "float64"),
    (np.ones((3, 2)), np.ones((2, 4), dtype=complex), TypeError, "float64"),
])
def test_errors(a, u, error, match):
    with pytest.raises(error, match=match):
        thin_matmul(a, u)


def test_faster_than_blas_keeps_large_products_for_a_threaded_blas(monkeypatch):
    small, large = _thin_gemm.THREADED_MIN_FLOPS - 1, _thin_gemm.THREADED_MIN_FLOPS
    monkeypatch.setattr(_thin_gemm.numba, "get_num_threads", lambda: 2)
    assert faster_than_blas(small) and not faster_than_blas(large)
    monkeypatch.setattr(_thin_gemm.numba, "get_num_threads", lambda: 1)
    assert faster_than_blas(small) and faster_than_blas(large)
