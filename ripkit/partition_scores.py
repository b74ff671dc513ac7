"""Scores of a :class:`~ripkit.partition.Partition` on ΔW (dense or factors): block energy,
checkerboard energy, best block low-rank error (CPS-LoRA section 3.4), consensus with a planted truth.

Split from ``ripkit.partition`` (which re-exports every name) to keep one idea per module.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from ripkit._checks import check_positive_int
from ripkit.partition import Partition
from ripkit.spectra import _factor_svd, _shape, as_operand

__all__ = ["block_energy", "block_diagonal_energy", "checkerboard_energy", "block_approximation_error",
           "consensus_score"]


def _op_shape_check(x, partition: Partition):
    op = as_operand(x)
    if tuple(_shape(op)) != partition.shape:
        raise ValueError(f"partition shape {partition.shape} does not match x shape {tuple(_shape(op))}")
    return op


def block_energy(x, partition: Partition) -> np.ndarray:
    """‖ΔW[𝓘_i, 𝓙_j]‖_F² for every block, shape (k_r, k_c).

    From factors: ‖A_𝓘 B_𝓙‖_F² = Σ (A_𝓘ᵀA_𝓘) ∘ (B_𝓙B_𝓙ᵀ), O((m + n) r² + k² r²).
    """
    op = _op_shape_check(x, partition)
    rows, cols = partition.row_groups(), partition.col_groups()
    if op[0] == "dense":
        w2 = op[1] ** 2
        return np.array([[w2[np.ix_(r, c)].sum() for c in cols] for r in rows])
    ga = [op[1][r].T @ op[1][r] for r in rows]
    gb = [op[2][:, c] @ op[2][:, c].T for c in cols]
    return np.array([[np.sum(x_ * y_) for y_ in gb] for x_ in ga])


def block_diagonal_energy(x, partition: Partition) -> float:
    """Fraction of ‖ΔW‖_F² inside the diagonal blocks (i, i) (block-diagonal bicluster model)."""
    e = block_energy(x, partition)
    total = e.sum()
    return float(np.trace(e) / total) if total > 0 else 0.0


def checkerboard_energy(x, partition: Partition) -> float:
    """Fraction of ‖ΔW‖_F² explained by the block-constant (checkerboard) approximation.

    The best block-constant approximation replaces each block by its mean; it
    explains Σ_blocks |𝓘||𝓙|·mean² = Σ (block sum)² / (|𝓘||𝓙|) (Kluger et al. 2003's
    checkerboard model).  Block sums from factors: (1ᵀA_𝓘)(B_𝓙1).
    """
    op = _op_shape_check(x, partition)
    rows, cols = partition.row_groups(), partition.col_groups()
    if op[0] == "dense":
        sums = np.array([[op[1][np.ix_(r, c)].sum() for c in cols] for r in rows])
        total = float(np.sum(op[1] ** 2))
    else:
        sums = np.array([op[1][r].sum(0) for r in rows]) @ np.array([op[2][:, c].sum(1) for c in cols]).T
        total = float(block_energy(x, partition).sum())
    sizes = np.outer([len(r) for r in rows], [len(c) for c in cols])
    return float(np.sum(sums ** 2 / sizes) / total) if total > 0 else 0.0


def block_approximation_error(x, partition: Partition, rank: int) -> float:
    """Relative Frobenius error of the best rank-``rank`` approximation of every block.

    CPS-LoRA section 3.4 gives each block rank r' = r/k (the same budget as global
    LoRA of rank r); by Eckart-Young the best such approximation drops σ_{>r'} of
    each block: sqrt(Σ_blocks Σ_{i>r'} σᵢ²) / ‖ΔW‖_F.  Block spectra from factors
    by appendix E's QR route.
    """
    rank = check_positive_int("rank", rank)
    op = _op_shape_check(x, partition)
    rest = total = 0.0
    for r_idx, c_idx in partition.blocks():
        if op[0] == "dense":
            s = np.linalg.svd(op[1][np.ix_(r_idx, c_idx)], compute_uv=False)
        else:
            s = _factor_svd(op[1][r_idx], op[2][:, c_idx], compute_uv=False)
        total += float(np.sum(s ** 2))
        rest += float(np.sum(s[rank:] ** 2))
    return float(np.sqrt(rest / total)) if total > 0 else 0.0


def _as_index(v) -> np.ndarray:
    v = np.asarray(v)
    return np.flatnonzero(v) if v.dtype == bool else v.astype(np.int64)


def consensus_score(found, planted) -> float:
    """Consensus of two sets of biclusters (Hochreiter et al. 2010), as sklearn's ``consensus_score``.

    Jaccard index of every pair (|rows∩|·|cols∩| / (|a| + |b| − |rows∩|·|cols∩|)),
    best one-to-one matching (Hungarian), matched sum divided by the larger set size.

    Parameters
    ----------
    found, planted : sequence of (rows, cols)
        Index arrays or boolean masks; e.g. ``partition.blocks()`` (checkerboard)
        or ``partition.diagonal_blocks()`` (block-diagonal).  A (rows, cols) pair of
        (k, m) and (k, n) boolean arrays, as sklearn's generators return, is accepted.
    """
    sets = []
    for name, bic in (("found", found), ("planted", planted)):
        if isinstance(bic, tuple) and len(bic) == 2 and np.ndim(bic[0]) == 2:
            bic = list(zip(bic[0], bic[1]))
        bic = [(set(_as_index(r).tolist()), set(_as_index(c).tolist())) for r, c in bic]
        if not bic:
            raise ValueError(f"{name} must hold at least one bicluster")
        sets.append(bic)
    sim = np.zeros((len(sets[0]), len(sets[1])))
    for i, (ra, ca) in enumerate(sets[0]):
        for j, (rb, cb) in enumerate(sets[1]):
            inter = len(ra & rb) * len(ca & cb)
            union = len(ra) * len(ca) + len(rb) * len(cb) - inter
            sim[i, j] = inter / union if union else 0.0
    ri, ci = linear_sum_assignment(-sim)
    return float(sim[ri, ci].sum() / max(sim.shape))
