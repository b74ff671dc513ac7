"""Certified upper bounds on the RIP constant of Ψ = Rᵀ⊗L that need no search (used by ``rip_bracket``).

With G = ΨᵀΨ = G_R ⊗ G_L, λ⁺ = max_{|S|=s} λ_max(G_S) and λ⁻ = min_{|S|=s} λ_min(G_S);
Λ_X(t) = max_{|I|=t} λ_max(G_X[I,I]) and λ_X(t) = min_{|I|=t} λ_min(G_X[I,I]) for a
factor X ∈ {L, R}.

gershgorin  (:func:`gram_gershgorin`, :func:`kron_gershgorin`) every eigenvalue of G_S
            lies within Σ_{j∈S, j≠i}|G_ij| of some G_ii, and that sum is at most the
            row's s−1 largest off-diagonal |G_ij|.
group       (:func:`group_bound`) for a support S ⊂ I×J (I, J its L- and R-indices)
            let g_R = max_l |{k : (k,l) ∈ S}| (most elements sharing one R-index) and
            g_L = max_k |{l : (k,l) ∈ S}|.  Then

                λ_max(G_S) ≤ min(Λ_L(g_R)·Λ_R(|J|), Λ_L(|I|)·Λ_R(g_L)),
                λ_min(G_S) ≥ max(λ_L(g_R)·λ_R(|J|), λ_L(|I|)·λ_R(g_L)).

            *Proof* (first product; the second swaps the factors).  Split x on S by
            R-index: x = (x_l)_{l∈J}, x_l on I_l = {k : (k,l) ∈ S}, and let z_l be x_l
            padded with zeros to I.  Then xᵀG_S x = Σ_{l,l'} G_R(l,l')·z_lᵀ A z_l' =
            tr(B K) with A = G_L[I,I], B = G_R[J,J] and K_{ll'} = z_lᵀ A z_l' — a Gram
            matrix, so K ⪰ 0.  For symmetric B and K ⪰ 0, λ_min(B)·tr K ≤ tr(BK) ≤
            λ_max(B)·tr K, and tr K = Σ_l x_lᵀ G_L[I_l,I_l] x_l lies between
            λ_L(g_R)‖x‖² and Λ_L(g_R)‖x‖² (|I_l| ≤ g_R; Λ increases and λ decreases
            with the size, by interlacing).  With λ_max(B) ≤ Λ_R(|J|),
            λ_min(B) ≥ λ_R(|J|) ≥ 0 (G_R ⪰ 0) and ‖x‖ = 1 the bounds follow. ∎

            Over all supports of size s the shape (p, q, g_R, g_L) = (|I|, |J|, g_R, g_L)
            satisfies 1 ≤ g_R ≤ p ≤ min(s, a), 1 ≤ g_L ≤ q ≤ min(s, b),
            g_R + q − 1 ≤ s and q·g_R ≥ s (the q R-groups are non-empty and sum to s),
            and the same with the factors swapped; the bound is the max (min) of the
            per-support bound over every such shape.  A rectangle I×J (pq = s) is one
            shape, where the bound is attained, and every shape is at most the
            Kronecker-product bound Λ_L(s)·Λ_R(s), so ``group`` is never looser than
            ``kron-product`` with the same factor inputs.  Any upper bounds on Λ_X(t)
            and lower bounds on λ_X(t) may be used (exact ones where enumeration
            allows), which keeps the result an upper bound on λ⁺ (lower on λ⁻).
"""
from __future__ import annotations

import math

import numpy as np

from ripkit._numba import lazy_kernel
from ripkit.rip.adversarial import DenseGram, adversarial_search
from ripkit.rip.exhaustive import enumeration_feasible, exact_rip

#: Branch and bound (``ripkit.rip.branch_bound``) bounds at most this many prefixes per size.
MAX_PREFIXES = 20_000_000
#: Starts of the search that gives branch and bound its incumbent (cheap on a factor Gram).
INCUMBENT_RESTARTS = 50

__all__ = ["gram_gershgorin", "gershgorin_rows", "kron_gershgorin", "gershgorin_profile", "factor_profile", "group_bound"]


def gram_gershgorin(gram: np.ndarray, s: int) -> tuple[float, float]:
    """Row-wise Gershgorin bounds on every s×s principal sub-block: (λ_max ≤ hi, λ_min ≥ lo)."""
    d, top = gershgorin_rows(gram, s)
    return float(np.max(d + top)), float(np.min(d - top))


