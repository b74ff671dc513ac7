"""Numba kernels behind ``ripkit.rip.exhaustive``: every support is certified or solved.

Goal: over all C(d, s) supports S, the largest λ_max(G_S) and the smallest λ_min(G_S)
of the principal s×s sub-blocks of a Gram matrix G, with the lexicographically first
support attaining each, and the *same values, bit for bit,* as solving every block with
:func:`block_extremes` (closed form for s = 2, cyclic Jacobi for s ≤ 6, LAPACK above —
what ripkit always did).

Certificate instead of an eigensolve.  Let v be the best λ_max found so far and
θ = v − margin.  If the Cholesky factorisation of A = θI − G_S succeeds in floating
point, the computed factor is the exact factor of A + ΔA with
‖ΔA‖₂ ≤ γ_{s+2}·trace(A) ≤ (s+2)·s·u·(σ + |θ|)(1 + O(su))  (Higham, *Accuracy and
Stability*, Thm 10.3; one more rounding for multiplying by 1/L_ii; σ = max|G_ij|),
so A + ΔA ≻ 0 and λ_max(G_S) ≤ θ + ‖ΔA‖₂.  With margin = 1024·s³·u·(σ + |v|), which
exceeds ‖ΔA‖₂ plus the error of any of the block solvers above (backward stable,
error ≤ c·s·u·‖G_S‖₂ ≤ c·s²·u·σ with c far below 1024·s), the solved value of S would
be *strictly* below v: S can neither beat nor tie the record, and is skipped.  The
λ_min side is the same with A = G_S − (w + margin)I.  Every support not certified
this way is solved with :func:`block_extremes`, so the result is exactly the
maximum (minimum) of the solved values, ties resolved to the lexicographically first
support, as if every block had been solved.

Enumeration.  Supports are visited depth-first in lexicographic order; the
Cholesky factor of a prefix is shared by all its completions, and the new row for
*every* sibling j of an inner node is one forward substitution vectorised over j (rows
of G are contiguous in j): O(t²) flops per tree node at depth t, O(s²) per support,
instead of an O(s³) eigensolve per support.  A leaf's row is never reused, so the
leaves' pivots are computed one at a time, with the same arithmetic, both sides in one
loop (two independent chains of dependent multiply-adds, which the CPU overlaps).  When the record improves, the factors along the
current path are recomputed for the new thresholds (a certificate for an older, looser
threshold stays valid, so stale batches are never wrong, only less selective).

Parallelism: the prefixes of a fixed length q are tasks, sorted by size and dealt
round-robin to ``prange`` workers, each with its own records; the caller merges them.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ripkit._numba import lazy_kernel

__all__ = ["block_extremes", "enumerate_extremes", "margin_factor", "JACOBI_MAX_S"]

JACOBI_MAX_S = 6  # largest s solved by Jacobi; LAPACK eigvalsh above (measured crossover)
_U = 2.0 ** -53
_SHORT_RUN = 16  # sibling runs shorter than this are done one sibling at a time
MARGIN_FACTOR = 1024.0  # margin = MARGIN_FACTOR·s³·u·(σ + |record|)


def margin_factor(s: int) -> float:
    """The certificate margin relative to (σ + |record|), see the module docstring."""
    return MARGIN_FACTOR * s ** 3 * _U


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


@njit
def block_extremes(g, c, s, a):
    """(λ_min, λ_max) of G[c, c] (s ≥ 2; ``a`` an s×s scratch): closed form, Jacobi or LAPACK."""
    if s == 2:
        x = g[c[0], c[0]]
        z = g[c[1], c[1]]
        mid = 0.5 * (x + z)
        rad = math.hypot(0.5 * (x - z), g[c[0], c[1]])
        return mid - rad, mid + rad
    for i in range(s):
        for j in range(s):
            a[i, j] = g[c[i], c[j]]
    if s <= JACOBI_MAX_S:
        return _jacobi_extremes(a, s)
    w = np.linalg.eigvalsh(a)
    return w[0], w[s - 1]


@njit
def _factor(g, c, t, sign, theta, fac, inv):
    """Rows 0..t−1 of the Cholesky factor of A = sign·(G[c, c] − θI), from scratch; True if all pivots > 0."""
    for r in range(t):
        for i in range(r):
            acc = sign * g[c[r], c[i]]
            for k in range(i):
                acc -= fac[r, k] * fac[i, k]
            fac[r, i] = acc * inv[i]
        piv = sign * (g[c[r], c[r]] - theta)
        for k in range(r):
            piv -= fac[r, k] * fac[r, k]
        if not piv > 0.0:
            return False
        fac[r, r] = math.sqrt(piv)
        inv[r] = 1.0 / fac[r, r]
    return True


@njit
def _sibling_rows(g, c, t, j0, j1, sign, theta, fac, inv, x, piv):
    """Row t of the factor for every sibling c[t] = j, j0 ≤ j < j1: x[:t, j] and the pivot piv[j].

    Long runs of siblings go row by row over j (vectorised, G's rows are contiguous in j);
    short ones (most of them when d is small) sibling by sibling, where loop set-up would
    cost more than the arithmetic.  Both do the same operations in the same order.
    """
    if j1 - j0 < _SHORT_RUN:
        for j in range(j0, j1):
            p = sign * (g[j, j] - theta)
            for i in range(t):
                acc = sign * g[c[i], j]
                for k in range(i):
                    acc -= fac[i, k] * x[k, j]
                x[i, j] = acc * inv[i]
            for i in range(t):
                p -= x[i, j] * x[i, j]
            piv[j] = p
        return
    for i in range(t):
        ci = c[i]
        for j in range(j0, j1):
            x[i, j] = sign * g[ci, j]
        for k in range(i):
            f = fac[i, k]
            for j in range(j0, j1):
                x[i, j] -= f * x[k, j]
        f = inv[i]
        for j in range(j0, j1):
            x[i, j] *= f
    for j in range(j0, j1):
        piv[j] = sign * (g[j, j] - theta)
    for i in range(t):
        for j in range(j0, j1):
            piv[j] -= x[i, j] * x[i, j]


@njit(inline="always")
def _leaf_pivots(g, c, t, j, th_hi, th_lo, fac_hi, inv_hi, fac_lo, inv_lo, x_hi, x_lo):
    """Pivots of the last row for c[t] = j on both sides (λ_max: sign −1, λ_min: +1), each with
    ``_sibling_rows``' sibling-by-sibling arithmetic for one j; rows kept in ``x_hi``, ``x_lo`` (t,).

    For the leaves, whose rows are never reused.  The two sides are independent chains of
    dependent multiply-adds, computed in one loop so that the CPU overlaps them.
    """
    p_hi = -(g[j, j] - th_hi)
    p_lo = g[j, j] - th_lo
    for i in range(t):
        gij = g[c[i], j]
        acc_hi = -gij
        acc_lo = gij
        for k in range(i):
            acc_hi -= fac_hi[i, k] * x_hi[k]
            acc_lo -= fac_lo[i, k] * x_lo[k]
        x_hi[i] = acc_hi * inv_hi[i]
        x_lo[i] = acc_lo * inv_lo[i]
    for i in range(t):
        p_hi -= x_hi[i] * x_hi[i]
        p_lo -= x_lo[i] * x_lo[i]
    return p_hi, p_lo


@njit(inline="always")
def _lex_less(c, best, s):
    for i in range(s):
        if c[i] != best[i]:
            return c[i] < best[i]
    return False


@njit
def _walk(g, s, tasks, w, n_workers, sigma, mfac, hi_val, lo_val, hi_sup, lo_sup, n_solved):
    """Worker w: tasks w, w + n_workers, …; its records go to row w of the outputs."""
    d = g.shape[0]
    n_tasks, q = tasks.shape
    c = np.zeros(s, np.int64)
    scratch = np.empty((s, s))
    fac_hi, fac_lo = np.zeros((s, s)), np.zeros((s, s))
    inv_hi, inv_lo = np.zeros(s), np.zeros(s)
    x_hi, x_lo = np.empty((s, s, d)), np.empty((s, s, d))
    piv_hi, piv_lo = np.empty((s, d)), np.empty((s, d))
    x_leaf_hi, x_leaf_lo = np.zeros(s), np.zeros(s)
    ok_hi, ok_lo = np.zeros(s + 1, np.bool_), np.zeros(s + 1, np.bool_)
    ver = np.zeros(s, np.int64)  # version of the sibling batch at each depth (-1: none yet)
    pos = np.zeros(s, np.int64)
    hv, lv = -np.inf, np.inf
    best_hi, best_lo = np.zeros(s, np.int64), np.zeros(s, np.int64)
    th_hi, th_lo = 0.0, 0.0
    version = 0
    solved = 0
    for task in range(w, n_tasks, n_workers):
        for i in range(q):
            c[i] = tasks[task, i]
        if hv == -np.inf:  # the first completion, solved, opens the records
            for i in range(q, s):
                c[i] = c[i - 1] + 1 if i > 0 else 0
            lam_lo, lam_hi = block_extremes(g, c, s, scratch)  # solved again (and counted) in the walk
            hv, lv = lam_hi, lam_lo
            best_hi[:] = c
            best_lo[:] = c
            th_hi, th_lo = hv - mfac * (sigma + abs(hv)), lv + mfac * (sigma + abs(lv))
            version += 1
        ok_hi[q] = _factor(g, c, q, -1.0, th_hi, fac_hi, inv_hi)
        ok_lo[q] = _factor(g, c, q, 1.0, th_lo, fac_lo, inv_lo)
        t = q
        pos[t] = c[q - 1] + 1 if q > 0 else 0
        ver[t] = -1
        while t >= q:
            end = d - s + t + 1  # c[t] < end leaves room for the deeper elements
            if pos[t] >= end:
                t -= 1
                if t >= q:
                    pos[t] += 1
                continue
            if ver[t] != version:
                if ver[t] != -1:  # the record moved: refactor this path for the new thresholds
                    ok_hi[t] = _factor(g, c, t, -1.0, th_hi, fac_hi, inv_hi)
                    ok_lo[t] = _factor(g, c, t, 1.0, th_lo, fac_lo, inv_lo)
                if t < s - 1:  # leaves' pivots are computed one at a time below, and only as needed
                    if ok_hi[t]:
                        _sibling_rows(g, c, t, pos[t], end, -1.0, th_hi, fac_hi, inv_hi, x_hi[t], piv_hi[t])
                    if ok_lo[t]:
                        _sibling_rows(g, c, t, pos[t], end, 1.0, th_lo, fac_lo, inv_lo, x_lo[t], piv_lo[t])
                ver[t] = version
            if t == s - 1:  # leaves: certified, or solved
                nxt = end
                for j in range(pos[t], end):
                    # (a side whose prefix failed has a stale factor: its pivot is computed, never used)
                    p_hi, p_lo = _leaf_pivots(g, c, t, j, th_hi, th_lo, fac_hi, inv_hi, fac_lo, inv_lo,
                                              x_leaf_hi, x_leaf_lo)
                    if ok_hi[t] and p_hi > 0.0 and ok_lo[t] and p_lo > 0.0:
                        continue
                    c[t] = j
                    lam_lo, lam_hi = block_extremes(g, c, s, scratch)
                    solved += 1
                    moved = False
                    if lam_hi > hv or (lam_hi == hv and _lex_less(c, best_hi, s)):
                        hv = lam_hi
                        best_hi[:] = c
                        th_hi = hv - mfac * (sigma + abs(hv))
                        moved = True
                    if lam_lo < lv or (lam_lo == lv and _lex_less(c, best_lo, s)):
                        lv = lam_lo
                        best_lo[:] = c
                        th_lo = lv + mfac * (sigma + abs(lv))
                        moved = True
                    if moved:  # sharper thresholds: recertify the remaining siblings
                        version += 1
                        nxt = j + 1
                        break
                pos[t] = nxt
                continue
            j = pos[t]  # descend into c[t] = j
            c[t] = j
            ok_hi[t + 1] = ok_hi[t] and piv_hi[t, j] > 0.0
            if ok_hi[t + 1]:
                for i in range(t):
                    fac_hi[t, i] = x_hi[t, i, j]
                fac_hi[t, t] = math.sqrt(piv_hi[t, j])
                inv_hi[t] = 1.0 / fac_hi[t, t]
            ok_lo[t + 1] = ok_lo[t] and piv_lo[t, j] > 0.0
            if ok_lo[t + 1]:
                for i in range(t):
                    fac_lo[t, i] = x_lo[t, i, j]
                fac_lo[t, t] = math.sqrt(piv_lo[t, j])
                inv_lo[t] = 1.0 / fac_lo[t, t]
            t += 1
            pos[t] = j + 1
            ver[t] = -1
    hi_val[w], lo_val[w] = hv, lv
    hi_sup[w, :] = best_hi
    lo_sup[w, :] = best_lo
    n_solved[w] = solved


@njit
def _outputs(n_workers, s):
    return (np.full(n_workers, -np.inf), np.full(n_workers, np.inf), np.zeros((n_workers, s), np.int64),
            np.zeros((n_workers, s), np.int64), np.zeros(n_workers, np.int64))


def _serial_pass(g, s, tasks, sigma, mfac):
    hi_val, lo_val, hi_sup, lo_sup, n_solved = _outputs(1, s)
    _walk(g, s, tasks, 0, 1, sigma, mfac, hi_val, lo_val, hi_sup, lo_sup, n_solved)
    return hi_val, lo_val, hi_sup, lo_sup, n_solved


def _parallel_pass(g, s, tasks, n_workers, sigma, mfac):
    hi_val, lo_val, hi_sup, lo_sup, n_solved = _outputs(n_workers, s)
    for w in prange(n_workers):
        _walk(g, s, tasks, w, n_workers, sigma, mfac, hi_val, lo_val, hi_sup, lo_sup, n_solved)
    return hi_val, lo_val, hi_sup, lo_sup, n_solved




# Two entry points: loading a parallel=True kernel costs about a second per process (threading
# layer), so small enumerations run the serial one.
_serial_kernel = lazy_kernel(_serial_pass)
_parallel_kernel = lazy_kernel(_parallel_pass, parallel=True)


def enumerate_extremes(g: np.ndarray, s: int, tasks: np.ndarray, n_workers: int):
    """Run the kernel on a symmetric, C-contiguous G (s ≥ 2) over ``tasks`` (n_tasks, q) prefixes.

    Returns per-worker (hi_val, lo_val, hi_sup, lo_sup, n_solved); the caller merges them.
    """
    sigma = float(np.max(np.abs(g)))
    if n_workers == 1:
        return _serial_kernel(g, s, tasks, sigma, margin_factor(s))
    return _parallel_kernel(g, s, tasks, n_workers, sigma, margin_factor(s))
