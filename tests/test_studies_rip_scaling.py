"""studies/rip_scaling.py: the fitted C against a direct least-squares fit; brackets against brute force."""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.testing import assert_allclose

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from studies import rip_scaling as rs  # noqa: E402
from ripkit.kron import KroneckerDictionary  # noqa: E402
from ripkit.projections import layer_seed  # noqa: E402


def test_fit_c_equals_lstsq_through_origin():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.05, 0.5, 30)
    y = 1.9 * x * rng.uniform(0.9, 1.1, 30)
    f = rs.fit_c(x, y)
    c_ls = np.linalg.lstsq(x[:, None], y, rcond=None)[0][0]
    assert_allclose(f["C"], c_ls, rtol=1e-12)
    assert f["ci_low"] <= f["C"] <= f["ci_high"] and f["cv"] < 0.1
    assert_allclose([f["ratio_min"], f["ratio_max"]], [np.min(y / x), np.max(y / x)])


def _exact_delta(dense, s):
    gram = dense.T @ dense
    worst = 0.0
    for sup in itertools.combinations(range(gram.shape[0]), s):
        ev = np.linalg.eigvalsh(gram[np.ix_(sup, sup)])
        worst = max(worst, ev[-1] - 1, 1 - ev[0])
    return worst


def test_bracket_point_contains_brute_force_delta():
    point = {"family": "test", "model": "", "modules": "", "m": 24, "n": 20, "a": 6, "b": 5, "sparsity": (2, 3)}
    rows = pd.DataFrame(rs.bracket_point(point, seed=1, budget=None))
    d = KroneckerDictionary.from_seed(24, 20, 6, 5, layer_seed(1, "24x20/6x5"))
    for columns, dd in ((rs.AS_DRAWN, d), (rs.UNIT_NORM, d.normalized())):
        dense = dd.to_dense()
        for s in (2, 3):
            r = rows[(rows.normalisation == columns) & (rows.s == s)].iloc[0]
            exact = _exact_delta(dense, s)
            assert r.lower <= exact + 1e-9 and exact <= r.upper + 1e-9


def test_readings_and_fits_table():
    df = pd.DataFrame({"family": "f", "normalisation": rs.AS_DRAWN, "m": [512, 1024, 2048], "n": [256, 512, 1024],
                       "a": [32, 64, 128], "b": [8, 16, 32], "s": 5})
    df = rs.add_readings(df)
    assert_allclose(df["x[M = min(m, n)]"], np.sqrt(5 * np.log(df.a * df.b) / df.n))
    assert_allclose(df["x[M = mn (rows of Ψ)]"], np.sqrt(5 * np.log(df.a * df.b) / (df.m * df.n)))
    df["lower"] = 1.5 * df["x[M = min(m, n)]"]  # exactly the min(m, n) law
    df = pd.concat([df, df.assign(normalisation=rs.UNIT_NORM)], ignore_index=True)
    fit = rs.fits(df).set_index(["normalisation", "points from", "reading"])
    row = fit.loc[(rs.AS_DRAWN, "all", "M = min(m, n)")]
    assert_allclose(row.C, 1.5) and row.cv < 1e-12 and row.fits
    assert not fit.loc[(rs.AS_DRAWN, "all", "M = mn (rows of Ψ)")].fits
