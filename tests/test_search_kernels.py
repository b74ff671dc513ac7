"""ripkit.rip._search_kernels against brute force: every candidate scored, no pruning."""
import numpy as np
import pytest

from ripkit.rip._search_kernels import kron_top_kernel, top_kernel


def _brute_kron_top(lams, vecs, gl_rows, gr_rows, d_left, d_right, members, sign, tries):
    """Every coupling summed in the kernel's order (i ascending, (V·G_R)·G_L), every score, then ranked."""
    s, n_pos = vecs.shape
    a, b = gl_rows.shape[1], gr_rows.shape[1]
    d = (d_left[:, None] * d_right[None, :]).T.ravel()  # j = k + a·l
    top = np.full((n_pos, tries), -1, np.int64)
    for p in range(n_pos):
        c = np.zeros((b, a))
        for i in range(s):
            c = c + (vecs[i, p] * gr_rows[i])[:, None] * gl_rows[i][None, :]
        c = c.ravel()
        h, mid = 0.5 * (lams[p] - d), 0.5 * (lams[p] + d)
        rad = np.sqrt(h * h + c * c)
        score = mid + rad if sign > 0 else rad - mid
        cand = np.flatnonzero(~members)
        ranked = cand[np.lexsort((cand, -score[cand]))][:tries]
        top[p, :len(ranked)] = ranked
    return top


def _case(seed, a, b, s, m=40, n=30):
    rng = np.random.default_rng(seed)
    left, right = rng.standard_normal((m, a)) / np.sqrt(m), rng.standard_normal((b, n)) / np.sqrt(n)
    g_left, g_right = left.T @ left, right @ right.T
    support = rng.choice(a * b, size=s, replace=False)
    if seed % 3 == 0:  # several members sharing L- or R-indices (the member-column path)
        half = support[: s // 2]
        support = np.unique(np.concatenate([half, half % a + a * ((half // a + 1) % b)]))
    k, l = support % a, support // a
    vecs = rng.standard_normal((len(support), len(support)))
    vecs /= np.linalg.norm(vecs, axis=0)
    lams = np.linalg.eigvalsh(g_right[np.ix_(l, l)] * g_left[np.ix_(k, k)])[-1] + rng.normal(0, 0.2, len(support))
    members = np.zeros(a * b, np.bool_)
    members[support] = True
    return (lams, vecs, np.ascontiguousarray(g_left[k]), np.ascontiguousarray(g_right[l]), np.diag(g_left).copy(),
            np.diag(g_right).copy(), members, np.unique(k))


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("seed", range(12))
def test_kron_top_pass_is_the_unpruned_ranking(sign, seed):
    a, b, s = [(12, 6, 4), (30, 20, 7), (40, 25, 10)][seed % 3]
    lams, vecs, gl, gr, dl, dr, members, cols = _case(seed, a, b, s)
    for tries in (1, 3):
        got = kron_top_kernel(lams, vecs, gl, gr, dl, dr, members, cols, sign, tries)
        np.testing.assert_array_equal(got, _brute_kron_top(lams, vecs, gl, gr, dl, dr, members, sign, tries))


def test_top_pass_ranks_by_score_then_index_and_pads():
    couplings = np.array([[0.0, 0.5, -0.5, 0.1]])
    diag = np.ones(4)
    members = np.array([True, False, False, False])
    top = top_kernel(np.array([1.0]), couplings, diag, members, 1.0, 4, False)
    np.testing.assert_array_equal(top, [[1, 2, 3, -1]])  # ±0.5 tie: the smaller index first; member 0 left out
