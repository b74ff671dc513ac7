"""ripkit.nulls: invariants (norm, spectrum, Haar), the Marchenko–Pastur reference against simulation."""
import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import integrate

from ripkit import nulls
from ripkit.spectra import energy_rank


def test_equal_norm_gaussian_has_the_norm_and_is_seeded():
    g = nulls.equal_norm_gaussian((7, 5), 0.05, seed=3)
    assert_allclose(np.linalg.norm(g), 0.05, rtol=1e-14)
    assert np.array_equal(g, nulls.equal_norm_gaussian((7, 5), 0.05, seed=3))
    assert not np.array_equal(g, nulls.equal_norm_gaussian((7, 5), 0.05, seed=4))
    with pytest.raises(ValueError, match="norm must be"):
        nulls.equal_norm_gaussian((2, 2), -1.0)


def test_gaussian_energy_ranks_match_spectra_energy_rank():
    # the batched count is ripkit.spectra.energy_rank on each draw (same generator stream)
    ranks = nulls.gaussian_energy_ranks((12, 9), energy=0.9, draws=7, seed=5)
    g = np.random.default_rng(5).standard_normal((7, 12, 9))
    assert ranks.tolist() == [energy_rank(x, energy=0.9) for x in g]


def test_marchenko_pastur_density_is_a_probability_with_mean_one():
    for ratio in (1.0, 0.25):
        lo, hi = (1 - ratio ** 0.5) ** 2, (1 + ratio ** 0.5) ** 2
        f = lambda x, k: x ** k * nulls.marchenko_pastur_density(np.array([x]), ratio)[0]
        assert integrate.quad(f, lo, hi, args=(0,), limit=200)[0] == pytest.approx(1.0, abs=1e-6)
        assert integrate.quad(f, lo, hi, args=(1,), limit=200)[0] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("shape", [(128, 128), (64, 256)])
def test_marchenko_pastur_energy_rank_against_simulation(shape):
    # the limit law predicts the finite-size mean to within about one singular value
    sim = nulls.gaussian_energy_ranks(shape, draws=200, seed=0).mean()
    mp = nulls.marchenko_pastur_energy_rank(shape)
    assert abs(sim - mp) < 1.0
    # and the relative rank converges: 512×512 within 0.5 % of the dimension
    if shape == (128, 128):
        big = nulls.gaussian_energy_ranks((512, 512), draws=3, seed=1).mean() / 512
        assert big == pytest.approx(mp / 128, abs=0.005)


def test_haar_bases_are_orthonormal_and_uniform():
    q = nulls.haar_bases(2000, 3, 1, seed=0)[:, :, 0]
    assert_allclose(np.linalg.norm(q, axis=1), 1.0, rtol=1e-12)
    # a uniform unit vector in R^3 has each |coordinate| uniform on [0, 1] (Archimedes)
    assert abs(np.mean(np.abs(q[:, 0])) - 0.5) < 0.02
    b = nulls.haar_bases(4, 10, 3, seed=1)
    assert_allclose(np.swapaxes(b, 1, 2) @ b, np.broadcast_to(np.eye(3), (4, 3, 3)), atol=1e-12)
    with pytest.raises(ValueError, match="dim=4 must be <= ambient=3"):
        nulls.haar_bases(1, 3, 4)


def test_same_spectrum_matrix_keeps_the_spectrum():
    s = np.array([3.0, 1.0, 0.5, 0.0])
    x = nulls.same_spectrum_matrix(s, (9, 6), seed=2)
    assert_allclose(np.linalg.svd(x, compute_uv=False)[:4], s, atol=1e-12)
    with pytest.raises(ValueError, match="need 1..6 singular values"):
        nulls.same_spectrum_matrix(np.ones(7), (9, 6))


def test_random_partitions_are_balanced_distinct_and_seeded():
    parts = nulls.random_partitions((12, 8), 2, 5, seed=0)
    assert len({p.row_perm.tobytes() for p in parts}) == 5
    assert all(p.row_cuts == (0, 6, 12) and p.col_cuts == (0, 4, 8) for p in parts)
    again = nulls.random_partitions((12, 8), 2, 5, seed=0)
    assert all(p == q for p, q in zip(parts, again))


def test_random_block_angles_fall_with_block_count():
    # the metric alone falls as blocks shrink (issue 14): random subspaces, 384 → 2×2 / 8×8 blocks
    a2 = nulls.random_block_angles(4, (192, 192), 1, draws=50, seed=0)["mean"].mean()
    a8 = nulls.random_block_angles(64, (48, 48), 1, draws=5, seed=0)["mean"].mean()
    assert a2 > a8 + 2.0
