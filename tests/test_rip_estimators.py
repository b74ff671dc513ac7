import json
import subprocess
import sys

import numpy as np
import pytest

from ripkit.kron import KroneckerDictionary
from ripkit.rip import estimate_rip, isometry_ratios, rip_trials, sample_sparse_vectors, support_rip


def _small_dict(seed=0, m=9, n=7, a=4, b=3):
    return KroneckerDictionary.from_seed(m, n, a, b, seed=seed)


def _dense_ratios(d, samples):
    """Reference: materialize Ψ with numpy.kron and apply it to each α."""
    psi = np.kron(d.right.T, d.left)
    out = []
    for sup, val in zip(samples.supports, samples.values):
        alpha = np.zeros(psi.shape[1])
        alpha[sup] = val
        out.append(np.sum((psi @ alpha) ** 2) / np.sum(alpha ** 2))
    return np.array(out)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("s", [1, 3, 6])
def test_gram_path_equals_dense_path(seed, s):
    d = _small_dict(seed)
    samples = sample_sparse_vectors(d.shape[1], s, 200, seed=seed)
    np.testing.assert_allclose(isometry_ratios(*d.gram_factors(), samples), _dense_ratios(d, samples),
                               rtol=1e-10, atol=1e-10)
    ref = np.percentile(np.abs(_dense_ratios(d, samples) - 1), 95)
    assert estimate_rip(d, s, samples=samples).delta == pytest.approx(ref, rel=1e-10, abs=1e-12)


def test_support_rip_against_dense_singular_values():
    d = _small_dict(4)
    samples = sample_sparse_vectors(d.shape[1], 4, 50, seed=1)
    psi = d.to_dense()
    worst = max(max(sv.max() ** 2 - 1, 1 - sv.min() ** 2)
                for sv in (np.linalg.svd(psi[:, sup], compute_uv=False) for sup in samples.supports))
    res = support_rip(d, 4, samples=samples)
    assert res.delta == pytest.approx(worst, rel=1e-10)
    sv = np.linalg.svd(psi[:, list(res.support)], compute_uv=False)
    assert max(sv.max() ** 2 - 1, 1 - sv.min() ** 2) == pytest.approx(res.delta, rel=1e-10)
    # the exact per-support constant dominates every sampled distortion on the same supports
    assert res.delta >= np.abs(_dense_ratios(d, samples) - 1).max() - 1e-12


def test_orthonormal_dictionary_gives_zero_delta():
    q_left = np.linalg.qr(np.random.default_rng(0).standard_normal((10, 4)))[0]
    q_right = np.linalg.qr(np.random.default_rng(1).standard_normal((8, 3)))[0].T
    d = KroneckerDictionary(q_left, q_right)
    assert estimate_rip(d, 5, n_samples=100).delta == pytest.approx(0.0, abs=1e-13)
    assert support_rip(d, 5, n_samples=100).delta == pytest.approx(0.0, abs=1e-13)


def test_cosa_scale_measured_up_to_its_factor():
    """Same seed: Ψ_cosa = √c·Ψ_unit exactly, so the scale-corrected estimates coincide."""
    unit = KroneckerDictionary.from_seed(40, 30, 8, 5, seed=3, scale="unit")
    cosa = KroneckerDictionary.from_seed(40, 30, 8, 5, seed=3, scale="cosa")
    assert cosa.isometry_scale == pytest.approx(40 * 30 / 40)
    assert estimate_rip(cosa, 5, seed=1).delta == pytest.approx(estimate_rip(unit, 5, seed=1).delta, rel=1e-10)
    assert support_rip(cosa, 5, seed=1).delta == pytest.approx(support_rip(unit, 5, seed=1).delta, rel=1e-10)


def test_sampling_is_uniform_and_valid():
    samples = sample_sparse_vectors(20, 5, 4000, seed=0)
    assert samples.supports.shape == (4000, 5)
    assert np.all(np.diff(samples.supports, axis=1) > 0)  # sorted, distinct
    counts = np.bincount(samples.supports.ravel(), minlength=20)
    chi2 = np.sum((counts - 1000) ** 2 / 1000)
    assert chi2 < 45  # χ²(19) 99.9% quantile ≈ 43.8
    assert abs(samples.values.std() - 1) < 0.03


