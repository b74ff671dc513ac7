"""Sparse recovery of α from x = Φα with well-kept solvers: OMP (scikit-learn) and basis pursuit (HiGHS).

CoSA (section 3.2, eq. 3–5; appendix A.1) rests on compressed sensing: an s-sparse α is
recovered from x = Φα when Φ satisfies the RIP.  These wrappers let a study test that
premise directly on a Kronecker dictionary Ψ = Rᵀ⊗L (recovering Y from ΔW = L·Y·R)
against an i.i.d. Gaussian dictionary with the same number of rows.

* :func:`omp` — ``sklearn.linear_model.OrthogonalMatchingPursuit`` with s atoms
  (Pati, Rezaiifar & Krishnaprasad 1993; Tropp & Gilbert 2007).
* :func:`basis_pursuit` — min ‖α‖₁ subject to Φα = x (Chen, Donoho & Saunders 1998),
  written as the linear programme over (u, v) ≥ 0, α = u − v:
  min 1ᵀ(u + v) s.t. [Φ, −Φ]·[u; v] = x, solved by ``scipy.optimize.linprog`` (HiGHS).

OMP needs scikit-learn (in the ``test`` extra).  Both expect a dense Φ (small cases: the
caller bounds its size) and work best with unit-norm columns; :func:`unit_columns`
rescales and returns the norms so that the recovered coefficients can be mapped back.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linprog

from ripkit._checks import check_matrix, check_positive_int

__all__ = ["unit_columns", "omp", "basis_pursuit", "recovered", "sparse_vector"]


def unit_columns(phi) -> tuple[np.ndarray, np.ndarray]:
    """(Φ with unit-norm columns, the column norms).  A zero column raises ValueError."""
    phi = check_matrix("phi", phi)
    norms = np.linalg.norm(phi, axis=0)
    if np.any(norms == 0):
        raise ValueError("phi has a zero column: it cannot be normalised")
    return phi / norms, norms


def _check_system(phi, x) -> tuple[np.ndarray, np.ndarray]:
    phi = check_matrix("phi", phi)
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.shape != (phi.shape[0],):
        raise ValueError(f"x has shape {x.shape}, expected ({phi.shape[0]},) (the rows of phi)")
    return phi, x


def omp(phi, x, s: int) -> np.ndarray:
    """Orthogonal matching pursuit with exactly ``s`` atoms (no intercept); returns α̂ (length d)."""
    try:
        from sklearn.linear_model import OrthogonalMatchingPursuit
    except ImportError as exc:  # scikit-learn is a test/studies extra, not a core dependency
        raise ImportError("ripkit.recovery.omp needs scikit-learn (pip install 'ripkit[test]' "
                          "or pip install scikit-learn)") from exc

    phi, x = _check_system(phi, x)
    s = check_positive_int("s", s)
    if s > min(phi.shape):
        raise ValueError(f"s={s} must be <= min(rows, columns) = {min(phi.shape)} of phi")
    model = OrthogonalMatchingPursuit(n_nonzero_coefs=s, fit_intercept=False, precompute=False)
    return model.fit(phi, x).coef_.astype(np.float64)


def basis_pursuit(phi, x) -> np.ndarray:
    """min ‖α‖₁ s.t. Φα = x (HiGHS dual simplex).  Raises RuntimeError if the LP does not solve."""
    phi, x = _check_system(phi, x)
    d = phi.shape[1]
    res = linprog(np.ones(2 * d), A_eq=np.hstack([phi, -phi]), b_eq=x, bounds=(0, None), method="highs-ds")
    if res.status != 0:
        raise RuntimeError(f"basis pursuit LP failed: {res.message}")
    return res.x[:d] - res.x[d:]


def recovered(alpha_hat, alpha, *, rtol: float = 1e-4) -> bool:
    """Success criterion: ‖α̂ − α‖₂ ≤ rtol·‖α‖₂ (the solvers reach ~1e-9 on success)."""
    alpha_hat, alpha = np.asarray(alpha_hat, dtype=np.float64), np.asarray(alpha, dtype=np.float64)
    return bool(np.linalg.norm(alpha_hat - alpha) <= rtol * np.linalg.norm(alpha))


def sparse_vector(d: int, support, rng) -> np.ndarray:
    """A length-``d`` vector with i.i.d. N(0, 1) values on ``support`` and zeros elsewhere."""
    support = np.asarray(support, dtype=np.int64)
    out = np.zeros(check_positive_int("d", d))
    out[support] = rng.standard_normal(support.size)
    return out
