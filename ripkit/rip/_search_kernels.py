"""Numba kernels behind ``ripkit.rip.adversarial``: each position's best few candidates by 2×2 proxy.

A search round asks, for every drop position p (its remaining support's extreme
eigenpair (λ_p, u_p)), which non-members j have the best proxy score: the extreme
eigenvalue of [[λ_p, c_pj], [c_pj, G_jj]] with the coupling c_pj = u_pᵀ G[S, j].
Both kernels return, per p, the ``tries`` best candidates ordered by (score desc,
index asc) — a function of the scores alone, so the order in which candidates are
visited, and any candidate skipped because it provably cannot enter the list, leave
the answer unchanged.

``top_pass``       the couplings are given (a dense Gram: one GEMM upstream);
``kron_top_pass``  G = G_R ⊗ G_L: couplings from the factors, and exact pruning so that at
                   the LLM size only a small fraction of the ab candidates is ever scored.

Both compile on their first call, not on import (``ripkit._numba.lazy_kernel``).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ripkit._numba import lazy_kernel

__all__ = ["top_kernel", "kron_top_kernel"]

#: Relative head-room of a computed Cauchy–Schwarz product over |c| as computed (rounding).
_CS_SLACK = 1e-12


@njit(inline="always")
def _proxy(lam, c, d, sign):
    """Extreme eigenvalue of [[λ, c], [c, d]], signed so larger is better (λ_max, or −λ_min).

    √(h² + c²) instead of hypot: the entries are O(1) Gram values, so no scaling is needed.
    """
    h = 0.5 * (lam - d)
    rad = math.sqrt(h * h + c * c)
    mid = 0.5 * (lam + d)
    return mid + rad if sign > 0 else rad - mid


@njit(inline="always")
def _may_reach(lam, c_bound, d, thr, sign):
    """False only if no |c| ≤ c_bound gives ``_proxy(lam, c, d) ≥ thr`` (with a 1e-9 relative margin).

    λ_max([[λ, c], [c, d]]) ≥ max(λ, d), and for t above both, λ_max ≥ t ⟺ c² ≥ (t−λ)(t−d)
    (det(tI − M) ≤ 0); symmetrically λ_min ≤ τ ⟺ c² ≥ (λ−τ)(d−τ) for τ below both.
    Both are increasing in c², so c_bound bounds every such coupling.  The answer is also
    monotone in d (a larger d for side 'max', a smaller one for 'min', can only help), so a
    c_bound and a d that dominate a whole row of candidates decide for the row at once.
    """
    slack = 1e-9 * (1.0 + abs(thr))
    if sign > 0:
        if thr <= max(lam, d) + slack:
            return True
        return c_bound * c_bound * (1.0 + 1e-9) >= (thr - lam) * (thr - d) - slack
    tau = -thr
    if tau >= min(lam, d) - slack:
        return True
    return c_bound * c_bound * (1.0 + 1e-9) >= (lam - tau) * (d - tau) - slack


@njit(inline="always")
def _insert(best, top, score, j):
    """Insert candidate j into the lists sorted by (score desc, index asc) if it belongs there.

    Empty slots hold index −1 and score −inf and rank below every candidate.
    """
    last = best.shape[0] - 1
    if top[last] >= 0 and (score < best[last] or (score == best[last] and j > top[last])):
        return
    q = last
    while q > 0 and (top[q - 1] < 0 or score > best[q - 1] or (score == best[q - 1] and j < top[q - 1])):
        best[q] = best[q - 1]
        top[q] = top[q - 1]
        q -= 1
    best[q] = score
    top[q] = j


@njit(inline="always")
def _row_diag(d_r, d_hi, d_lo, sign):
    """The most favourable diagonal d_r·d_k of a row over d_k ∈ [d_lo, d_hi] (largest for 'max')."""
    if sign > 0:
        return max(d_r * d_hi, d_r * d_lo)
    return min(d_r * d_hi, d_r * d_lo)


def top_pass(lams, couplings, diag, members, sign, tries, empty):
    """Per row p: the ``tries`` best non-member candidates by 2×2 proxy score, best first.

    ``empty``: the remaining support is empty and the score is sign·d_j.  Ties keep the
    smaller index.  Rows with fewer candidates are padded with −1.
    """
    n_rows, n = couplings.shape
    top = np.full((n_rows, tries), -1, np.int64)
    best = np.empty(tries)
    for p in range(n_rows):
        best[:] = -np.inf
        for j in range(n):
            if not members[j]:
                score = sign * diag[j] if empty else _proxy(lams[p], couplings[p, j], diag[j], sign)
                _insert(best, top[p], score, j)
    return top


def kron_top_pass(lams, vecs, gl_rows, gr_rows, d_left, d_right, members, member_cols, sign, tries):
    """``top_pass`` for G = G_R ⊗ G_L without the (P, ab) couplings, with exact pruning.

    Coupling of position p with candidate (k', l'): c = Σ_i w_i·G_L[k_i,k'] with
    w_i = V[i,p]·G_R[l_i,l'] (summed in that order, i ascending, whenever it is scored).
    Two bounds on |c|, each cheap per candidate:

    - |c| ≤ A[l']·B[k'] with A[l'] = max_i |G_R[l_i,l']| and B[k'] = Σ_i |V[i,p]|·|G_L[k_i,k']|;
    - |c| ≤ ‖w‖₂·N[k'] (Cauchy–Schwarz) with N[k'] = ‖G_L[k_S,k']‖₂, once per call.

    Their minimum screens candidates (``_may_reach``); a row l' is screened at once with
    the maxima of B and N over the non-member columns k' ∉ k_S and its most favourable
    diagonal, and, when that fails, its member columns k' ∈ k_S (where B and N are large)
    with their own maxima.  Only candidates that could enter the list are scored, so the
    list is the one a full pass would produce.  Rows are visited by decreasing A so the
    threshold rises early.  Rounding: the bounds are computed to ~1e-15 relative (‖w‖ is
    widened by ``_CS_SLACK``), far inside ``_may_reach``'s 1e-9 margin.
    """
    s, n_rows = vecs.shape
    a, b = gl_rows.shape[1], gr_rows.shape[1]
    top = np.full((n_rows, tries), -1, np.int64)
    best = np.empty(tries)
    big = np.zeros(b)
    for l in range(b):
        for i in range(s):
            big[l] = max(big[l], abs(gr_rows[i, l]))
    order = np.argsort(-big)
    dl_hi, dl_lo = d_left.max(), d_left.min()
    is_member_col = np.zeros(a, np.bool_)
    for k in member_cols:
        is_member_col[k] = True
    # N[k'] = ‖G_L[k_S, k']‖₂, and the maxima of N and of d_left over member / non-member columns
    nk = np.zeros(a)
    for i in range(s):
        for k in range(a):
            nk[k] += gl_rows[i, k] * gl_rows[i, k]
    n_out, n_mem = 0.0, 0.0
    dm_hi, dm_lo = -np.inf, np.inf
    for k in range(a):
        nk[k] = math.sqrt(nk[k])
        if is_member_col[k]:
            n_mem = max(n_mem, nk[k])
            dm_hi, dm_lo = max(dm_hi, d_left[k]), min(dm_lo, d_left[k])
        elif nk[k] > n_out:
            n_out = nk[k]
    bk = np.empty(a)
    w = np.empty(s)
    abs_gl = np.abs(gl_rows)                   # (s, a): B[k'] sums run along k' (vectorised)
    gl_t = np.ascontiguousarray(gl_rows.T)     # (a, s): one candidate's couplings are contiguous
    for p in range(n_rows):
        lam = lams[p]
        best[:] = -np.inf
        top_p = top[p]
        bk[:] = 0.0
        for i in range(s):
            v = abs(vecs[i, p])
            for k in range(a):
                bk[k] += v * abs_gl[i, k]
        b_out, b_mem = 0.0, 0.0
        for k in range(a):
            if is_member_col[k]:
                b_mem = max(b_mem, bk[k])
            elif bk[k] > b_out:
                b_out = bk[k]
        for t in range(b):
            l = order[t]
            w_norm = 0.0
            for i in range(s):
                w[i] = vecs[i, p] * gr_rows[i, l]
                w_norm += w[i] * w[i]
            w_norm = math.sqrt(w_norm) * (1.0 + _CS_SLACK)
            a_l = big[l]
            thr = best[tries - 1]
            full_row = thr == -np.inf or _may_reach(lam, min(a_l * b_out, w_norm * n_out),
                                                    _row_diag(d_right[l], dl_hi, dl_lo, sign), thr, sign)
            if not full_row and not _may_reach(lam, min(a_l * b_mem, w_norm * n_mem),
                                               _row_diag(d_right[l], dm_hi, dm_lo, sign), thr, sign):
                continue  # not even a member column can reach the list
            n_cols = a if full_row else member_cols.shape[0]
            for q in range(n_cols):
                k = q if full_row else member_cols[q]
                j = k + a * l
                if members[j]:
                    continue
                d = d_right[l] * d_left[k]
                thr = best[tries - 1]
                if thr > -np.inf and not _may_reach(lam, min(a_l * bk[k], w_norm * nk[k]), d, thr, sign):
                    continue
                c = 0.0
                for i in range(s):
                    c += w[i] * gl_t[k, i]
                _insert(best, top_p, _proxy(lam, c, d, sign), j)
    return top


top_kernel = lazy_kernel(top_pass)
kron_top_kernel = lazy_kernel(kron_top_pass)
