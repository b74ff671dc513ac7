"""Monte Carlo RIP estimators computed from the Gram factors of Ψ = Rᵀ⊗L.

For α supported on S with values v, ‖Ψα‖² = vᵀ (ΨᵀΨ)[S,S] v and
(ΨᵀΨ)[(k,l),(k',l')] = G_L[k,k']·G_R[l,l'] (``ripkit.kron``), so one sample
costs O(s²) after the O(m·a² + n·b²) set-up of G_L = LᵀL and G_R = RRᵀ — no
mn-long vector is ever formed.

Two estimators share the same sampled supports:

* :func:`estimate_rip` — the paper's estimator exactly (CoSA Algorithm 1 and
  eq. 26): δ̂ = 95th percentile of |‖Ψα_i‖²/‖α_i‖² − 1|.  An *estimate* of a
  percentile of the distortion distribution, not of δ_s; it can sit far below
  the true constant.
* :func:`support_rip` — per sampled support S, the exact restricted constant
  δ_S = max(λ_max(G_S) − 1, 1 − λ_min(G_S)).  Each δ_S is attained by an
  explicit vector, so max_S δ_S is a certified *lower bound* on δ_s.

Both measure Ψ/√c, where c = ``dictionary.isometry_scale`` (1 for the 'unit'
scale), and report c.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ripkit._checks import check_fraction, check_positive_int
from ripkit._numba import lazy_kernel
from ripkit.projections import as_generator

__all__ = [
    "SparseSamples",
    "RipEstimate",
    "SupportRip",
    "sample_sparse_vectors",
    "gram_subblocks",
    "quadratic_forms",
    "quadratic_forms_numpy",
    "isometry_ratios",
    "estimate_rip",
    "support_deltas",
    "support_rip",
]

# Gathered (N, s, s) sub-blocks are processed in chunks of at most this many entries.
_CHUNK_ENTRIES = 2**22


@dataclass(frozen=True)
class SparseSamples:
    """N s-sparse coefficient vectors α_i (CoSA Algorithm 1).

    Attributes
    ----------
    supports : ndarray of int64, shape (N, s)
        Sorted indices into vec(Y), j = k + a·l.
    values : ndarray of float64, shape (N, s)
        N(0, 1) values on the support, aligned with ``supports``.
    """

    supports: np.ndarray
    values: np.ndarray

    @property
    def n_samples(self) -> int:
        return self.supports.shape[0]

    @property
    def s(self) -> int:
        return self.supports.shape[1]


def sample_sparse_vectors(n_coeffs: int, s: int, n_samples: int, seed=0) -> SparseSamples:
    """Algorithm 1: a uniform random s-subset of {0, …, n_coeffs−1}, then N(0,1) values on it.

    Each sample draws its support (``Generator.choice`` without replacement),
    then its s values, from one stream, so the result depends only on the seed.
    """
    check_positive_int("n_coeffs", n_coeffs)
    check_positive_int("s", s)
    check_positive_int("n_samples", n_samples)
    if s > n_coeffs:
        raise ValueError(f"s={s} must be <= the number of coefficients ab={n_coeffs}")
    rng = as_generator(seed)
    supports = np.empty((n_samples, s), dtype=np.int64)
    values = np.empty((n_samples, s), dtype=np.float64)
    for i in range(n_samples):
        supports[i] = np.sort(rng.choice(n_coeffs, size=s, replace=False))
        values[i] = rng.standard_normal(s)
    return SparseSamples(supports, values)


def gram_subblocks(g_left: np.ndarray, g_right: np.ndarray, supports: np.ndarray) -> np.ndarray:
    """(ΨᵀΨ)[S_i, S_i] for each row S_i of ``supports`` (N, s) -> (N, s, s).

    Uses (G_R ⊗ G_L)[(k,l),(k',l')] = G_L[k,k']·G_R[l,l'] with k = j mod a, l = j // a.
    """
    a = g_left.shape[0]
    k, l = supports % a, supports // a
    return g_left[k[:, :, None], k[:, None, :]] * g_right[l[:, :, None], l[:, None, :]]


def _chunks(n_samples: int, s: int):
    step = max(1, _CHUNK_ENTRIES // (s * s))
    for start in range(0, n_samples, step):
        yield slice(start, min(n_samples, start + step))


def quadratic_forms_numpy(g_left, g_right, supports, values) -> np.ndarray:
    """‖Ψα_i‖² = v_iᵀ (ΨᵀΨ)[S_i,S_i] v_i by gathering the (N, s, s) sub-blocks (reference path)."""
    out = np.empty(supports.shape[0])
    for sl in _chunks(*supports.shape):
        sub = gram_subblocks(g_left, g_right, supports[sl])
        out[sl] = np.einsum("ni,ni->n", values[sl], np.matmul(sub, values[sl][:, :, None])[..., 0])
    return out


def _quadratic_forms_kernel(g_left, g_right, supports, values, a):
    # Same sum as quadratic_forms_numpy without materializing the (N, s, s) gather,
    # which dominates its time; the symmetric sum visits each pair (i, j) once.
    n, s = supports.shape
    out = np.empty(n)
    for t in range(n):
        acc = 0.0
        for i in range(s):
            ki, li, vi = supports[t, i] % a, supports[t, i] // a, values[t, i]
            acc += vi * vi * g_left[ki, ki] * g_right[li, li]
            for j in range(i + 1, s):
                kj, lj = supports[t, j] % a, supports[t, j] // a
                acc += 2.0 * vi * values[t, j] * g_left[ki, kj] * g_right[li, lj]
        out[t] = acc
    return out


_quad_kernel = lazy_kernel(_quadratic_forms_kernel)


def quadratic_forms(g_left, g_right, supports, values) -> np.ndarray:
    """‖Ψα_i‖² for every sample (numba; equals :func:`quadratic_forms_numpy`). Shape (N,).

    ``studies/bench_rip.py`` measured the numba loop several times faster than the
    gather at s = 20 (the gather's fancy indexing dominates), hence numba here.
    """
    return _quad_kernel(np.ascontiguousarray(g_left, dtype=np.float64), np.ascontiguousarray(g_right, dtype=np.float64),
                        np.ascontiguousarray(supports, dtype=np.int64), np.ascontiguousarray(values, dtype=np.float64),
                        g_left.shape[0])


def isometry_ratios(g_left: np.ndarray, g_right: np.ndarray, samples: SparseSamples) -> np.ndarray:
    """r_i = ‖Ψα_i‖² / ‖α_i‖² for every sample, from the Gram factors. Shape (N,)."""
    quad = quadratic_forms(g_left, g_right, samples.supports, samples.values)
    return quad / np.einsum("ni,ni->n", samples.values, samples.values)


@dataclass(frozen=True)
class RipEstimate:
    """The paper's percentile estimate δ̂_s (an estimate, not a bound).

    ``abs_dev_mean``/``abs_dev_std`` describe the sampled distortions |r_i − 1|
    themselves; their std is ≈ 0.31·δ̂ in every preset, the same ratio as the
    "±" of the paper's Table 4 (see ``studies/cosa_table4.py``).
    """

    s: int
    delta: float
    percentile: float
    n_samples: int
    ratio_mean: float
    ratio_min: float
    ratio_max: float
    abs_dev_mean: float
    abs_dev_std: float
    isometry_scale: float
    kind: str = "estimate"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SupportRip:
    """Exact restricted constants δ_S on sampled supports; ``delta`` = max_S δ_S is a lower bound on δ_s."""

    s: int
    delta: float
    support: tuple[int, ...]
    lam_max: float
    lam_min: float
    delta_median: float
    delta_p95: float
    n_samples: int
    isometry_scale: float
    kind: str = "lower bound"

    def to_dict(self) -> dict:
        return asdict(self)


def _check_samples(dictionary, s, n_samples, seed, samples):
    if samples is None:
        return sample_sparse_vectors(dictionary.shape[1], s, n_samples, seed)
    if samples.s != s:
        raise ValueError(f"samples have sparsity {samples.s}, but s={s}")
    if samples.supports.max() >= dictionary.shape[1]:
        raise ValueError(f"samples index coefficient {samples.supports.max()} >= ab={dictionary.shape[1]}")
    return samples


def estimate_rip(dictionary, s: int, *, n_samples: int = 1000, percentile: float = 95.0, seed=0,
                 samples: SparseSamples | None = None, gram=None) -> RipEstimate:
    """The paper's empirical RIP constant (CoSA Algorithm 1, eq. 26).

    δ̂_s = percentile_p { |r_i/c − 1| : i = 1..N },  r_i = ‖Ψα_i‖²/‖α_i‖².

    Parameters
    ----------
    dictionary : KroneckerDictionary
    s : int
        Sparsity level (1 ≤ s ≤ ab).
    n_samples : int
        N, the number of random s-sparse vectors (paper: 1000).
    percentile : float
        p in (0, 100] (paper: 95).
    seed : int, SeedSequence or Generator
        Seeds the supports and values (ignored when ``samples`` is given).
    samples : SparseSamples, optional
        Reuse given supports and values (e.g. to compare estimators on the same draws).
    gram : (G_L, G_R), optional
        Precomputed ``dictionary.gram_factors()``.
    """
    check_fraction("percentile", percentile, low=0.0, high=100.0)
    samples = _check_samples(dictionary, s, n_samples, seed, samples)
    g_left, g_right = dictionary.gram_factors() if gram is None else gram
    c = dictionary.isometry_scale
    ratios = isometry_ratios(g_left, g_right, samples) / c
    dev = np.abs(ratios - 1.0)
    return RipEstimate(
        s=s, delta=float(np.percentile(dev, percentile)), percentile=float(percentile),
        n_samples=samples.n_samples, ratio_mean=float(ratios.mean()), ratio_min=float(ratios.min()),
        ratio_max=float(ratios.max()), abs_dev_mean=float(dev.mean()), abs_dev_std=float(dev.std(ddof=1)),
        isometry_scale=c,
    )


def support_deltas(g_left, g_right, supports: np.ndarray, isometry_scale: float = 1.0):
    """(λ_max/c, λ_min/c) of (ΨᵀΨ)[S,S] for each support row; two arrays of shape (N,)."""
    n, s = supports.shape
    lam_max, lam_min = np.empty(n), np.empty(n)
    for sl in _chunks(n, s):
        eig = np.linalg.eigvalsh(gram_subblocks(g_left, g_right, supports[sl]))
        lam_max[sl], lam_min[sl] = eig[:, -1], eig[:, 0]
    return lam_max / isometry_scale, lam_min / isometry_scale


def support_rip(dictionary, s: int, *, n_samples: int = 1000, seed=0,
                samples: SparseSamples | None = None, gram=None) -> SupportRip:
    """Exact δ restricted to each sampled support; the max is a lower bound on δ_s.

    δ_S = max(λ_max(G_S)/c − 1, 1 − λ_min(G_S)/c), the worst distortion of any
    vector supported on S (attained by an eigenvector), so δ_s ≥ max_S δ_S.
    Same sampling (and same default seed) as :func:`estimate_rip`; values are unused.
    """
    samples = _check_samples(dictionary, s, n_samples, seed, samples)
    g_left, g_right = dictionary.gram_factors() if gram is None else gram
    lam_max, lam_min = support_deltas(g_left, g_right, samples.supports, dictionary.isometry_scale)
    deltas = np.maximum(lam_max - 1.0, 1.0 - lam_min)
    best = int(np.argmax(deltas))
    return SupportRip(
        s=s, delta=float(deltas[best]), support=tuple(int(j) for j in samples.supports[best]),
        lam_max=float(lam_max[best]), lam_min=float(lam_min[best]),
        delta_median=float(np.median(deltas)), delta_p95=float(np.percentile(deltas, 95)),
        n_samples=samples.n_samples, isometry_scale=dictionary.isometry_scale,
    )
