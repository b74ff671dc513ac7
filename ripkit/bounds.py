"""Closed-form RIP bounds: the paper's theory curve and coherence bounds.

Each function states which side it bounds and under which assumption.
"""
from __future__ import annotations

import numpy as np

from ripkit._checks import check_positive_int

__all__ = ["theory_delta", "coherence_bound", "gershgorin_bound", "kron_product_bound"]


def theory_delta(s: int, n_ambient: int, m_measurements: int, C: float = 1.0) -> float:
    """The paper's δ_s ≲ C·sqrt(s·log(n)/m) (CoSA appendix A.2, eq. 17).

    This is a *high-probability scaling law* with an unspecified absolute
    constant C, not a certified bound on any particular matrix: the value moves
    linearly with the C you choose.

    Parameters
    ----------
    s : int
        Sparsity level.
    n_ambient : int
        n in the formula, the ambient dimension of the coefficients.  The paper
        takes n = ab for CoSA (A.2, "Implications for CoSA").
    m_measurements : int
        m in the formula, the number of measurements.  The paper leaves it as
        "effective number of measurements"; for Ψ (mn×ab) the number of rows mn
        is the classical reading, and ripkit's CLI uses it.
    C : float
        The absolute constant (default 1.0).
    """
    check_positive_int("s", s)
    check_positive_int("n_ambient", n_ambient, minimum=2)
    check_positive_int("m_measurements", m_measurements)
    if not np.isfinite(C) or C <= 0:
        raise ValueError(f"C={C} must be a finite number > 0")
    return float(C * np.sqrt(s * np.log(n_ambient) / m_measurements))


def coherence_bound(mu: float, s: int) -> float:
    """δ_s ≤ (s−1)·μ for a dictionary with *unit-norm columns* (Gershgorin).

    Valid (an upper bound on the true δ_s) only when every column has norm 1;
    for raw columns use :func:`gershgorin_bound`.
    """
    check_positive_int("s", s)
    if not np.isfinite(mu) or mu < 0:
        raise ValueError(f"mu={mu} must be a finite number >= 0")
    return float((s - 1) * mu)


def gershgorin_bound(max_diag_dev: float, max_offdiag: float, s: int) -> float:
    """δ_s ≤ max_i |G_ii − 1| + (s−1)·max_{i≠j} |G_ij| for any Gram matrix G (upper bound).

    Every eigenvalue of an s×s principal sub-block G_S lies in a Gershgorin disc
    centred at some G_ii with radius Σ_{j∈S, j≠i} |G_ij| ≤ (s−1)·max|G_ij|.
    """
    check_positive_int("s", s)
    return float(max_diag_dev + (s - 1) * max_offdiag)


def kron_product_bound(delta_left: float, delta_right: float) -> float:
    """δ_s(Rᵀ⊗L) ≤ (1+δ_s(L))(1+δ_s(Rᵀ)) − 1 (Duarte & Baraniuk 2012, Lemma 3 form).

    Upper bound; the inputs must themselves be upper bounds on (or exact values
    of) the factors' δ_s.  See ``ripkit.rip.bracket`` for the exact statement
    and its proof for both sides of the RIP.
    """
    for name, v in (("delta_left", delta_left), ("delta_right", delta_right)):
        if not np.isfinite(v) or v < 0:
            raise ValueError(f"{name}={v} must be a finite number >= 0")
    return float((1 + delta_left) * (1 + delta_right) - 1)
