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
Ψ = Rᵀ⊗L.  The cost grows with C(d, s), so it refuses above ``max_supports``.

Implementation (``ripkit.rip._enumerate``): supports are walked depth-first in
lexicographic order, sharing each prefix's Cholesky factor; a support is skipped only
when a Cholesky factorisation of (record − margin)·I − G_S (resp. G_S − (record +
margin)·I) *certifies* that its solved value could not reach the record, and is
otherwise solved exactly as ripkit always solved it (closed form for s = 2, cyclic
Jacobi for 3 ≤ s ≤ 6, LAPACK ``eigvalsh`` for s ≥ 7).  The values and supports are
therefore the same, bit for bit, as solving all C(d, s) blocks, at O(s²) flops per
support instead of O(s³).  Prefixes are dealt to numba ``prange`` workers.  s = 1
reads the diagonal.  The kernel is compiled on the first call, not on import.
"""
from __future__ import annotations

import itertools
import math
import numbers
import time
from dataclasses import asdict, dataclass

import numpy as np

from ripkit._checks import check_matrix, check_positive_int
from ripkit.rip.torch_path import enumerate_extremes_torch, resolve_device

__all__ = [
    "ExactRip",
    "exact_rip",
    "exact_rip_matrix",
    "n_supports",
    "enumeration_feasible",
    "DEFAULT_MAX_SUPPORTS",
]

DEFAULT_MAX_SUPPORTS = 50_000_000
_MIN_TASKS = 256  # prefixes per enumeration (enough to balance the numba workers)
# Below this many supports one worker: starting a parallel region costs more than it saves, and on a
# loaded machine waking a second thread can take a whole scheduler slice (measured: 10x slower at s = 5).
_PARALLEL_MIN_SUPPORTS = 1_000_000
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
    n_solved : int
        Supports whose block was eigensolved; the other n_supports − n_solved were
        certified by a Cholesky factorisation not to reach the extremes.
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
    n_solved: int = 0

    def to_dict(self) -> dict:
        """Plain dict of the fields (supports stay tuples of int)."""
        return asdict(self)


def _binomial_table(d: int, s: int) -> np.ndarray:
    """C(n, k) for n < d+1, k < s+1, capped at 2**62 (uncapped where unranking reads it)."""
    table = np.zeros((d + 1, s + 1), np.int64)
    for n in range(d + 1):
        for k in range(min(n, s) + 1):
            table[n, k] = min(math.comb(n, k), _INT64_CAP)
    return table


def prefix_tasks(d: int, s: int, min_tasks: int) -> np.ndarray:
    """The prefixes of the shortest length q < s giving at least ``min_tasks`` of them (or q = s − 1).

    Shape (n_tasks, q), sorted by the number of completions (largest first) so that
    dealing them round-robin to the workers balances the load.
    """
    q = 0
    while q < s - 1 and math.comb(d - (s - q), q) < min_tasks:
        q += 1
    # c[q-1] <= d - s + q - 1 leaves room for the s - q elements after the prefix
    prefixes = np.array(list(itertools.combinations(range(d - s + q), q)), dtype=np.int64).reshape(-1, q)
    if q == 0:
        return prefixes.reshape(1, 0)
    sizes = np.array([math.comb(d - 1 - int(last), s - q) for last in prefixes[:, -1]])
    return prefixes[np.argsort(-sizes, kind="stable")]


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
    device=None,
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
    device : None, 'cpu', 'auto', 'cuda', 'cuda:N' or 'torch-cpu'
        None or 'cpu': the numba kernel; otherwise the torch path on that device
        ('auto': CUDA when present, else numba; 'torch-cpu': torch on the CPU),
        ``ripkit.rip.torch_path``.  Same results either way.

    Returns
    -------
    ExactRip

    Notes
    -----
    Exhaustive over the C(d, s) supports of size exactly s; by eigenvalue
    interlacing this equals the maximum over all supports of size <= s.
    Eigenvalues are accurate to about 1e-15·‖G[S, S]‖ (closed form for s = 2,
    Jacobi for s <= 6, LAPACK above); a support is skipped only when a Cholesky
    factorisation certifies that it cannot reach the extremes (see
    ``ripkit.rip._enumerate``), so the result is that of solving every block.
    Ties between supports resolve to the lexicographically first.
    """
    # 1. validate
    g = check_matrix("gram", gram)
    if g.shape[0] != g.shape[1]:
        raise ValueError(f"gram must be square, got shape {g.shape}")
    d = g.shape[0]
    s = _check_s(s, d)
    limit = _check_max_supports(max_supports)
    torch_device = resolve_device(device)
    scale = _check_isometry_scale(isometry_scale)
    exact = check_symmetric(g, symmetry_tol)
    total = math.comb(d, s)
    if total > limit or total > _INT64_CAP:  # the kernel counts ranks in int64
        raise ValueError(
            f"exhaustive enumeration for s={s}, d={d} needs C({d}, {s}) = {total} supports, "
            f"more than max_supports={max_supports}; lower s, or raise max_supports"
        )
    if s > 1 or not exact:
        g = symmetrised(g, exact)

    # 2. enumerate
    if s == 1:  # the 1×1 blocks are the diagonal
        t0 = time.perf_counter()
        diag = np.diag(g)
        i_hi, i_lo = int(np.argmax(diag)), int(np.argmin(diag))
        lam_max, lam_min = float(diag[i_hi]), float(diag[i_lo])
        sup_max, sup_min = (i_hi,), (i_lo,)
        seconds = time.perf_counter() - t0
        n_solved = d
    elif torch_device is not None:
        t0 = time.perf_counter()
        lam_max, lam_min, sup_max, sup_min, n_solved = enumerate_extremes_torch(g, s, torch_device)
        seconds = time.perf_counter() - t0
        lam_max, lam_min = float(lam_max), float(lam_min)
    else:
        import numba  # with the kernels, on first use: ``ripkit._numba``

        from ripkit.rip._enumerate import enumerate_extremes

        tasks = prefix_tasks(d, s, _MIN_TASKS)
        n_workers = 1 if total < _PARALLEL_MIN_SUPPORTS else max(1, min(numba.get_num_threads(), tasks.shape[0]))
        enumerate_extremes(np.eye(2), 2, np.zeros((1, 0), np.int64), n_workers)  # compile/load outside the clock
        t0 = time.perf_counter()
        hi_val, lo_val, hi_sup, lo_sup, solved = enumerate_extremes(g, s, tasks, n_workers)
        seconds = time.perf_counter() - t0
        n_solved = int(solved.sum())
        lam_max, sup_max = merge_max(hi_val, hi_sup)
        lam_min, sup_min = min(((v, tuple(int(i) for i in sup)) for v, sup in zip(lo_val, lo_sup) if v < np.inf),
                               key=lambda vs: (vs[0], vs[1]))
        lam_min = float(lam_min)

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
        n_solved=n_solved,
        isometry_scale=scale,
    )


