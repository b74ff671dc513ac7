"""Exact entry statistics of ΔW = U·V without forming it: how many |ΔW_ij| lie below thresholds, and max |ΔW_ij|.

These are O(m·n) per layer however they are computed (CoSA appendix B.3 counts "weights below
10⁻⁴" over all entries); for a Llama-3.1-8B-shaped LoRA r = 16 that is 7·10⁹ entries and
2·10¹¹ flops.  Float64 GEMM with an inner dimension of 16 runs at a quarter of the machine's
single-precision speed (measured here: 6–8 vs 22 GFLOP/s per core), so the product is computed
in **certified single precision** and every decision is exact:

1. U and V are scaled by powers of two (exact) so that max|Ũ|, max|Ṽ| ≤ 1, and rounded to float32.
2. Tiles of rows × columns of x̂ = fl₃₂(Ũ₃₂·Ṽ₃₂) come from BLAS ``sgemm``, in any summation order,
   with or without FMA — the bound below holds for all of them.
3. |x̂_ij − x̃_ij| ≤ E_i = c·‖Ũ₃₂,i‖₂·max_j‖Ṽ₃₂,:j‖₂ + d with c = (k + 4)·2⁻²⁴: to first order the
   k-term dot product contributes k·2⁻²⁴ (Higham, *Accuracy and Stability of Numerical Algorithms*,
   2nd ed., eq. 3.5: |fl(xᵀy) − xᵀy| ≤ γ_k·|x|ᵀ|y|; Cauchy–Schwarz bounds |x|ᵀ|y| by the norms) and
   the two roundings to float32 2·2⁻²⁴; the spare 2·2⁻²⁴ covers second-order terms, norms taken of
   the rounded values, and the float64 rounding of the recomputed value below (k·2⁻⁵³), so every
   certain decision is also the one that float64 value gives.  d = (k + 1)·2⁻¹²³ covers underflow,
   gradual or flushed to zero; E_i = 0 for a zero row, whose products are exactly zero.
4. An entry with |x̂| < t̃ − E_i is certainly below t, one with |x̂| ≥ t̃ + E_i certainly not (both
   bounds rounded outwards to float32); the rare entries in between are recomputed in float64 and
   decided on that value, exactly as a dense float64 ΔW would decide them.
5. For the maximum, every entry that could beat the running maximum (|x̂| > best − E_i) is
   recomputed in float64; max |ΔW_ij| is the largest float64 value.

Factors so large or small that scaling them leaves float64's range (exponents beyond ±900) are
handled in plain float64 row blocks instead.

The float64 value of an entry is its dot product summed in order of k (no FMA), so results do not
depend on BLAS, tiling or thread count; a dense float64 ΔW formed another way can differ only on
entries that lie within its own rounding error (~10⁻¹⁶ relative) of a threshold.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

__all__ = ["EntryStats", "entry_stats", "dense_entry_stats", "single_threaded_blas"]

TILE_ROWS, TILE_COLS = 256, 512        # measured best of 8 shapes here; a 512 KiB float32 tile stays in L2
_U = 2.0 ** -24                        # unit roundoff of float32
_TINY = 2.0 ** -100                    # below this, float32 bounds are rounded to 0 (conservatively)


@dataclass(frozen=True)
class EntryStats:
    """Counts of |ΔW_ij| < each threshold (strict), out of ``n_entries``, and max |ΔW_ij|."""

    n_entries: int
    thresholds: tuple[float, ...]
    below: tuple[int, ...]
    max_abs: float

    def fractions(self) -> tuple[float, ...]:
        return tuple(b / self.n_entries for b in self.below)


# ---- conservative float32 rounding (numpy, vectorised over rows) ------------------------------
def _down32(v: np.ndarray) -> np.ndarray:
    """float32 values ≤ v (v float64): v·(1 − 2⁻²³) rounded to nearest cannot exceed v."""
    out = np.where(v > _TINY, v * (1 - 2 * _U), np.where(v >= 0, 0.0, np.where(v >= -_TINY, -_TINY, v * (1 + 2 * _U))))
    return out.astype(np.float32)


def _up32(v: np.ndarray) -> np.ndarray:
    """float32 values ≥ v (v float64 ≥ 0)."""
    return np.where(v > _TINY, v * (1 + 2 * _U), _TINY).astype(np.float32)


# ---- driver ------------------------------------------------------------------------------------
_CONTROLLER = []


def single_threaded_blas():
    """A context in which BLAS runs on the calling thread only (threadpoolctl; the library scan is cached)."""
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


def _exponents(u: np.ndarray, v: np.ndarray) -> tuple[int, int]:
    """Powers of two that bring max|U| and max|V| into [1/2, 1)."""
    top_u, top_v = (float(np.abs(x).max(initial=0.0)) for x in (u, v))
    return (int(np.frexp(top_u)[1]) if top_u > 0 else 0), (int(np.frexp(top_v)[1]) if top_v > 0 else 0)


def _prepare(u: np.ndarray, v: np.ndarray, thresholds, eu: int, ev: int):
    """Scaled float32 factors, per-row error bounds and float32 decision bounds (see module docstring)."""
    k = u.shape[1]
    # Ũ₃₂ = fl₃₂(U·2^-eu): one pass, the product taken in float64 (exact: a power of two) and then rounded
    u32 = np.multiply(u, 2.0 ** -eu, out=np.empty(u.shape, np.float32), casting="unsafe")
    v32 = np.multiply(v, 2.0 ** -ev, out=np.empty(v.shape, np.float32), casting="unsafe")
    # norms of the float32 values, exact products summed in float64: |Ũ| ≤ (1 + u)|Ũ₃₂| + underflow, so
    # c gets one more 2⁻²⁴ than the module docstring's (k + 3)
    row = np.sqrt(np.einsum("ik,ik->i", u32, u32, dtype=np.float64))
    col = float(np.sqrt(np.einsum("kj,kj->j", v32, v32, dtype=np.float64).max())) if v.shape[1] else 0.0
    c, d = (k + 4) * _U, (k + 1) * 2.0 ** -123
    # a row (or all of V) without a single non-zero has exactly zero products: no error at all
    live = np.any(u != 0, axis=1) & bool(np.any(v != 0))
    err = np.where(live, c * row * col + d, 0.0)
    scale = np.ldexp(1.0, -(eu + ev))                          # x̃ = scale · x
    lo = np.empty((u.shape[0], 2), np.float32)
    hi = np.empty((u.shape[0], 2), np.float32)
    for t, thr in enumerate(thresholds):
        if thr <= 0:  # |x| < 0 never holds: decided without looking
            lo[:, t] = hi[:, t] = 0.0
            continue
        ts = min(thr * scale, 2.0 ** 60)  # |x̃| <= k < 2**60: a larger threshold decides the same
        lo[:, t] = _down32(ts - err - 2.0 ** -52 * ts)         # the last term absorbs float64 rounding
        hi[:, t] = _up32(ts + err + 2.0 ** -52 * (ts + err))
    return u32, v32, err, lo, hi, scale


def _slab(args):
    """Counts and maximum over rows [i0, i1) and all columns (one thread)."""
    u32, v32, u64, v64, err, lo, hi, thr, scale, i0, i1 = args
    from ripkit._entry_kernels import classify  # imports numba: only when entries are counted

    n = v32.shape[1]
    buf = np.empty(TILE_ROWS * TILE_COLS, np.float32)
    best = np.zeros(1)
    n1 = n2 = 0
    for j0 in range(0, n, TILE_COLS):
        panel = np.ascontiguousarray(v32[:, j0:j0 + TILE_COLS])
        w = panel.shape[1]
        for r0 in range(i0, i1, TILE_ROWS):
            h = min(TILE_ROWS, i1 - r0)
            tile = buf[:h * w].reshape(h, w)  # C-contiguous whatever its shape: one compiled signature
            np.matmul(u32[r0:r0 + h], panel, out=tile)
            a, b = classify(tile, r0, j0, lo, hi, err, u64, v64, thr, scale, best)
            n1 += a
            n2 += b
    return n1, n2, float(best[0])


def entry_stats(u: np.ndarray, v: np.ndarray, thresholds, *, threads: int = 1) -> EntryStats:
    """Exact counts of |(U·V)_ij| < t for each of one or two thresholds t, and max |(U·V)_ij|.

    Parameters
    ----------
    u : ndarray of shape (m, k), float64
    v : ndarray of shape (k, n), float64
        Finite factors; ΔW = U·V is never formed (memory O((m + n)·k) plus one tile per thread).
    thresholds : sequence of one or two floats
        Strict thresholds; a threshold ≤ 0 counts nothing.
    threads : int, default 1
        Row slabs processed in parallel (the kernels release the GIL).  Results do not depend on it.
    """
    thr = [float(t) for t in thresholds]
    if not 1 <= len(thr) <= 2 or not all(np.isfinite(thr)):
        raise ValueError(f"thresholds={thresholds!r} must be one or two finite numbers")
    u = np.ascontiguousarray(u, dtype=np.float64)
    v = np.ascontiguousarray(v, dtype=np.float64)
    if u.ndim != 2 or v.ndim != 2 or u.shape[1] != v.shape[0]:
        raise ValueError(f"factors of shapes {u.shape} and {v.shape} do not chain")
    m, n = u.shape[0], v.shape[1]
    pair = np.array(thr + thr[:1] * (2 - len(thr)), dtype=np.float64)
    eu, ev = _exponents(u, v)
    if max(abs(eu), abs(ev), abs(eu + ev)) > 900:  # near float64's range limits: no float32 screen, plain float64
        return _float64_stats(u, v, thr)
    u32, v32, err, lo, hi, scale = _prepare(u, v, pair, eu, ev)
    threads = max(1, min(int(threads), -(-m // TILE_ROWS)))
    cuts = np.linspace(0, m, threads + 1).astype(int)
    jobs = [(u32, v32, u, v, err, lo, hi, pair, scale, int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:])]
    with single_threaded_blas():  # each tile is small: threads inside BLAS would only contend with ours
        if threads == 1:
            parts = [_slab(jobs[0])]
        else:
            with ThreadPoolExecutor(threads) as pool:
                parts = list(pool.map(_slab, jobs))
    below = (sum(p[0] for p in parts), sum(p[1] for p in parts))
    return EntryStats(m * n, tuple(thr), below[:len(thr)], max((p[2] for p in parts), default=0.0))


def _float64_stats(u, v, thresholds, rows: int = 64) -> EntryStats:
    """ΔW in float64 row blocks: for factors whose entries would leave float64's range when scaled."""
    thr = tuple(thresholds)
    below, top = [0] * len(thr), 0.0
    for start in range(0, u.shape[0], rows):
        mag = np.abs(u[start:start + rows] @ v)
        below = [b + int(np.count_nonzero(mag < t)) for b, t in zip(below, thr)]
        top = max(top, float(mag.max(initial=0.0)))
    return EntryStats(u.shape[0] * v.shape[1], thr, tuple(below), top)


def dense_entry_stats(w: np.ndarray, thresholds, *, rows: int = 256) -> EntryStats:
    """The same statistics of a dense float64 matrix, in row blocks (temporaries O(rows·n))."""
    thr = tuple(float(t) for t in thresholds)
    below = [0] * len(thr)
    top = 0.0
    for start in range(0, w.shape[0], rows):
        mag = np.abs(w[start:start + rows])
        for t, value in enumerate(thr):
            below[t] += int(np.count_nonzero(mag < value))
        top = max(top, float(mag.max(initial=0.0)))
    return EntryStats(int(w.size), thr, tuple(below), top)
