"""Λ(t) = max over t-subsets T of λ_max(G[T, T]) exactly, enumerating only the prefixes a bound cannot rule out.

The certified upper bounds of ``rip_bracket`` need Λ_X(t) of a factor Gram at sizes whose
C(d, t) supports are too many to enumerate (``conservative``: Λ_L(5) over a = 256 columns,
8.8·10⁹ supports).  Most of them cannot come near the maximum, and a cheap bound shows it for
whole subtrees of the lexicographic enumeration at once.

*Bound.*  Let T = P ∪ Q with P a prefix (|P| = q = t − 2) and Q the r = 2 later elements.  For
x = (u, v) on (P, Q),

    xᵀG_T x = uᵀG_P u + 2uᵀG_PQ v + vᵀG_Q v ≤ α‖u‖² + 2β‖u‖‖v‖ + γ‖v‖² ≤ λ_max([[α, β], [β, γ]])‖x‖²

with α ≥ λ_max(G_P), β ≥ ‖G_PQ‖₂ and γ ≥ λ_max(G_Q).  Take γ = γ(max P), the largest λ_max of a
pair after max P (closed form over all pairs, a suffix maximum), β² = the sum of the r largest
c_j = Σ_{i∈P} G_ij² over the candidates j > max P (‖G_PQ‖₂² ≤ ‖G_PQ‖_F² = Σ_{j∈Q} c_j), and
α = λ_max(G_P).  So every completion of P has λ_max(G_T) ≤ UB(P) = (α + γ)/2 + √(((α − γ)/2)² + β²).  ∎

UB(P) < θ exactly when θ > γ and α < α* = θ − β²/(θ − γ) (θ·I minus the 2×2 matrix is positive
definite), so λ_max(G_P) is never solved: a row-wise Gershgorin bound below α*, or a successful
Cholesky factorisation of (α* − margin)·I − G_P (the enumerator's certificate, with its rounding
margin), rules P out.

*Order.*  The bound only sees candidates after max P, so the columns are first sorted by their
Gershgorin bound for size t (G_ii plus the t − 1 largest |G_ij|, largest first): a prefix of
"dangerous" columns meets only tamer ones after it, and γ(max P) falls quickly.  On
``conservative``'s L (d = 256, t = 5) this keeps 0.3–1.2 % of the 8.8·10⁹ supports against
7–23 % in the natural order.

*Procedure.*  Given an incumbent v — an attained λ_max(G_S), |S| = t, e.g. the adversarial
search's — a prefix is dropped when UB(P) < θ = v − margin − slack, with the enumerator's
certificate margin (``ripkit.rip._enumerate``) and a relative slack of 1e-9 that dwarfs the
rounding of UB (≈ 1e-15).  Every support under a dropped prefix therefore solves strictly below
v, and v's own support is kept.  The kept prefixes are enumerated by the exact enumerator
(``enumerate_extremes`` with them as its tasks) on the sorted Gram.  The result is the largest
solved λ_max over all C(d, t) supports — each block solved as ``exact_rip`` solves it but with
its rows in the sorted order, so the value may differ from ``exact_rip``'s in the last bits and,
on an exact tie, the support may be another one attaining it; the value reported is the one
``exact_rip`` computes for the support found (its rows in increasing index order).

Only the λ_max side: the λ_min twin of the bound (λ_min ≥ (α' + γ')/2 − √(…)) prunes little on
these Grams (41 % of prefixes kept against 3 % on ``conservative``'s L), so λ(t) keeps its
spectral / Gershgorin bound where it is not enumerated.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

from ripkit._checks import check_matrix
from ripkit._numba import lazy_kernel
from ripkit.rip._enumerate import _factor, _unrank, block_extremes, enumerate_extremes, margin_factor
from ripkit.rip.exhaustive import _binomial_table, check_symmetric, merge_max, symmetrised
from ripkit.rip.upper import gershgorin_rows

__all__ = ["BranchBoundMax", "branch_bound_max", "prefix_count"]

_R = 2  # elements after a prefix (q = t − R); the pairs' λ_max after each index are cheap (closed form)
_SLACK = 1e-9  # relative: a prefix is dropped only when its bound is this far below the threshold
_PARALLEL_MIN_PREFIXES = 20_000


@dataclass(frozen=True)
class BranchBoundMax:
    """Λ(t) of a Gram matrix and a support attaining it (the first in the sorted order on exact ties).

    ``n_prefixes`` prefixes of length t − 2 were bounded, ``n_kept`` could not be ruled out and
    their ``n_enumerated`` completions were enumerated (of C(d, t) supports in all).
    """

    t: int
    lam_max: float
    support_max: tuple
    n_prefixes: int
    n_kept: int
    n_enumerated: int
    n_supports: int
    seconds: float


def prefix_count(d: int, t: int) -> int:
    """Prefixes of length t − 2 that leave room for two more elements: C(d − 2, t − 2)."""
    return math.comb(d - _R, t - _R)


def _suffix_pair_max(g):
    """γ[k] = max over pairs k < x < y of λ_max(G[{x, y}, {x, y}]) (closed form); −inf where none."""
    d = g.shape[0]
    out = np.full(d, -np.inf)
    run = -np.inf
    for x in range(d - 1, -1, -1):
        out[x] = run
        for y in range(x + 1, d):
            mid = 0.5 * (g[x, x] + g[y, y])
            run = max(run, mid + math.hypot(0.5 * (g[x, x] - g[y, y]), g[x, y]))
    return out


_suffix_pair_max_kernel = lazy_kernel(_suffix_pair_max)


def _prune(g, q, gamma_after, threshold, slack, mfac, sigma, offsets, keep):
    """keep[rank] = not (UB(P) < threshold) for every prefix P of length q ≥ 1 (ranks in lexicographic order)."""
    d = g.shape[0]
    last = d - _R  # prefix elements are < last
    for i in prange(last - q + 1):
        c = np.empty(q, np.int64)
        for k in range(q):
            c[k] = i + k
        fac, inv = np.empty((q, q)), np.empty(q)
        rank = offsets[i]
        while True:
            # β²: the two largest c_j = Σ_{p∈P} G_pj² over the candidates j > max P
            top1, top2 = 0.0, 0.0
            for j in range(c[q - 1] + 1, d):
                cj = 0.0
                for k in range(q):
                    cj += g[c[k], j] * g[c[k], j]
                if cj > top1:
                    top2, top1 = top1, cj
                elif cj > top2:
                    top2 = cj
            beta2 = top1 + top2
            gamma = gamma_after[c[q - 1]]
            # UB(P) < thr ⇔ thr > γ and α < α* = thr − β²/(thr − γ): test λ_max(G_P) < α* without solving
            ok = True
            if threshold > gamma:
                level = threshold - beta2 / (threshold - gamma)
                level -= slack * (1.0 + abs(level)) + mfac * (sigma + abs(level))
                row_max = -np.inf  # Gershgorin first: most prefixes fall to it
                for k in range(q):
                    row = 0.0
                    for m in range(q):
                        row += abs(g[c[k], c[m]])
                    row_max = max(row_max, row)
                # Cholesky of level·I − G_P (sign −1): its success certifies λ_max(G_P) < level up to
                # rounding that the margin above covers (``ripkit.rip._enumerate``)
                ok = not (row_max < level or _factor(g, c, q, -1.0, level, fac, inv))
            keep[rank] = ok
            rank += 1
            # next prefix with the same first element (elements 1..q−1 advance lexicographically)
            k = q - 1
            while k >= 1 and c[k] == last - q + k:
                k -= 1
            if k < 1:
                break
            c[k] += 1
            for m in range(k + 1, q):
                c[m] = c[m - 1] + 1


_prune_serial = lazy_kernel(_prune)
_prune_parallel = lazy_kernel(_prune, parallel=True)


def _prefixes(ranks, last, q, binom):
    """The prefixes (elements < ``last``) of the given lexicographic ranks, shape (len(ranks), q)."""
    out = np.empty((ranks.shape[0], q), np.int64)
    for row in range(ranks.shape[0]):
        _unrank(ranks[row], last, q, binom, out[row])
    return out


_prefixes_kernel = lazy_kernel(_prefixes)


def branch_bound_max(gram: np.ndarray, t: int, incumbent: float, *, max_supports: float,
                     max_prefixes: int = 50_000_000) -> BranchBoundMax | None:
    """Λ(t) = max_{|T|=t} λ_max(G[T, T]) exactly (module docstring), or None when too costly.

    Parameters
    ----------
    gram : (d, d) ndarray
        Symmetric, C-contiguous (a factor Gram as ``rip_bracket`` holds it).
    t : int
        Subset size, 3 ≤ t ≤ d.
    incumbent : float
        λ_max(G[S, S]) of some support S of size t (a lower bound on Λ(t)); the closer to Λ(t),
        the more prefixes are ruled out.
    max_supports : float
        Give up (None) when the kept prefixes have more completions than this.
    max_prefixes : int
        Give up when there are more prefixes than this to bound (O(d·t) work each).

    Raises
    ------
    ValueError
        ``gram`` not square, not symmetric (to 1e-8 relative, as ``exact_rip``) or with entries
        that would overflow, t outside [3, d], or an ``incumbent`` above every support's λ_max
        (not attained: pruning against it could drop the maximum, so nothing is returned).
    """
    gram = check_matrix("gram", gram)
    if gram.shape[0] != gram.shape[1]:
        raise ValueError(f"gram must be a symmetric square matrix, got shape {gram.shape}")
    gram = symmetrised(gram, check_symmetric(gram))  # as exact_rip: rounding-level asymmetry is symmetrised
    d = gram.shape[0]
    if not 3 <= t <= d:
        raise ValueError(f"t={t} must be in [3, d={d}]")
    if not math.isfinite(incumbent):
        raise ValueError(f"incumbent={incumbent} must be finite")
    n_prefixes = prefix_count(d, t)
    if n_prefixes > max_prefixes:
        return None
    t0 = time.perf_counter()
    q = t - _R
    diag, top = gershgorin_rows(gram, t)
    perm = np.argsort(-(diag + top), kind="stable")
    g = np.ascontiguousarray(gram[np.ix_(perm, perm)])
    gamma_after = _suffix_pair_max_kernel(g)
    sigma = float(np.max(np.abs(g)))
    theta = incumbent - margin_factor(t) * (sigma + abs(incumbent))
    threshold = theta - _SLACK * (1.0 + abs(theta))
    last = d - _R
    offsets = np.cumsum([0] + [math.comb(last - 1 - i, q - 1) for i in range(last - q)], dtype=np.int64)
    keep = np.zeros(n_prefixes, np.bool_)
    prune = _prune_parallel if n_prefixes >= _PARALLEL_MIN_PREFIXES and numba.get_num_threads() > 1 else _prune_serial
    prune(g, q, gamma_after, float(threshold), _SLACK, margin_factor(q), sigma, offsets, keep)
    tasks = _prefixes_kernel(np.flatnonzero(keep).astype(np.int64), last, q, _binomial_table(last, q))
    sizes = np.array([math.comb(d - 1 - int(p[-1]), _R) for p in tasks], dtype=np.int64)
    n_enumerated = int(sizes.sum())
    if n_enumerated > max_supports:
        return None
    tasks = tasks[np.argsort(-sizes, kind="stable")]  # largest first: round-robin balances the workers
    n_workers = max(1, min(numba.get_num_threads(), len(tasks))) if n_enumerated >= 1_000_000 else 1
    hi_val, _, hi_sup, _, _ = enumerate_extremes(g, t, tasks, n_workers) if len(tasks) else (None,) * 5
    if len(tasks) == 0 or (top := merge_max(hi_val, hi_sup))[0] < threshold:
        # only an incumbent that no support attains can leave nothing at or above the threshold
        raise ValueError(f"incumbent={incumbent} exceeds λ_max of every support of size {t}: it must be "
                         "attained by one (e.g. an adversarial search's result)")
    found = top[1]
    support = tuple(sorted(int(perm[i]) for i in found))
    lam_max = float(block_extremes(gram, np.array(support, np.int64), t, np.empty((t, t)))[1])
    return BranchBoundMax(t=t, lam_max=lam_max, support_max=support, n_prefixes=n_prefixes,
                          n_kept=len(tasks), n_enumerated=n_enumerated, n_supports=math.comb(d, t),
                          seconds=time.perf_counter() - t0)
