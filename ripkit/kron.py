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

from ripkit._checks import check_matrix
from ripkit.projections import fingerprint, projection_pair, projection_std

__all__ = ["KroneckerDictionary", "DEFAULT_MAX_DENSE_BYTES"]

#: ``to_dense`` refuses to build Ψ above this many bytes (256 MiB).
DEFAULT_MAX_DENSE_BYTES = 256 * 2**20
#: Ψα's last product goes through ``ripkit._thin_gemm`` up to this inner dimension; above
#: it OpenBLAS is as fast (``studies/bench_operator.py``, ``figures/bench_operator.md``).
THIN_GEMM_MAX_INNER = 128


def _uses_thin_gemm(n_rows: int, inner: int, n_cols: int, n_items: int = 1) -> bool:
    """Whether Ψα's last product, ``n_items`` × (n_rows, inner)·(inner, n_cols) in float64, goes
    through ``ripkit._thin_gemm``: an inner dimension ≤ ``THIN_GEMM_MAX_INNER`` where it is the faster."""
    if inner > THIN_GEMM_MAX_INNER:
        return False
    from ripkit import _thin_gemm  # imports numba: only here, on first use

    return _thin_gemm.faster_than_blas(2.0 * n_items * n_rows * inner * n_cols)


def _vec_product(a: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``a @ u`` for Ψα's last product, whose rows are columns of X in the vec layout.

    ``ripkit._thin_gemm`` where ``_uses_thin_gemm`` (OpenBLAS slows down writing rows m·8
    bytes apart, see there), ``numpy.matmul`` otherwise (and for other dtypes).  Both give
    the same result up to rounding.
    """
    if a.dtype == np.float64 and u.dtype == np.float64 and \
            _uses_thin_gemm(a.shape[0], a.shape[1], u.shape[-1], u.shape[0] if u.ndim == 3 else 1):
        from ripkit._thin_gemm import thin_matmul

        return thin_matmul(a, u)
    return a @ u


def _frozen_factor(name: str, value) -> np.ndarray:
    """``value`` as a read-only float64 matrix that no caller can still write to (copied unless it is already)."""
    arr = check_matrix(name, value)
    if arr.flags.writeable or arr.base is not None:  # the caller may still change it (or its base)
        arr = arr.copy()
        arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class KroneckerDictionary:
    """Ψ = Rᵀ⊗L (shape (m·n, a·b)) held as its factors.

    Parameters
    ----------
    left : ndarray, shape (m, a)
        L, the output-side projection.  Held read-only (copied unless the array
        given is already read-only and owns its data), so the cached Gram
        factors always match the factors.
    right : ndarray, shape (b, n)
        R, the input-side projection (held the same way).
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
        left = _frozen_factor("left", self.left)
        right = _frozen_factor("right", self.right)
        if not np.isfinite(self.isometry_scale) or self.isometry_scale <= 0:
            raise ValueError(f"isometry_scale={self.isometry_scale} must be a finite number > 0")
        object.__setattr__(self, "left", left)
        object.__setattr__(self, "right", right)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_seed(cls, m: int, n: int, a: int, b: int, seed=0, *, scale="unit", kind="gaussian"):
        """Draw L (m×a) and R (b×n) with ``ripkit.projections.projection_pair``."""
        left, right = projection_pair(m, n, a, b, seed, scale=scale, kind=kind)
        for factor in (left, right):  # ours alone: read-only, so the constructor need not copy them
            factor.setflags(write=False)
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
    def _plan(self) -> tuple:
        """(m, n, a, b, ``_left_first()``, ``_adjoint_right_first()``), computed once: the factors are read-only."""
        plan = self.__dict__.get("_plan_cache")
        if plan is None:
            plan = (self.m, self.n, self.a, self.b, self._left_first(), self._adjoint_right_first())
            object.__setattr__(self, "_plan_cache", plan)
        return plan

    def _left_first(self) -> bool:
        """True when L·(Y) before (·)·R is the cheaper order: m·a·b + m·b·n ≤ a·b·n + m·a·n flops per core."""
        m, n, a, b = self.m, self.n, self.a, self.b
        return m * a * b + m * b * n <= a * b * n + m * a * n

    def _adjoint_right_first(self) -> bool:
        """True when X·Rᵀ before Lᵀ·(·) is the cheaper order for Lᵀ·X·Rᵀ: m·n·b + m·b·a ≤ a·m·n + a·n·b."""
        m, n, a, b = self.m, self.n, self.a, self.b
        return m * n * b + m * b * a <= a * m * n + a * n * b

    def apply(self, core: np.ndarray) -> np.ndarray:
        """ΔW = L·Y·R for one core (a, b) -> (m, n), or a batch (B, a, b) -> (B, m, n)."""
        core = np.asarray(core)
        if core.ndim not in (2, 3) or core.shape[-2:] != (self.a, self.b):
            raise ValueError(
                f"core must have shape ({self.a}, {self.b}) or (batch, {self.a}, {self.b}), got {core.shape}"
            )
        if self._left_first():
            return (self.left @ core) @ self.right
        return self.left @ (core @ self.right)

    def matvec(self, alpha: np.ndarray) -> np.ndarray:
        """Ψα = vec(L·Y·R) for α (ab,) -> (mn,), or columns of α (ab, K) -> (mn, K).

        Two GEMMs in the cheaper order (``_left_first``) written straight into
        the vec layout: a block comes back column-major, so the mn·K result is
        never transposed or copied.  A row-major α (ab, K) is copied to
        column-major first (O(ab·K), the small side).  The second GEMM writes
        the large result; with a small inner dimension it is ``ripkit._thin_gemm``'s
        register-tiled kernel, which avoids OpenBLAS's slow stores into rows
        4 KiB apart (see ``_vec_product``); the first such call in a process
        loads numba (≈ 0.6 s once, less when another ripkit kernel already ran).
        """
        alpha = np.asarray(alpha)
        m, n, a, b, left_first, _ = self._plan()
        L, R = self.left, self.right
        if alpha.ndim == 1 and alpha.shape[0] == a * b and alpha.flags.c_contiguous:
            # the common call, without the general path's reshapes (microseconds on small Ψ): Y₁ᵀ is a view
            y_t = alpha.reshape(b, a)
            return (_vec_product(R.T, y_t @ L.T) if left_first else _vec_product(R.T @ y_t, L.T)).reshape(m * n)
        if alpha.ndim not in (1, 2) or alpha.shape[0] != a * b:
            raise ValueError(f"alpha must have shape ({a * b},) or ({a * b}, K), got {alpha.shape}")
        k = 1 if alpha.ndim == 1 else alpha.shape[1]
        # Y_tᵀ (b, a) for each column t: the column-major (ab, K) block read row-major as (K, b, a).
        cores_t = np.asfortranarray(alpha.reshape(a * b, k)).T.reshape(k, b, a)
        if k == 1:  # 2-D products: the batched (3-D) matmul costs microseconds more per call
            y_t = cores_t[0]
            out_t = _vec_product(R.T, y_t @ L.T) if left_first else _vec_product(R.T @ y_t, L.T)  # X_tᵀ (n, m)
            return out_t.reshape(m * n) if alpha.ndim == 1 else out_t.reshape(m * n, 1)
        if left_first:
            t = (cores_t.reshape(k * b, a) @ L.T).reshape(k, b, m)  # (L·Y_t)ᵀ for all t: one GEMM
            out_t = _vec_product(R.T, t)                           # X_tᵀ = Rᵀ·(L·Y_t)ᵀ: (K, n, m)
        else:
            u = R.T @ cores_t                                      # (Y_t·R)ᵀ: (K, n, a)
            out_t = _vec_product(u.reshape(k * n, a), L.T).reshape(k, n, m)  # X_tᵀ: one GEMM
        return out_t.reshape(k, m * n).T  # X_tᵀ row-major is vec(X_t): a column-major (mn, K) view

    def rmatvec(self, x: np.ndarray) -> np.ndarray:
        """Ψᵀx = vec(Lᵀ·X·Rᵀ) for x = vec(X), X (m, n); also columns (mn, K) -> (ab, K).

        The cheaper of the two GEMM orders (``_adjoint_right_first``); a block
        comes back column-major.  A 1-D or column-major x is never copied.  A
        row-major block (mn, K) is read in place when X·Rᵀ comes first (one GEMM
        over all K columns, then an O(m·b·K) reorder of its product); when
        Lᵀ·X comes first no BLAS call can read it in place (neither of its
        strides is 1 for a fixed column), so it is copied to column-major once.
        """
        x = np.asarray(x)
        m, n, a, b, _, right_first = self._plan()
        L, R = self.left, self.right
        if x.ndim == 1 and x.shape[0] == m * n and x.flags.c_contiguous:  # the common call: Xᵀ is a view
            x_t = x.reshape(n, m)
            return ((R @ x_t) @ L if right_first else R @ (x_t @ L)).reshape(a * b)
        if x.ndim not in (1, 2) or x.shape[0] != m * n:
            raise ValueError(f"x must have shape ({m * n},) or ({m * n}, K), got {x.shape}")
        k = 1 if x.ndim == 1 else x.shape[1]
        if k > 1 and x.flags.c_contiguous and right_first:
            w = R @ x.reshape(n, m * k)                            # (b, m, K): X_t·Rᵀ for all t, one GEMM
            w_t = np.ascontiguousarray(w.reshape(b, m, k).transpose(2, 0, 1))  # (K, b, m), O(m·b·K)
            return (w_t.reshape(k * b, m) @ L).reshape(k, a * b).T
        mats_t = np.asfortranarray(x.reshape(m * n, k)).T.reshape(k, n, m)  # X_tᵀ (n, m)
        if k == 1:
            x_t = mats_t[0]
            out_t = (R @ x_t) @ L if right_first else R @ (x_t @ L)  # (Lᵀ·X·Rᵀ)ᵀ (b, a)
            return out_t.reshape(a * b) if x.ndim == 1 else out_t.reshape(a * b, 1)
        if right_first:
            w = R @ mats_t                                         # (X_t·Rᵀ)ᵀ: (K, b, m)
            out_t = w.reshape(k * b, m) @ L                        # (Lᵀ·X_t·Rᵀ)ᵀ: one GEMM
        else:
            v = (mats_t.reshape(k * n, m) @ L).reshape(k, n, a)    # (Lᵀ·X_t)ᵀ: one GEMM
            out_t = R @ v                                          # (K, b, a)
        return out_t.reshape(k, a * b).T

    def as_linear_operator(self):
        """A ``scipy.sparse.linalg.LinearOperator`` view of Ψ (float64)."""
        from scipy.sparse.linalg import LinearOperator  # imported here: it costs ~0.3 s at start-up

        return LinearOperator(
            shape=self.shape, dtype=np.float64,
            matvec=self.matvec, rmatvec=self.rmatvec,
            matmat=self.matvec, rmatmat=self.rmatvec,
        )

    # ------------------------------------------------------------------ Gram structure
    def gram_factors(self) -> tuple[np.ndarray, np.ndarray]:
        """(G_L, G_R) = (LᵀL, R Rᵀ), shapes (a, a) and (b, b); ΨᵀΨ = G_R ⊗ G_L.

        Computed once per dictionary (cost O(m·a² + n·b²), the largest one-off cost
        of every estimator at LLM sizes) and cached as read-only arrays: the
        factors are read-only too, so the cache can never go stale.  Memory O(a² + b²).
        """
        grams = self.__dict__.get("_grams")
        if grams is None:
            grams = (self.left.T @ self.left, self.right @ self.right.T)
            for g in grams:
                g.setflags(write=False)
            object.__setattr__(self, "_grams", grams)
        return grams

    def memo(self, key, compute):
        """``compute()`` once per dictionary and ``key`` (hashable), then the stored result.

        For quantities derived from the factors alone (exact factor constants, bounds):
        the factors are read-only, so a memo can never go stale.
        """
        store = self.__dict__.setdefault("_memo", {})  # a frozen dataclass: bypass __setattr__
        if key not in store:
            store[key] = compute()
        return store[key]

    def gram_eigenvalues(self) -> tuple[np.ndarray, np.ndarray]:
        """Ascending eigenvalues of (G_L, G_R) (``numpy.linalg.eigvalsh``), computed once and cached.

        ΨᵀΨ = G_R ⊗ G_L has the products λ_i(G_L)·λ_j(G_R) as eigenvalues.
        """
        ev = self.__dict__.get("_gram_eigenvalues")
        if ev is None:
            ev = tuple(np.linalg.eigvalsh(g) for g in self.gram_factors())
            for e in ev:
                e.setflags(write=False)
            object.__setattr__(self, "_gram_eigenvalues", ev)
        return ev

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
