"""ripkit.conditioning against dense references: numpy.kron + SVD, matrix_rank, lstsq, Marchenko–Pastur."""
from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from ripkit.conditioning import kron_conditioning, ls_core, mp_edges, mp_prediction, range_energy
from ripkit.kron import KroneckerDictionary


@pytest.mark.parametrize("m, n, a, b, scale", [
    (12, 10, 4, 3, "unit"),     # injective, tall factors
    (9, 11, 9, 2, "unit"),      # a = m: square L, still injective
    (6, 10, 8, 3, "cosa"),      # a > m: not injective
    (12, 5, 4, 7, "unit"),      # b > n: not injective
])
def test_kappa_and_range_match_dense_svd(m, n, a, b, scale):
    d = KroneckerDictionary.from_seed(m, n, a, b, seed=7, scale=scale)
    dense = d.to_dense()
    sv = np.linalg.svd(dense, compute_uv=False)  # min(mn, ab) values
    rank = np.linalg.matrix_rank(dense)
    cond = kron_conditioning(d)
    assert cond.injective == (rank == a * b) == (a <= m and b <= n)
    assert_allclose(cond.sigma_max, sv[0], rtol=1e-12)
    if cond.injective:
        assert_allclose(cond.sigma_min, sv[a * b - 1], rtol=1e-10)
        assert_allclose(cond.kappa, sv[0] / sv[a * b - 1], rtol=1e-10)
        assert_allclose(cond.kappa, cond.kappa_left * cond.kappa_right, rtol=1e-12)
    else:
        assert cond.sigma_min == 0 and cond.kappa == np.inf
    # the range of ‖Ψα‖²/(c‖α‖²) over all α is attained at the extreme right singular vectors
    _, _, vt = np.linalg.svd(dense)
    c = d.isometry_scale
    top = vt[0]
    assert_allclose(np.sum((dense @ top) ** 2) / c, cond.ratio_high, rtol=1e-10)
    if cond.injective:
        bottom = vt[a * b - 1]
        assert_allclose(np.sum((dense @ bottom) ** 2) / c, cond.ratio_low, rtol=1e-8)


def test_orthogonal_factors_are_perfectly_conditioned():
    d = KroneckerDictionary.from_seed(40, 30, 10, 6, seed=1, kind="orthogonal")
    cond = kron_conditioning(d)
    assert_allclose([cond.kappa_left, cond.kappa_right, cond.kappa], 1.0, rtol=1e-12)
    assert_allclose([cond.ratio_low, cond.ratio_high], 1.0, rtol=1e-12)  # Ψ is an isometry on R^{ab}


@pytest.mark.parametrize("m, n, a, b", [(2000, 1600, 500, 400), (1000, 800, 250, 50)])
def test_extremes_follow_marchenko_pastur(m, n, a, b):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # one SVD of 2000×500: threaded BLAS on a busy 2-core machine is 100× slower
        cond = kron_conditioning(KroneckerDictionary.from_seed(m, n, a, b, seed=3))
    mp = mp_prediction(m, n, a, b)
    # At these sizes the extreme eigenvalues sit inside the asymptotic edges by a few per cent
    # (finite-size bias and Tracy–Widom fluctuations, O(p^(-2/3)) times edge-dependent constants;
    # 2–6 % was seen over seeds), so 8 % separates "follows MP" from "does not".
    assert_allclose(cond.ratio_high, mp["mp_ratio_high"], rtol=0.08)
    assert_allclose(cond.ratio_low, mp["mp_ratio_low"], rtol=0.08)
    assert_allclose(cond.kappa, mp["mp_kappa"], rtol=0.08)


def test_mp_edges_and_non_injective_prediction():
    assert_allclose(mp_edges(400, 100), (0.25, 2.25))
    mp = mp_prediction(512, 3584, 1024, 256)  # Qwen2-7B k_proj with (a, b) = (1024, 256)
    assert not mp["mp_injective"] and mp["mp_ratio_low"] == 0 and mp["mp_kappa"] == np.inf
    assert_allclose(mp["mp_ratio_high"], (1 + np.sqrt(2)) ** 2 * (1 + np.sqrt(256 / 3584)) ** 2)


def test_range_energy_and_ls_core_against_dense_least_squares():
    rng = np.random.default_rng(0)
    d = KroneckerDictionary.from_seed(9, 8, 4, 3, seed=2)
    dw = rng.standard_normal((9, 8))
    dense = d.to_dense()
    coef = np.linalg.lstsq(dense, dw.ravel(order="F"), rcond=None)[0]
    y = ls_core(dw, d.left, d.right)
    assert_allclose(y.ravel(order="F"), coef, rtol=1e-10, atol=1e-12)
    proj = dense @ coef
    assert_allclose(range_energy(dw, d.left, d.right), np.sum(proj ** 2) / np.sum(dw ** 2), rtol=1e-10)


def test_range_energy_of_member_and_expected_fraction():
    d = KroneckerDictionary.from_seed(30, 20, 6, 5, seed=4)
    member = d.left @ np.random.default_rng(1).standard_normal((6, 5)) @ d.right
    assert_allclose(range_energy(member, d.left, d.right), 1.0, rtol=1e-12)
    # E over Haar subspaces is exactly (a/m)(b/n) for any fixed ΔW; the mean over draws approaches it
    dw = np.random.default_rng(2).standard_normal((30, 20))
    draws = [KroneckerDictionary.from_seed(30, 20, 6, 5, seed=s) for s in range(300)]
    fr = np.array([range_energy(dw, x.left, x.right) for x in draws])
    assert abs(fr.mean() - 0.05) < 4 * fr.std() / np.sqrt(fr.size)


def test_input_checks():
    d = KroneckerDictionary.from_seed(6, 5, 2, 2, seed=0)
    with pytest.raises(ValueError, match="delta_w has shape"):
        range_energy(np.ones((5, 6)), d.left, d.right)
    with pytest.raises(ValueError, match="zero"):
        range_energy(np.zeros((6, 5)), d.left, d.right)
    with pytest.raises(ValueError, match="delta_w has shape"):
        ls_core(np.ones((5, 5)), d.left, d.right)