def check_symmetric(g: np.ndarray, symmetry_tol: float = 1e-8) -> bool:
    """Check a square float64 Gram matrix (``check_matrix``'s output) for the enumerators; returns
    whether G equals Gᵀ exactly (every Gram matrix numpy's syrk returns does).

    ValueError when max |G − Gᵀ| exceeds ``symmetry_tol``·max(1, max |G|), or when the entries are
    so large that a sum of d of them (a block's eigenvalue, G + Gᵀ) could overflow float64.
    """
    d = g.shape[0]
    largest = float(np.max(np.abs(g))) if g.size else 0.0
    if largest > np.finfo(np.float64).max / (2 * max(d, 1)):
        raise ValueError(f"gram entries up to {largest:.3g} are too large: sums of d={d} of them overflow float64")
    if np.array_equal(g, g.T):
        return True
    asym, allowed = float(np.max(np.abs(g - g.T))), symmetry_tol * max(1.0, largest)
    if asym > allowed:
        raise ValueError(f"gram must be symmetric: max |gram - gram.T| = {asym:.3g} exceeds {allowed:.3g}")
    return False


def symmetrised(g: np.ndarray, exact: bool) -> np.ndarray:
    """(G + Gᵀ)/2 as the kernels take it (C-contiguous, writable); G itself, or a C copy, when
    ``exact`` (``check_symmetric``'s answer): then it is its own symmetrisation bit for bit."""
    if not exact:
        return np.ascontiguousarray(0.5 * (g + g.T))
    return g if g.flags.c_contiguous and g.flags.writeable else np.array(g, order="C")


def merge_max(hi_val, hi_sup) -> tuple[float, tuple]:
    """The workers' λ_max records merged: the largest, ties to the lexicographically first support
    (each worker kept its own first one the same way)."""
    lam, sup = max(((v, tuple(int(i) for i in sup)) for v, sup in zip(hi_val, hi_sup) if v > -np.inf),
                   key=lambda vs: (vs[0], tuple(-i for i in vs[1])))
    return float(lam), sup


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
