"""Adversarial support search: explicit supports with large λ_max or small λ_min.

Every support returned is explicit, so the δ it attains is a certified *lower*
bound on δ_s (CoSA eq. 18 is a max over all supports).  The search never
forms the Gram matrix: it asks a :class:`DenseGram` or :class:`KronGram` for
principal sub-blocks and for *couplings* uᵀG[S, :] of a few vectors u.

Greedy growth (one side at a time)
    With S the current support, (λ, u) the extreme eigenpair of G_S and j a
    candidate, the 2×2 compression of G_{S∪j} onto span(u, e_j) is
    [[λ, uᵀG[S,j]], [uᵀG[S,j], G_jj]].  Its extreme eigenvalue is a Rayleigh
    quotient of G_{S∪j}, so it is a one-sided bound on the new extreme
    eigenvalue (≤ λ_max, ≥ λ_min) and a cheap score: one pass over the ab
    candidates costs O(|S|·ab), not an eigensolve per candidate.
Swap local search
    Drop one member, rescore every candidate with the same 2×2 proxy, and
    accept the best few only after an exact (s×s) eigensolve confirms the gain.
    A round scores *all* s drop positions at once: the s drop-one eigenvectors
    (one batched eigh) form the columns of an s×s matrix V, the couplings of every
    (position, candidate) pair are VᵀG[S, :], and a numba pass turns them into
    proxy scores and keeps each position's best few candidates, without an s×ab
    score array.  The positions are then tried in order exactly as one at a time
    (their exact eigensolves batched), so the search visits the same supports.

For ΨᵀΨ = G_R ⊗ G_L no Gram row is formed: the coupling of u with (k', l') is
Σ_i u_i G_L[k_i, k'] G_R[l_i, l'], bounded by max_i|G_R[l_i, l']| · Σ_i |u_i||G_L[k_i, k']|
and by Cauchy–Schwarz, so whole rows l' of candidates are skipped when neither bound can
beat the current best few (``ripkit.rip._search_kernels``); at the LLM size well under
1 % of rows are scored.

Searches remember where they went (``paths``): from a state an earlier start passed
through, a search ends where that one ended, so it stops there with the same result.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ripkit.projections import as_generator

__all__ = ["DenseGram", "KronGram", "SearchResult", "greedy_support", "swap_search", "adversarial_search"]


def _kernels():
    """``ripkit.rip._search_kernels``, imported on first use: it imports numba (``ripkit._numba``)."""
    from ripkit.rip import _search_kernels

    return _search_kernels


class _Diagonal:
    """The diagonal of a Gram matrix and its ``argsort``, each computed once per instance
    (every start and every round of a search asks for them)."""

    def _diagonal(self) -> np.ndarray:
        raise NotImplementedError

    def diag(self) -> np.ndarray:
        """The diagonal, read-only (computed once)."""
        cached = self.__dict__.get("_diag_values")
        if cached is None:
            cached = self.__dict__["_diag_values"] = self._diagonal()
            cached.setflags(write=False)
        return cached

    def diag_order(self) -> np.ndarray:
        """``np.argsort(self.diag())`` (ascending), computed once."""
        cached = self.__dict__.get("_diag_order")
        if cached is None:
            cached = self.__dict__["_diag_order"] = np.argsort(self.diag())
        return cached


class DenseGram(_Diagonal):
    """An explicit (small) Gram matrix, e.g. a factor's G_L = LᵀL."""

    def __init__(self, gram: np.ndarray):
        self.gram = gram
        self.size = gram.shape[0]

    def _diagonal(self) -> np.ndarray:
        return np.diag(self.gram).copy()

    def rows(self, idx) -> np.ndarray:
        return self.gram[np.asarray(idx, dtype=np.int64)]

    def block(self, rows, cols) -> np.ndarray:
        """G[rows, cols]."""
        return self.gram[np.ix_(np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))]

    def blocks(self, supports: np.ndarray) -> np.ndarray:
        """G[S_t, S_t] for every row S_t of ``supports`` (T, s) -> (T, s, s)."""
        return self.gram[supports[:, :, None], supports[:, None, :]]

    def couplings(self, support, vecs: np.ndarray) -> np.ndarray:
        """C[p, j] = Σ_i vecs[i, p]·G[support_i, j], shape (P, size), for vecs (|S|, P)."""
        return vecs.T @ self.rows(support)

    def top_candidates(self, support, lams, vecs, side: str, tries: int) -> np.ndarray:
        """Per column p of ``vecs``: the ``tries`` non-members with the best 2×2 proxy, best first (−1 pads)."""
        return _kernels().top_kernel(np.ascontiguousarray(lams, dtype=np.float64), self.couplings(support, vecs),
                                     self.diag(), _members(self.size, support), _sign(side), tries, False)