def gershgorin_rows(gram: np.ndarray, s: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row i: (G_ii, the sum of its s−1 largest off-diagonal |G_ij|); an eigenvalue of any s×s
    principal sub-block containing row i lies within that sum of G_ii."""
    off = _abs_off_diagonal(gram)
    t = min(s - 1, gram.shape[0] - 1)
    top = -np.partition(-off, t - 1, axis=1)[:, :t].sum(axis=1) if t > 0 else np.zeros(gram.shape[0])
    return np.diag(gram), top


def _abs_off_diagonal(gram: np.ndarray) -> np.ndarray:
    """|G| with a zero diagonal: |G − diag(G)| bit for bit (g_ij − 0 off it, g_ii − g_ii = +0 on it)
    without building the dense diagonal matrix (three d×d arrays: 20 ms at d = 1024)."""
    off = np.abs(gram)
    np.fill_diagonal(off, 0.0)
    return off


def kron_gershgorin(g_left: np.ndarray, g_right: np.ndarray, s: int, chunk_entries: int = 2**22):
    """``gram_gershgorin`` for G_R ⊗ G_L without forming it.

    Row (k, l) holds the products |G_L[k,k']|·|G_R[l,l']|.  Its s−1 largest
    off-diagonal entries lie among the products of the s largest of
    |G_L[k,:]| and of |G_R[l,:]| (any other product is dominated by s
    products in that grid), so each row costs O(s²) after sorting the factor rows.

    Only the rows that can attain the max (min) need that exact O(s²) sum: a numba
    pass computes every row's sum over the few grid cells (i, j) with
    (i+1)(j+1) ≤ s (a cell dominated by s others, one of which may be the row's own
    diagonal, cannot be among the s−1 largest), in its own summation order; rows
    within a rounding margin of the extreme then get the exact sum
    (``_row_sums_exact``), so the bound is the same number, bit for bit, as summing
    every row that way.
    """
    a, b = g_left.shape[0], g_right.shape[0]
    t = s - 1
    d_left, d_right = np.diag(g_left), np.diag(g_right)
    if t == 0 or a * b == 1:
        diag = np.kron(d_right, d_left)
        return float(diag.max()), float(diag.min())
    p, q = min(s, a), min(s, b)
    t = min(t, p * q - 1)
    abs_l, abs_r = np.abs(g_left), np.abs(g_right)
    fast = _top_sums_kernel(*_largest_abs(abs_l, p), *_largest_abs(abs_r, q), t)  # (a, b)
    diag = d_left[:, None] * d_right[None, :]
    up, dn = diag + fast, diag - fast
    # |fast − exact| ≤ 2t·2⁻⁵³·(row sum): a margin of 1e-12 relative keeps every candidate row.
    margin = 1e-12 * (1.0 + float(np.abs(fast).max()) + float(np.abs(diag).max()))
    rows_hi = np.argwhere(up >= up.max() - margin)
    rows_lo = np.argwhere(dn <= dn.min() + margin)
    hi = max(float(d_left[k] * d_right[l] + _row_sum_exact(abs_l, abs_r, k, l, p, q, t)) for k, l in rows_hi)
    lo = min(float(d_left[k] * d_right[l] - _row_sum_exact(abs_l, abs_r, k, l, p, q, t)) for k, l in rows_lo)
    return hi, lo


def _largest_abs(abs_gram: np.ndarray, p: int):
    """Column indices and values of the p largest entries of each row of |G| (values descending)."""
    idx = np.argpartition(-abs_gram, p - 1, axis=1)[:, :p] if p < abs_gram.shape[1] else \
        np.broadcast_to(np.arange(p), abs_gram.shape).copy()
    val = np.take_along_axis(abs_gram, idx, axis=1)
    order = np.argsort(-val, axis=1)
    return np.ascontiguousarray(np.take_along_axis(val, order, axis=1)), np.take_along_axis(idx, order, axis=1)


def _row_sum_exact(abs_l, abs_r, k, l, p, q, t) -> float:
    """Sum of the t largest off-diagonal products of row (k, l) exactly as ripkit always summed it:
    the factor rows' p (q) largest in ``argsort`` order, the p·q grid with the diagonal cell zeroed,
    ``np.partition`` of its negation, and a sum of the first t."""
    idx_l, idx_r = np.argsort(-abs_l[k])[:p], np.argsort(-abs_r[l])[:q]
    prod = abs_l[k, idx_l][None, None, :, None] * abs_r[l, idx_r][None, None, None, :]
    own = (idx_l[None, None, :, None] == k) & (idx_r[None, None, None, :] == l)
    prod = np.where(own, 0.0, prod).reshape(1, 1, -1)
    return float(-np.partition(-prod, t - 1, axis=2)[:, :, :t].sum(axis=2)[0, 0])


def _top_sums_pass(val_l, idx_l, val_r, idx_r, t):
    """Every row's sum of its t largest off-diagonal products, from the grid cells (i+1)(j+1) ≤ t+1.

    Both value lists are sorted descending, so once the list of t is full a product that
    cannot enter it ends its grid row (every later j is no larger), and a grid row whose
    first product cannot enter ends the scan (every later i is no larger).
    """
    a, p = val_l.shape
    b, q = val_r.shape
    out = np.empty((a, b))
    top = np.empty(t)  # the t largest so far, descending
    for k in range(a):
        for l in range(b):
            n = 0
            for i in range(p):
                if i + 1 > t + 1:
                    break
                if n == t and val_l[k, i] * val_r[l, 0] <= top[t - 1]:
                    break
                for j in range(q):
                    if (i + 1) * (j + 1) > t + 1:
                        break
                    if idx_l[k, i] == k and idx_r[l, j] == l:
                        continue
                    v = val_l[k, i] * val_r[l, j]
                    if n == t and v <= top[t - 1]:
                        break
                    pos = n if n < t else t - 1
                    while pos > 0 and top[pos - 1] < v:
                        top[pos] = top[pos - 1]
                        pos -= 1
                    top[pos] = v
                    n = min(n + 1, t)
            acc = 0.0
            for i in range(n):
                acc += top[i]
            out[k, l] = acc
    return out


_top_sums_kernel = lazy_kernel(_top_sums_pass)


def gershgorin_profile(gram: np.ndarray, s: int) -> tuple[np.ndarray, np.ndarray]:
    """``gram_gershgorin(gram, t)`` for every t = 1..s at once (index t; index 0 unused), O(d² log d)."""
    d = gram.shape[0]
    off = _abs_off_diagonal(gram)
    k = max(0, min(s, d) - 1)  # the s−1 largest off-diagonal entries of each row, largest first
    top = -np.partition(-off, k - 1, axis=1)[:, :k] if 0 < k < d else off[:, :0]
    top = -np.sort(-top, axis=1)
    sums = np.concatenate([np.zeros((d, 1)), np.cumsum(top, axis=1)], axis=1)  # (d, t): sum of t−1 largest
    diag = np.diag(gram)[:, None]
    hi, lo = np.full(s + 1, np.nan), np.full(s + 1, np.nan)
    hi[1:sums.shape[1] + 1] = np.max(diag + sums, axis=0)
    lo[1:sums.shape[1] + 1] = np.min(diag - sums, axis=0)
    return hi, lo


def factor_profile(gram: np.ndarray, s: int, known: dict, eigenvalues: np.ndarray, *, max_supports: int,
                   device=None, memo=None, extra_supports: int = 0,
                   pruned_supports: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Upper bounds on Λ(t) and lower bounds on λ(t) ≥ 0 of one factor Gram for t = 1..min(s, d).

    ``known[t]`` (``factor_extremes`` results) is used where given; other sizes are
    enumerated exactly when C(d, t) ≤ ``max_supports``, else bounded by the factor's
    spectrum and row-wise Gershgorin.  Λ increases and λ decreases with t (interlacing),
    so a bound at a larger size also holds at every smaller one: both arrays are
    tightened by suffix min / max.  Index 0 is unused.  ``memo(key, compute)`` may store
    the enumerations and the Gershgorin profile (they depend on the Gram matrix alone).
    ``extra_supports``: sizes over ``max_supports`` are also enumerated, cheapest first, while
    their supports, weighted (t/5)² for t > 5, add up to at most this many (the coupling bound's budget);
    ``pruned_supports``: for each size still left, Λ(t) alone is computed exactly by branch and
    bound (``ripkit.rip.branch_bound``) when the supports it cannot rule out, weighted the same
    way, are at most this many.
    """
    memo = memo or (lambda key, compute: compute())
    d = gram.shape[0]
    top = min(s, d)
    g_hi, g_lo = memo(("gershgorin_profile", top), lambda: gershgorin_profile(gram, top))
    hi, lo = np.full(top + 1, np.nan), np.full(top + 1, np.nan)
    extra, spent = set(), 0.0
    # a support of size t costs about t² (its certificate): budgeted as (t/5)² supports of size 5
    rest = sorted((t for t in range(2, top + 1) if t not in known and not enumeration_feasible(d, t, max_supports)),
                  key=lambda t: math.comb(d, t) * max(1.0, (t / 5) ** 2))
    for t in rest:
        cost = math.comb(d, t) * max(1.0, (t / 5) ** 2)
        if spent + cost > extra_supports:
            break
        spent += cost
        extra.add(t)
    # sizes still out of reach: Λ(t) alone by branch and bound, each within its own budget
    pruned = {}
    for t in sorted(set(rest) - extra):
        weight = max(1.0, (t / 5) ** 2)
        if t >= 3 and pruned_supports >= weight:
            res = memo(("branch_bound_max", t, pruned_supports),
                       lambda: _branch_bound(gram, t, pruned_supports / weight, memo))
            if res is not None:
                pruned[t] = res
    for t in range(1, top + 1):
        if t in extra:
            ex = memo(("exact_rip", t), lambda: exact_rip(gram, t, max_supports=math.comb(d, t), device=device))
            hi[t], lo[t] = ex.lam_max, ex.lam_min
        elif t in known:
            hi[t], lo[t] = known[t]["lam_max_hi"], known[t]["lam_min_lo"]
        elif t == 1:
            hi[t], lo[t] = float(np.max(np.diag(gram))), float(np.min(np.diag(gram)))
        elif enumeration_feasible(d, t, max_supports):
            ex = memo(("exact_rip", t), lambda: exact_rip(gram, t, max_supports=max_supports, device=device))
            hi[t], lo[t] = ex.lam_max, ex.lam_min
        else:
            hi[t], lo[t] = min(eigenvalues[-1], g_hi[t]), max(eigenvalues[0], g_lo[t])
            if t in pruned:
                hi[t] = pruned[t].lam_max
    lo = np.maximum(lo, 0.0)  # a Gram matrix is PSD
    hi[1:] = np.minimum.accumulate(hi[1:][::-1])[::-1]
    lo[1:] = np.maximum.accumulate(lo[1:][::-1])[::-1]
    return hi, lo


def _branch_bound(gram, t: int, max_supports: float, memo):
    """``branch_bound_max`` with the adversarial search's best support as the incumbent (seed 0: the
    result, when not None, is exact whatever the incumbent; a better one only prunes more); None
    without a search when it would bound more than ``MAX_PREFIXES`` prefixes."""
    # imported here: branch_bound sorts the columns by this module's Gershgorin rows
    from ripkit.rip.branch_bound import branch_bound_max, prefix_count

    if prefix_count(gram.shape[0], t) > MAX_PREFIXES:
        return None
    dense, paths = memo(("search",), lambda: (DenseGram(gram), {}))
    incumbent = adversarial_search(dense, t, "max", restarts=INCUMBENT_RESTARTS, seed=0, paths=paths)
    return branch_bound_max(gram, t, incumbent.eigenvalue, max_supports=max_supports)


def group_bound(hi_left, lo_left, hi_right, lo_right, s: int) -> tuple[float, float]:
    """(upper bound on λ⁺, lower bound on λ⁻) by the group bound (module docstring).

    ``hi_X[t]`` ≥ Λ_X(t) and ``lo_X[t]`` ≤ λ_X(t), 0 ≤ λ_X, for t = 1..min(s, size of X)
    (index 0 unused), e.g. from :func:`factor_profile`.
    """
    a, b = len(hi_left) - 1, len(hi_right) - 1
    up, dn = -np.inf, np.inf
    for p in range(1, min(s, a) + 1):
        for q in range(1, min(s, b) + 1):
            for g_r in range(1, p + 1):
                if g_r + q - 1 > s or q * g_r < s:
                    continue
                for g_l in range(1, q + 1):
                    if g_l + p - 1 > s or p * g_l < s:
                        continue
                    up = max(up, min(hi_left[g_r] * hi_right[q], hi_left[p] * hi_right[g_l]))
                    dn = min(dn, max(lo_left[g_r] * lo_right[q], lo_left[p] * lo_right[g_l]))
    return float(up), float(dn)