def test_trials_reproduce_paper_table4_extreme_within_spread():
    res = rip_trials(512, 256, 32, 8, trials=10, seed=0).summary().set_index("s")
    for s, (mean, std) in {5: (0.158, 0.051), 10: (0.133, 0.041), 20: (0.098, 0.030)}.items():
        assert abs(res.loc[s, "mean"] - mean) <= std


def test_trials_identical_for_any_jobs_and_across_processes():
    code = ("import json; from ripkit.rip import rip_trials;"
            "r = rip_trials(30, 20, 6, 4, sparsity=(3,), n_samples=50, trials=3, seed=11, n_jobs={j},"
            " estimators=('percentile', 'support'));"
            "print(json.dumps(r.records[['trial','s','estimator','delta']].to_dict('records')))")
    outs = [subprocess.run([sys.executable, "-c", code.format(j=j)], capture_output=True, text=True,
                           check=True).stdout for j in (1, 2, 1)]
    assert outs[0] == outs[1] == outs[2]
    assert len(json.loads(outs[0])) == 6


@pytest.mark.parametrize("call, exc, match", [
    (lambda d: estimate_rip(d, 13), ValueError, "s=13 must be <= the number of coefficients ab=12"),
    (lambda d: estimate_rip(d, 2, percentile=0), ValueError, r"percentile=0 must be in \(0.0, 100.0\]"),
    (lambda d: estimate_rip(d, 2, n_samples=0), ValueError, "n_samples=0 must be >= 1"),
    (lambda d: estimate_rip(d, 3, samples=sample_sparse_vectors(12, 2, 5)), ValueError, "samples have sparsity 2"),
    (lambda d: rip_trials(9, 7, 4, 3, sparsity=(20,)), ValueError, "s=20 must be <= ab=12"),
    (lambda d: rip_trials(9, 7, 4, 3, sparsity=(2,), estimators=("max",)), ValueError, "estimator='max' must be one of"),
])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call(_small_dict())


@pytest.mark.parametrize("s", [1, 2, 7])
def test_numba_quadratic_forms_equal_numpy_gather(s):
    from ripkit.rip.estimators import quadratic_forms, quadratic_forms_numpy

    d = _small_dict(5, m=11, n=9, a=5, b=4)
    samples = sample_sparse_vectors(d.shape[1], s, 300, seed=s)
    g = d.gram_factors()
    np.testing.assert_allclose(quadratic_forms(*g, samples.supports, samples.values),
                               quadratic_forms_numpy(*g, samples.supports, samples.values), rtol=1e-12)


def test_trial_summary_matches_pandas_groupby_and_statistics():
    import statistics

    res = rip_trials(30, 20, 6, 4, sparsity=(2, 3), n_samples=40, trials=4, seed=3,
                     estimators=("percentile", "support"))
    ref = res.records.groupby(["s", "estimator"], sort=True)["delta"].agg(["mean", "std", "min", "max", "count"])
    got = res.summary().set_index(["s", "estimator"])
    assert list(got.index) == list(ref.index)
    np.testing.assert_allclose(got[["mean", "std", "min", "max"]], ref[["mean", "std", "min", "max"]], rtol=1e-14)
    assert (got["count"] == ref["count"]).all()
    for row in res.summary_rows():  # correctly rounded: statistics' exact-fraction results, bit for bit
        d = [r["delta"] for r in res.rows if (r["s"], r["estimator"]) == (row["s"], row["estimator"])]
        assert row["mean"] == statistics.fmean(d) and row["std"] == statistics.stdev(d)
    one = rip_trials(30, 20, 6, 4, sparsity=(2,), n_samples=40, trials=1, seed=3).summary_rows()
    assert one[0]["std"] == 0.0 and one[0]["count"] == 1
