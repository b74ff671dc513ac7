"""Principal angles, Grassmann distance and CPS-LoRA's block-to-block angular distance.

CPS-LoRA section 4.2 / Figure 5 report an "average angular distance between
subspaces" of the blocks of a partition (84.9° at 2×2, 78.3° at 8×8) and refer to an
appendix L; the definition itself is in the paper's paragraph on computing subspace
angles (end of the text): an SVD of every block, its top-k singular vectors as an
orthonormal basis, ``scipy.linalg.subspace_angles`` between every pair of blocks for
the left and for the right singular vectors, the larger of the two kept, averaged over
pairs.  That is :func:`paper_block_angles`; the two choices the text leaves open (k,
and how a pair's several principal angles become one number) are its keywords.
:func:`block_angles` is ripkit's earlier stand-in (only blocks sharing a block row or
column, compared where their subspaces live in the same coordinates).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ripkit._checks import check_choice, check_fraction, check_matrix, check_positive_int
from ripkit.spectra import as_operand, energy_rank, thin_svd

__all__ = [
    "orthonormal_basis",
    "principal_angles",
    "grassmann_distance",
    "BlockAngles",
    "block_angles",
    "batched_subspace_angles",
    "PAIR_STATISTICS",
    "block_svd",
    "block_bases",
    "block_ranks",
    "pairwise_block_angles",
    "PaperBlockAngles",
    "paper_block_angles",
]


def orthonormal_basis(a, *, rtol: float | None = None) -> np.ndarray:
    """Orthonormal basis of the column space of ``a`` via SVD (rank-revealing).

    Parameters
    ----------
    a : array of shape (m, p)
    rtol : float, optional
        Left singular vectors with σ ≤ rtol·σ₁ are dropped; default max(m, p)·eps,
        as ``scipy.linalg.orth``.

    Returns
    -------
    q : ndarray of shape (m, rank)
    """
    a = check_matrix("a", a)
    u, s, _ = np.linalg.svd(a, full_matrices=False)
    if rtol is None:
        rtol = max(a.shape) * np.finfo(np.float64).eps
    rank = int(np.sum(s > rtol * s[0])) if s[0] > 0 else 0
    return u[:, :rank]


def principal_angles(a, b, *, orthonormal: bool = False) -> np.ndarray:
    """Principal angles between span(a) and span(b), ascending, in radians.

    Implements Knyazev & Argentati (2002), eqs. (2.2)-(2.4): cosines from the SVD of
    Q_aᵀ Q_b for large angles and sines from the SVD of (I − Q_a Q_aᵀ) Q_b for angles
    below π/4, where the cosine formula loses accuracy.

    Parameters
    ----------
    a : array of shape (m, p)
    b : array of shape (m, q)
        Spanning sets of the two subspaces of R^m (need not be orthonormal).
    orthonormal : bool, default False
        Skip orthonormalisation when the columns already are orthonormal bases.

    Returns
    -------
    theta : ndarray of shape (min(rank a, rank b),)
        Ascending: θ₁ ≤ θ₂ ≤ …  (``scipy.linalg.subspace_angles`` returns them descending).
    """
    a, b = check_matrix("a", a), check_matrix("b", b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"a and b must have the same number of rows, got {a.shape} and {b.shape}")
    # 1. orthonormal bases
    qa = a if orthonormal else orthonormal_basis(a)
    qb = b if orthonormal else orthonormal_basis(b)
    if qa.shape[1] < qb.shape[1]:  # make qa the larger basis so residual sines are well defined
        qa, qb = qb, qa
    if qb.shape[1] == 0:
        return np.zeros(0)
    # 2. cosines: singular values of Q_aᵀ Q_b, descending → angles ascending
    cos = np.clip(np.linalg.svd(qa.T @ qb, compute_uv=False), -1.0, 1.0)
    theta = np.arccos(cos)
    # 3. sines from the part of Q_b outside span(Q_a), ascending after sort
    small = cos ** 2 > 0.5
    if np.any(small):
        resid = qb - qa @ (qa.T @ qb)
        sin = np.clip(np.sort(np.linalg.svd(resid, compute_uv=False)), -1.0, 1.0)
        theta[small] = np.arcsin(sin[: qb.shape[1]])[small]
    return theta


def grassmann_distance(a, b, *, metric: str = "geodesic") -> float:
    """Distance between span(a) and span(b) from their principal angles θ.

    ``metric='geodesic'`` gives ‖θ‖₂ (arc length on the Grassmannian, Edelman, Arias
    & Smith 1998); ``'chordal'`` gives ‖sin θ‖₂ = ‖P_a − P_b‖_F / √2 for equal dimensions.
    """
    check_choice("metric", metric, ("geodesic", "chordal"))
    theta = principal_angles(a, b)
    return float(np.linalg.norm(np.sin(theta) if metric == "chordal" else theta))


@dataclass(frozen=True)
class BlockAngles:
    """Block-to-block angular distances of one partition (CPS-LoRA Figure 5).

    ``pairs`` holds one dict per compared pair: ``side`` ('column' for two blocks in
    the same block row, compared by column/left subspaces in R^{|I_i|}; 'row' for two
    blocks in the same block column, compared by row/right subspaces in R^{|J_j|}),
    the two block indices ``(i, j)``, the subspace dimensions and ``degrees``.
    """

    mean_degrees: float
    statistic: str
    side: str
    pairs: tuple = field(repr=False)

    def to_dict(self) -> dict:
        return {"mean_degrees": self.mean_degrees, "statistic": self.statistic,
                "side": self.side, "pairs": [dict(p) for p in self.pairs]}


def _dominant_bases(w_block, dim, energy):
    # Left and right dominant singular subspaces of one block (factorized via QR, appendix E).
    u, s, vt = thin_svd(w_block)
    if s.size == 0 or s[0] == 0:
        return u[:, :0], vt[:0].T
    q = dim if dim is not None else energy_rank(s, energy=energy)
    q = min(q, int(np.sum(s > max(u.shape[0], vt.shape[1]) * np.finfo(float).eps * s[0])))
    return u[:, :q], vt[:q].T


def _pair_angle(qa, qb, statistic) -> float:
    theta = principal_angles(qa, qb, orthonormal=True)
    if theta.size == 0:
        return float("nan")
    if statistic == "mean":
        return float(np.degrees(theta.mean()))
    if statistic == "min":
        return float(np.degrees(theta.min()))
    return float(np.degrees(np.linalg.norm(theta)))


def block_angles(x, partition, *, dim: int | None = None, energy: float = 0.9,
                 side: str = "both", statistic: str = "mean") -> BlockAngles:
    """Average angular distance between the dominant subspaces of a partition's blocks.

    ripkit's stand-in for CPS-LoRA's missing appendix L (used for Figure 5).  Two
    blocks can only be compared where their subspaces live in the same space, which
    is also where Proposition 2 needs orthogonality ([A₁ A₃] and [B₁; B₂] full rank):

    * blocks (i, j) and (i, j') of the same block row: principal angles between
      their dominant **column** subspaces (top left singular vectors, in R^{|I_i|});
    * blocks (i, j) and (i', j) of the same block column: between their dominant
      **row** subspaces (top right singular vectors, in R^{|J_j|}).

    Each pair scores ``statistic`` of its principal angles, in degrees; the result
    is the mean over all pairs.  90° means mutually orthogonal bases (Prop. 2's
    ideal), 0° a shared direction.

    Parameters
    ----------
    x : array of shape (m, n) or factors ``(A, B)``
    partition : ripkit.partition.Partition
    dim : int, optional
        Dimension of each dominant subspace.  Default: the block's energy rank at
        ``energy`` (capped by its numerical rank).
    energy : float, default 0.9
        Energy fraction for the default ``dim``.
    side : {'both', 'column', 'row'}, default 'both'
    statistic : {'mean', 'min', 'geodesic'}, default 'mean'
        Mean principal angle, smallest principal angle (largest overlap), or the
        Grassmann geodesic distance ‖θ‖₂ in degrees.

    Returns
    -------
    BlockAngles
    """
    check_choice("side", side, ("both", "column", "row"))
    check_choice("statistic", statistic, ("mean", "min", "geodesic"))
    check_fraction("energy", energy)
    if dim is not None:
        dim = check_positive_int("dim", dim)
    op = as_operand(x)
    shape = op[1].shape if op[0] == "dense" else (op[1].shape[0], op[2].shape[1])
    if tuple(shape) != partition.shape:
        raise ValueError(f"partition shape {partition.shape} does not match x shape {tuple(shape)}")
    rows = [partition.row_perm[s:e] for s, e in zip(partition.row_cuts[:-1], partition.row_cuts[1:])]
    cols = [partition.col_perm[s:e] for s, e in zip(partition.col_cuts[:-1], partition.col_cuts[1:])]
    bases = {}
    for i, ri in enumerate(rows):
        for j, cj in enumerate(cols):
            blk = op[1][np.ix_(ri, cj)] if op[0] == "dense" else (op[1][ri], op[2][:, cj])
            bases[i, j] = _dominant_bases(blk, dim, energy)
    pairs = []
    for (i, j), (left, right) in bases.items():
        for (i2, j2), (left2, right2) in bases.items():
            if side in ("both", "column") and i2 == i and j2 > j:
                pairs.append({"side": "column", "block_a": (i, j), "block_b": (i2, j2),
                              "dims": (left.shape[1], left2.shape[1]),
                              "degrees": _pair_angle(left, left2, statistic)})
            if side in ("both", "row") and j2 == j and i2 > i:
                pairs.append({"side": "row", "block_a": (i, j), "block_b": (i2, j2),
                              "dims": (right.shape[1], right2.shape[1]),
                              "degrees": _pair_angle(right, right2, statistic)})
    vals = np.array([p["degrees"] for p in pairs], dtype=float)
    vals = vals[np.isfinite(vals)]
    mean = float(vals.mean()) if vals.size else float("nan")
    return BlockAngles(mean, statistic, side, tuple(pairs))


# ---- CPS-LoRA's own metric (the paragraph on computing subspace angles) -------------------------
PAIR_STATISTICS = ("max", "mean", "min")


def batched_subspace_angles(qa, qb) -> np.ndarray:
    """``scipy.linalg.subspace_angles`` for many pairs of orthonormal bases at once.

    Parameters
    ----------
    qa : array of shape (P, d, p)
    qb : array of shape (P, d, q)
        Orthonormal columns (not checked: pass bases, e.g. singular vectors).

    Returns
    -------
    theta : ndarray of shape (P, min(p, q)), radians, **descending** as scipy returns them.

    Notes
    -----
    Knyazev & Argentati (2002), the steps scipy follows: 1. cosines = σ(Q_aᵀQ_b);
    2. sines = σ of the part of the smaller basis outside the other's span; 3. each angle
    from its sine where cos² ≥ ½ (small angles), else from its cosine.  (scipy 1.17 picks
    the branch by the cosines in the opposite order; both branches are exact in theory and
    agree with it to ~1e-8 rad, tests.)
    """
    qa, qb = np.asarray(qa, dtype=np.float64), np.asarray(qb, dtype=np.float64)
    if qa.ndim != 3 or qb.ndim != 3 or qa.shape[:2] != qb.shape[:2]:
        raise ValueError(f"qa and qb must be (P, d, p) and (P, d, q) with equal P and d, got {qa.shape}, {qb.shape}")
    return _angles_from_cross_gram(np.swapaxes(qa, 1, 2) @ qb, lambda rows: (qa[rows], qb[rows]))


def _angles_from_cross_gram(m: np.ndarray, bases) -> np.ndarray:
    """Steps 1–3 of :func:`batched_subspace_angles` from M = Q_aᵀQ_b (P, p, q);
    ``bases(rows)`` returns (Q_a, Q_b) of those pairs, needed only for angles below 45°."""
    # 1. cosines, descending → their angles ascending; reversed to scipy's descending order
    if min(m.shape[1:]) == 1:  # one basis vector: its single cosine is a vector norm
        cos = np.linalg.norm(m.reshape(m.shape[0], -1), axis=1)[:, None]
    else:
        cos = np.linalg.svd(m, compute_uv=False)[:, ::-1]
    cos = np.clip(cos, -1.0, 1.0)
    theta = np.arccos(cos)
    # 2. sines from the residual of the smaller basis, descending (largest angle first); only
    #    pairs with an angle below 45° need them (where the cosine branch loses accuracy)
    small = cos ** 2 >= 0.5
    rows = np.flatnonzero(small.any(axis=1))
    if rows.size:
        qa, qb = bases(rows)
        mr = m[rows]
        resid = qb - qa @ mr if qa.shape[2] >= qb.shape[2] else qa - qb @ np.swapaxes(mr, 1, 2)
        sin = np.clip(np.linalg.svd(resid, compute_uv=False), -1.0, 1.0)[:, :cos.shape[1]]
        # 3. the accurate branch for each angle
        theta[rows] = np.where(small[rows], np.arcsin(sin), theta[rows])
    return theta


def _reduce(theta: np.ndarray, statistic: str) -> np.ndarray:
    """One number per pair from its principal angles (radians → degrees)."""
    fn = {"max": np.max, "mean": np.mean, "min": np.min}[statistic]
    return np.degrees(fn(theta, axis=-1))


def block_svd(x, partition) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD of every block of a balanced partition, ordered as ``Partition.blocks()``.

    The paper's metric compares bases of *different* blocks coordinate by coordinate
    (``scipy.linalg.subspace_angles`` needs equal row counts), so every block must have
    the same shape: the row cuts and the column cuts must each be balanced.

    From factors ``(A, B)`` with inner dimension r below the block sides, block (I, J) =
    A_I·B_J is decomposed through QR of A_I and B_Jᵀ and an r×r SVD (CPS-LoRA appendix E's
    route), O(k²r³ + (m + n)r²) instead of k² dense SVDs.

    Returns
    -------
    left : ndarray of shape (n_blocks, m/k_r, q)
    s : ndarray of shape (n_blocks, q), descending
    right : ndarray of shape (n_blocks, n/k_c, q)
        q = min(block sides) densely, r from factors (the other singular values are 0).
    """
    from ripkit.spectra import as_operand

    op = as_operand(x)
    shape = op[1].shape if op[0] == "dense" else (op[1].shape[0], op[2].shape[1])
    if tuple(shape) != partition.shape:
        raise ValueError(f"partition shape {partition.shape} does not match x shape {tuple(shape)}")
    rows, cols = np.diff(partition.row_cuts), np.diff(partition.col_cuts)
    if np.unique(rows).size != 1 or np.unique(cols).size != 1:
        raise ValueError(f"the paper's metric needs blocks of one shape; row blocks {rows.tolist()}, "
                         f"column blocks {cols.tolist()}")
    kr, kc, mb, nb = rows.size, cols.size, int(rows[0]), int(cols[0])
    # block l = i + k_r·j (CPS-LoRA eq. 6's numbering, as Partition.blocks())
    i, j = np.tile(np.arange(kr), kc), np.repeat(np.arange(kc), kr)
    if op[0] == "dense" or op[1].shape[1] >= min(mb, nb):
        w = op[1] if op[0] == "dense" else op[1] @ op[2]
        blocks = partition.apply(w).reshape(kr, mb, kc, nb)[i, :, j, :]
        u, s, vt = np.linalg.svd(blocks, full_matrices=False)
        return u, s, np.swapaxes(vt, 1, 2)
    a, b = op[1][partition.row_perm], op[2][:, partition.col_perm]
    qa, ra = np.linalg.qr(a.reshape(kr, mb, -1))                      # A_I = Q_a R_a
    qb, rb = np.linalg.qr(np.swapaxes(b.reshape(-1, kc, nb), 0, 1).transpose(0, 2, 1))  # B_Jᵀ = Q_b R_b
    u, s, vt = np.linalg.svd(ra[i] @ np.swapaxes(rb[j], 1, 2))        # core R_a R_bᵀ, (n_blocks, r, r)
    return qa[i] @ u, s, qb[j] @ np.swapaxes(vt, 1, 2)


def block_bases(x, partition, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``dim`` left and right singular vectors of every block (see :func:`block_svd`).

    Refused (``ValueError``) when a block's numerical rank is below ``dim``: its extra
    singular vectors would be an arbitrary completion, not a property of ΔW.

    Returns
    -------
    left : ndarray of shape (n_blocks, m/k_r, dim)
    right : ndarray of shape (n_blocks, n/k_c, dim)
    """
    dim = check_positive_int("dim", dim)
    left, s, right = block_svd(x, partition)
    if dim > min(left.shape[1], right.shape[1]):
        raise ValueError(f"dim={dim} must be <= the block's smaller side {min(left.shape[1], right.shape[1])}")
    ranks = block_ranks(s, (left.shape[1], right.shape[1]))
    if ranks.min() < dim:
        raise ValueError(f"dim={dim} exceeds the numerical rank {int(ranks.min())} of block "
                         f"{int(ranks.argmin())}: its top-{dim} singular vectors are not determined")
    return left[:, :, :dim], right[:, :, :dim]


def block_ranks(s, block_shape) -> np.ndarray:
    """Numerical rank of each block from its singular values (σ > max(shape)·eps·σ₁, as ``scipy.linalg.orth``)."""
    s = np.asarray(s, dtype=np.float64)
    tol = max(block_shape) * np.finfo(np.float64).eps * s[:, :1]
    return np.sum((s > tol) & (s > 0), axis=1)


def pairwise_block_angles(left, right, statistics=PAIR_STATISTICS) -> dict[str, np.ndarray]:
    """Per-pair angle (degrees) of every pair i < j of blocks, for each pair ``statistic``.

    For one pair: principal angles between the left bases and between the right bases,
    each reduced to one number by the statistic (max, mean or min principal angle), and
    the larger of the two kept (the paper: "retain the larger of the two").
    Returns {statistic: array of shape (n_pairs,)}.
    """
    left, right = np.asarray(left, dtype=np.float64), np.asarray(right, dtype=np.float64)
    nb = left.shape[0]
    if nb < 2 or right.shape[0] != nb:
        raise ValueError(f"need >= 2 blocks with left and right bases each, got {left.shape}, {right.shape}")
    for stat in statistics:
        check_choice("statistic", stat, PAIR_STATISTICS)
    i, j = np.triu_indices(nb, k=1)
    th_left, th_right = _all_pairs(left, i, j), _all_pairs(right, i, j)
    return {stat: np.maximum(_reduce(th_left, stat), _reduce(th_right, stat)) for stat in statistics}


def _all_pairs(bases: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    # every cross-Gram Q_iᵀQ_j from one (n_blocks·q)² Gram matrix: one BLAS call, no copies per pair
    nb, d, q = bases.shape
    flat = np.swapaxes(bases, 1, 2).reshape(nb * q, d)
    m = (flat @ flat.T).reshape(nb, q, nb, q)[i, :, j, :]  # (P, q, q)
    return _angles_from_cross_gram(m, lambda rows: (bases[i[rows]], bases[j[rows]]))


@dataclass(frozen=True)
class PaperBlockAngles:
    """CPS-LoRA's average angular distance between blocks (Figure 5), one reading of the text.

    ``mean_degrees`` is the mean over all pairs of blocks of ``pair_degrees``.
    """

    mean_degrees: float
    dim: int
    statistic: str
    n_blocks: int
    pair_degrees: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        return {"mean_degrees": self.mean_degrees, "dim": self.dim, "statistic": self.statistic,
                "n_blocks": self.n_blocks, "pair_degrees": self.pair_degrees.tolist()}


def paper_block_angles(x, partition, *, dim: int, statistic: str = "mean") -> PaperBlockAngles:
    """The paper's block angle: top-``dim`` singular bases of every block, all pairs, larger side.

    Parameters
    ----------
    x : array of shape (m, n) or factors ``(A, B)``
    partition : ripkit.partition.Partition
        Balanced, with blocks of one shape (:func:`block_bases`).
    dim : int
        The paper's "top k dominant singular vectors" (k is not given in the text).
    statistic : {'max', 'mean', 'min'}, default 'mean'
        How a pair's ``dim`` principal angles become one number (not given in the text;
        with dim = 1 all three coincide).

    Returns
    -------
    PaperBlockAngles
    """
    check_choice("statistic", statistic, PAIR_STATISTICS)
    left, right = block_bases(x, partition, dim)
    pairs = pairwise_block_angles(left, right, (statistic,))[statistic]
    return PaperBlockAngles(float(pairs.mean()), dim, statistic, left.shape[0], pairs)
