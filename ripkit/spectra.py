"""Singular spectra and the scalar summaries the papers report, dense or from factors.

Every analyzer takes ``x`` in one of three forms:

* a dense matrix ΔW of shape (m, n);
* a tuple of factors whose product is ΔW — ``(A, B)`` with A (m, r), B (r, n)
  (LoRA, PEFT's ``scaling·B·A`` in ripkit's (out, in) orientation), or
  ``(L, Y, R)`` with L (m, a), Y (a, b), R (b, n) (CoSA).  The product is never formed;
* a 1-D array of singular values (for the scalar summaries only).

From factors the spectrum comes from thin QR of the outer factors and an SVD of
the small core (CPS-LoRA appendix E): A = Q_A R_A, Bᵀ = Q_B R_B, M = R_A R_Bᵀ =
U_M Σ V_Mᵀ, hence ΔW = (Q_A U_M) Σ (Q_B V_M)ᵀ.  Cost O((m + n) r²), memory O((m + n) r).
A factorized spectrum has at most r entries; the remaining min(m, n) − r singular
values are exactly zero (``full=True`` appends them).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ripkit._checks import check_choice, check_fraction, check_matrix

__all__ = [
    "SparsityStats",
    "SpectrumSummary",
    "as_operand",
    "thin_svd",
    "singular_values",
    "normalized_spectrum",
    "eber",
    "energy_rank",
    "stable_rank",
    "numerical_rank",
    "condition_number",
    "frobenius_norm",
    "sparsity",
    "spectrum_scalars",
    "summarize",
]


# ----------------------------------------------------------------------------- inputs
def _to_array(name: str, value) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensor: no torch import needed here
        value = value.detach().cpu().numpy()
    return check_matrix(name, value)


def as_operand(x, name: str = "x"):
    """Normalise ``x`` to ``("dense", W)`` or ``("factors", A, B)``.

    Parameters
    ----------
    x : array of shape (m, n), or tuple ``(A, B)`` / ``(L, Y, R)`` of 2-D arrays
        Torch tensors are accepted and copied to float64 NumPy arrays.
    name : str
        Argument name used in error messages.

    Returns
    -------
    tuple
        ``("dense", W)`` or ``("factors", A, B)`` with A (m, r), B (r, n).  A CoSA
        triple is folded to two factors through its smaller inner dimension.
    """
    if _is_factors(x):
        if len(x) not in (2, 3):
            raise ValueError(f"{name} must be a matrix or a tuple of 2 or 3 factors, got {len(x)} items")
        fs = [_to_array(f"{name}[{i}]", f) for i, f in enumerate(x)]
        for i in range(len(fs) - 1):
            if fs[i].shape[1] != fs[i + 1].shape[0]:
                raise ValueError(
                    f"{name}: factor shapes {fs[i].shape} and {fs[i + 1].shape} do not chain"
                )
        if len(fs) == 3:
            left, core, right = fs
            # Keep the inner dimension min(a, b): every later cost is linear in it.
            fs = [left, core @ right] if left.shape[1] <= right.shape[0] else [left @ core, right]
        return ("factors", fs[0], fs[1])
    if hasattr(x, "ndim") and getattr(x, "ndim") == 1:
        raise ValueError(f"{name} must be a 2-D matrix or a tuple of factors, got a 1-D array")
    return ("dense", _to_array(name, x))


def _is_factors(x) -> bool:
    # A tuple/list of 2-D arrays is a factorization; a nested list of numbers is a matrix.
    return isinstance(x, (tuple, list)) and len(x) > 0 and all(np.ndim(f) == 2 for f in x)


def _shape(op) -> tuple[int, int]:
    return op[1].shape if op[0] == "dense" else (op[1].shape[0], op[2].shape[1])


def _spectrum(x, name: str = "x"):
    """Return (s, shape): singular values (descending) and ΔW's shape (None for 1-D input)."""
    if not _is_factors(x):
        arr = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
        if arr.ndim == 1:
            if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
                raise ValueError(f"{name} as singular values must be non-empty, finite and >= 0")
            return np.sort(arr)[::-1], None
    op = as_operand(x, name)
    if op[0] == "dense":
        return np.linalg.svd(op[1], compute_uv=False), op[1].shape
    return _factor_svd(op[1], op[2], compute_uv=False), _shape(op)


