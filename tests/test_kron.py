import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.sparse.linalg import aslinearoperator

from ripkit.kron import KroneckerDictionary

dims = st.integers(min_value=1, max_value=6)


def _dict(m, n, a, b, seed=0):
    rng = np.random.default_rng(seed)
    return KroneckerDictionary(rng.standard_normal((m, a)), rng.standard_normal((b, n)))


@settings(max_examples=40, deadline=None)
@given(m=dims, n=dims, a=dims, b=dims, seed=st.integers(0, 2**16))
def test_vec_identity_against_numpy_kron(m, n, a, b, seed):
    """vec(L·Y·R) = (Rᵀ⊗L)·vec(Y), column-major vec, against numpy.kron."""
    d = _dict(m, n, a, b, seed)
    core = np.random.default_rng(seed + 1).standard_normal((a, b))
    psi = np.kron(d.right.T, d.left)
    np.testing.assert_allclose(d.to_dense(), psi, rtol=0, atol=0)
    np.testing.assert_allclose(psi @ core.ravel(order="F"), (d.left @ core @ d.right).ravel(order="F"),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(d.matvec(core.ravel(order="F")), psi @ core.ravel(order="F"), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(d.apply(core), d.left @ core @ d.right, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(m=dims, n=dims, a=dims, b=dims, k=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_adjoint_dot_test(m, n, a, b, k, seed):
    """<Ψx, y> = <x, Ψᵀy> for single vectors and blocks of k columns."""
    d = _dict(m, n, a, b, seed)
    rng = np.random.default_rng(seed + 7)
    x, y = rng.standard_normal((a * b, k)), rng.standard_normal((m * n, k))
    np.testing.assert_allclose(np.sum(d.matvec(x) * y), np.sum(x * d.rmatvec(y)), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(d.rmatvec(y[:, 0]), np.kron(d.right.T, d.left).T @ y[:, 0], rtol=1e-12, atol=1e-12)


def test_batched_apply_matches_loop():
    d = _dict(5, 4, 3, 2)
    cores = np.random.default_rng(1).standard_normal((7, 3, 2))
    out = d.apply(cores)
    for i in range(7):
        np.testing.assert_allclose(out[i], d.left @ cores[i] @ d.right, rtol=1e-12)


def test_linear_operator_view_against_dense():
    d = _dict(4, 5, 3, 2)
    op = d.as_linear_operator()
    psi = d.to_dense()
    x = np.random.default_rng(0).standard_normal((6, 2))
    np.testing.assert_allclose(op @ x, psi @ x, rtol=1e-12)
    np.testing.assert_allclose(op.H @ (psi @ x), psi.T @ psi @ x, rtol=1e-12)
    assert op.shape == (20, 6)
    np.testing.assert_allclose(aslinearoperator(op).matvec(x[:, 0]), psi @ x[:, 0], rtol=1e-12)


def test_gram_factors_and_column_norms_against_dense():
    d = _dict(6, 5, 3, 4, seed=2)
    psi = d.to_dense()
    g_left, g_right = d.gram_factors()
    np.testing.assert_allclose(np.kron(g_right, g_left), psi.T @ psi, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(d.column_norms(), np.linalg.norm(psi, axis=0), rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(d.normalized().to_dense(), axis=0), 1.0, rtol=1e-12)


def test_from_seed_unit_scale_has_unit_columns_in_expectation():
    d = KroneckerDictionary.from_seed(512, 256, 32, 8, seed=0)
    assert d.isometry_scale == pytest.approx(1.0)
    assert d.compression_ratio == 512
    np.testing.assert_allclose(np.mean(d.column_norms() ** 2), 1.0, atol=0.05)
    cosa = KroneckerDictionary.from_seed(64, 32, 8, 4, seed=0, scale="cosa")
    assert cosa.isometry_scale == pytest.approx(64 * 32 / (8 * 4))


def test_to_dense_refuses_large_sizes():
    d = _dict(64, 64, 32, 32)
    with pytest.raises(MemoryError, match=r"to_dense would allocate 32.0 MiB .* max_bytes=1000000"):
        d.to_dense(max_bytes=1_000_000)


@pytest.mark.parametrize("call, match", [
    (lambda d: d.apply(np.zeros((2, 2))), r"core must have shape \(3, 2\)"),
    (lambda d: d.matvec(np.zeros(5)), r"alpha must have shape \(6,\)"),
    (lambda d: d.rmatvec(np.zeros(5)), r"x must have shape \(20,\)"),
])
def test_shape_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call(_dict(4, 5, 3, 2))


def test_constructor_errors():
    with pytest.raises(ValueError, match="left must be a 2-D array"):
        KroneckerDictionary(np.zeros(3), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="right contains NaN"):
        KroneckerDictionary(np.zeros((3, 2)), np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match="isometry_scale=0"):
        KroneckerDictionary(np.ones((3, 2)), np.ones((2, 2)), isometry_scale=0)


# (m, n, a, b): matvec left-first / right-first and rmatvec right-first / left-first
ORDER_SHAPES = [(7, 7, 5, 2), (7, 7, 2, 5), (7, 3, 5, 5), (3, 7, 2, 2)]


def _layouts(arr):
    """The same block as row-major, column-major and strided (every other row of a bigger array)."""
    big = np.zeros((2 * arr.shape[0], arr.shape[1]))
    big[::2] = arr
    return {"C": np.ascontiguousarray(arr), "F": np.asfortranarray(arr), "strided": big[::2]}


@pytest.mark.parametrize("shape", ORDER_SHAPES)
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_matvec_rmatvec_every_order_and_layout_against_numpy_kron(shape, k, layout):
    d = _dict(*shape, seed=sum(shape))
    psi = np.kron(d.right.T, d.left)
    rng = np.random.default_rng(k)
    alpha, x = rng.standard_normal((psi.shape[1], k)), rng.standard_normal((psi.shape[0], k))
    np.testing.assert_allclose(d.matvec(_layouts(alpha)[layout]), psi @ alpha, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(d.rmatvec(_layouts(x)[layout]), psi.T @ x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(d.matvec(alpha[:, 0]), psi @ alpha[:, 0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(d.rmatvec(x[:, 0]), psi.T @ x[:, 0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", ORDER_SHAPES)
def test_one_vector_fast_path_is_the_block_path_bit_for_bit(shape):
    d = _dict(*shape, seed=3)
    rng = np.random.default_rng(5)
    alpha, x = rng.standard_normal(d.shape[1]), rng.standard_normal(d.shape[0])
    strided_alpha, strided_x = np.repeat(alpha, 2)[::2], np.repeat(x, 2)[::2]  # 1-D, not contiguous
    np.testing.assert_array_equal(d.matvec(alpha), d.matvec(alpha[:, None])[:, 0])
    np.testing.assert_array_equal(d.matvec(strided_alpha), d.matvec(alpha))
    np.testing.assert_array_equal(d.rmatvec(x), d.rmatvec(x[:, None])[:, 0])
    np.testing.assert_array_equal(d.rmatvec(strided_x), d.rmatvec(x))


def test_order_shapes_cover_both_gemm_orders():
    orders = {(_dict(*s)._left_first(), _dict(*s)._adjoint_right_first()) for s in ORDER_SHAPES}
    assert orders == {(True, True), (False, False)}


@pytest.mark.parametrize("shape", ORDER_SHAPES)
def test_products_return_column_major_blocks(shape):
    """Blocks come back column-major whatever the input layout: the mn-sized result is never transposed."""
    d = _dict(*shape)
    for alpha in (np.ones((d.shape[1], 3)), np.asfortranarray(np.ones((d.shape[1], 3)))):
        assert d.matvec(alpha).flags.f_contiguous
    for x in (np.ones((d.shape[0], 3)), np.asfortranarray(np.ones((d.shape[0], 3)))):
        assert d.rmatvec(x).flags.f_contiguous
    assert d.matvec(np.ones(d.shape[1])).flags.c_contiguous and d.rmatvec(np.ones(d.shape[0])).flags.c_contiguous


def test_gram_factors_are_computed_once_and_cannot_go_stale():
    rng = np.random.default_rng(3)
    left, right = rng.standard_normal((6, 3)), rng.standard_normal((2, 5))
    d = KroneckerDictionary(left, right)
    g1 = d.gram_factors()
    assert d.gram_factors() is g1  # cached
    left[0, 0] += 1.0  # the caller's array changes; the dictionary kept its own copy
    np.testing.assert_array_equal(d.gram_factors()[0], (d.left.T @ d.left))
    assert d.left[0, 0] == left[0, 0] - 1.0
    for arr in (d.left, d.right, *g1):
        with pytest.raises(ValueError, match="read-only"):
            arr[0, 0] = 0.0


def test_from_seed_keeps_its_own_factors_without_copy():
    d = KroneckerDictionary.from_seed(8, 6, 3, 2, seed=0)
    assert not d.left.flags.writeable and d.left.base is None
    again = KroneckerDictionary(d.left, d.right)
    assert again.left is d.left and again.right is d.right


def test_memo_computes_once_per_dictionary_and_key():
    d = _dict(4, 5, 3, 2)
    calls = []
    assert d.memo("k", lambda: calls.append(1) or 7) == 7
    assert d.memo("k", lambda: calls.append(1) or 8) == 7 and calls == [1]
    assert _dict(4, 5, 3, 2).memo("k", lambda: 9) == 9  # another dictionary, another memo


@pytest.mark.parametrize("shape", ORDER_SHAPES)
@pytest.mark.parametrize("k", [1, 3])
def test_matvec_with_and_without_the_thin_kernel_agree(shape, k, monkeypatch):
    """Ψα's last product through ripkit._thin_gemm (small inner dimension) or numpy.matmul: same to rounding."""
    import ripkit.kron as kron

    d = _dict(*shape, seed=11)
    alpha = np.random.default_rng(k).standard_normal((d.shape[1], k))
    thin = d.matvec(alpha)
    monkeypatch.setattr(kron, "THIN_GEMM_MAX_INNER", 0)
    np.testing.assert_allclose(thin, d.matvec(alpha), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("shape", [(37, 19, 6, 3), (19, 37, 3, 6), (32, 16, 5, 4)])
@pytest.mark.parametrize("k", [1, 3])
def test_matvec_through_whole_kernel_tiles_against_numpy_kron(shape, k):
    """Shapes with full 4×8 tiles of ripkit._thin_gemm plus ragged edges, both GEMM orders."""
    d = _dict(*shape, seed=5)
    psi = np.kron(d.right.T, d.left)
    alpha = np.random.default_rng(k).standard_normal((psi.shape[1], k))
    np.testing.assert_allclose(d.matvec(alpha), psi @ alpha, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(d.matvec(alpha[:, 0]), psi @ alpha[:, 0], rtol=1e-12, atol=1e-12)


def test_matvec_leaves_wide_or_complex_products_to_numpy(monkeypatch):
    from ripkit import _thin_gemm

    def refuse(*args):
        raise AssertionError("thin_matmul called")

    monkeypatch.setattr(_thin_gemm, "thin_matmul", refuse)
    rng = np.random.default_rng(0)
    wide = KroneckerDictionary(rng.standard_normal((200, 130)), rng.standard_normal((130, 200)))  # inner 130
    alpha = rng.standard_normal(wide.shape[1])
    np.testing.assert_allclose(wide.matvec(alpha), (wide.left @ alpha.reshape(130, 130, order="F") @ wide.right)
                               .ravel(order="F"), rtol=1e-12, atol=1e-12)
    d = _dict(5, 4, 3, 2)
    z = rng.standard_normal(6) + 1j * rng.standard_normal(6)
    np.testing.assert_allclose(d.matvec(z), np.kron(d.right.T, d.left) @ z, rtol=1e-12, atol=1e-12)
