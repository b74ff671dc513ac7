import subprocess
import sys

import numpy as np
import pytest
import torch

from ripkit.projections import (
    fingerprint, layer_seed, projection_pair, projection_pair_torch, projection_std, random_matrix,
)


def test_unit_scale_variances_match_convention():
    left, right = projection_pair(400, 300, 50, 40, seed=0, scale="unit")
    assert left.shape == (400, 50) and right.shape == (40, 300)
    # sample variance of 20k / 12k N(0, σ²) entries is within 5% of σ²
    np.testing.assert_allclose(left.var(), 1 / 400, rtol=0.05)
    np.testing.assert_allclose(right.var(), 1 / 300, rtol=0.05)


def test_cosa_scale_variances_match_convention():
    left, right = projection_pair(400, 300, 50, 40, seed=1, scale="cosa")
    np.testing.assert_allclose(left.var(), 1 / 50, rtol=0.05)
    np.testing.assert_allclose(right.var(), 1 / 40, rtol=0.05)


def test_rademacher_entries_are_plus_minus_sigma():
    mat = random_matrix((30, 20), std=0.25, seed=3, kind="rademacher")
    assert set(np.unique(mat)) == {-0.25, 0.25}


def test_left_does_not_depend_on_b_or_n():
    l1, _ = projection_pair(64, 32, 8, 4, seed=5)
    l2, _ = projection_pair(64, 99, 8, 7, seed=5)
    np.testing.assert_array_equal(l1 * np.sqrt(64), l2 * np.sqrt(64))


def test_numpy_and_torch_paths_agree():
    left, right = projection_pair(16, 12, 4, 3, seed=9, scale="cosa")
    tl, tr = projection_pair_torch(16, 12, 4, 3, seed=9, scale="cosa", dtype=torch.float64)
    np.testing.assert_array_equal(tl.numpy(), left)
    np.testing.assert_array_equal(tr.numpy(), right)


def test_generation_identical_across_processes():
    code = ("from ripkit.projections import projection_pair, fingerprint, layer_seed;"
            "l, r = projection_pair(20, 10, 5, 3, seed=123);"
            "print(fingerprint(l), fingerprint(r), layer_seed(7, 'encoder.layer.0.query'))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            for _ in range(2)}
    left, right = projection_pair(20, 10, 5, 3, seed=123)
    assert outs == {f"{fingerprint(left)} {fingerprint(right)} {layer_seed(7, 'encoder.layer.0.query')}\n"}


def test_layer_seed_is_sha256_based_and_distinct():
    import hashlib

    expected = int.from_bytes(hashlib.sha256(b"ripkit:0:layer.q").digest()[:8], "little") >> 1
    assert layer_seed(0, "layer.q") == expected
    assert layer_seed(0, "layer.q") != layer_seed(0, "layer.k") != layer_seed(1, "layer.q")


def test_fingerprint_sensitivity():
    x = np.arange(6.0).reshape(2, 3)
    assert fingerprint(x) == fingerprint(torch.tensor(x))
    assert fingerprint(x) != fingerprint(x.reshape(3, 2))
    y = x.copy()
    y[0, 0] = np.nextafter(0.0, 1.0)
    assert fingerprint(x) != fingerprint(y)
    assert len(fingerprint(x)) == 16


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(m=0, n=2, a=1, b=1, seed=0), ValueError, "m=0 must be >= 1"),
    (dict(m=2, n=2, a=1.5, b=1, seed=0), TypeError, "a must be an int"),
    (dict(m=2, n=2, a=1, b=1, seed=-1), ValueError, "seed=-1 must be >= 0"),
    (dict(m=2, n=2, a=1, b=1, seed="x"), TypeError, "seed must be an int"),
    (dict(m=2, n=2, a=1, b=1, seed=0, scale="bad"), ValueError, "scale='bad' must be one of"),
    (dict(m=2, n=2, a=1, b=1, seed=0, kind="bad"), ValueError, "kind='bad' must be one of"),
])
def test_projection_pair_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        projection_pair(**kwargs)


def test_other_errors():
    with pytest.raises(ValueError, match="std=0 must be"):
        random_matrix((2, 2), 0, seed=0)
    with pytest.raises(TypeError, match="layer_name must be a non-empty str"):
        layer_seed(0, "")
    assert projection_std(4, 9, 2, 3, "unit") == (0.5, 1 / 3)


def test_orthogonal_kind_is_orthonormal_with_the_gaussian_norms():
    from ripkit.projections import projection_pair

    m, n, a, b = 48, 40, 12, 64  # L (48×12) and R (64×40, b > n) both tall: orthonormal columns
    left, right = projection_pair(m, n, a, b, 3, scale="cosa", kind="orthogonal")
    np.testing.assert_allclose(left.T @ left, (m / a) * np.eye(a), atol=1e-12)
    np.testing.assert_allclose(right.T @ right, np.eye(n), atol=1e-12)  # column norms² b·σ_R² = b/b
    _, wide = projection_pair(m, 96, a, 8, 3, scale="cosa", kind="orthogonal")  # R 8×96: orthonormal rows
    np.testing.assert_allclose(wide @ wide.T, (96 / 8) * np.eye(8), atol=1e-12)
    # same span as the Gaussian draw of the same seed, and the same signs as QR with positive diag(R)
    gl, _ = projection_pair(m, n, a, b, 3, scale="cosa", kind="gaussian")
    q, r = np.linalg.qr(gl)
    np.testing.assert_allclose(left, q * np.sign(np.diag(r)) * np.sqrt(m / a), atol=1e-12)
    again, _ = projection_pair(m, n, a, b, 3, scale="cosa", kind="orthogonal")
    assert fingerprint(again) == fingerprint(left)
