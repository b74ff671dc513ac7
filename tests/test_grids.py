"""Start supports from over-full rectangles (ripkit.rip.grids) against brute force."""
import itertools

import numpy as np

from ripkit.rip.grids import grid_starts


def test_each_start_is_the_best_s_cells_of_its_rectangle():
    rng = np.random.default_rng(3)
    left, right = rng.standard_normal((9, 6)), rng.standard_normal((5, 8))
    g_left, g_right = left.T @ left, right @ right.T
    a, s = 6, 3
    found_l = {2: {"support_max": (1, 4), "support_min": (0, 5)}, 3: {"support_max": (0, 2, 3), "support_min": (1, 2, 5)}}
    found_r = {2: {"support_max": (0, 3), "support_min": (1, 4)}}
    starts = grid_starts(g_left, g_right, found_l, found_r, s, keep=10)
    gram = np.kron(g_right, g_left)  # column k + a·l
    for side, key, pick in (("max", "support_max", max), ("min", "support_min", min)):
        expected = []
        for p in (2, 3):  # 2×2 = 4 and 3×2 = 6 cells: s < pq ≤ 2s
            cells = [k + a * l for l in found_r[2][key] for k in found_l[p][key]]
            ev = {c: np.linalg.eigvalsh(gram[np.ix_(c, c)]) for c in itertools.combinations(sorted(cells), s)}
            best = pick(ev, key=lambda c: ev[c][-1] if side == "max" else ev[c][0])
            expected.append((ev[best][-1] if side == "max" else ev[best][0], best))
        expected.sort(key=lambda vb: -vb[0] if side == "max" else vb[0])  # most extreme first
        assert starts[side] == [b for _, b in expected]
    assert len(grid_starts(g_left, g_right, found_l, found_r, s, keep=1)["max"]) == 1
    # ``beat``: only starts strictly beyond the given value on their side
    value = {side: [] for side in ("max", "min")}
    for side in value:
        for sup in starts[side]:
            w = np.linalg.eigvalsh(gram[np.ix_(sup, sup)])
            value[side].append(w[-1] if side == "max" else w[0])
    bar = {"max": value["max"][0] - 1e-9, "min": value["min"][0] + 1e-9}  # only the best passes
    assert grid_starts(g_left, g_right, found_l, found_r, s, keep=10, beat=bar) == \
        {"max": starts["max"][:1], "min": starts["min"][:1]}
    too_high = {"max": value["max"][0] + 1e-9, "min": value["min"][0] - 1e-9}
    assert grid_starts(g_left, g_right, found_l, found_r, s, keep=10, beat=too_high) == {"max": [], "min": []}
    assert grid_starts(g_left, g_right, found_l, found_r, s, max_subsets=3) == {"max": [], "min": []}
