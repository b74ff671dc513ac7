"""Seeded random projection matrices L (m×a) and R (b×n) for CoSA.

This module is the ONLY place where the randomness of L and R is made, so that
the analysis side (``ripkit.kron``, ``ripkit.rip``) and the training side
(``ripkit.adapters``) get bit-identical matrices from the same seed.

Scale conventions (``scale=``), CoSA paper appendix B.1:

``"unit"``
    L entries ~ N(0, 1/m), R entries ~ N(0, 1/n).  Every column of
    Ψ = Rᵀ⊗L then has squared norm 1 in expectation, i.e. this is the paper's
    normalisation Ψ ← Ψ/√(mn) applied to N(0, 1) factors.
``"cosa"``
    L entries ~ N(0, 1/a), R entries ~ N(0, 1/b), as in the authors' adapter
    code.  Columns of Ψ then have expected squared norm (m/a)·(n/b).

Rademacher matrices use the same variances (entries ±σ).  ``"orthogonal"`` matrices
(``kind=``) are the Gaussian draw of the same seed with its shorter side made
orthonormal (two passes of modified Gram–Schmidt, "twice is enough"), then scaled so
every column (or row) has the Gaussian's expected norm √(rows)·σ (or √(cols)·σ): L then
has LᵀL = (m σ_L²) I, so κ(L) = 1, while the entry variance is unchanged.  The
orthonormalisation is a fixed-order numba loop, not LAPACK, so the bits do not depend
on the BLAS library or CPU (fingerprints must match on every machine).

All generation happens in float64 with NumPy's PCG64; the torch path converts
that array, so numpy and torch return the same values for the same seed.
"""
from __future__ import annotations

import hashlib
from typing import Literal

import numpy as np

from ripkit._checks import check_choice, check_positive_int

__all__ = [
    "SCALES",
    "KINDS",
    "as_generator",
    "projection_std",
    "random_matrix",
    "projection_pair",
    "projection_pair_torch",
    "layer_seed",
    "fingerprint",
]
# (orthogonal kind: see _orthonormal_columns)

SCALES = ("unit", "cosa")
KINDS = ("gaussian", "rademacher", "orthogonal")

Scale = Literal["unit", "cosa"]
Kind = Literal["gaussian", "rademacher", "orthogonal"]


