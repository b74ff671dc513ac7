"""Exact restricted isometry constants by exhaustive enumeration of supports.

For a matrix Φ (m×d) with Gram matrix G = ΦᵀΦ (d×d) and a sparsity 1 ≤ s ≤ d,
every support S ⊂ {0, …, d−1} with |S| = s has a principal sub-block G[S, S]
whose extreme eigenvalues λ_min(S) ≤ λ_max(S) bound ‖Φα‖² / ‖α‖² for all α
supported on S.  The one-sided and two-sided constants are

.. math::

    \\delta_s^+ = \\max_{|S|=s} \\lambda_{\\max}(G_{SS}) - 1, \\qquad
    \\delta_s^- = 1 - \\min_{|S|=s} \\lambda_{\\min}(G_{SS}), \\qquad
    \\delta_s = \\max(\\delta_s^+, \\delta_s^-),

which is the smallest δ in the RIP inequality (CoSA paper eq. 14) and equals
the paper's δ_s^true of eq. 18.  By Cauchy eigenvalue interlacing,
max λ_max is nondecreasing and min λ_min nonincreasing in s, so the extremes
over |S| ≤ s are attained at |S| = s: enumerating the C(d, s) supports of size
exactly s is enough.

This is ground truth for small matrices, and the exact factor-level input
(Lᵀ L and R Rᵀ) to certified upper bounds for the Kronecker dictionary
Ψ = Rᵀ⊗L.  The cost is C(d, s) small eigenproblems, so it refuses above
``max_supports``.

Implementation: a numba ``@njit(parallel=True)`` kernel splits the
lexicographic rank space [0, C(d, s)) into chunks, unranks the first
combination of each chunk and steps through successors.  Per support it uses
the closed form for s = 2, cyclic Jacobi for 3 ≤ s ≤ 6 and LAPACK ``eigvalsh``
for s ≥ 7 (measured crossover on 2 cores: Jacobi is 3× faster at s = 3, equal
near s = 6-7, and 1.5-2× slower at s ≥ 8).  s = 1 reads the diagonal.  The
kernel is compiled on the first call, not on import.
"""
from __future__ import annotations

import math
import numbers
import time
from dataclasses import asdict, dataclass

import numpy as np
from numba import njit, prange

from ripkit._checks import check_matrix, check_positive_int
from ripkit._numba import compile_kernel

__all__ = [
    "ExactRip",
    "exact_rip",
    "exact_rip_matrix",
    "n_supports",
    "enumeration_feasible",
    "DEFAULT_MAX_SUPPORTS",
]

DEFAULT_MAX_SUPPORTS = 50_000_000
_JACOBI_MAX_S = 6  # largest s solved by Jacobi; LAPACK eigvalsh above (measured)
_CHUNK = 1024  # target supports per parallel chunk
_MAX_CHUNKS = 1024
_INT64_CAP = 2**62


@dataclass(frozen=True)
class ExactRip:
    """Exact restricted isometry constants of order ``s`` of one matrix.

    Attributes
    ----------
    s, d : int
        Sparsity and number of columns (size of the Gram matrix).
    delta : float
        δ_s = max(delta_upper_side, delta_lower_side).
    delta_upper_side, delta_lower_side : float
        δ_s⁺ = lam_max / c − 1 and δ_s⁻ = 1 − lam_min / c, c = ``isometry_scale``.
    lam_max, lam_min : float
        max over |S| = s of λ_max(G[S, S]) and min of λ_min(G[S, S]), for the
        Gram matrix as given (not divided by c).
    support_max, support_min : tuple of int
        Sorted supports attaining lam_max and lam_min (the lexicographically
        first one on exact ties).
    n_supports : int
        C(d, s), the number of supports enumerated.
    seconds, supports_per_second : float
        Enumeration wall time (compilation excluded) and throughput.
    isometry_scale : float
        c; the deltas are those of Φ/√c.
    """

    s: int
    delta: float
    delta_upper_side: float
    delta_lower_side: float
    lam_max: float
    lam_min: float
    support_max: tuple
    support_min: tuple
    n_supports: int
    seconds: float
    supports_per_second: float
    d: int
    isometry_scale: float = 1.0

    def to_dict(self) -> dict:
        """Plain dict of the fields (supports stay tuples of int)."""
        return asdict(self)


