"""Null models for trained-model statistics: what each statistic looks like when nothing was learned.

A trained-model number means something only beside the same number computed on a matrix
that shares its trivial properties (shape, norm, spectrum, block sizes) and nothing else
(issue 14, "Nulls beside every trained-model statistic"):

* **equal-norm Gaussian core** — CoSA appendix B.3 analyses trained cores Y (a×b); the null
  is a Gaussian a×b matrix rescaled to ‖Y‖_F (:func:`equal_norm_gaussian`).  Its 95 % energy
  rank is scale-free, so :func:`gaussian_energy_ranks` draws it for a shape alone and
  :func:`marchenko_pastur_energy_rank` gives its large-size limit from the Marchenko–Pastur
  law (Marchenko & Pastur 1967; e.g. Bai & Silverstein 2010, Thm 3.6).
* **same-spectrum random matrix** — U·diag(s)·Vᵀ with Haar-random U, V: ΔW's singular values
  without its singular vectors, the null for block energy (CPS-LoRA Figure 1),
  :func:`same_spectrum_matrix`.
* **random subspaces of equal dimensions** — Haar-random orthonormal bases, the null for the
  block angles of CPS-LoRA Figure 5 (:func:`haar_bases`).
* **random partitions** — balanced random row/column permutations (``ripkit.partition
  .random_partition``), the null for any partition statistic of a given ΔW
  (:func:`random_partitions`).

Every function takes ``seed`` (an int, a ``SeedSequence`` or a ``Generator``).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import integrate, optimize

from ripkit._checks import check_fraction, check_positive_int

__all__ = ["equal_norm_gaussian", "gaussian_energy_ranks", "marchenko_pastur_density",
           "marchenko_pastur_energy_rank", "haar_bases", "random_block_angles", "same_spectrum_matrix", "random_partitions"]


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _shape(shape) -> tuple[int, int]:
    if len(shape) != 2:
        raise ValueError(f"shape must be (rows, cols), got {shape}")
    return check_positive_int("shape[0]", shape[0]), check_positive_int("shape[1]", shape[1])


def equal_norm_gaussian(shape, norm: float, *, seed=0) -> np.ndarray:
    """A Gaussian matrix of ``shape`` rescaled to Frobenius norm ``norm`` (the B.3 null core).

    Rescaling (rather than drawing N(0, norm²/ab)) makes the norm exact, so only the
    *distribution of energy* over entries and directions differs from the trained core.
    """
    rows, cols = _shape(shape)
    if not (np.isfinite(norm) and norm >= 0):
        raise ValueError(f"norm must be a finite number >= 0, got {norm}")
    g = _rng(seed).standard_normal((rows, cols))
    return g * (norm / np.linalg.norm(g))


def _energy_ranks(s2: np.ndarray, energy: float) -> np.ndarray:
    # s2: (draws, q) squared singular values, descending; smallest k with Σ_{i≤k} σ_i² ≥ energy·Σσ²
    csum = np.cumsum(s2, axis=-1)
    return 1 + np.sum(csum < energy * csum[..., -1:] * (1 - 1e-12), axis=-1)


def gaussian_energy_ranks(shape, *, energy: float = 0.95, draws: int = 1000, seed=0) -> np.ndarray:
    """Energy ranks of ``draws`` independent Gaussian matrices of ``shape`` (any norm: scale-free).

    Same definition as ``ripkit.spectra.energy_rank``: the smallest k whose top-k singular
    values hold ``energy`` of Σσ².  Returns an int array of shape (draws,).
    """
    rows, cols = _shape(shape)
    check_fraction("energy", energy, closed_low=False)
    draws = check_positive_int("draws", draws)
    rng = _rng(seed)
    out = np.empty(draws, dtype=np.int64)
    chunk = max(1, 2**22 // (rows * cols))  # batched SVDs, a few MB at a time
    for start in range(0, draws, chunk):
        n = min(chunk, draws - start)
        s = np.linalg.svd(rng.standard_normal((n, rows, cols)), compute_uv=False)
        out[start:start + n] = _energy_ranks(s ** 2, energy)
    return out


def marchenko_pastur_density(x, ratio: float) -> np.ndarray:
    """Marchenko–Pastur density of the eigenvalues of (1/b)·G·Gᵀ, G (a×b) i.i.d. N(0, 1), ratio = a/b ≤ 1.

    Supported on [(1 − √λ)², (1 + √λ)²] with mean 1:
    p(x) = √((x₊ − x)(x − x₋)) / (2π λ x).
    """
    if not 0 < ratio <= 1:
        raise ValueError(f"ratio={ratio} must be in (0, 1] (transpose the shape)")
    x = np.asarray(x, dtype=np.float64)
    lo, hi = (1 - math.sqrt(ratio)) ** 2, (1 + math.sqrt(ratio)) ** 2
    inside = (x > lo) & (x < hi)
    out = np.zeros_like(x)
    xi = x[inside]
    out[inside] = np.sqrt((hi - xi) * (xi - lo)) / (2 * math.pi * ratio * xi)
    return out


def marchenko_pastur_energy_rank(shape, *, energy: float = 0.95) -> float:
    """Large-size limit of a Gaussian matrix's energy rank, as a number of singular values.

    With q = min(a, b) and λ = q / max(a, b), the squared singular values of G/√max(a, b)
    follow the Marchenko–Pastur law of ratio λ (mean 1).  The top t·q of them hold the
    energy ∫_c^{x₊} x p(x) dx, where t = ∫_c^{x₊} p(x) dx; solve ∫_c^{x₊} x p = ``energy``
    for the cut c and return t·q.  It is a reference, not a finite-size value: a 128×128
    Gaussian's mean energy rank differs from it by about one singular value (tests).
    """
    rows, cols = _shape(shape)
    check_fraction("energy", energy, closed_low=False)
    q = min(rows, cols)
    ratio = q / max(rows, cols)
    lo, hi = (1 - math.sqrt(ratio)) ** 2, (1 + math.sqrt(ratio)) ** 2

    def mass(c, moment):  # ∫_c^{hi} x^moment p(x) dx; the x = 0 atom of λ < 1 does not exist here
        f = lambda x: x ** moment * marchenko_pastur_density(np.array([x]), ratio)[0]
        return integrate.quad(f, c, hi, limit=200)[0]

    cut = optimize.brentq(lambda c: mass(c, 1) - energy, lo, hi, xtol=1e-13)
    return mass(cut, 0) * q


def haar_bases(count: int, ambient: int, dim: int, *, seed=0) -> np.ndarray:
    """``count`` independent Haar-random orthonormal bases of ``dim``-dimensional subspaces of R^ambient.

    QR of a Gaussian with the signs of R's diagonal moved into Q (Mezzadri 2007), so each
    basis is exactly Haar distributed.  Returns shape (count, ambient, dim).
    """
    count, ambient, dim = (check_positive_int("count", count), check_positive_int("ambient", ambient),
                           check_positive_int("dim", dim))
    if dim > ambient:
        raise ValueError(f"dim={dim} must be <= ambient={ambient}")
    q, r = np.linalg.qr(_rng(seed).standard_normal((count, ambient, dim)))
    return q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[:, None, :]


def random_block_angles(n_blocks: int, block_shape, dim: int, *, draws: int = 1000, seed=0,
                        statistics=("max", "mean", "min")) -> dict[str, np.ndarray]:
    """The paper's block angle (``ripkit.subspaces.paper_block_angles``) for random subspaces.

    Every one of ``n_blocks`` blocks of ``block_shape`` gets independent Haar-random left and
    right bases of dimension ``dim``; returns {statistic: mean over pairs, shape (draws,)}.
    What the metric gives when the blocks share nothing: its value falls with the block
    count (smaller blocks, same ``dim``) without any structure, which is why the trained
    angles are read against it (CPS-LoRA Figure 5).
    """
    from ripkit.subspaces import pairwise_block_angles

    rows, cols = _shape(block_shape)
    n_blocks, draws = check_positive_int("n_blocks", n_blocks), check_positive_int("draws", draws)
    rng = _rng(seed)
    out = {s: np.empty(draws) for s in statistics}
    for d in range(draws):
        left = haar_bases(n_blocks, rows, dim, seed=rng)
        right = haar_bases(n_blocks, cols, dim, seed=rng)
        for stat, pairs in pairwise_block_angles(left, right, statistics).items():
            out[stat][d] = pairs.mean()
    return out


def same_spectrum_matrix(singular_values, shape, *, seed=0) -> np.ndarray:
    """U·diag(s)·Vᵀ with Haar-random U (m×q), V (n×q): the given spectrum, no structure.

    ``singular_values`` may be shorter than min(m, n) (the rest are zero).
    """
    rows, cols = _shape(shape)
    s = np.asarray(singular_values, dtype=np.float64).ravel()
    if s.size == 0 or s.size > min(rows, cols):
        raise ValueError(f"need 1..{min(rows, cols)} singular values for shape {shape}, got {s.size}")
    if np.any(~np.isfinite(s)) or np.any(s < 0):
        raise ValueError("singular_values must be finite and >= 0")
    rng = _rng(seed)
    u = haar_bases(1, rows, s.size, seed=rng)[0]
    v = haar_bases(1, cols, s.size, seed=rng)[0]
    return (u * s) @ v.T


def random_partitions(shape, k: int, draws: int, *, seed=0) -> list:
    """``draws`` independent balanced random k×k partitions of an m×n matrix (``ripkit.partition``)."""
    from ripkit.partition import random_partition

    rows, cols = _shape(shape)
    draws = check_positive_int("draws", draws)
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(
        _rng(seed).integers(2**63) if isinstance(seed, np.random.Generator) else seed)
    dummy = (np.ones((rows, 1)), np.ones((1, cols)))  # only the shape matters
    return [random_partition(dummy, k, seed=child) for child in ss.spawn(draws)]
