"""The numba kernels of ``ripkit._entries`` (see its docstring for the method and the error bound).

``classify`` counts one float32 tile of ΔW against two pairs of per-row float32 bounds (certainly
below / possibly below) and a running maximum; entries it cannot decide are recomputed in float64.
Separate from ``_entries`` so that importing that module (and ``ripkit.spectra``) does not import numba.
"""
from __future__ import annotations

import numpy as np

from ripkit._entries import _TINY, _U
from ripkit._numba import compile_kernel

__all__ = ["classify"]


def _dot64(u, v, i, j):
    acc = 0.0
    for k in range(u.shape[1]):
        acc += u[i, k] * v[k, j]
    return acc


def _candidate_bound(best_scaled, err):
    """A float32 ≤ best − E (see ``_down32``): entries above it might beat the running maximum."""
    v = best_scaled - err
    if v > _TINY:
        return np.float32(v * (1 - 2 * _U))
    if v >= 0:
        return np.float32(0.0)
    if v >= -_TINY:
        return np.float32(-_TINY)
    return np.float32(v * (1 + 2 * _U))


def _classify(tile, i0, j0, lo, hi, err, u64, v64, thr, scale, best):
    """Add to ``counts`` the entries of ``tile`` (rows i0.., columns j0..) below thr[0] and thr[1];
    ``best[0]`` is the running float64 maximum of |ΔW| (unscaled).  Returns the two counts."""
    one, zero = np.float32(1.0), np.float32(0.0)
    h, w = tile.shape
    n1, n2 = 0, 0
    for ii in range(h):
        i = i0 + ii
        l1, h1, l2, h2 = lo[i, 0], hi[i, 0], lo[i, 1], hi[i, 1]
        m = _candidate_bound(best[0] * scale, err[i])
        # float32 sums of 0/1 are exact below 2**24 entries per row (w <= TILE_COLS)
        c1, b1, c2, b2, g = zero, zero, zero, zero, zero
        for j in range(w):
            x = abs(tile[ii, j])
            c1 += one if x < l1 else zero
            b1 += one if x < h1 else zero
            c2 += one if x < l2 else zero
            b2 += one if x < h2 else zero
            g += one if x > m else zero
        n1 += int(c1)
        n2 += int(c2)
        if b1 == c1 and b2 == c2 and g == zero:
            continue
        for j in range(w):  # rare: entries within the error bound of a threshold, or of the maximum
            x = abs(tile[ii, j])
            amb1 = l1 <= x and x < h1
            amb2 = l2 <= x and x < h2
            if amb1 or amb2 or x > m:
                e = abs(_dot64(u64, v64, i, j0 + j))
                if amb1 and e < thr[0]:
                    n1 += 1
                if amb2 and e < thr[1]:
                    n2 += 1
                if e > best[0]:
                    best[0] = e
                    m = _candidate_bound(best[0] * scale, err[i])
    return n1, n2


# the float64 recomputation keeps strict IEEE order (no fastmath); only the vectorised counting loop
# is fastmath, where 0/1 sums and comparisons are exact in any order
_dot64 = compile_kernel(_dot64, nogil=True)
_candidate_bound = compile_kernel(_candidate_bound, nogil=True)
classify = compile_kernel(_classify, nogil=True, fastmath={"nnan", "ninf", "nsz", "reassoc"})