# --- numba helpers (compiled lazily, on the first call of the kernel) --------


@njit(inline="always")
def _unrank(rank, d, s, binom, out):
    """Write the combination of lexicographic ``rank`` (0-based) into ``out``."""
    x = 0
    for i in range(s):
        # number of combinations whose i-th element is x: C(d - x - 1, s - i - 1)
        while binom[d - x - 1, s - i - 1] <= rank:
            rank -= binom[d - x - 1, s - i - 1]
            x += 1
        out[i] = x
        x += 1


@njit(inline="always")
def _successor(c, d, s):
    """Advance ``c`` to the next combination in lexicographic order."""
    i = s - 1
    while i >= 0 and c[i] == d - s + i:
        i -= 1
    if i < 0:
        return False
    c[i] += 1
    for j in range(i + 1, s):
        c[j] = c[j - 1] + 1
    return True


@njit
def _jacobi_extremes(a, s):
    """(λ_min, λ_max) of the symmetric ``a`` (s×s, overwritten) by cyclic Jacobi."""
    norm = 0.0  # scale to max |a_ij| = 1 so the squared sums cannot under/overflow
    for p in range(s):
        for q in range(s):
            if abs(a[p, q]) > norm:
                norm = abs(a[p, q])
    if norm == 0.0:
        return 0.0, 0.0
    for p in range(s):
        for q in range(s):
            a[p, q] /= norm
    for _sweep in range(60):
        off = 0.0
        total = 0.0
        for p in range(s):
            total += a[p, p] * a[p, p]
            for q in range(p + 1, s):
                off += a[p, q] * a[p, q]
        total += 2.0 * off
        if off <= 1e-34 * total:  # off-diagonal norm below ~1e-17 of ‖a‖_F
            break
        for p in range(s - 1):
            for q in range(p + 1, s):
                apq = a[p, q]
                if apq == 0.0:
                    continue
                theta = (a[q, q] - a[p, p]) / (2.0 * apq)
                if abs(theta) > 1e150:
                    t = 0.5 / theta
                else:
                    t = 1.0 / (abs(theta) + math.sqrt(theta * theta + 1.0))
                    if theta < 0.0:
                        t = -t
                c = 1.0 / math.sqrt(t * t + 1.0)
                sn = t * c
                for k in range(s):  # columns p, q
                    akp = a[k, p]
                    akq = a[k, q]
                    a[k, p] = c * akp - sn * akq
                    a[k, q] = sn * akp + c * akq
                for k in range(s):  # rows p, q
                    apk = a[p, k]
                    aqk = a[q, k]
                    a[p, k] = c * apk - sn * aqk
                    a[q, k] = sn * apk + c * aqk
    lo = a[0, 0]
    hi = a[0, 0]
    for p in range(1, s):
        if a[p, p] < lo:
            lo = a[p, p]
        if a[p, p] > hi:
            hi = a[p, p]
    return lo * norm, hi * norm