def _r_factor(x: np.ndarray) -> np.ndarray:
    """R of a thin QR of ``x`` (m, k): bit-identical to ``numpy.linalg.qr(x, mode='r')`` (the same
    LAPACK ``dgeqrf`` of NumPy's own library), called directly because the gufunc's copies make
    ``qr`` 3× slower at LoRA shapes (measured 4.3 vs 1.4 ms at (14336, 16))."""
    m, k = x.shape
    try:
        from numpy.linalg import lapack_lite
        geqrf = lapack_lite.dgeqrf
    except (ImportError, AttributeError):  # pragma: no cover - a NumPy without lapack_lite
        return np.linalg.qr(x, mode="r")
    a = np.array(x.T, dtype=np.float64, order="C")  # column-major storage of x, overwritten by geqrf
    tau, work = np.empty(min(m, k)), np.empty(1)
    geqrf(m, k, a, m, tau, work, -1, 0)  # workspace query
    work = np.empty(max(int(work[0]), 1))
    if geqrf(m, k, a, m, tau, work, work.size, 0)["info"] != 0:  # pragma: no cover - only for bad input
        return np.linalg.qr(x, mode="r")
    return np.triu(a.T[:min(m, k)])


def _factor_svd(a: np.ndarray, b: np.ndarray, *, compute_uv: bool):
    # CPS-LoRA appendix E: QR of A and Bᵀ, SVD of the r×r core M = R_A R_Bᵀ.
    if not compute_uv:  # only R is needed: Q is never formed
        core = _r_factor(a) @ _r_factor(b.T).T
        return np.linalg.svd(core, compute_uv=False)
    qa, ra = np.linalg.qr(a)
    qb, rb = np.linalg.qr(b.T)
    core = ra @ rb.T
    um, s, vmt = np.linalg.svd(core, full_matrices=False)
    return qa @ um, s, (qb @ vmt.T).T


def _row_chunks(a: np.ndarray, b: np.ndarray, rows: int | None = None):
    """Yield ``(start, (A @ B)[start:start+c])`` with c = max(r, 16) rows: memory O(n·r)."""
    step = rows or max(a.shape[1], 16)
    for start in range(0, a.shape[0], step):
        yield start, a[start:start + step] @ b


def thin_svd(x):
    """Thin SVD of ΔW, dense or from factors (CPS-LoRA appendix E).

    Parameters
    ----------
    x : array of shape (m, n) or factors ``(A, B)`` / ``(L, Y, R)``

    Returns
    -------
    u : ndarray of shape (m, q)
    s : ndarray of shape (q,), descending
    vt : ndarray of shape (q, n)
        q = min(m, n) for a dense matrix, q = min(m, n, r) for factors.
    """
    op = as_operand(x)
    if op[0] == "dense":
        return np.linalg.svd(op[1], full_matrices=False)
    return _factor_svd(op[1], op[2], compute_uv=True)


# --------------------------------------------------------------------------- spectra
def singular_values(x, *, full: bool = False) -> np.ndarray:
    """Singular values of ΔW in descending order (CPS-LoRA appendix E for factors).

    Parameters
    ----------
    x : array of shape (m, n) or factors ``(A, B)`` / ``(L, Y, R)``
    full : bool, default False
        Append the structural zeros so that a factorized spectrum has min(m, n)
        entries, like the dense one.

    Returns
    -------
    s : ndarray of shape (q,)
    """
    s, shape = _spectrum(x)
    if full and shape is not None and s.size < min(shape):
        s = np.concatenate([s, np.zeros(min(shape) - s.size)])
    return s


def normalized_spectrum(x) -> np.ndarray:
    """σᵢ / Σⱼσⱼ, the spectrum plotted in CPS-LoRA Figures 4 and 7.

    Returns an all-zero array for the zero matrix (there is nothing to normalize).
    """
    return _normalized(_spectrum(x)[0])


def _normalized(s: np.ndarray) -> np.ndarray:
    total = s.sum()
    return s / total if total > 0 else np.zeros_like(s)


def eber(x) -> float:
    """Entropy-based effective rank exp(H(p)), p = σ/Σσ (CPS-LoRA appendix I; Roy & Vetterli 2007).

    Zero singular values contribute 0·log 0 = 0.  A flat spectrum of rank r gives r;
    EBER never exceeds the rank.  The zero matrix has rank 0 and EBER 0.0.
    """
    return _eber(_spectrum(x)[0])


def _eber(s: np.ndarray) -> float:
    p = _normalized(s)
    p = p[p > 0]
    if p.size == 0:
        return 0.0
    return float(np.exp(-np.sum(p * np.log(p))))


