"""ripkit.recovery: OMP and basis pursuit recover planted sparse vectors; a brute-force ℓ1 check."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose

from ripkit.recovery import basis_pursuit, omp, recovered, sparse_vector, unit_columns


def _system(rows=40, cols=100, s=5, seed=0):
    rng = np.random.default_rng(seed)
    phi, _ = unit_columns(rng.standard_normal((rows, cols)))
    alpha = sparse_vector(cols, rng.choice(cols, s, replace=False), rng)
    return phi, alpha, phi @ alpha


@pytest.mark.parametrize("solver", ["omp", "bp"])
def test_planted_sparse_vector_is_recovered(solver):
    phi, alpha, x = _system()
    hat = omp(phi, x, 5) if solver == "omp" else basis_pursuit(phi, x)
    assert recovered(hat, alpha, rtol=1e-8)


def test_basis_pursuit_is_the_l1_minimiser_on_a_tiny_system():
    # Brute force: the LP optimum is attained at a basic solution (support of size <= rows);
    # enumerate every support of size rows, solve exactly, keep the smallest l1 norm.
    rng = np.random.default_rng(3)
    phi = rng.standard_normal((3, 7))
    x = rng.standard_normal(3)
    best = np.inf
    for sup in itertools.combinations(range(7), 3):
        sub = phi[:, sup]
        if abs(np.linalg.det(sub)) < 1e-12:
            continue
        best = min(best, np.abs(np.linalg.solve(sub, x)).sum())
    hat = basis_pursuit(phi, x)
    assert_allclose(phi @ hat, x, atol=1e-9)
    assert_allclose(np.abs(hat).sum(), best, rtol=1e-8)


def test_too_sparse_a_budget_fails_and_is_reported():
    phi, alpha, x = _system(rows=12, cols=60, s=10, seed=1)  # s close to rows: beyond OMP's reach
    assert not recovered(omp(phi, x, 10), alpha)


def test_unit_columns_and_checks():
    phi, norms = unit_columns(np.array([[3.0, 0.0], [4.0, 2.0]]))
    assert_allclose(norms, [5.0, 2.0])
    assert_allclose(np.linalg.norm(phi, axis=0), 1.0)
    with pytest.raises(ValueError, match="zero column"):
        unit_columns(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="expected \\(2,\\)"):
        omp(np.eye(2), np.ones(3), 1)
    with pytest.raises(ValueError, match="s=3 must be <="):
        omp(np.eye(2), np.ones(2), 3)
