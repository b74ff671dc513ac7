"""ripkit.subspaces against scipy.linalg.subspace_angles and constructed angles."""
import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st
from numpy.testing import assert_allclose
from scipy.linalg import subspace_angles

from ripkit import subspaces
from ripkit.partition import Partition, contiguous


@settings(max_examples=20, deadline=None)
@given(m=st.integers(4, 30), p=st.integers(1, 4), q=st.integers(1, 4), seed=st.integers(0, 10**6))
@example(m=4, p=3, q=2, seed=4)  # intersecting subspaces: scipy's zero angle is 3e-8
def test_principal_angles_match_scipy(m, p, q, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((m, p)), rng.standard_normal((m, q))
    ours = subspaces.principal_angles(a, b)
    # scipy returns an exactly-zero angle (intersecting subspaces, p + q > m) as ~3e-8, the
    # sqrt(eps) accuracy of its cosine branch; ours uses the sine branch there, hence atol 1e-7.
    assert_allclose(ours, np.sort(subspace_angles(a, b)), atol=1e-7)
    assert_allclose(ours, subspaces.principal_angles(b, a), atol=1e-12)  # symmetric
    if p + q > m:  # the subspaces intersect: the smallest angle is exactly zero
        assert ours[0] < 1e-12


def test_constructed_angles_including_tiny_ones():
    # span{e1, e2} vs span{cos t e1 + sin t e3, e2 rotated by s}: angles exactly t and s.
    t, s = 1e-7, 0.9
    e = np.eye(5)
    a = e[:, :2]
    b = np.column_stack([np.cos(t) * e[:, 0] + np.sin(t) * e[:, 2], np.cos(s) * e[:, 1] + np.sin(s) * e[:, 3]])
    assert_allclose(subspaces.principal_angles(a, b), [t, s], rtol=1e-9)
    assert_allclose(subspaces.grassmann_distance(a, b), np.hypot(t, s), rtol=1e-9)
    assert_allclose(subspaces.grassmann_distance(a, b, metric="chordal"), np.hypot(np.sin(t), np.sin(s)), rtol=1e-9)


def test_orthogonal_and_identical_subspaces():
    e = np.eye(6)
    assert_allclose(subspaces.principal_angles(e[:, :2], e[:, 2:5]), [np.pi / 2] * 2, atol=1e-14)
    m = np.random.default_rng(0).standard_normal((6, 3))
    assert_allclose(subspaces.principal_angles(m, m @ np.diag([2.0, -1.0, 5.0])), 0.0, atol=1e-7)


def test_orthonormal_basis_drops_dependent_columns():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((8, 2))
    q = subspaces.orthonormal_basis(np.column_stack([a, a @ [1.0, 2.0]]))
    assert q.shape == (8, 2)
    assert_allclose(q.T @ q, np.eye(2), atol=1e-12)


def test_block_angles_prop2_orthogonal_blocks_are_90_degrees():
    # Four blocks with mutually orthogonal column (A_i) and row (B_i) bases (CPS Prop. 2).
    rng = np.random.default_rng(2)
    h, r = 12, 2
    qa = np.linalg.qr(rng.standard_normal((h, 4 * r)))[0]
    qb = np.linalg.qr(rng.standard_normal((h, 4 * r)))[0]
    blk = [qa[:, i * r:(i + 1) * r] @ qb[:, i * r:(i + 1) * r].T for i in range(4)]
    w = np.block([[blk[0], blk[2]], [blk[1], blk[3]]])
    res = subspaces.block_angles(w, contiguous(w, 2), dim=r)
    assert len(res.pairs) == 4
    assert_allclose(res.mean_degrees, 90.0, atol=1e-8)
    # Shared bases: every block = same rank-2 product → 0 degrees.
    same = np.block([[blk[0], blk[0]], [blk[0], blk[0]]])
    assert_allclose(subspaces.block_angles(same, contiguous(same, 2), dim=r).mean_degrees, 0.0, atol=1e-5)


def test_block_angles_factorized_equals_dense_and_matches_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((20, 4)), rng.standard_normal((4, 18))
    w = a @ b
    part = Partition(rng.permutation(20), rng.permutation(18), (0, 7, 20), (0, 9, 18))
    dense = subspaces.block_angles(w, part, dim=2)
    fact = subspaces.block_angles((a, b), part, dim=2)
    assert_allclose(fact.mean_degrees, dense.mean_degrees, atol=1e-8)
    # Independent recomputation of one column-side pair with numpy SVD + scipy angles.
    r0, (c0, c1) = part.row_groups()[0], part.col_groups()
    u0 = np.linalg.svd(w[np.ix_(r0, c0)])[0][:, :2]
    u1 = np.linalg.svd(w[np.ix_(r0, c1)])[0][:, :2]
    ref = np.degrees(subspace_angles(u0, u1).mean())
    pair = next(p for p in dense.pairs if p["side"] == "column" and p["block_a"] == (0, 0))
    assert_allclose(pair["degrees"], ref, atol=1e-8)
    assert dense.to_dict()["statistic"] == "mean"


@pytest.mark.parametrize("kwargs, match", [
    ({"side": "diag"}, "side='diag' must be one of"),
    ({"statistic": "max"}, "statistic='max' must be one of"),
    ({"dim": 0}, "dim=0 must be >= 1"),
])
def test_block_angles_bad_options(kwargs, match):
    w = np.ones((4, 4))
    with pytest.raises(ValueError, match=match):
        subspaces.block_angles(w, contiguous(w, 2), **kwargs)


def test_principal_angles_bad_shapes():
    with pytest.raises(ValueError, match="same number of rows"):
        subspaces.principal_angles(np.ones((3, 1)), np.ones((4, 1)))
    with pytest.raises(ValueError, match="a must be a 2-D array"):
        subspaces.principal_angles(np.ones(3), np.ones((3, 1)))
    with pytest.raises(ValueError, match="partition shape"):
        subspaces.block_angles(np.ones((4, 4)), contiguous(np.ones((4, 6)), 2))


# ---- the paper's block-angle metric (CPS-LoRA, paragraph on computing subspace angles) ----------
from ripkit.nulls import haar_bases  # noqa: E402
from ripkit.partition import random_partition  # noqa: E402


def _direct_paper_metric(w, part, dim, statistic):
    """The paragraph read literally, with scipy: SVD per block, every pair, both sides, larger kept."""
    reduce = {"max": np.max, "mean": np.mean, "min": np.min}[statistic]
    bases = []
    for rows, cols in part.blocks():
        u, _, vt = np.linalg.svd(w[np.ix_(rows, cols)], full_matrices=False)
        bases.append((u[:, :dim], vt[:dim].T))
    pairs = []
    for i in range(len(bases)):
        for j in range(i + 1, len(bases)):
            left = np.degrees(reduce(subspace_angles(bases[i][0], bases[j][0])))
            right = np.degrees(reduce(subspace_angles(bases[i][1], bases[j][1])))
            pairs.append(max(left, right))
    return np.array(pairs)


@pytest.mark.parametrize("k, dim, statistic", [(2, 3, "mean"), (2, 3, "max"), (3, 2, "min"), (4, 1, "mean")])
def test_paper_block_angles_match_a_direct_scipy_loop(k, dim, statistic):
    rng = np.random.default_rng(k * 10 + dim)
    w = rng.standard_normal((24, 12)) @ rng.standard_normal((12, 36))
    part = random_partition(w, k, seed=1)
    res = subspaces.paper_block_angles(w, part, dim=dim, statistic=statistic)
    want = _direct_paper_metric(w, part, dim, statistic)
    assert res.n_blocks == k * k and res.pair_degrees.shape == (k * k * (k * k - 1) // 2,)
    assert_allclose(res.pair_degrees, want, atol=1e-6)
    assert_allclose(res.mean_degrees, want.mean(), atol=1e-6)
    a, b = rng.standard_normal((24, 5)), rng.standard_normal((5, 36))  # factors give the same answer
    assert_allclose(subspaces.paper_block_angles((a, b), part, dim=dim).mean_degrees,
                    subspaces.paper_block_angles(a @ b, part, dim=dim).mean_degrees, atol=1e-9)


def test_batched_subspace_angles_match_scipy_including_small_angles():
    rng = np.random.default_rng(0)
    qa, qb = haar_bases(30, 8, 3, seed=1), haar_bases(30, 8, 2, seed=2)
    qb[0] = qa[0][:, :2] + 1e-9 * qb[0]  # tiny angles: the sine branch
    qb[0] = np.linalg.qr(qb[0])[0]
    got = subspaces.batched_subspace_angles(qa, qb)
    want = np.array([subspace_angles(a, b) for a, b in zip(qa, qb)])
    assert_allclose(got, want, atol=1e-8)
    assert got[0].max() < 1e-8
    with pytest.raises(ValueError, match="equal P and d"):
        subspaces.batched_subspace_angles(qa, qb[:3])


def test_paper_block_angles_orthogonal_blocks_and_refusals():
    # Prop. 2's blocks, each block's bases orthogonal to every other block's: 90°
    e = np.eye(8)
    w = np.zeros((16, 16))
    for b, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        w[8 * i:8 * i + 8, 8 * j:8 * j + 8] = np.outer(e[2 * b], e[2 * b + 1])
    assert_allclose(subspaces.paper_block_angles(w, contiguous(w, 2), dim=1).mean_degrees, 90.0, atol=1e-12)
    with pytest.raises(ValueError, match="blocks of one shape"):
        subspaces.paper_block_angles(np.ones((5, 4)), contiguous(np.ones((5, 4)), 2), dim=1)
    with pytest.raises(ValueError, match="dim=9 must be <="):
        subspaces.paper_block_angles(w, contiguous(w, 2), dim=9)
    with pytest.raises(ValueError, match="statistic"):
        subspaces.paper_block_angles(w, contiguous(w, 2), dim=1, statistic="median")