def _enumerate_kernel(g, s, total, n_chunks, binom):
    """Per-chunk extremes over all supports of size s >= 2 (numba, parallel)."""
    d = g.shape[0]
    chunk = (total + n_chunks - 1) // n_chunks
    hi_val = np.full(n_chunks, -np.inf)
    lo_val = np.full(n_chunks, np.inf)
    hi_sup = np.zeros((n_chunks, s), np.int64)
    lo_sup = np.zeros((n_chunks, s), np.int64)
    for ch in prange(n_chunks):
        start = ch * chunk
        stop = min(total, start + chunk)
        if start >= stop:
            continue
        c = np.empty(s, np.int64)
        a = np.empty((s, s))
        _unrank(start, d, s, binom, c)
        hi = -np.inf
        lo = np.inf
        for _ in range(start, stop):
            if s == 2:
                x = g[c[0], c[0]]
                z = g[c[1], c[1]]
                mid = 0.5 * (x + z)
                rad = math.hypot(0.5 * (x - z), g[c[0], c[1]])
                lam_lo = mid - rad
                lam_hi = mid + rad
            else:
                for i in range(s):
                    for j in range(s):
                        a[i, j] = g[c[i], c[j]]
                if s <= _JACOBI_MAX_S:
                    lam_lo, lam_hi = _jacobi_extremes(a, s)
                else:
                    w = np.linalg.eigvalsh(a)
                    lam_lo = w[0]
                    lam_hi = w[s - 1]
            if lam_hi > hi:  # strict: keep the first support in lexicographic order
                hi = lam_hi
                hi_sup[ch, :] = c
            if lam_lo < lo:
                lo = lam_lo
                lo_sup[ch, :] = c
            _successor(c, d, s)
        hi_val[ch] = hi
        lo_val[ch] = lo
    return hi_val, lo_val, hi_sup, lo_sup


_KERNEL = None


def _kernel():
    """Compile the enumeration kernel once (disk-cached when a cache dir is writable)."""
    global _KERNEL
    if _KERNEL is None:
        kernel = compile_kernel(_enumerate_kernel, parallel=True)
        eye = np.eye(3)
        kernel(eye, 3, 1, 1, _binomial_table(3, 3))  # compile outside timed runs
        _KERNEL = kernel
    return _KERNEL


def _binomial_table(d: int, s: int) -> np.ndarray:
    """C(n, k) for n < d+1, k < s+1, capped at 2**62 (uncapped where unranking reads it)."""
    table = np.zeros((d + 1, s + 1), np.int64)
    for n in range(d + 1):
        for k in range(min(n, s) + 1):
            table[n, k] = min(math.comb(n, k), _INT64_CAP)
    return table


# --- public API ---------------------------------------------------------------


def n_supports(d: int, s: int) -> int:
    """Number C(d, s) of supports of size ``s`` among ``d`` columns."""
    d = check_positive_int("d", d)
    s = _check_s(s, d)
    return math.comb(d, s)


def enumeration_feasible(d: int, s: int, max_supports=DEFAULT_MAX_SUPPORTS) -> bool:
    """True when C(d, s) <= ``max_supports``, i.e. :func:`exact_rip` will run."""
    return n_supports(d, s) <= _check_max_supports(max_supports)


