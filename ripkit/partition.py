"""Row/column partitions of ΔW into k×k blocks and the partitioners of CPS-LoRA (section 3.3).

A :class:`Partition` is the pair of permutations (π_r, π_c) and the cuts 𝓘, 𝓙 on the
permuted sequences of CPS-LoRA eqs. (5)-(6).  Every partitioner takes a dense ΔW
(m, n) or its factors ``(A, B)`` (or a CoSA triple) and returns the same
``Partition`` for both; factors are never multiplied out (appendix E).

Scores of a partition (energy captured, block low-rank error, consensus with a
planted truth) live in ``ripkit.partition_scores`` and are re-exported here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse.linalg import svds

from ripkit._checks import check_choice, check_positive_int
from ripkit.projections import as_generator
from ripkit.spectra import _factor_svd, _row_chunks, _shape, as_operand

__all__ = [
    "Partition", "balanced_cuts", "partition_from_labels", "contiguous", "random_partition",
    "spectral_bicluster", "balance_sort", "cosine_sort", "spectral_embedding", "kmeans",
    "block_energy", "block_diagonal_energy", "checkerboard_energy", "block_approximation_error",
    "consensus_score",
]


def _perm(name: str, value, size: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 1 or arr.size != size or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D integer array of length {size}, got {arr.dtype} {arr.shape}")
    arr = arr.astype(np.int64)
    if not np.array_equal(np.sort(arr), np.arange(size)):
        raise ValueError(f"{name} must be a permutation of 0..{size - 1}")
    arr.setflags(write=False)
    return arr


def _cuts(name: str, value, size: int) -> tuple[int, ...]:
    cuts = tuple(int(c) for c in value)
    if len(cuts) < 2 or cuts[0] != 0 or cuts[-1] != size or any(b <= a for a, b in zip(cuts, cuts[1:])):
        raise ValueError(f"{name} must increase strictly from 0 to {size}, got {cuts}")
    return cuts


def _take(x, idx: np.ndarray, axis: int):
    if isinstance(x, np.ndarray):
        return np.take(x, idx, axis=axis)
    if type(x).__module__.startswith("torch"):  # adapters call this on tensors; import lazily
        import torch
        return x.index_select(axis, torch.from_numpy(np.array(idx)).to(x.device))
    return np.take(np.asarray(x), idx, axis=axis)


def _inverse(perm: np.ndarray) -> np.ndarray:
    inv = np.empty_like(perm)
    inv[perm] = np.arange(perm.size)
    return inv


@dataclass(frozen=True, eq=False)
class Partition:
    """Row and column permutations plus cuts: the k_r×k_c block grid of CPS-LoRA eqs. (5)-(6).

    Attributes
    ----------
    row_perm : ndarray of shape (m,), int64
        Row i of the reordered matrix is row ``row_perm[i]`` of the original (π_r).
    col_perm : ndarray of shape (n,), int64
        Same for columns (π_c).
    row_cuts : tuple of k_r + 1 ints
        Block boundaries in reordered coordinates, from 0 to m.
    col_cuts : tuple of k_c + 1 ints
    """

    row_perm: np.ndarray
    col_perm: np.ndarray
    row_cuts: tuple[int, ...]
    col_cuts: tuple[int, ...]

    def __post_init__(self):
        rp = np.asarray(self.row_perm)
        cp = np.asarray(self.col_perm)
        object.__setattr__(self, "row_perm", _perm("row_perm", rp, rp.size))
        object.__setattr__(self, "col_perm", _perm("col_perm", cp, cp.size))
        object.__setattr__(self, "row_cuts", _cuts("row_cuts", self.row_cuts, rp.size))
        object.__setattr__(self, "col_cuts", _cuts("col_cuts", self.col_cuts, cp.size))

    def __eq__(self, other):
        if not isinstance(other, Partition):
            return NotImplemented
        return (self.row_cuts == other.row_cuts and self.col_cuts == other.col_cuts
                and np.array_equal(self.row_perm, other.row_perm)
                and np.array_equal(self.col_perm, other.col_perm))

    def __hash__(self):
        return hash((self.row_perm.tobytes(), self.col_perm.tobytes(), self.row_cuts, self.col_cuts))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.row_perm.size, self.col_perm.size)

    @property
    def n_row_blocks(self) -> int:
        return len(self.row_cuts) - 1

    @property
    def n_col_blocks(self) -> int:
        return len(self.col_cuts) - 1

    @property
    def inverse_row_perm(self) -> np.ndarray:
        """π_r⁻¹ of eq. (11): ``apply(W)[inverse_row_perm] == W`` row-wise."""
        return _inverse(self.row_perm)

    @property
    def inverse_col_perm(self) -> np.ndarray:
        return _inverse(self.col_perm)

    def row_groups(self) -> list[np.ndarray]:
        """The row index sets 𝓘₁…𝓘_k in original coordinates."""
        return [self.row_perm[a:b] for a, b in zip(self.row_cuts[:-1], self.row_cuts[1:])]

    def col_groups(self) -> list[np.ndarray]:
        return [self.col_perm[a:b] for a, b in zip(self.col_cuts[:-1], self.col_cuts[1:])]

    def row_labels(self) -> np.ndarray:
        """Block-row index of every original row, shape (m,)."""
        out = np.empty(self.shape[0], dtype=np.int64)
        for i, g in enumerate(self.row_groups()):
            out[g] = i
        return out

    def col_labels(self) -> np.ndarray:
        out = np.empty(self.shape[1], dtype=np.int64)
        for j, g in enumerate(self.col_groups()):
            out[g] = j
        return out

    def blocks(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """All k_r·k_c blocks as (rows, cols) in original coordinates.

        Ordered l = i + k_r·j (block row fastest), the G_l numbering of CPS-LoRA eq. (6).
        """
        rows, cols = self.row_groups(), self.col_groups()
        return [(r, c) for c in cols for r in rows]

    def diagonal_blocks(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Blocks (i, i), i < min(k_r, k_c): the biclusters of a block-diagonal structure."""
        return list(zip(self.row_groups(), self.col_groups()))

    def apply(self, matrix):
        """Reorder: ``matrix[row_perm][:, col_perm]`` (eq. 5); NumPy arrays or torch tensors."""
        return _take(_take(matrix, self.row_perm, 0), self.col_perm, 1)

    def unapply(self, matrix):
        """Undo :meth:`apply` (eq. 11)."""
        return _take(_take(matrix, self.inverse_row_perm, 0), self.inverse_col_perm, 1)

    def apply_factors(self, a, b):
        """``(A[row_perm], B[:, col_perm])``: factors of ``apply(A @ B)`` without forming it."""
        return _take(a, self.row_perm, 0), _take(b, self.col_perm, 1)

    def to_dict(self) -> dict:
        return {"row_perm": self.row_perm.tolist(), "col_perm": self.col_perm.tolist(),
                "row_cuts": list(self.row_cuts), "col_cuts": list(self.col_cuts)}

    @classmethod
    def from_dict(cls, d: dict) -> "Partition":
        return cls(np.asarray(d["row_perm"], dtype=np.int64), np.asarray(d["col_perm"], dtype=np.int64),
                   tuple(d["row_cuts"]), tuple(d["col_cuts"]))