def energy_rank(x, *, energy: float = 0.95) -> int:
    """Smallest k with Σ_{i≤k} σᵢ² ≥ energy · Σσᵢ² (CoSA appendix B.3, "95% of spectral energy").

    A relative slack of 1e-12 absorbs rounding in the cumulative sum, so a flat
    spectrum of rank 4 at ``energy=0.5`` gives exactly 2.  The zero matrix gives 0.
    """
    energy = check_fraction("energy", energy)
    return _energy_rank(_spectrum(x)[0], energy)


def _energy_rank(s: np.ndarray, energy: float) -> int:
    e2 = np.cumsum(s ** 2)
    if e2[-1] == 0:
        return 0
    return int(np.searchsorted(e2, energy * e2[-1] * (1 - 1e-12)) + 1)


def stable_rank(x) -> float:
    """‖ΔW‖_F² / ‖ΔW‖₂² = Σσᵢ² / σ₁² (Rudelson & Vershynin 2007); 0.0 for the zero matrix."""
    return _stable_rank(_spectrum(x)[0])


def _stable_rank(s: np.ndarray) -> float:
    return float(np.sum(s ** 2) / s[0] ** 2) if s[0] > 0 else 0.0


def _rank_threshold(s: np.ndarray, shape, tol, rtol) -> float:
    if tol is not None:
        if not np.isfinite(tol) or tol < 0:
            raise ValueError(f"tol={tol} must be a finite number >= 0")
        return float(tol)
    if rtol is None:
        # NumPy's matrix_rank default: σ_max · max(m, n) · eps.
        rtol = max(shape if shape is not None else (s.size,)) * np.finfo(np.float64).eps
    elif not np.isfinite(rtol) or rtol < 0:
        raise ValueError(f"rtol={rtol} must be a finite number >= 0")
    return float(s[0] * rtol)


def numerical_rank(x, *, tol: float | None = None, rtol: float | None = None) -> int:
    """Number of singular values strictly above a stated threshold.

    Parameters
    ----------
    x : array of shape (m, n), factors, or 1-D singular values
    tol : float, optional
        Absolute threshold.  Wins over ``rtol``.
    rtol : float, optional
        Threshold relative to σ₁.  Default ``max(m, n) · eps``, NumPy's ``matrix_rank``
        default (``len(s) · eps`` for 1-D input).
    """
    s, shape = _spectrum(x)
    return int(np.sum(s > _rank_threshold(s, shape, tol, rtol)))


def condition_number(x, *, zeros: str = "exclude", tol: float | None = None,
                     rtol: float | None = None) -> float:
    """σ_max / σ_min, with an explicit rule for zero singular values (CoSA appendix B.3).

    Parameters
    ----------
    zeros : {'exclude', 'include'}, default 'exclude'
        ``'exclude'``: σ_min is the smallest singular value above the
        :func:`numerical_rank` threshold (``tol``/``rtol``), i.e. the condition
        number of ΔW restricted to its range — finite for a rank-deficient LoRA
        update.  ``'include'``: σ_min is σ_{min(m, n)}, counting structural zeros;
        a rank-deficient matrix gives ``inf`` (like ``numpy.linalg.cond`` up to rounding).

    Returns
    -------
    float
        ``nan`` for the zero matrix under ``'exclude'`` (no nonzero singular value).
    """
    check_choice("zeros", zeros, ("exclude", "include"))
    s, shape = _spectrum(x)
    if zeros == "include":
        if shape is not None and s.size < min(shape):
            return float("inf")
        return float(s[0] / s[-1]) if s[-1] > 0 else float("inf")
    return _condition_on_range(s, _rank_threshold(s, shape, tol, rtol))


def _condition_on_range(s: np.ndarray, threshold: float) -> float:
    kept = s[s > threshold]
    return float(kept[0] / kept[-1]) if kept.size else float("nan")


# -------------------------------------------------------------------------- entries
def frobenius_norm(x) -> float:
    """‖ΔW‖_F; from factors sqrt(Σ (AᵀA) ∘ (BBᵀ)), cost O((m + n) r²)."""
    op = as_operand(x)
    if op[0] == "dense":
        return float(np.linalg.norm(op[1]))
    a, b = op[1], op[2]
    return float(np.sqrt(max(np.sum((a.T @ a) * (b @ b.T)), 0.0)))


