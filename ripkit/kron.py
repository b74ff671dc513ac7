"""The CoSA Kronecker dictionary Ψ = Rᵀ⊗L, applied without ever forming it.

CoSA (paper section 4, eq. 6–8) writes a weight update as ΔW = L·Y·R with fixed
L (m×a), R (b×n) and a trainable core Y (a×b).  With column-major (Fortran)
vectorisation,

.. math::

    \\mathrm{vec}(L Y R) = (R^\\top \\otimes L)\\,\\mathrm{vec}(Y) = \\Psi\\,\\alpha,

so Ψ is an mn×ab dictionary whose column j = k + a·l (Y entry (k, l)) is
vec(L[:, k] · R[l, :]) = R[l, :]ᵀ ⊗ L[:, k].  Everything here stores only the
factors: memory is O(m·a + b·n), never O(m·n·a·b).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse.linalg import LinearOperator

from ripkit._checks import check_matrix
from ripkit.projections import fingerprint, projection_pair, projection_std

__all__ = ["KroneckerDictionary", "DEFAULT_MAX_DENSE_BYTES"]

#: ``to_dense`` refuses to build Ψ above this many bytes (256 MiB).
DEFAULT_MAX_DENSE_BYTES = 256 * 2**20


@dataclass(frozen=True, eq=False)
class KroneckerDictionary:
    """Ψ = Rᵀ⊗L (shape (m·n, a·b)) held as its factors.

    Parameters
    ----------
    left : ndarray, shape (m, a)
        L, the output-side projection.
    right : ndarray, shape (b, n)
        R, the input-side projection.
    scale : str, optional
        The scale convention the factors were drawn with ('unit', 'cosa'), or
        'custom' for user factors; kept for reporting only.
    isometry_scale : float, optional
        c, the squared column norm Ψ is expected to have (1 for 'unit',
        (m/a)(n/b) for 'cosa').  RIP estimators measure Ψ/√c, i.e. "isometry up
        to the factor c", and report c.

    Notes
    -----
    Coefficient vectors α = vec(Y) are column-major: α[k + a·l] = Y[k, l].
    The Gram matrix is ΨᵀΨ = (R Rᵀ) ⊗ (LᵀL) = G_R ⊗ G_L, with entry
    [(k,l), (k',l')] = G_L[k, k'] · G_R[l, l'].
    """

    left: np.ndarray
    right: np.ndarray
    scale: str = "custom"
    isometry_scale: float = 1.0

    def __post_init__(self):
        left = check_matrix("left", self.left)
        right = check_matrix("right", self.right)
        if not np.isfinite(self.isometry_scale) or self.isometry_scale <= 0:
            raise ValueError(f"isometry_scale={self.isometry_scale} must be a finite number > 0")
        object.__setattr__(self, "left", left)
        object.__setattr__(self, "right", right)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_seed(cls, m: int, n: int, a: int, b: int, seed=0, *, scale="unit", kind="gaussian"):
        """Draw L (m×a) and R (b×n) with ``ripkit.projections.projection_pair``."""
        left, right = projection_pair(m, n, a, b, seed, scale=scale, kind=kind)
        std_l, std_r = projection_std(m, n, a, b, scale)
        # E‖ψ_(k,l)‖² = E‖L_k‖²·E‖R_l‖² = (m σ_L²)(n σ_R²): 1 for 'unit', mn/(ab) for 'cosa'.
        c = float(m * std_l**2 * n * std_r**2)
        return cls(left, right, scale=scale, isometry_scale=c)

    # ------------------------------------------------------------------ sizes
    @property
    def m(self) -> int:
        return self.left.shape[0]

    @property
    def a(self) -> int:
        return self.left.shape[1]

    @property
    def b(self) -> int:
        return self.right.shape[0]

    @property
    def n(self) -> int:
        return self.right.shape[1]

    @property
    def shape(self) -> tuple[int, int]:
        """(m·n, a·b), the shape of Ψ."""
        return (self.m * self.n, self.a * self.b)

    @property
    def compression_ratio(self) -> float:
        """mn/ab: entries of ΔW per trainable core entry."""
        return self.m * self.n / (self.a * self.b)

    def fingerprints(self) -> dict:
        """Short fingerprints of L and R (see ``ripkit.projections.fingerprint``)."""
        return {"left": fingerprint(self.left), "right": fingerprint(self.right)}

    # ------------------------------------------------------------------ products
    def apply(self, core: np.ndarray) -> np.ndarray:
        """ΔW = L·Y·R for one core (a, b) -> (m, n), or a batch (B, a, b) -> (B, m, n)."""
        core = np.asarray(core)
        if core.ndim not in (2, 3) or core.shape[-2:] != (self.a, self.b):
            raise ValueError(
                f"core must have shape ({self.a}, {self.b}) or (batch, {self.a}, {self.b}), got {core.shape}"
            )
        # Multiply the smaller side first: cost m·a·b + m·b·n versus a·b·n + m·a·n.
        if self.m * self.a * self.b + self.m * self.b * self.n <= self.a * self.b * self.n + self.m * self.a * self.n:
            return (self.left @ core) @ self.right
        return self.left @ (core @ self.right)

    def matvec(self, alpha: np.ndarray) -> np.ndarray:
        """Ψα = vec(L·Y·R) for α (ab,) -> (mn,), or columns of α (ab, K) -> (mn, K)."""
        alpha = np.asarray(alpha)
        if alpha.ndim not in (1, 2) or alpha.shape[0] != self.shape[1]:
            raise ValueError(f"alpha must have shape ({self.shape[1]},) or ({self.shape[1]}, K), got {alpha.shape}")
        k = 1 if alpha.ndim == 1 else alpha.shape[1]
        # Column-major vec of each of the K cores: (ab, K) -> (K, a, b).
        cores = alpha.reshape(self.a, self.b, k, order="F").transpose(2, 0, 1)
        out = self.apply(cores)  # (K, m, n)
        flat = out.transpose(1, 2, 0).reshape(self.shape[0], k, order="F")
        return flat[:, 0] if alpha.ndim == 1 else flat

    def rmatvec(self, x: np.ndarray) -> np.ndarray:
        """Ψᵀx = vec(Lᵀ·X·Rᵀ) for x = vec(X), X (m, n); also columns (mn, K) -> (ab, K)."""
        x = np.asarray(x)
        if x.ndim not in (1, 2) or x.shape[0] != self.shape[0]:
            raise ValueError(f"x must have shape ({self.shape[0]},) or ({self.shape[0]}, K), got {x.shape}")
        k = 1 if x.ndim == 1 else x.shape[1]
        mats = x.reshape(self.m, self.n, k, order="F").transpose(2, 0, 1)  # (K, m, n)
        cores = (self.left.T @ mats) @ self.right.T  # (K, a, b)
        flat = cores.transpose(1, 2, 0).reshape(self.shape[1], k, order="F")
        return flat[:, 0] if x.ndim == 1 else flat

    def as_linear_operator(self) -> LinearOperator:
        """A ``scipy.sparse.linalg.LinearOperator`` view of Ψ (float64)."""
        return LinearOperator(
            shape=self.shape, dtype=np.float64,
            matvec=self.matvec, rmatvec=self.rmatvec,
            matmat=self.matvec, rmatmat=self.rmatvec,
        )

    # ------------------------------------------------------------------ Gram structure
    def gram_factors(self) -> tuple[np.ndarray, np.ndarray]:
        """(G_L, G_R) = (LᵀL, R Rᵀ), shapes (a, a) and (b, b); ΨᵀΨ = G_R ⊗ G_L.

        Cost O(m·a² + n·b²); memory O(a² + b²).
        """
        return self.left.T @ self.left, self.right @ self.right.T

    def column_norms(self) -> np.ndarray:
        """‖ψ_j‖ for j = k + a·l, shape (ab,): ‖ψ_(k,l)‖ = ‖L[:, k]‖·‖R[l, :]‖."""
        return np.kron(np.linalg.norm(self.right, axis=1), np.linalg.norm(self.left, axis=0))

    def normalized(self) -> "KroneckerDictionary":
        """Ψ with unit-norm columns, still Kronecker: (R/‖R_l‖)ᵀ ⊗ (L/‖L_k‖)."""
        ln = np.linalg.norm(self.left, axis=0)
        rn = np.linalg.norm(self.right, axis=1)
        if np.any(ln == 0) or np.any(rn == 0):
            raise ValueError("cannot normalize: L or R has a zero column/row")
        return KroneckerDictionary(self.left / ln, self.right / rn[:, None], scale="normalized")

    # ------------------------------------------------------------------ dense (small cases only)
    def to_dense(self, max_bytes: int = DEFAULT_MAX_DENSE_BYTES) -> np.ndarray:
        """Materialize Ψ = Rᵀ⊗L with ``numpy.kron`` — small cases and cross-checks only.

        Raises
        ------
        MemoryError
            If Ψ would take more than ``max_bytes`` bytes.
        """
        nbytes = self.shape[0] * self.shape[1] * 8
        if nbytes > max_bytes:
            raise MemoryError(
                f"to_dense would allocate {nbytes / 2**20:.1f} MiB for Ψ of shape {self.shape} "
                f"(m={self.m}, n={self.n}, a={self.a}, b={self.b}); max_bytes={max_bytes} "
                f"({max_bytes / 2**20:.1f} MiB). Use matvec/gram_factors instead."
            )
        return np.kron(self.right.T, self.left)