# ------------------------------------------------------------------------ helpers
def balanced_cuts(size: int, k: int) -> tuple[int, ...]:
    """k nearly equal chunks of ``size`` (the first ``size % k`` one longer), as ``np.array_split``."""
    size, k = check_positive_int("size", size), check_positive_int("k", k)
    if k > size:
        raise ValueError(f"k={k} must be <= {size} (every block needs a row and a column)")
    lengths = np.full(k, size // k)
    lengths[: size % k] += 1
    return tuple(int(c) for c in np.concatenate([[0], np.cumsum(lengths)]))


def _ks(k, shape) -> tuple[int, int]:
    kr, kc = (k, k) if not isinstance(k, (tuple, list)) else tuple(k)
    kr, kc = check_positive_int("k", kr), check_positive_int("k", kc)
    if kr > shape[0] or kc > shape[1]:
        raise ValueError(f"k={k} must be <= the matrix shape {shape} in each direction")
    return kr, kc


def partition_from_labels(row_labels, col_labels) -> Partition:
    """Partition grouping equal labels; blocks ordered by label value, stable within a block."""
    out = []
    for name, labels in (("row_labels", row_labels), ("col_labels", col_labels)):
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.size == 0 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{name} must be a non-empty 1-D integer array, got {labels.dtype} {labels.shape}")
        _, compact = np.unique(labels, return_inverse=True)  # drop unused labels
        perm = np.argsort(compact, kind="stable")
        out.append((perm, tuple(int(c) for c in np.concatenate([[0], np.cumsum(np.bincount(compact))]))))
    return Partition(out[0][0], out[1][0], out[0][1], out[1][1])


# -------------------------------------------------------------------- partitioners
def contiguous(x, k) -> Partition:
    """Identity permutations, k balanced contiguous chunks: GraLoRA as implemented in peft.

    ``k`` may be an int or a pair (k_rows, k_cols).
    """
    m, n = _shape(as_operand(x))
    kr, kc = _ks(k, (m, n))
    return Partition(np.arange(m), np.arange(n), balanced_cuts(m, kr), balanced_cuts(n, kc))


def random_partition(x, k, *, seed=0) -> Partition:
    """Uniformly random row and column permutations with balanced cuts.

    GraLoRA as the CPS-LoRA paper describes it ("random partitioning", Table 5) and
    CPS-LoRA's first-epoch initialisation (section 3.4, Algorithm 1 line 1).  Rows are
    drawn before columns from one generator, so a seed fixes both.
    """
    m, n = _shape(as_operand(x))
    kr, kc = _ks(k, (m, n))
    rng = as_generator(seed)
    return Partition(rng.permutation(m), rng.permutation(n), balanced_cuts(m, kr), balanced_cuts(n, kc))


def _chunked_min(a, b) -> float:
    return min(float(block.min()) for _, block in _row_chunks(a, b))


def _top_svd(w: np.ndarray, q: int, seed):
    # Leading q singular triplets of a dense matrix: ARPACK (start vector from seed)
    # unless the matrix is small or q is close to full, where a full SVD is cheaper.
    if min(w.shape) <= 64 or q >= min(w.shape) - 1:
        return np.linalg.svd(w, full_matrices=False)
    v0 = as_generator(seed).standard_normal(min(w.shape))
    u, s, vt = svds(w, k=q, tol=0, v0=v0, solver="arpack")
    order = np.argsort(s)[::-1]
    return u[:, order], s[order], vt[order]


def spectral_embedding(x, n_components: int = 1, *, scale: bool = True, seed=0):
    """Row and column embeddings of CPS-LoRA eqs. (2)-(3) (Dhillon 2001; Kluger et al. 2003).

    1. P = ΔW − min ΔW (non-negative relational matrix);
    2. S = D_r^{-1/2} P D_c^{-1/2} with D_r, D_c the row and column sums of P
       (a zero row/column gets weight 0 instead of 1/0);
    3. SVD of S; singular vectors 2 … n_components+1 are the embeddings (the first
       is the trivial D^{1/2}·1 direction with σ = 1).  Components with
       σ ≤ 1e-10·σ₁ are dropped: they span a null space and are arbitrary.
    4. With ``scale``, rows are scaled by D_r^{-1/2} (columns by D_c^{-1/2}), Dhillon's
       mapping back to the partition indicator space; each component is then weighted
       by its singular value (Kluger's projection of the data on the vectors), so
       noise-level components count less in k-means.  Each component's sign makes its
       largest-magnitude row entry positive, so the output is deterministic.

    From factors the shift is a rank-one term absorbed into the factors,
    P = [A, −μ1]·[B; 1ᵀ] (appendix E); D_r = A'(B'1), D_c = (1ᵀA')B'; the SVD is the
    QR + core SVD of appendix E.  μ = min ΔW is found by forming ΔW in row chunks of
    max(r, 16) rows: O(m·n·r) time, O(n·r) memory — the only step not linear in n.
    The dense path uses ARPACK (``scipy.sparse.linalg.svds``, start vector from ``seed``)
    for min(m, n) > 64 and a full SVD otherwise.

    Returns
    -------
    row_embedding : ndarray of shape (m, d)
    col_embedding : ndarray of shape (n, d)
        d ≤ n_components.
    """
    n_components = check_positive_int("n_components", n_components)
    op = as_operand(x)
    m, n = _shape(op)
    if op[0] == "dense":
        p = op[1] - op[1].min()
        dr, dc = p.sum(axis=1), p.sum(axis=0)
    else:
        mu = _chunked_min(op[1], op[2])
        a = np.hstack([op[1], np.full((m, 1), -mu)])
        b = np.vstack([op[2], np.ones((1, n))])
        dr, dc = a @ b.sum(axis=1), a.sum(axis=0) @ b
    ir = np.where(dr > 0, 1.0 / np.sqrt(np.where(dr > 0, dr, 1.0)), 0.0)
    ic = np.where(dc > 0, 1.0 / np.sqrt(np.where(dc > 0, dc, 1.0)), 0.0)
    q = min(n_components + 1, m, n)
    if op[0] == "factors":
        u, s, vt = _factor_svd(ir[:, None] * a, b * ic[None, :], compute_uv=True)
    else:
        u, s, vt = _top_svd(ir[:, None] * p * ic[None, :], q, seed)
    keep = np.flatnonzero(s[:q] > 1e-10 * s[0])[1:]
    u, v = u[:, keep], vt[keep].T
    signs = np.sign(u[np.argmax(np.abs(u), axis=0), np.arange(u.shape[1])])
    u, v = u * signs, v * signs
    if scale:
        u, v = u * ir[:, None], v * ic[:, None]
    # Weight each component by its singular value (projection of the rows of S on the
    # singular vectors, as Kluger et al.), so weak, noise-level components count less.
    return u * s[keep], v * s[keep]


def kmeans(points, k: int, *, n_init: int = 10, max_iter: int = 300, seed=0) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding (Arthur & Vassilvitskii 2007); best of ``n_init``.

    Parameters
    ----------
    points : array of shape (p, d)
    k : int

    Returns
    -------
    labels : ndarray of shape (p,), int64, clusters numbered by ascending centroid
        first coordinate (a canonical order, independent of the draws).
    """
    pts = np.asarray(points, dtype=np.float64)
    k = check_positive_int("k", k)
    if pts.ndim != 2 or k > pts.shape[0]:
        raise ValueError(f"points must be 2-D with at least k={k} rows, got shape {pts.shape}")
    rng = as_generator(seed)
    best = (np.inf, None, None)
    for _ in range(check_positive_int("n_init", n_init)):
        centers = pts[[rng.integers(pts.shape[0])]]
        for _ in range(k - 1):
            d2 = ((pts[:, None, :] - centers[None]) ** 2).sum(-1).min(1)
            prob = d2 / d2.sum() if d2.sum() > 0 else np.full(len(pts), 1 / len(pts))
            centers = np.vstack([centers, pts[rng.choice(len(pts), p=prob)]])
        labels = None
        for _ in range(max_iter):
            d2 = ((pts[:, None, :] - centers[None]) ** 2).sum(-1)
            new_labels = d2.argmin(1)
            if labels is not None and np.array_equal(new_labels, labels):
                break  # assignments stable: Lloyd has converged
            labels = new_labels
            for c in range(k):
                members = labels == c
                # An emptied cluster takes the point farthest from its centre.
                centers[c] = pts[members].mean(0) if members.any() else pts[d2.min(1).argmax()]
        d2 = ((pts[:, None, :] - centers[None]) ** 2).sum(-1)
        labels, inertia = d2.argmin(1), d2.min(1).sum()
        if inertia < best[0] - 1e-12 * abs(inertia):
            best = (inertia, labels, centers)
    order = np.argsort(np.argsort(best[2][:, 0], kind="stable"), kind="stable")
    return order[best[1]].astype(np.int64)


def spectral_bicluster(x, k, *, n_components: int | None = None, n_init: int = 10,
                       scale: bool = True, align: bool = True, seed=0) -> Partition:
    """Spectral biclustering of CPS-LoRA section 3.3: embed (eqs. 2-3), then k-means.

    Rows and columns are clustered separately on the embeddings of
    :func:`spectral_embedding`; blocks are ordered by centroid, then (``align``, k_r =
    k_c) column blocks are matched to row blocks so that the diagonal blocks carry the
    most ‖ΔW‖_F² (Hungarian assignment on the k×k block energies) — the pairing a
    block-diagonal bicluster structure needs.  Cluster sizes are whatever k-means
    finds (the imbalance that motivates :func:`balance_sort`, :func:`cosine_sort`).

    Parameters
    ----------
    x : array of shape (m, n) or factors ``(A, B)``
    k : int or (int, int)
    n_components : int, optional
        Embedding dimension; default min(k_r, k_c) − 1 (at least 1), the number of
        informative components of a k_r×k_c checkerboard.
    n_init : int, default 10
        k-means restarts (best inertia kept).
    scale, align : bool, default True
        D^{-1/2} embedding scaling (:func:`spectral_embedding`); diagonal block pairing.
    seed : int or numpy Generator, default 0
        Seeds k-means++ and the dense path's ARPACK start vector.

    Returns
    -------
    Partition
        Row/column blocks of k-means' (possibly unequal) cluster sizes.
    """
    op = as_operand(x)
    kr, kc = _ks(k, _shape(op))
    # A k_r×k_c checkerboard of block means has rank <= min(k_r, k_c): after the trivial
    # direction at most min(k_r, k_c) − 1 components carry cluster information.
    d = n_components if n_components is not None else max(min(kr, kc) - 1, 1)
    rows, cols = spectral_embedding(op[1] if op[0] == "dense" else op[1:], d, scale=scale, seed=seed)
    if rows.shape[1] == 0:
        raise ValueError("x has no non-trivial spectral embedding (P = ΔW − min ΔW has rank <= 1)")
    rl, cl = kmeans(rows, kr, n_init=n_init, seed=seed), kmeans(cols, kc, n_init=n_init, seed=seed)
    part = partition_from_labels(rl, cl)
    if align and part.n_row_blocks == part.n_col_blocks:
        _, match = linear_sum_assignment(-block_energy(op[1] if op[0] == "dense" else op[1:], part))
        groups = part.col_groups()
        ordered = [groups[j] for j in match]
        part = Partition(part.row_perm, np.concatenate(ordered),
                         part.row_cuts, tuple(np.concatenate([[0], np.cumsum([len(g) for g in ordered])])))
    return part


def balance_sort(x, k, *, scale: bool = True, seed=0) -> Partition:
    """Balance-1 of CPS-LoRA section 4.2 / eq. (4): π_r = argsort(u), π_c = argsort(v), k equal cuts.

    u, v are the first non-trivial spectral embedding dimension (second singular
    vectors of S, :func:`spectral_embedding`), sorted ascending with a stable sort.
    ``seed`` only seeds the ARPACK start vector of the dense path.
    """
    op = as_operand(x)
    kr, kc = _ks(k, _shape(op))
    u, v = spectral_embedding(op[1] if op[0] == "dense" else op[1:], 1, scale=scale, seed=seed)
    if u.shape[1] == 0:
        raise ValueError("x has no non-trivial spectral embedding (P = ΔW − min ΔW has rank <= 1)")
    m, n = _shape(op)
    return Partition(np.argsort(u[:, 0], kind="stable"), np.argsort(v[:, 0], kind="stable"),
                     balanced_cuts(m, kr), balanced_cuts(n, kc))


def _cosine(dots, norms2, ref) -> np.ndarray:
    # A zero row/column has no direction: cosine 0 (it sorts into the middle).
    norms = np.sqrt(np.maximum(norms2, 0.0)) * np.linalg.norm(ref)
    return np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 0.0)


def cosine_sort(x, k, *, reference: str = "max_norm", row_reference=None,
                col_reference=None) -> Partition:
    """Balance-2 / cosine-similarity sorting of CPS-LoRA sections 3.3 and 4.2 (the paper's default).

    Rows are sorted by descending cosine similarity to a reference row r_ref ∈ R^n
    (columns likewise to a reference column c_ref ∈ R^m), then cut into k balanced
    chunks.  Block 0 therefore holds the rows most aligned with the reference.

    Reference choice (``reference``):

    * ``'max_norm'`` (default): r_ref is the row of ΔW with the largest norm and
      c_ref the column with the largest norm — an actual "reference row" as in
      appendix E, the direction carrying most of one row's update, and free to find.
    * ``'dominant'``: the top right (left) singular vector — the direction carrying
      most of ΔW's energy, signed so its largest-magnitude left entry is positive.

    ``row_reference`` (n,) / ``col_reference`` (m,) override either choice.

    From factors (appendix E): scores A (B r_ref) and (c_ref A) B, norms² from
    diag(A (BBᵀ) Aᵀ) and diag(Bᵀ (AᵀA) B): O((m + n) r²) time, O((m + n) r) memory.
    Zero rows/columns get cosine 0.  Ties keep the original order (stable sort).
    """
    check_choice("reference", reference, ("max_norm", "dominant"))
    op = as_operand(x)
    m, n = _shape(op)
    kr, kc = _ks(k, (m, n))
    refs = []
    for name, given, size in (("row_reference", row_reference, n), ("col_reference", col_reference, m)):
        if given is not None:
            given = np.asarray(given, dtype=np.float64)
            if given.shape != (size,) or not np.all(np.isfinite(given)) or not np.any(given):
                raise ValueError(f"{name} must be a finite nonzero vector of shape ({size},), got {given.shape}")
        refs.append(given)
    if op[0] == "dense":
        w = op[1]
        rn2, cn2 = np.sum(w * w, axis=1), np.sum(w * w, axis=0)
    else:
        a, b = op[1], op[2]
        rn2, cn2 = np.sum((a @ (b @ b.T)) * a, axis=1), np.sum(((a.T @ a) @ b) * b, axis=0)
    if refs[0] is not None and refs[1] is not None:
        auto = (None, None)
    elif reference == "max_norm":
        i, j = int(np.argmax(rn2)), int(np.argmax(cn2))
        auto = (w[i], w[:, j]) if op[0] == "dense" else (a[i] @ b, a @ b[:, j])
    else:
        u, _, vt = _top_svd(w, 1, 0) if op[0] == "dense" else _factor_svd(a, b, compute_uv=True)
        sign = np.sign(u[np.argmax(np.abs(u[:, 0])), 0]) or 1.0  # same sign on both paths
        auto = (sign * vt[0], sign * u[:, 0])
    rref = auto[0] if refs[0] is None else refs[0]
    cref = auto[1] if refs[1] is None else refs[1]
    rdot = w @ rref if op[0] == "dense" else a @ (b @ rref)
    cdot = cref @ w if op[0] == "dense" else (cref @ a) @ b
    rc, cc = _cosine(rdot, rn2, rref), _cosine(cdot, cn2, cref)
    return Partition(np.argsort(-rc, kind="stable"), np.argsort(-cc, kind="stable"),
                     balanced_cuts(m, kr), balanced_cuts(n, kc))


# Scores live in their own module; re-exported so ``ripkit.partition.block_energy`` keeps working.
from ripkit.partition_scores import (  # noqa: E402  (needs Partition defined above)
    block_approximation_error,
    block_diagonal_energy,
    block_energy,
    checkerboard_energy,
    consensus_score,
)