def as_generator(seed) -> np.random.Generator:
    """Return a ``numpy.random.Generator`` for an int seed, a SeedSequence or a Generator.

    An int gives ``Generator(PCG64(seed))``, which is identical across
    processes, platforms and NumPy versions that keep the PCG64 stream.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, np.random.SeedSequence):
        return np.random.Generator(np.random.PCG64(seed))
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(
            f"seed must be an int, a numpy SeedSequence or a numpy Generator, got {type(seed).__name__}"
        )
    if seed < 0:
        raise ValueError(f"seed={seed} must be >= 0")
    return np.random.Generator(np.random.PCG64(int(seed)))


def projection_std(m: int, n: int, a: int, b: int, scale: Scale = "unit") -> tuple[float, float]:
    """Entry standard deviations (σ_L, σ_R) of L (m×a) and R (b×n) under ``scale``."""
    check_choice("scale", scale, SCALES)
    if scale == "unit":
        return 1.0 / np.sqrt(m), 1.0 / np.sqrt(n)
    return 1.0 / np.sqrt(a), 1.0 / np.sqrt(b)


def random_matrix(shape: tuple[int, int], std: float, seed, kind: Kind = "gaussian") -> np.ndarray:
    """A float64 random matrix with i.i.d. zero-mean entries of standard deviation ``std``.

    Parameters
    ----------
    shape : (rows, cols)
    std : float
        Entry standard deviation σ (> 0).
    seed : int, SeedSequence or Generator
    kind : {'gaussian', 'rademacher', 'orthogonal'}
        N(0, σ²) entries; ±σ with probability 1/2 each; or the Gaussian draw with
        orthonormal columns (rows ≥ cols) or rows (rows < cols), each of norm
        √(longer side)·σ (see the module docstring).
    """
    check_choice("kind", kind, KINDS)
    rows, cols = shape
    check_positive_int("rows", rows)
    check_positive_int("cols", cols)
    if not np.isfinite(std) or std <= 0:
        raise ValueError(f"std={std} must be a finite number > 0")
    rng = as_generator(seed)
    if kind == "gaussian":
        out = rng.standard_normal((rows, cols))
        out *= std  # in place: the same products as ``* std`` without a second rows×cols array
        return out
    if kind == "orthogonal":
        g = rng.standard_normal((rows, cols))
        if rows >= cols:
            return _orthonormal_columns(g) * (np.sqrt(rows) * std)
        return _orthonormal_columns(np.ascontiguousarray(g.T)).T * (np.sqrt(cols) * std)
    signs = rng.integers(0, 2, size=(rows, cols), dtype=np.int8)
    return (2.0 * signs - 1.0) * std


def _mgs_kernel(g):
    rows, cols = g.shape
    q = g.copy()
    for j in range(cols):
        for _ in range(2):  # reorthogonalise once: "twice is enough" (Giraud et al. 2005)
            for i in range(j):
                dot = 0.0
                for t in range(rows):
                    dot += q[t, i] * q[t, j]
                for t in range(rows):
                    q[t, j] -= dot * q[t, i]
        norm = 0.0
        for t in range(rows):
            norm += q[t, j] * q[t, j]
        norm = np.sqrt(norm)
        if norm == 0.0:
            raise ValueError("rank-deficient draw")
        for t in range(rows):
            q[t, j] /= norm
    return q


_MGS = None


def _orthonormal_columns(g: np.ndarray) -> np.ndarray:
    """Orthonormal columns spanning those of ``g`` (rows ≥ cols), same signs as QR with diag(R) > 0."""
    global _MGS
    if _MGS is None:
        from ripkit._numba import compile_kernel

        _MGS = compile_kernel(_mgs_kernel)
    return _MGS(np.ascontiguousarray(g, dtype=np.float64))


def projection_pair(
    m: int,
    n: int,
    a: int,
    b: int,
    seed,
    *,
    scale: Scale = "unit",
    kind: Kind = "gaussian",
) -> tuple[np.ndarray, np.ndarray]:
    """The fixed CoSA projections L (m×a) and R (b×n) for one layer, ΔW = L·Y·R.

    An int seed is split with ``SeedSequence(seed).spawn(2)`` so that L depends
    only on (seed, m, a) and R only on (seed, b, n): changing b never changes L.
    A Generator is consumed in order (L first, then R).

    Returns
    -------
    L : ndarray, shape (m, a), float64
    R : ndarray, shape (b, n), float64
    """
    for name, v in (("m", m), ("n", n), ("a", a), ("b", b)):
        check_positive_int(name, v)
    std_l, std_r = projection_std(m, n, a, b, scale)
    if isinstance(seed, np.random.Generator):
        seed_l = seed_r = seed
    else:
        as_generator(seed)  # validates the type and sign
        ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(int(seed))
        seed_l, seed_r = ss.spawn(2)
    left = random_matrix((m, a), std_l, seed_l, kind)
    right = random_matrix((b, n), std_r, seed_r, kind)
    return left, right


def projection_pair_torch(m, n, a, b, seed, *, scale: Scale = "unit", kind: Kind = "gaussian",
                          dtype=None, device=None):
    """``projection_pair`` as torch tensors (same values; cast to ``dtype`` on ``device``)."""
    import torch

    left, right = projection_pair(m, n, a, b, seed, scale=scale, kind=kind)
    dtype = torch.float32 if dtype is None else dtype
    return (torch.from_numpy(left).to(device=device, dtype=dtype),
            torch.from_numpy(right).to(device=device, dtype=dtype))


def layer_seed(base_seed: int, layer_name: str) -> int:
    """A per-layer seed derived from (base_seed, layer name) with SHA-256.

    Stable across processes and machines (unlike Python's salted ``hash()``).
    Returns an int in [0, 2**63).
    """
    as_generator(base_seed)  # type and sign check
    if not isinstance(layer_name, str) or not layer_name:
        raise TypeError(f"layer_name must be a non-empty str, got {layer_name!r}")
    digest = hashlib.sha256(f"ripkit:{int(base_seed)}:{layer_name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def fingerprint(matrix) -> str:
    """A short (16 hex digits) SHA-256 fingerprint of a matrix's shape and float64 values.

    Accepts a NumPy array or a torch tensor; values are hashed as little-endian
    float64 in C order, so a float32 copy of the same float64 matrix has a
    different fingerprint (it holds different values).
    """
    if hasattr(matrix, "detach"):
        matrix = matrix.detach().cpu().double().numpy()
    arr = np.ascontiguousarray(np.asarray(matrix, dtype="<f8"))
    h = hashlib.sha256(repr(arr.shape).encode())
    h.update(arr.reshape(-1).view(np.uint8))  # the same bytes as arr.tobytes(), without copying them
    return h.hexdigest()[:16]
