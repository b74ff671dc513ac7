import itertools

import numpy as np
import pytest

from ripkit.bounds import coherence_bound, gershgorin_bound, kron_product_bound, theory_delta
from ripkit.coherence import mutual_coherence


def test_theory_delta_formula():
    assert theory_delta(5, 256, 512, C=2.0) == pytest.approx(2.0 * np.sqrt(5 * np.log(256) / 512))


def _exact_delta(gram, s):
    worst = 0.0
    for sup in itertools.combinations(range(gram.shape[0]), s):
        ev = np.linalg.eigvalsh(gram[np.ix_(sup, sup)])
        worst = max(worst, ev[-1] - 1, 1 - ev[0])
    return worst


@pytest.mark.parametrize("seed", range(5))
def test_coherence_bound_is_an_upper_bound_for_unit_columns(seed):
    phi = np.random.default_rng(seed).standard_normal((12, 9))
    phi /= np.linalg.norm(phi, axis=0)
    mu = mutual_coherence(phi).mu
    for s in (2, 3):
        assert _exact_delta(phi.T @ phi, s) <= coherence_bound(mu, s) + 1e-12


@pytest.mark.parametrize("seed", range(5))
def test_gershgorin_bound_is_an_upper_bound_for_raw_columns(seed):
    phi = np.random.default_rng(seed).standard_normal((30, 8)) / np.sqrt(30)
    g = phi.T @ phi
    off = np.abs(g - np.diag(np.diag(g))).max()
    for s in (1, 2, 3):
        assert _exact_delta(g, s) <= gershgorin_bound(np.abs(np.diag(g) - 1).max(), off, s) + 1e-12


def test_kron_product_bound_value_and_errors():
    assert kron_product_bound(0.1, 0.2) == pytest.approx(0.32)
    with pytest.raises(ValueError, match="delta_left=-0.1"):
        kron_product_bound(-0.1, 0.2)
    with pytest.raises(ValueError, match="n_ambient=1 must be >= 2"):
        theory_delta(5, 1, 10)
    with pytest.raises(ValueError, match="C=0"):
        theory_delta(5, 10, 10, C=0)
    with pytest.raises(ValueError, match="mu=nan"):
        coherence_bound(float("nan"), 3)
