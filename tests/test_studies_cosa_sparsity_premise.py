"""studies/cosa_sparsity_premise.py: the nulls' shortcuts against explicit matrices, statistics by brute force."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
from numpy.testing import assert_allclose

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from studies import cosa_sparsity_premise as sp  # noqa: E402
from ripkit.conditioning import ls_core  # noqa: E402


def test_k_fraction_by_brute_force():
    y = np.array([[3.0, 0.0], [1.0, 0.0]])  # energies 9, 1, 0, 0: 9/10 = 0.9 reached by one entry
    assert sp.k_fraction(y) == 0.25
    y = np.ones((4, 4))
    assert sp.k_fraction(y) == 15 / 16  # 90 % of 16 equal entries needs 15 (14.4 rounded up)


def _setup(m=30, n=20, a=6, b=5):
    left, right, q_l, t_l, q_r, t_r = sp._factors(m, n, a, b, 0, "x")
    return left, right, q_l, np.linalg.inv(t_l), q_r, np.linalg.inv(t_r)


def test_gaussian_null_shortcut_is_the_least_squares_core():
    left, right, q_l, inv_l, q_r, inv_r = _setup()
    g = np.random.default_rng(1).standard_normal((30, 20))
    # L⁺ G R⁺ = T_L⁻¹ (Q_Lᵀ G Q_R) T_R⁻ᵀ: the null draws Q_Lᵀ G Q_R directly (i.i.d. Gaussian a×b)
    assert_allclose(ls_core(g, left, right), inv_l @ (q_l.T @ g @ q_r) @ inv_r.T, rtol=1e-10, atol=1e-12)


def test_same_spectrum_null_core_matches_explicit_matrix():
    left, right, q_l, inv_l, q_r, inv_r = _setup()
    rng = np.random.default_rng(2)
    u, v = sp._haar(rng, 30, 4), sp._haar(rng, 20, 4)
    sv = np.array([4.0, 2.0, 1.0, 0.5])
    explicit = (u * sv) @ v.T
    assert_allclose(np.linalg.svd(explicit, compute_uv=False)[:4], sv, rtol=1e-12)
    assert_allclose(sp.core_of_factors(u, sv, v, q_l, inv_l, q_r, inv_r), ls_core(explicit, left, right),
                    rtol=1e-10, atol=1e-12)


def test_energy_rows_expectation_and_eckart_young():
    dw = np.random.default_rng(3).standard_normal((40, 24))
    layer = SimpleNamespace(name="toy", delta_w=lambda: dw)
    rows = pd.DataFrame(sp.energy_rows("toy", layer, seed=0, rhos=(0.25, 0.5), draws=40))
    for r in rows.itertuples():
        assert abs(r.energy_mean - r.ab_over_mn) < 4 * r.energy_std / np.sqrt(r.draws) + 1e-3
        sv2 = np.linalg.svd(dw, compute_uv=False) ** 2
        assert_allclose(r.svd_energy_equal_params, sv2[:r.rank_equal_params].sum() / sv2.sum())


def test_checkpoint_discovery_and_run_verdicts(tmp_path):
    for folder in (tmp_path / "full", tmp_path / "minilm" / "lora-r8-s1", tmp_path / "minilm" / "full-s2"):
        folder.mkdir(parents=True)
        (folder / "ripkit_adapter.json").write_text(json.dumps({}))
        if folder.name != "full-s2":  # a compact run without tensors is skipped
            (folder / "adapter_model.safetensors").write_bytes(b"")
    found = sp.checkpoints(tmp_path)
    assert [label for label, _ in found] == ["full", "lora-r8 lora-r8-s1"]
    core = pd.DataFrame({"run": "r", "null": "n", "statistic": "k90", "observed": [0.3, 0.3],
                         "null_mean": 0.4, "p_less": [0.01, 0.03], "p_greater": [1.0, 0.99]})
    v = sp.run_verdicts(core).iloc[0]
    assert v.verdict == "sparser" and v.p_every_layer_less == 0.03 and v.layers_smaller_p05 == 2
