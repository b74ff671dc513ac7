"""Smoke tests of the CoSA study scripts (studies/cosa_*.py) on tiny sizes; < 60 s in all."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from studies import _trained, cosa_ab_sweep, cosa_fig4, cosa_params_memory, cosa_table4, cosa_trained_core  # noqa: E402
from ripkit.rip import PRESETS, rip_trials  # noqa: E402


# ---- cosa_table4 ---------------------------------------------------------------------------
def test_table4_estimates_match_a_dense_recomputation():
    from ripkit.rip import sample_sparse_vectors, trial_dictionary

    draws = cosa_table4.estimates("extreme", trials=2, n_samples=50, seed=3, jobs=1)
    p = PRESETS["extreme"]
    for t in range(2):
        d = trial_dictionary(p.m, p.n, p.a, p.b, 3, t)
        smp = sample_sparse_vectors(p.a * p.b, 5, 50, np.random.SeedSequence(3, spawn_key=(t, 1, 5)))
        ratios = []
        for sup, val in zip(smp.supports, smp.values):  # ‖L·Y·R‖² / ‖Y‖² by plain matrix products
            y = np.zeros(p.a * p.b)
            y[sup] = val
            y = y.reshape(p.a, p.b, order="F")
            ratios.append(np.sum((d.left @ y @ d.right) ** 2) / np.sum(y ** 2))
        dev = np.abs(np.array(ratios) - 1)
        row = draws[(draws.trial == t) & (draws.s == 5)].iloc[0]
        assert_allclose(row.delta, np.percentile(dev, 95), rtol=1e-10)
        assert_allclose(row.abs_dev_std, dev.std(ddof=1), rtol=1e-10)


def test_table4_judge_cell_rule():
    import pandas as pd

    paper = cosa_table4.PAPER_TABLE4["moderate"][10][0]  # 0.149
    vals = np.linspace(0.10, 0.12, 19)
    cell = pd.DataFrame({"trial": range(19), "delta": vals, "abs_dev_std": 0.03})
    row = cosa_table4.judge_cell("moderate", 10, cell)
    assert_allclose(row["p_two_sided"], 2 / 20)  # above all 19 draws: 2·(1 + 0)/(1 + 19)
    assert_allclose(row["z"], (paper - vals.mean()) / vals.std(ddof=1))
    assert row["reproduces"]  # 0.1 ≥ 0.05: 19 dictionaries cannot reject two-sided
    many = pd.DataFrame({"trial": range(99), "delta": np.linspace(0.10, 0.12, 99), "abs_dev_std": 0.03})
    row = cosa_table4.judge_cell("moderate", 10, many)
    assert_allclose(row["p_two_sided"], 2 / 100) and not row["reproduces"]
    table = pd.DataFrame([row, cosa_table4.judge_cell("moderate", 5, many.assign(delta=many.delta + 0.06))])
    text = cosa_table4.verdict(table)
    assert "1 of 2 cells reproduce" in text and "within-sample spread" in text


# ---- cosa_fig4 -----------------------------------------------------------------------------
def test_fig4_measure_and_implied_constants(tmp_path):
    table, per_trial = cosa_fig4.measure(trials=2, n_samples=40, seed=0, per_trial=True)
    assert len(table) == 12 and (table.theory_C1 > 0).all() and len(per_trial) == 24
    consts = cosa_fig4.implied_constants(table)
    row = consts[(consts.reading == "m=mn (rows of Ψ), n=ab") & (consts.group == "128–512×")
                 & (consts.empirical == "paper Table 4")].iloc[0]
    # From the paper's own Table 4: C ≈ 2.5 reproduces its stated 0.23–0.91 at both ends.
    assert_allclose([row.C_for_paper_min, row.C_for_paper_max], [2.50, 2.52], atol=0.01)
    assert row.one_C_fits
    kfit = cosa_fig4.fitted_k(table)
    # K = C/√m: the same number as C at m = mn divided by √(mn)
    k_high = kfit[(kfit.group == "128–512×") & (kfit.end == "high")].K.iloc[0]
    assert_allclose(k_high * np.sqrt(512 * 256), row.C_for_paper_max, rtol=1e-12)
    cvals = cosa_fig4.implied_c(0.007, 0.006, 0.008)
    assert_allclose(cvals.set_index("reading").loc["m = min(m, n)", "C"], 0.007 * 16)
    k_d = cosa_fig4.k_over_dictionaries(per_trial)
    assert k_d.shape == (2,) and (k_d > 0).all()
    coh, mus = cosa_fig4.coherence_table(draws=30, seed=0)
    assert_allclose(coh.set_index("preset").loc["extreme", "p_below_sqrt20"],
                    np.mean(mus["extreme"] < 1 / np.sqrt(20)))
    text = cosa_fig4.verdict(table, consts, kfit, k_d, cvals, coh)
    assert "contradict" in text and "1/(2s−1)" in text and "C/√m" in text
    cosa_fig4.plot(table, coh)


# ---- cosa_params_memory ----------------------------------------------------------------------
@pytest.mark.parametrize("model, lora, cosa", [
    ("Llama-3.2-1B", 90_177_536, 29_360_128),
    ("Llama-3.1-8B", 335_544_320, 58_720_256),
    ("Qwen2-7B", 322_961_408, 51_380_224),
])
def test_params_from_published_shapes(model, lora, cosa):
    cfg = cosa_params_memory.MODELS[model]
    counts = cosa_params_memory.count_params(cosa_params_memory.module_shapes(cfg), cfg["layers"])
    assert counts["lora"] == lora and counts["cosa"] == cosa


def test_params_memory_table_and_verdict():
    pub = cosa_params_memory.published_table()
    r8 = pub.set_index("model").loc["Llama-3.1-8B"]
    assert_allclose(r8["lora_MB[fp32 weights + fp32 AdamW (12 B)]"], 335_544_320 * 12 / 1e6)
    assert "Not consistent" in cosa_params_memory.verdict(pub)


# ---- cosa_trained_core ---------------------------------------------------------------------
def _tiny_cosa_checkpoint(folder: Path) -> Path:
    import torch
    from torch import nn

    from ripkit.adapters import adapter_modules, inject
    from ripkit.checkpoints import save_adapter

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.up, self.down = nn.Linear(24, 40), nn.Linear(40, 24)

    model = Tiny()
    inject(model, targets=("up", "down"), method="cosa", a=8, b=6, head=())
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for mod in adapter_modules(model).values():
            low_rank = torch.randn(8, 1, generator=gen) @ torch.randn(1, 6, generator=gen)
            mod.core.copy_(1e-3 * low_rank)
    return save_adapter(model, folder / "tiny-cosa", metadata={"method": "cosa"})


def test_trained_core_on_tiny_checkpoint(tmp_path):
    ckpt = _tiny_cosa_checkpoint(tmp_path)
    summ = _trained.checkpoint_summary(ckpt)
    table = cosa_trained_core.layer_table("tiny", {0: summ})
    assert (table.energy_rank == 1).all()  # rank-one cores
    verdicts, _ = cosa_trained_core.tests(table, draws=20, seed=0)
    rank = verdicts[verdicts.claim.str.startswith("low rank")].iloc[0]
    assert rank["p (every seed)"] == pytest.approx(1 / 21)  # below every null draw
    assert cosa_trained_core.main([str(ckpt), "--quick", "--out", str(tmp_path / "fig")]) == 0
    for ext in ("png", "csv", "md"):
        assert (tmp_path / "fig" / f"cosa_trained_core.{ext}").stat().st_size > 0


def test_null_fraction_below_matches_the_analytic_gaussian():
    # an equal-norm Gaussian core's fraction below 1e-4 is ≈ erf(1e-4/(σ√2)), σ = norm/√(ab)
    from math import erf, sqrt

    got = cosa_trained_core.null_fraction_below(np.array([0.05]), (128, 128), 50, np.random.default_rng(0))
    sigma = 0.05 / 128
    assert_allclose(got.mean(), erf(1e-4 / (sigma * sqrt(2))), atol=0.002)


def test_energy_rank_and_eber_match_ripkit_spectra():
    from ripkit import spectra

    s = np.sort(np.random.default_rng(1).random(20))[::-1]
    assert cosa_trained_core.energy_rank(s) == spectra.energy_rank(s, energy=0.95)
    assert cosa_trained_core.eber(s) == pytest.approx(spectra.eber(s), rel=1e-12)


# ---- cosa_ab_sweep -------------------------------------------------------------------------
def test_ab_sweep_asymmetry_pairs_by_seed():
    import pandas as pd

    rows = [(a, b, s, 0.7 + 0.01 * (a > b) - 0.01 * (a < b) + 0.001 * s)
            for a in (32, 64, 128) for b in (32, 64, 128) for s in range(3)]
    table = pd.DataFrame([{"a": a, "b": b, "seed": s, "accuracy": acc} for a, b, s, acc in rows])
    diffs, tests = cosa_ab_sweep.asymmetry(table)
    assert len(diffs) == 9 and np.allclose(diffs.difference_points, 2.0)
    assert tests["seed"].verdict == "inconclusive" and "smallest attainable p = 0.125" in tests["seed"].note
    assert tests["pooled"].verdict == "agrees"  # 9 of 9 positive: p = 1/512, reported beside
    d, v = cosa_ab_sweep.size_effect(table)
    assert np.allclose(d, 0.0) and v.verdict == "inconclusive"
    cosa_ab_sweep.figure(table)




@pytest.mark.slow
def test_trained_core_and_ab_sweep_run_on_a_tiny_campaign(tmp_path, monkeypatch):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _campaign import tiny_campaign, use_tmp_cache

    runs = tiny_campaign(tmp_path / "runs", groups=("cosa-a128-b128", "cosa-a32-b64", "cosa-a64-b32"))
    use_tmp_cache(monkeypatch, tmp_path)
    assert cosa_trained_core.main(["--quick", "--runs", str(runs), "--out", str(tmp_path / "fig")]) == 0
    assert cosa_ab_sweep.main(["--runs", str(runs), "--out", str(tmp_path / "fig")]) == 0
    ab = (tmp_path / "fig" / "cosa_ab_sweep.md").read_text()
    assert "(64,32) − (32,64)" in ab and "Verdict: inconclusive" in ab  # 2 seeds can never reach 0.05
    core = (tmp_path / "fig" / "cosa_trained_core.md").read_text()
    assert "`cosa-a128-b128`: 2 seed(s) [0, 1]" in core