class KronGram(_Diagonal):
    """ΨᵀΨ = G_R ⊗ G_L (column-major index j = k + a·l) from the factors only.

    Row (k, l) is kron(G_R[l, :], G_L[k, :]): O(ab) memory per row, never (ab)².
    """

    def __init__(self, g_left: np.ndarray, g_right: np.ndarray):
        self.g_left, self.g_right = g_left, g_right
        self.a, self.b = g_left.shape[0], g_right.shape[0]
        self.size = self.a * self.b

    def _diagonal(self) -> np.ndarray:
        return np.kron(np.diag(self.g_right), np.diag(self.g_left))

    def rows(self, idx) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        k, l = idx % self.a, idx // self.a
        return (self.g_right[l][:, :, None] * self.g_left[k][:, None, :]).reshape(len(idx), self.size)

    def block(self, rows, cols) -> np.ndarray:
        """G[rows, cols] = G_R[l_r, l_c]·G_L[k_r, k_c] (the same products, bit for bit, as ``rows``)."""
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        return (self.g_right[np.ix_(rows // self.a, cols // self.a)]
                * self.g_left[np.ix_(rows % self.a, cols % self.a)])

    def blocks(self, supports: np.ndarray) -> np.ndarray:
        """G[S_t, S_t] for every row S_t of ``supports`` (T, s) -> (T, s, s), the same products as ``block``."""
        k, l = supports % self.a, supports // self.a
        return self.g_right[l[:, :, None], l[:, None, :]] * self.g_left[k[:, :, None], k[:, None, :]]

    def couplings(self, support, vecs: np.ndarray) -> np.ndarray:
        """C[p, k' + a·l'] = Σ_i vecs[i, p]·G_L[k_i, k']·G_R[l_i, l'], shape (P, ab), one batched GEMM."""
        support = np.asarray(support, dtype=np.int64)
        k, l = support % self.a, support // self.a
        w = vecs.T[:, :, None] * self.g_right[l][None, :, :]  # (P, s, b): diag(u_p)·G_R[l_S, :]
        return np.matmul(w.transpose(0, 2, 1), self.g_left[k]).reshape(vecs.shape[1], self.size)

    def top_candidates(self, support, lams, vecs, side: str, tries: int) -> np.ndarray:
        """``DenseGram.top_candidates`` from the factors, pruned exactly (``ripkit.rip._search_kernels``)."""
        support = np.asarray(support, dtype=np.int64)
        k, l = support % self.a, support // self.a
        return _kernels().kron_top_kernel(
            np.ascontiguousarray(lams, dtype=np.float64), np.ascontiguousarray(vecs, dtype=np.float64),
            np.ascontiguousarray(self.g_left[k]), np.ascontiguousarray(self.g_right[l]),
            np.ascontiguousarray(np.diag(self.g_left)), np.ascontiguousarray(np.diag(self.g_right)),
            _members(self.size, support), np.unique(k), _sign(side), tries)


@dataclass(frozen=True)
class SearchResult:
    """An explicit support and the extreme eigenvalue of its Gram sub-block (λ_max or λ_min, unscaled)."""

    side: str  # "max" or "min"
    eigenvalue: float
    support: tuple[int, ...]
    restarts: int
    budget_exhausted: bool


def _extreme(sub: np.ndarray, side: str):
    w, v = np.linalg.eigh(sub)
    return (w[-1], v[:, -1]) if side == "max" else (w[0], v[:, 0])




def _members(size, support) -> np.ndarray:
    members = np.zeros(size, np.bool_)
    members[np.asarray(support, dtype=np.int64)] = True
    return members


def _sign(side: str) -> float:
    return 1.0 if side == "max" else -1.0


def _better(new: float, old: float, side: str) -> bool:
    return new > old + 1e-13 if side == "max" else new < old - 1e-13


def greedy_support(gram: DenseGram | KronGram, s: int, side: str, start, *, paths=None) -> list[int]:
    """Grow ``start`` to size s, adding the candidate with the best 2×2 proxy score each step.

    ``paths`` (a dict, see :func:`adversarial_search`) remembers where every partial
    support grew to: each step is a function of the ordered partial support alone, so
    a start that reaches a partial support seen before ends where that one ended.
    """
    support = [int(j) for j in dict.fromkeys(start)]
    grown = []  # the partial supports of this call, for ``paths``
    while len(support) < s:
        if paths is not None:
            end = paths.get(("greedy", side, s, tuple(support)))
            if end is not None:
                support = list(end)
                break
            grown.append(("greedy", side, s, tuple(support)))
        lam, u = _extreme(gram.block(support, support), side)
        support.append(int(gram.top_candidates(support, [lam], u[:, None], side, 1)[0, 0]))
    for key in grown:
        paths[key] = tuple(support)
    return support


def _extreme_values(subs: np.ndarray, side: str) -> np.ndarray:
    """The extreme eigenvalue of each block of a stack, without eigenvectors (to decide swaps only).

    It may differ from ``_extreme``'s in the last bits; decisions use a 1e-13 margin and the
    value reported for the final support is recomputed with ``_extreme``.
    """
    w = np.linalg.eigvalsh(subs)
    return w[:, -1] if side == "max" else w[:, 0]


def _position_blocks(s: int):
    """Drop positions 0..s−1 in blocks of 2, 4, 8, …: most rounds accept a swap at an early position."""
    start, size = 0, 2
    while start < s:
        yield range(start, min(s, start + size))
        start, size = start + size, 2 * size


def _drop_one_eigenpairs(sub: np.ndarray, side: str):
    """For every position p: the extreme eigenpair of sub without row/column p, the vector
    padded with a 0 at p.  Returns (λ (s,), V (s, s)) with V[:, p] the padded vector."""
    s = sub.shape[0]
    keep = np.array([[i for i in range(s) if i != p] for p in range(s)], dtype=np.int64)  # (s, s-1)
    minors = sub[keep[:, :, None], keep[:, None, :]]                                      # (s, s-1, s-1)
    w, v = np.linalg.eigh(minors)
    col = -1 if side == "max" else 0
    vecs = np.zeros((s, s))
    for p in range(s):
        vecs[keep[p], p] = v[p, :, col]
    return w[:, col], vecs


def _result(gram, support, side):
    """(support, its extreme eigenvalue by ``_extreme``): the reported value always has eigh's bits."""
    return support, float(_extreme(gram.block(support, support), side)[0])


def swap_search(gram, support, side: str, *, deadline: float = np.inf, max_rounds: int = 50,
                tries: int = 3, paths=None) -> tuple[list[int], float]:
    """1-swap local search from ``support``; returns (support, exact extreme eigenvalue).

    Each round scores every (drop position, candidate) pair at once, then tries the
    positions in order, each position's ``tries`` best candidates in score order,
    and accepts the first exact (s×s) eigensolve that improves the value.

    ``paths`` (a dict, see :func:`adversarial_search`) remembers every converged
    search.  A round is a function of its state alone — the ordered support and the
    value it is compared against (``_extreme``'s for the start, ``_extreme_values``'
    after a swap: the bits may differ) — so a search that reaches a state an earlier
    search passed through, with at least as many rounds left as that one still
    needed, ends where it ended: the result is the same as searching on.
    """
    support = list(support)
    value, _ = _extreme(gram.block(support, support), side)
    s = len(support)
    states = []  # (state key, round) of this call, for ``paths``
    for rnd in range(max_rounds):
        if time.perf_counter() > deadline:
            return _result(gram, support, side)
        if paths is not None:
            key = ("swap", side, tries, tuple(support), float(value))
            end = paths.get(key)
            if end is not None and end[2] <= max_rounds - rnd:
                _remember(paths, states, end, rnd)
                return list(end[0]), end[1]
            states.append((key, rnd))
        if s > 1:
            lams, vecs = _drop_one_eigenpairs(gram.block(support, support), side)
            top = gram.top_candidates(support, lams, vecs, side, tries)
        else:  # dropping the only member leaves nothing to couple with: the score is the diagonal
            top = _kernels().top_kernel(np.zeros(1), np.zeros((1, gram.size)), gram.diag(),
                                        _members(gram.size, support), _sign(side), tries, True)
        improved = False
        for block in _position_blocks(s):
            if time.perf_counter() > deadline:
                return _result(gram, support, side)
            # The exact eigenvalue of every (position, candidate) swap in this block, one batched
            # eigh (the same LAPACK call per matrix as one at a time), then scanned in order.
            trials = [(support[:p] + support[p + 1:] + [int(j)]) for p in block for j in top[p] if j >= 0]
            if not trials:
                continue
            news = _extreme_values(gram.blocks(np.array(trials, dtype=np.int64)), side)
            for cand, new in zip(trials, news):
                if _better(new, value, side):
                    support, value, improved = cand, new, True
                    break
            if improved:
                break
        if not improved:
            sup, val = _result(gram, support, side)
            if paths is not None:  # converged: every state of this call ends here, rnd + 1 rounds in
                _remember(paths, states, (tuple(sup), val, 0), rnd + 1)
            return sup, val
    return _result(gram, support, side)


def _remember(paths: dict, states, end, rounds: int) -> None:
    """Record that each (state, round) in ``states`` ends at ``end`` = (support, value, rounds
    still needed from the state ``rounds`` rounds in): a state at round r needs rounds − r + end[2]."""
    for key, rnd in states:
        paths[key] = (end[0], end[1], rounds - rnd + end[2])


def adversarial_search(gram, s: int, side: str, *, restarts: int = 2, seed=0, extra_starts=(),
                       budget_seconds: float | None = None, paths: dict | None = None) -> SearchResult:
    """Greedy growth + swap search from several starts; the best explicit support found.

    Starts: the ``restarts`` columns with the largest (side 'max') or smallest
    (side 'min') diagonal entries, then every support in ``extra_starts``
    (e.g. the best random or rectangle support), then ``restarts`` seeded
    random single columns.  ``budget_seconds`` caps the wall time; the result
    says whether it cut the search and how many starts completed, so a run
    can be reproduced exactly with that many starts.

    ``paths``: a dict in which the greedy growth and the swap search remember the
    states they passed through and where each ended (a fresh one per call if None).
    Starts often merge into an earlier start's path; from there the search is
    skipped, with the same result.  Pass the same dict to searches of the *same*
    Gram matrix (e.g. a factor's, at several sparsity levels) to share them there.
    """
    if side not in ("max", "min"):
        raise ValueError(f"side={side!r} must be 'max' or 'min'")
    s = min(s, gram.size)
    deadline = np.inf if budget_seconds is None else time.perf_counter() + budget_seconds
    paths = {} if paths is None else paths
    order = gram.diag_order()[::-1] if side == "max" else gram.diag_order()
    rng = as_generator(seed)
    starts = [[int(j)] for j in order[:restarts]] + [list(st)[:s] for st in extra_starts]
    starts += [[int(j)] for j in rng.choice(gram.size, size=min(restarts, gram.size), replace=False)]
    best_val, best_sup, done, cut = None, None, 0, False
    for start in starts:
        if time.perf_counter() > deadline and best_sup is not None:
            cut = True
            break
        sup = greedy_support(gram, s, side, start, paths=paths)
        sup, val = swap_search(gram, sup, side, deadline=deadline, paths=paths)
        done += 1
        if best_val is None or _better(val, best_val, side):
            best_val, best_sup = val, sup
    return SearchResult(side, float(best_val), tuple(sorted(best_sup)), done, cut)
