import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose
from hypothesis import given, settings, strategies as st

from ripkit.coherence import gram_coherence, kron_coherence, mutual_coherence, recovery_condition
from ripkit.kron import KroneckerDictionary


def _brute_force_mu(matrix):
    cols = matrix / np.linalg.norm(matrix, axis=0)
    return max(abs(cols[:, i] @ cols[:, j]) for i, j in itertools.combinations(range(cols.shape[1]), 2))


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 7), n=st.integers(1, 7), a=st.integers(1, 5), b=st.integers(1, 5),
       seed=st.integers(0, 2**16))
def test_kron_coherence_equals_brute_force(m, n, a, b, seed):
    """μ(Rᵀ⊗L) = max(μ(L), μ(Rᵀ)) against a pairwise loop over the dense Ψ."""
    if a * b < 2:
        return
    rng = np.random.default_rng(seed)
    d = KroneckerDictionary(rng.standard_normal((m, a)), rng.standard_normal((b, n)))
    psi = d.to_dense()
    coh = kron_coherence(d)
    np.testing.assert_allclose(coh.mu, _brute_force_mu(psi), rtol=1e-12)
    i, j = coh.pair
    cols = psi / np.linalg.norm(psi, axis=0)
    np.testing.assert_allclose(abs(cols[:, i] @ cols[:, j]), coh.mu, rtol=1e-12)


def test_orthonormal_dictionary_has_zero_coherence():
    q1 = np.linalg.qr(np.random.default_rng(0).standard_normal((8, 4)))[0]
    q2 = np.linalg.qr(np.random.default_rng(1).standard_normal((6, 3)))[0]
    d = KroneckerDictionary(q1, q2.T)
    assert kron_coherence(d).mu == pytest.approx(0.0, abs=1e-14)


def test_dense_coherence_known_value():
    mat = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    coh = mutual_coherence(mat)
    assert coh.mu == pytest.approx(1 / np.sqrt(2)) and coh.pair in {(0, 1), (1, 2)}
    assert mutual_coherence(np.ones((3, 1))).mu == 0.0


def test_recovery_condition():
    r = recovery_condition(0.2, 20)
    assert r["holds_sqrt"] and r["threshold_sqrt"] == pytest.approx(0.2236, abs=1e-4)
    assert not r["holds_exact"] and r["threshold_exact"] == pytest.approx(1 / 39)
    assert not recovery_condition(0.25, 20)["holds_sqrt"]


def test_errors():
    with pytest.raises(ValueError, match="gram must be square"):
        gram_coherence(np.ones((2, 3)))
    with pytest.raises(ValueError, match="zero .* diagonal"):
        mutual_coherence(np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="mu=-1 must be"):
        recovery_condition(-1, 3)
    with pytest.raises(ValueError, match="s=0 must be >= 1"):
        recovery_condition(0.1, 0)


# ---- coherence of random dictionaries, as a probability ----------------------------------------
def test_coherence_draws_are_the_trial_dictionaries():
    from ripkit.coherence import coherence_draws
    from ripkit.rip import trial_dictionary

    mus = coherence_draws(40, 30, 8, 4, draws=3, seed=5)
    for t, mu in enumerate(mus):
        d = trial_dictionary(40, 30, 8, 4, 5, t)
        assert mu == kron_coherence(d).mu
        assert_allclose(mu, mutual_coherence(d.to_dense()).mu, rtol=1e-12)


def test_coherence_probability_counts_and_exact_interval():
    from scipy.stats import binomtest

    from ripkit.coherence import coherence_probability

    res = coherence_probability([0.1, 0.2, 0.3, 0.25], 0.22)
    assert (res["below"], res["draws"], res["p_below"]) == (2, 4, 0.5)
    ci = binomtest(2, 4).proportion_ci(method="exact")
    assert_allclose([res["ci_low"], res["ci_high"]], [ci.low, ci.high])
    with pytest.raises(ValueError, match="non-empty"):
        coherence_probability([], 0.2)


@pytest.mark.parametrize("mu", [0.9, 0.5, 1 / 3, 0.2, 0.163, 0.026, 1.0, 1.5])
def test_max_guaranteed_sparsity_by_brute_force(mu):
    from ripkit.coherence import max_guaranteed_sparsity

    expected = max([s for s in range(1, 100) if mu < 1 / (2 * s - 1)], default=0)
    assert max_guaranteed_sparsity(mu) == expected
