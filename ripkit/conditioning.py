"""Conditioning of the CoSA map Y ↦ L·Y·R on all of R^{a×b}, exactly from the factors.

CoSA trains a *dense* core Y, so what the paper's stability argument needs (eq. 8,
‖Ψ(α₁ − α₂)‖² ≈ ‖α₁ − α₂‖²) is the behaviour of Ψ = Rᵀ⊗L on every α ∈ R^{ab}, not
only on s-sparse α (the RIP).  Over all α the ratio ‖Ψα‖²/‖α‖² ranges over exactly
[σ_min(Ψ)², σ_max(Ψ)²], and Y ↦ L·Y·R is injective iff σ_min(Ψ) > 0.

Identity (used and proved here)
-------------------------------
For L (m×a) and R (b×n), the singular values of Ψ = Rᵀ⊗L (mn×ab) are the products
σ_i(R)·σ_j(L) (with σ(R) = σ(Rᵀ)), each counted once per pair (i, j).

*Proof.* Take full SVDs Rᵀ = U_R Σ_R V_Rᵀ and L = U_L Σ_L V_Lᵀ.  By the mixed-product
rule Ψ = (U_R⊗U_L)(Σ_R⊗Σ_L)(V_R⊗V_L)ᵀ, and a Kronecker product of orthogonal
matrices is orthogonal, so this is an SVD of Ψ with the "diagonal" Σ_R⊗Σ_L, whose
entries are the products σ_i(R)σ_j(L). ∎

Consequences, with σ_a(L) the a-th singular value of L (0 when a > m, since rank L ≤ m)
and σ_b(R) likewise (0 when b > n):

* σ_max(Ψ) = σ_1(L)·σ_1(R) and σ_min(Ψ) = σ_a(L)·σ_b(R) (the smallest of the ab products);
* κ(Ψ) = σ_max/σ_min = κ(L)·κ(R), κ(X) = σ_1(X)/σ_{min side}(X) (∞ if X is rank deficient);
* Y ↦ L·Y·R is injective iff rank L = a and rank R = b: if L and Rᵀ are injective then
  LYR = 0 ⇒ YR = 0 ⇒ Y = 0; if Lu = 0 for some u ≠ 0, then L(u vᵀ)R = 0 for every v.
  For Gaussian draws this holds (almost surely) iff a ≤ m and b ≤ n.

Marchenko–Pastur prediction (Marchenko & Pastur 1967; e.g. Vershynin 2018, Thm 4.6.1)
-----------------------------------------------------------------------------------------
For X (p×q) with i.i.d. N(0, 1/p) entries and q/p → y, the non-zero eigenvalues of XᵀX
fill [(1 − √y)², (1 + √y)²].  The ``unit`` scale draws L ~ N(0, 1/m) (p = m, q = a) and
Rᵀ ~ N(0, 1/n) (p = n, q = b), so

    σ_max(Ψ)² ≈ (1 + √(a/m))²·(1 + √(b/n))²,   σ_min(Ψ)² ≈ (1 − √(a/m))²·(1 − √(b/n))²,

the latter 0 when a ≥ m or b ≥ n (for a > m the a − m extra eigenvalues of LᵀL are exactly
0; the non-zero ones keep the same edges since (√y ± 1)² = (1 ± √y)²).  These are
asymptotic edges: at finite size the extreme eigenvalues fluctuate by O(p^{-2/3})
(Tracy–Widom), which the tests allow for.  The ``cosa`` scale multiplies σ(L)² by m/a and
σ(R)² by n/b: κ is unchanged and ``ratio_low``/``ratio_high`` below are reported for
Ψ/√c, i.e. on the same footing as the RIP estimators.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.linalg import svdvals

from ripkit._checks import check_matrix, check_positive_int

__all__ = ["Conditioning", "factor_singular_values", "kron_conditioning", "mp_edges", "mp_prediction",
           "ls_core", "range_energy"]


def factor_singular_values(x) -> np.ndarray:
    """All min(rows, cols) singular values of a factor, descending (LAPACK ``gesdd``, backward stable)."""
    return svdvals(check_matrix("x", x), check_finite=False)


def _numerical_rank(sv: np.ndarray, shape) -> int:
    # numpy.linalg.matrix_rank's default tolerance: σ_1 · max(shape) · eps
    tol = sv[0] * max(shape) * np.finfo(np.float64).eps if sv.size else 0.0
    return int(np.count_nonzero(sv > tol))


@dataclass(frozen=True)
class Conditioning:
    """Extreme singular values of Ψ = Rᵀ⊗L (exact from the factors) and what they imply.

    ``sigma_min`` is the smallest of the ab singular values of Ψ, 0 when the map
    Y ↦ L·Y·R is not injective; ``ratio_low``/``ratio_high`` = σ_min²/c, σ_max²/c bound
    ‖Ψα‖²/(c‖α‖²) over *all* α ∈ R^{ab} and are attained (c: the dictionary's isometry scale).
    """

    m: int
    n: int
    a: int
    b: int
    sigma_max: float
    sigma_min: float
    kappa: float
    kappa_left: float
    kappa_right: float
    rank_left: int
    rank_right: int
    injective: bool
    isometry_scale: float
    ratio_low: float
    ratio_high: float

    def to_dict(self) -> dict:
        return asdict(self)


def _factor_extremes(sv: np.ndarray, full: int, shape) -> tuple[float, float, int]:
    """(σ_1, σ_full, rank) where σ_full is the ``full``-th singular value (0 if there are fewer)."""
    rank = _numerical_rank(sv, shape)
    low = float(sv[full - 1]) if rank >= full else 0.0
    return float(sv[0]), low, rank


def kron_conditioning(dictionary) -> Conditioning:
    """κ(Ψ) = κ(L)·κ(R), the range of ‖Ψα‖²/‖α‖² and injectivity of Y ↦ L·Y·R (module docstring).

    Costs two factor SVDs, O(m·a·min(m, a) + n·b·min(n, b)); Ψ is never formed.
    """
    left, right = dictionary.left, dictionary.right
    m, a = left.shape
    b, n = right.shape
    l1, la, rank_l = _factor_extremes(factor_singular_values(left), a, left.shape)
    r1, rb, rank_r = _factor_extremes(factor_singular_values(right), b, right.shape)
    smax, smin = l1 * r1, la * rb
    c = float(dictionary.isometry_scale)
    injective = rank_l == a and rank_r == b
    return Conditioning(
        m=m, n=n, a=a, b=b, sigma_max=smax, sigma_min=smin if injective else 0.0,
        kappa=smax / smin if injective else np.inf,
        kappa_left=l1 / la if rank_l == a else np.inf, kappa_right=r1 / rb if rank_r == b else np.inf,
        rank_left=rank_l, rank_right=rank_r, injective=injective, isometry_scale=c,
        ratio_low=(smin ** 2 / c) if injective else 0.0, ratio_high=smax ** 2 / c)


def mp_edges(rows: int, cols: int) -> tuple[float, float]:
    """Marchenko–Pastur edges ((1 − √y)², (1 + √y)²), y = cols/rows, of XᵀX's non-zero eigenvalues.

    For X (rows×cols) with i.i.d. N(0, 1/rows) entries (ripkit's ``unit`` L is (m, a) with
    N(0, 1/m); Rᵀ is (n, b) with N(0, 1/n)).  Asymptotic, not a bound.
    """
    check_positive_int("rows", rows)
    check_positive_int("cols", cols)
    y = cols / rows
    return (1 - np.sqrt(y)) ** 2, (1 + np.sqrt(y)) ** 2


def mp_prediction(m: int, n: int, a: int, b: int) -> dict:
    """Marchenko–Pastur predictions for the ``unit`` Gaussian Ψ: σ² range, κ(L), κ(R), κ(Ψ), injectivity.

    σ_min² is predicted 0 (κ = ∞) whenever a ≥ m or b ≥ n; at a = m (or b = n) the
    draw is injective but its σ_min lies at the hard edge 0 (κ grows like the size).
    """
    lo_l, hi_l = mp_edges(m, a)
    lo_r, hi_r = mp_edges(n, b)
    if a > m:
        lo_l = 0.0
    if b > n:
        lo_r = 0.0
    k_l = np.sqrt(hi_l / lo_l) if lo_l > 0 else np.inf
    k_r = np.sqrt(hi_r / lo_r) if lo_r > 0 else np.inf
    return {"mp_ratio_low": lo_l * lo_r, "mp_ratio_high": hi_l * hi_r, "mp_kappa_left": k_l,
            "mp_kappa_right": k_r, "mp_kappa": k_l * k_r, "mp_injective": bool(a <= m and b <= n)}


def _orthonormal_range(x: np.ndarray) -> np.ndarray:
    """An orthonormal basis of range(x) (thin SVD, numerical rank as numpy.linalg.matrix_rank)."""
    u, sv, _ = np.linalg.svd(x, full_matrices=False)
    return u[:, :_numerical_rank(sv, x.shape)]


def range_energy(delta_w, left, right) -> float:
    """‖P_L·ΔW·P_R‖_F² / ‖ΔW‖_F²: the fraction of ΔW's energy inside range(Ψ), Ψ = Rᵀ⊗L (CoSA eq. 7).

    range(Ψ) = {L·Y·R} is the set of matrices whose columns lie in col(L) and rows in
    row(R); the orthogonal projection onto it is ΔW ↦ P_L·ΔW·P_R with P_L = Q_L Q_Lᵀ,
    P_R = Q_R Q_Rᵀ (Q: orthonormal bases of col(L) and col(Rᵀ)), since P_Rᵀ⊗P_L is
    the projector onto range(Rᵀ⊗L) = range(Rᵀ)⊗range(L).  Hence the energy is
    ‖Q_Lᵀ ΔW Q_R‖_F², exact from the factors.
    """
    dw = check_matrix("delta_w", delta_w)
    q_l, q_r = _orthonormal_range(check_matrix("left", left)), _orthonormal_range(check_matrix("right", right).T)
    if dw.shape != (q_l.shape[0], q_r.shape[0]):
        raise ValueError(f"delta_w has shape {dw.shape}, expected (m, n) = ({q_l.shape[0]}, {q_r.shape[0]})")
    total = float(np.sum(dw ** 2))
    if total == 0:
        raise ValueError("delta_w is zero: its energy fraction is undefined")
    return float(np.sum((q_l.T @ dw @ q_r) ** 2) / total)


def ls_core(delta_w, left, right) -> np.ndarray:
    """The least-squares core Y* = L⁺·ΔW·R⁺ (a×b), the minimum-norm minimiser of ‖L·Y·R − ΔW‖_F.

    In CoSA's synthesis form (eq. 7, x = Ψα): vec(Y*) = (Rᵀ⊗L)⁺ vec(ΔW) because (Rᵀ⊗L)⁺ = (Rᵀ)⁺⊗L⁺ = (R⁺)ᵀ⊗L⁺ (pseudo-inverses
    commute with ⊗), and L·Y*·R = P_L·ΔW·P_R is the projection onto range(Ψ).
    """
    dw = check_matrix("delta_w", delta_w)
    left, right = check_matrix("left", left), check_matrix("right", right)
    if dw.shape != (left.shape[0], right.shape[1]):
        raise ValueError(f"delta_w has shape {dw.shape}, expected (m, n) = ({left.shape[0]}, {right.shape[1]})")
    return np.linalg.pinv(left) @ dw @ np.linalg.pinv(right)
