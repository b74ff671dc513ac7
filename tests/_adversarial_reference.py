"""ripkit.rip.adversarial as it was before issue 16, kept verbatim as the reference for the identity tests.

The new search must visit the same supports and return the same results (tests/test_adversarial.py).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ripkit.projections import as_generator

__all__ = ["DenseGram", "KronGram", "SearchResult", "greedy_support", "swap_search", "adversarial_search"]


class DenseGram:
    """Rows of an explicit (small) Gram matrix, e.g. a factor's G_L = LᵀL."""

    def __init__(self, gram: np.ndarray):
        self.gram = gram
        self.size = gram.shape[0]

    def diag(self) -> np.ndarray:
        return np.diag(self.gram).copy()

    def rows(self, idx) -> np.ndarray:
        return self.gram[np.asarray(idx, dtype=np.int64)]


class KronGram:
    """Rows of ΨᵀΨ = G_R ⊗ G_L (column-major index j = k + a·l) from the factors only.

    Row (k, l) is kron(G_R[l, :], G_L[k, :]): O(ab) memory per row, never (ab)².
    """

    def __init__(self, g_left: np.ndarray, g_right: np.ndarray):
        self.g_left, self.g_right = g_left, g_right
        self.a, self.b = g_left.shape[0], g_right.shape[0]
        self.size = self.a * self.b

    def diag(self) -> np.ndarray:
        return np.kron(np.diag(self.g_right), np.diag(self.g_left))

    def rows(self, idx) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        k, l = idx % self.a, idx // self.a
        return (self.g_right[l][:, :, None] * self.g_left[k][:, None, :]).reshape(len(idx), self.size)


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


def _proxy(lam: float, coupling: np.ndarray, diag: np.ndarray, side: str) -> np.ndarray:
    """Extreme eigenvalue of [[λ, g], [g, d]] for every candidate, signed so larger is better."""
    mid = 0.5 * (lam + diag)
    rad = np.hypot(0.5 * (lam - diag), coupling)
    return mid + rad if side == "max" else -(mid - rad)


def _better(new: float, old: float, side: str) -> bool:
    return new > old + 1e-13 if side == "max" else new < old - 1e-13


def greedy_support(gram: DenseGram | KronGram, s: int, side: str, start) -> list[int]:
    """Grow ``start`` to size s, adding the candidate with the best 2×2 proxy score each step."""
    support = [int(j) for j in dict.fromkeys(start)]
    diag = gram.diag()
    rows = gram.rows(support)
    while len(support) < s:
        lam, u = _extreme(rows[:, support], side)
        score = _proxy(lam, u @ rows, diag, side)
        score[support] = -np.inf
        j = int(np.argmax(score))
        support.append(j)
        rows = np.vstack([rows, gram.rows([j])])
    return support


def swap_search(gram, support, side: str, *, deadline: float = np.inf, max_rounds: int = 50,
                tries: int = 3) -> tuple[list[int], float]:
    """1-swap local search from ``support``; returns (support, exact extreme eigenvalue).

    Only s×s pieces are copied per trial swap: the (s, ab) block of Gram rows is
    rebuilt once per *accepted* swap.
    """
    support = list(support)
    diag = gram.diag()
    rows = gram.rows(support)  # (s, N): G[support, :]
    value, _ = _extreme(rows[:, support], side)
    sign = 1.0 if side == "max" else -1.0
    for _ in range(max_rounds):
        improved = False
        for p in range(len(support)):
            if time.perf_counter() > deadline:
                return support, float(value)
            keep = [i for i in range(len(support)) if i != p]
            rest = [support[i] for i in keep]
            if rest:
                lam, u = _extreme(rows[np.ix_(keep, rest)], side)
                u_full = np.zeros(len(support))
                u_full[keep] = u
                score = _proxy(lam, u_full @ rows, diag, side)
            else:
                score = sign * diag
            score[support] = -np.inf
            top = np.argpartition(score, -tries)[-tries:] if score.size > tries else np.arange(score.size)
            for j in top[np.argsort(score[top])[::-1]]:
                if not np.isfinite(score[j]):  # a current member: fewer candidates than `tries`
                    break
                cand = rest + [int(j)]
                sub = np.empty((len(cand), len(cand)))
                sub[:-1, :] = rows[np.ix_(keep, cand)]
                sub[-1, :] = gram.rows([j])[0, cand]
                new, _ = _extreme(sub, side)
                if _better(new, value, side):
                    support, value, improved = cand, new, True
                    rows = np.vstack([rows[keep], gram.rows([j])])
                    break
            if improved:
                break
        if not improved:
            break
    return support, float(value)


def adversarial_search(gram, s: int, side: str, *, restarts: int = 2, seed=0, extra_starts=(),
                       budget_seconds: float | None = None) -> SearchResult:
    """Greedy growth + swap search from several starts; the best explicit support found.

    Starts: the ``restarts`` columns with the largest (side 'max') or smallest
    (side 'min') diagonal entries, then every support in ``extra_starts``
    (e.g. the best random or rectangle support), then ``restarts`` seeded
    random single columns.  ``budget_seconds`` caps the wall time; the result
    says whether it cut the search and how many starts completed, so a run
    can be reproduced exactly with that many starts.
    """
    if side not in ("max", "min"):
        raise ValueError(f"side={side!r} must be 'max' or 'min'")
    s = min(s, gram.size)
    deadline = np.inf if budget_seconds is None else time.perf_counter() + budget_seconds
    diag = gram.diag()
    order = np.argsort(diag)[::-1] if side == "max" else np.argsort(diag)
    rng = as_generator(seed)
    starts = [[int(j)] for j in order[:restarts]] + [list(st)[:s] for st in extra_starts]
    starts += [[int(j)] for j in rng.choice(gram.size, size=min(restarts, gram.size), replace=False)]
    best_val, best_sup, done, cut = None, None, 0, False
    for start in starts:
        if time.perf_counter() > deadline and best_sup is not None:
            cut = True
            break
        sup = greedy_support(gram, s, side, start)
        sup, val = swap_search(gram, sup, side, deadline=deadline)
        done += 1
        if best_val is None or _better(val, best_val, side):
            best_val, best_sup = val, sup
    return SearchResult(side, float(best_val), tuple(sorted(best_sup)), done, cut)