@dataclass(frozen=True)
class SparsityStats:
    """Entry statistics of ΔW (CoSA appendix B.3: "31.2% of weights below 10⁻⁴")."""

    fraction_below: float
    threshold: float
    n_entries: int
    max_abs: float
    frobenius_norm: float

    def to_dict(self) -> dict:
        return asdict(self)


def sparsity(x, *, threshold: float = 1e-4, threads: int = 1) -> SparsityStats:
    """Fraction of entries with |ΔW_ij| < ``threshold``, max |ΔW_ij| and ‖ΔW‖_F.

    From factors ΔW is never formed: ``ripkit._entries`` computes it tile by tile in certified
    single precision and decides every entry exactly (entries within the float32 error bound of
    the threshold, and candidates for the maximum, are recomputed in float64).  Cost O(m·n·r)
    time at single-precision GEMM speed, O((m + n)·r) memory; ``threads`` tiles in parallel
    (same result for any value).
    """
    if not isinstance(threshold, (int, float, np.floating)) or not threshold > 0:
        raise ValueError(f"threshold={threshold!r} must be a number > 0")
    from ripkit._entries import dense_entry_stats, entry_stats

    op = as_operand(x)
    m, n = _shape(op)
    if op[0] == "dense":
        stats = dense_entry_stats(op[1], (threshold,))
    else:
        stats = entry_stats(op[1], op[2], (threshold,), threads=threads)
    return SparsityStats(stats.below[0] / (m * n), float(threshold), m * n, stats.max_abs, frobenius_norm(x))


# -------------------------------------------------------------------------- summary
@dataclass(frozen=True)
class SpectrumSummary:
    """Every scalar of this module for one ΔW (one row of a CoSA B.3 / CPS appendix I table)."""

    m: int
    n: int
    numerical_rank: int
    eber: float
    energy_rank: int
    energy: float
    stable_rank: float
    condition_number: float
    frobenius_norm: float
    fraction_below: float
    threshold: float

    def to_dict(self) -> dict:
        return asdict(self)


def spectrum_scalars(s: np.ndarray, shape: tuple[int, int], *, energy: float = 0.95) -> dict:
    """Every spectral scalar of a ΔW of ``shape`` from its singular values ``s`` (descending; the
    structural zeros of a factorized spectrum may be left out), with the rank tolerance of a dense
    (m, n) matrix, max(m, n)·eps·σ₁ (NumPy's ``matrix_rank``).

    Returns ``{sigma_max, frobenius_norm, stable_rank, energy_rank, eber, numerical_rank,
    condition_number}``: σ₁, √Σσᵢ², Σσᵢ²/σ₁² (Rudelson & Vershynin 2007), the smallest k holding
    ``energy`` of Σσᵢ² (CoSA appendix B.3), exp(H(σ/Σσ)) (CPS-LoRA appendix I), the number of σᵢ
    above the tolerance and σ₁/σ_min over those (CoSA B.3's condition number, of ΔW on its range).
    """
    energy = check_fraction("energy", energy)
    s, _ = _spectrum(s, "s")  # validated and sorted once; the same helpers as the public functions
    cut = _rank_threshold(s, shape, None, max(shape) * np.finfo(np.float64).eps)
    return {"sigma_max": float(s[0]), "frobenius_norm": float(np.sqrt(np.sum(s ** 2))),
            "stable_rank": _stable_rank(s), "energy_rank": _energy_rank(s, energy), "eber": _eber(s),
            "numerical_rank": int(np.sum(s > cut)), "condition_number": _condition_on_range(s, cut)}


def summarize(x, *, energy: float = 0.95, threshold: float = 1e-4) -> SpectrumSummary:
    """One SVD, all spectral summaries, plus the sparsity statistics of :func:`sparsity`."""
    s, shape = _spectrum(x)
    if shape is None:
        raise ValueError("x must be a matrix or factors for summarize, got 1-D singular values")
    stats = sparsity(x, threshold=threshold)
    scalars = spectrum_scalars(s, shape, energy=energy)
    return SpectrumSummary(
        m=shape[0], n=shape[1], numerical_rank=scalars["numerical_rank"], eber=scalars["eber"],
        energy_rank=scalars["energy_rank"], energy=float(energy), stable_rank=scalars["stable_rank"],
        condition_number=scalars["condition_number"], frobenius_norm=stats.frobenius_norm,
        fraction_below=stats.fraction_below, threshold=stats.threshold,
    )
