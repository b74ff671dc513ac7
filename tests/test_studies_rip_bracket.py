"""studies/rip_bracket.py: the "δ_s < 0.5" counting rule and its verdict, on hand-made brackets."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from studies import rip_bracket as rb  # noqa: E402


@pytest.mark.parametrize("lower, upper, expected", [
    ([0.6, 0.7, 0.55], [0.9, 1.0, 0.8], ({"above": 3, "below": 0, "undecided": 0}, "no: every dictionary certified above")),
    ([0.6, 0.4, 0.45], [0.9, 0.49, 0.8], ({"above": 1, "below": 1, "undecided": 1}, "no: 1 of 3 certified above")),
    ([0.2, 0.3], [0.4, 0.45], ({"above": 0, "below": 2, "undecided": 0}, "yes: every dictionary certified below")),
    ([0.2, 0.5], [0.6, 0.7], ({"above": 0, "below": 0, "undecided": 2}, "undecided")),  # 0.5 itself is not above
])
def test_count_cell_and_classify(lower, upper, expected):
    c = rb.count_cell(lower, upper)
    counts, label = expected
    assert {k: c[k] for k in counts} == counts and c["dicts"] == len(lower)
    assert rb.classify(c) == label


def _frame(lower_by_norm):
    rows = []
    for columns, presets in lower_by_norm.items():
        for preset, lows in presets.items():
            for s in rb.SPARSITY:
                for t, low in enumerate(lows):
                    rows.append({"preset": preset, "scale": "unit", "normalisation": columns, "trial": t, "s": s,
                                 "paper_mean": rb.PAPER_TABLE4[preset][s][0], "paper_std": 0.03,
                                 "percentile_estimate": 0.14 if columns == rb.AS_DRAWN else 0.03,
                                 "random_best": 0.4, "lower": low + 0.1 * (s > 5), "upper": low + 0.4,
                                 "lower_by": "adversarial(+)", "upper_by": "gershgorin (+)"})
    return pd.DataFrame(rows)


def test_summary_and_verdict_count_both_normalisations():
    presets = list(rb.PAPER_TABLE4)
    drawn = {p: [0.6, 0.7] for p in presets}
    normed = {p: ([0.45, 0.7] if p == "extreme" else [0.6, 0.7]) for p in presets}
    table = rb.summary_table(_frame({rb.AS_DRAWN: drawn, rb.UNIT_NORM: normed}))
    assert len(table) == 24
    assert rb.counts(table, rb.AS_DRAWN) == {"cells": 12, "dicts": 2, "all_above": 12, "any_above": 12,
                                             "all_below": 0, "dict_cells_above": 24, "dict_cells": 24}
    norm = rb.counts(table, rb.UNIT_NORM)
    assert (norm["all_above"], norm["any_above"], norm["dict_cells_above"]) == (11, 12, 23)
    text = rb.verdict(table)
    assert "**12 of 12**" in text and "**11 of 12**" in text and "extreme s=5" in text
    assert "without column normalisation" in text
    assert np.isclose(table.lower_min.min(), 0.45)