def exact_rip(
    gram,
    s: int,
    *,
    max_supports=DEFAULT_MAX_SUPPORTS,
    isometry_scale: float = 1.0,
    symmetry_tol: float = 1e-8,
) -> ExactRip:
    """Exact RIP constant of order ``s`` from a Gram matrix, by enumerating all supports.

    Parameters
    ----------
    gram : (d, d) array_like
        Symmetric Gram matrix G = ΦᵀΦ (PSD for a true RIP reading; the
        enumeration itself only needs symmetry).  It is symmetrised as
        (G + Gᵀ)/2 after the check.
    s : int
        Sparsity, 1 <= s <= d.
    max_supports : int or float, default=5e7
        Refuse (ValueError) when C(d, s) is larger.
    isometry_scale : float, default=1.0
        c > 0: the eigenvalues are compared with c instead of 1, i.e. the
        result is δ_s of Φ/√c (δ⁺ = λ_max/c − 1, δ⁻ = 1 − λ_min/c).  Use it
        for a dictionary whose columns have squared norm c in expectation
        (ripkit's ``"cosa"`` scale: c = (m/a)·(n/b)).
    symmetry_tol : float, default=1e-8
        Allowed max |G − Gᵀ| relative to max(1, max |G|).

    Returns
    -------
    ExactRip

    Notes
    -----
    Exhaustive over the C(d, s) supports of size exactly s; by eigenvalue
    interlacing this equals the maximum over all supports of size <= s.
    Eigenvalues are accurate to about 1e-15·‖G[S, S]‖ (closed form for s = 2,
    Jacobi for s <= 6, LAPACK above).  Ties between supports resolve to the
    lexicographically first.
    """
    # 1. validate
    g = check_matrix("gram", gram)
    if g.shape[0] != g.shape[1]:
        raise ValueError(f"gram must be square, got shape {g.shape}")
    d = g.shape[0]
    s = _check_s(s, d)
    limit = _check_max_supports(max_supports)
    scale = _check_isometry_scale(isometry_scale)
    asym = float(np.max(np.abs(g - g.T)))
    allowed = symmetry_tol * max(1.0, float(np.max(np.abs(g))))
    if asym > allowed:
        raise ValueError(
            f"gram must be symmetric: max |gram - gram.T| = {asym:.3g} exceeds {allowed:.3g}"
        )
    total = math.comb(d, s)
    if total > limit or total > _INT64_CAP:  # the kernel counts ranks in int64
        raise ValueError(
            f"exhaustive enumeration for s={s}, d={d} needs C({d}, {s}) = {total} supports, "
            f"more than max_supports={max_supports}; lower s, or raise max_supports"
        )
    g = np.ascontiguousarray(0.5 * (g + g.T))

    # 2. enumerate
    if s == 1:  # the 1×1 blocks are the diagonal
        t0 = time.perf_counter()
        diag = np.diag(g)
        i_hi, i_lo = int(np.argmax(diag)), int(np.argmin(diag))
        lam_max, lam_min = float(diag[i_hi]), float(diag[i_lo])
        sup_max, sup_min = (i_hi,), (i_lo,)
        seconds = time.perf_counter() - t0
    else:
        kernel = _kernel()
        n_chunks = max(1, min(_MAX_CHUNKS, -(-total // _CHUNK)))
        binom = _binomial_table(d, s)
        t0 = time.perf_counter()
        hi_val, lo_val, hi_sup, lo_sup = kernel(g, s, total, n_chunks, binom)
        seconds = time.perf_counter() - t0
        k_hi, k_lo = int(np.argmax(hi_val)), int(np.argmin(lo_val))  # first on ties
        lam_max, lam_min = float(hi_val[k_hi]), float(lo_val[k_lo])
        sup_max = tuple(int(i) for i in hi_sup[k_hi])
        sup_min = tuple(int(i) for i in lo_sup[k_lo])

    # 3. deltas relative to the isometry scale
    upper = lam_max / scale - 1.0
    lower = 1.0 - lam_min / scale
    return ExactRip(
        s=s,
        delta=max(upper, lower),
        delta_upper_side=upper,
        delta_lower_side=lower,
        lam_max=lam_max,
        lam_min=lam_min,
        support_max=sup_max,
        support_min=sup_min,
        n_supports=total,
        seconds=seconds,
        supports_per_second=total / seconds if seconds > 0 else math.inf,
        d=d,
        isometry_scale=scale,
    )


def exact_rip_matrix(phi, s: int, **kwargs) -> ExactRip:
    """Exact RIP constant of order ``s`` of the columns of ``phi`` (m, d).

    Forms G = phiᵀ phi (d×d) and calls :func:`exact_rip` with ``kwargs``.
    """
    p = check_matrix("phi", phi)
    return exact_rip(p.T @ p, s, **kwargs)


# --- checks -------------------------------------------------------------------


def _check_s(s, d: int) -> int:
    s = check_positive_int("s", s)
    if s > d:
        raise ValueError(f"s={s} must be <= d={d} (the number of columns)")
    return s


def _check_max_supports(max_supports) -> float:
    if isinstance(max_supports, (bool, np.bool_)) or not isinstance(max_supports, numbers.Real):
        raise TypeError(f"max_supports must be a number, got {type(max_supports).__name__}")
    if not max_supports >= 1:  # also rejects NaN
        raise ValueError(f"max_supports={max_supports} must be >= 1")
    return max_supports


def _check_isometry_scale(c) -> float:
    if isinstance(c, (bool, np.bool_)) or not isinstance(c, numbers.Real):
        raise TypeError(f"isometry_scale must be a real number, got {type(c).__name__}")
    if not (math.isfinite(c) and c > 0):
        raise ValueError(f"isometry_scale={c} must be a finite number > 0")
    return float(c)
