"""The coupling bound (ripkit.rip.coupling) against brute force on every support of small Kronecker Grams."""
import itertools

import numpy as np
import pytest

from ripkit.kron import KroneckerDictionary
from ripkit.rip.bracket import rip_bracket
from ripkit.rip.coupling import _compositions, _n_compositions, coupling_bound, coupling_evaluations
from ripkit.rip.exhaustive import exact_rip
from ripkit.rip.upper import group_bound
from _brute import exact_profile, small_kron


@pytest.mark.parametrize("seed", range(12))
def test_per_support_inequality_and_bound_hold_on_every_support(seed):
    """λ_min(N) ≤ λ_min(G_S) ≤ λ_max(G_S) ≤ λ_max(M) for the R-split of every support, and the
    maximised bound above λ⁺ (below λ⁻) for both splits, never looser than the group bound."""
    m, n, a, b = 3 + seed % 5, 4 + seed % 3, 4 + seed % 2, 3 + seed % 2
    d, g_left, g_right, gram = small_kron(seed, m, n, a, b)
    for s in (2, 3, 4, 5):
        hl, ll = exact_profile(g_left, s)
        hr, lr = exact_profile(g_right, s)
        lam_plus, lam_minus = -np.inf, np.inf
        for sup in itertools.combinations(range(a * b), s):
            ev = np.linalg.eigvalsh(gram[np.ix_(sup, sup)])
            lam_plus, lam_minus = max(lam_plus, ev[-1]), min(lam_minus, ev[0])
            ks, ls = np.array(sup) % a, np.array(sup) // a
            js = sorted(set(ls.tolist()))
            g = [int(np.sum(ls == l)) for l in js]
            blk = g_right[np.ix_(js, js)]
            root = np.sqrt(hl[g])
            big = np.abs(blk) * np.outer(root, root)
            np.fill_diagonal(big, np.diag(blk) * hl[g])
            small = -np.abs(blk) * np.outer(root, root)
            np.fill_diagonal(small, np.diag(blk) * ll[g])
            assert ev[-1] <= np.linalg.eigvalsh(big)[-1] * (1 + 1e-12)
            assert ev[0] >= np.linalg.eigvalsh(small)[0] - 1e-12 * abs(ev[0]) - 1e-12
        group = group_bound(hl, ll, hr, lr, s)
        for bound in (coupling_bound(g_right, hr, lr, hl, ll, s), coupling_bound(g_left, hl, ll, hr, lr, s)):
            assert lam_plus <= bound[0] * (1 + 1e-12) and bound[0] <= group[0] * (1 + 1e-12)
            assert lam_minus >= bound[1] - 1e-12 * (1 + abs(lam_minus)) and bound[1] >= group[1] * (1 - 1e-12)


def test_counts_and_refusal():
    for s in range(1, 10):
        for q in range(1, s + 1):
            for top in range(1, s + 1):
                assert _n_compositions(s, q, top) == sum(1 for _ in _compositions(s, q, top))
    assert coupling_evaluations(8, 32, 5) == 28 * 4 + 56 * 6 + 70 * 4
    g = np.eye(30)
    prof = np.r_[np.nan, np.ones(5)], np.r_[np.nan, np.ones(5)]
    assert coupling_bound(g, *prof, *prof, 5, max_evaluations=10) is None


@pytest.mark.slow
def test_paper_preset_brackets_contain_the_exact_constant():
    """extreme (512, 256, 32, 8), s = 4: the bracket (coupling bound on) against all C(256, 4) supports."""
    d = KroneckerDictionary.from_seed(512, 256, 32, 8, seed=0)
    g_left, g_right = d.gram_factors()
    ex = exact_rip(np.kron(g_right, g_left), 4, max_supports=10**9)
    br = rip_bracket(d, 4, n_random=100, seed=0)
    assert br.lower <= ex.delta <= br.upper
    assert (br.upper - br.lower) / br.lower < 0.10
