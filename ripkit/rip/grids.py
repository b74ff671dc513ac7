"""Start supports for the bracket's search on Ψ: the best s-subsets of small over-full rectangles.

A rectangle I×J of factor supports with |I|·|J| = s is attained by the group bound and is one
of the bracket's lower candidates ("rectangle").  The worst supports of Ψ are often *nearly*
rectangles: s cells of a slightly larger I×J (s < |I|·|J| ≤ 2s), e.g. two L-indices times
three R-indices less one cell.  For each such pair of the factors' own worst supports (I the
L-support of size p attaining Λ_L(p) or λ_L(p), J likewise for R), the best s cells of I×J are
found exactly by enumerating the C(pq, s) subsets of the pq×pq sub-Gram
G_R[J,J] ⊗ G_L[I,I] (``exact_rip``), and handed to the adversarial search as starts.
Every support found is explicit, so what the search makes of it is a valid lower bound; the
enumeration is skipped where C(pq, s) exceeds ``max_subsets``.
"""
from __future__ import annotations

import math

import numpy as np

from ripkit.rip.exhaustive import exact_rip

__all__ = ["grid_starts", "MAX_GRID_SUBSETS"]

#: Largest C(pq, s) enumerated per rectangle.
MAX_GRID_SUBSETS = 20_000


def grid_starts(g_left: np.ndarray, g_right: np.ndarray, found_l: dict, found_r: dict, s: int, *,
                max_subsets: int = MAX_GRID_SUBSETS, keep: int = 1, beat: dict | None = None) -> dict:
    """{'max': [supports], 'min': [supports]}: per side, the best s cells of each over-full rectangle.

    ``found_l[p]`` / ``found_r[q]``: dicts with ``support_max`` and ``support_min`` (factor supports
    of size p / q, e.g. ``factor_extremes`` results); a support j of Ψ is k + a·l.  At most ``keep``
    per side, the most extreme first, and only those whose λ_max (λ_min) is strictly beyond
    ``beat[side]`` when given: a start no better than one the search already has rarely leads
    further (on the ``llm`` preset none beats the rectangle start, and searching from them costs
    about 0.08 s of the 2 s bracket CLI).
    """
    a = g_left.shape[0]
    out = {"max": [], "min": []}
    for p in sorted(found_l):
        for q in sorted(found_r):
            if not s < p * q <= 2 * s or math.comb(p * q, s) > max_subsets:
                continue
            for side, key in (("max", "support_max"), ("min", "support_min")):
                rows, cols = list(found_l[p][key]), list(found_r[q][key])
                if len(rows) != p or len(cols) != q:
                    continue
                cells = np.array([k + a * l for l in cols for k in rows], dtype=np.int64)  # kron order
                sub = np.kron(g_right[np.ix_(cols, cols)], g_left[np.ix_(rows, rows)])
                ex = exact_rip(sub, s, max_supports=max_subsets)
                best, value = (ex.support_max, -ex.lam_max) if side == "max" else (ex.support_min, ex.lam_min)
                out[side].append((value, tuple(sorted(int(cells[i]) for i in best))))
    # the most extreme first, at most ``keep`` per side: each start costs a search on Ψ
    beat = beat or {}
    bar = {"max": -beat.get("max", -np.inf), "min": beat.get("min", np.inf)}  # sort keys: smaller is better
    return {side: [sup for key, sup in sorted(found)[:keep] if key < bar[side]] for side, found in out.items()}
