"""studies/cs_phase_transition.py: dictionaries against numpy.kron, supports, the counting and stopping rules."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.testing import assert_allclose

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from studies import cs_phase_transition as cs  # noqa: E402
from ripkit.projections import projection_pair  # noqa: E402


def test_kronecker_dictionary_is_normalised_numpy_kron():
    phi = cs.dictionary("kronecker", 6, seed=4, trial=1)
    left, right = projection_pair(6, 6, cs.A, cs.B, np.random.SeedSequence(4, spawn_key=(6, 1, 0)))
    ref = np.kron(right.T, left)
    assert_allclose(phi, ref / np.linalg.norm(ref, axis=0), rtol=1e-12)
    gauss = cs.dictionary("gaussian", 6, seed=4, trial=1)
    assert gauss.shape == (36, cs.A * cs.B) and np.allclose(np.linalg.norm(gauss, axis=0), 1)


def test_one_column_support_lies_in_one_column_of_y():
    rng = np.random.default_rng(0)
    sup = cs.support("one column", 10, rng)
    assert len(set(sup // cs.A)) == 1 and len(set(sup)) == 10
    assert len(set(cs.support("uniform", 10, rng))) == 10


def test_cell_rules_on_the_smallest_budget():
    rows = pd.DataFrame(cs.cell_runs("kronecker", "one column", "OMP", 6, trials=2, seed=0))
    assert (rows[rows.s > cs.A].status == "n/a (s > a)").all()
    run = rows[rows.status == "run"]
    assert run.s.min() == 1 and (run.successes <= 2).all()
    # after two consecutive zero-success levels nothing more is run
    zero = (run.successes == 0).astype(int).to_numpy()
    stop = next((i for i in range(1, len(zero)) if zero[i] and zero[i - 1]), None)
    if stop is not None:
        assert stop == len(zero) - 1 and (rows[rows.s > run.s.max()].status.isin(["not run", "n/a (s > a)"])).all()
    rows = pd.DataFrame(cs.cell_runs("gaussian", "uniform", "BP", 6, trials=1, seed=0))
    assert (rows[rows.s > 36].status.isin(["by counting (s > mn)", "not run"])).all()


def test_transitions_s50():
    df = pd.DataFrame({"dictionary": ["kronecker"] * 3 + ["gaussian"] * 3, "support": "uniform", "solver": "OMP",
                       "measurements": 36, "s": [1, 2, 4] * 2, "rate": [1, 0.5, 0.2, 1, 1, 0.6]})
    tr = cs.transitions(df)
    assert (tr.kronecker.iloc[0], tr.gaussian.iloc[0], tr["gaussian / kronecker"].iloc[0]) == (2, 4, 2)
    assert "uniform supports, OMP" in cs.verdict(pd.concat([tr, tr.assign(support="one column")]))
