"""Smoke and core-function tests of the CPS-LoRA studies (studies/cps_*.py), tiny sizes.

Every ``main(["--quick", "--out", tmp])`` must write <name>.{png,csv,md} into tmp (never into
figures/); the planted constructions must have the ranks the paper states.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

STUDIES = Path(__file__).resolve().parents[1] / "studies"
sys.path.insert(0, str(STUDIES))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _campaign import tiny_campaign, use_tmp_cache  # noqa: E402

common = importlib.import_module("_cps_common")
prop2 = importlib.import_module("cps_prop2")
recon = importlib.import_module("cps_reconstruction")
strategies = importlib.import_module("cps_partition_strategies")
granularity = importlib.import_module("cps_granularity")


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    return tiny_campaign(tmp_path_factory.mktemp("campaign"), groups=(
        "lora-r8", "full", "block-lora-k2-r8", "cps-lora-k2-r8", "cps-lora-k4-r8", "cps-lora-k8-r8"))


# ------------------------------------------------------------------ planted constructions
@pytest.mark.parametrize("n,r", [(32, 2), (64, 4)])
def test_prop2_local_rank_is_4r_global_2r_same_params(n, r):
    rng = np.random.default_rng(0)
    a, b = prop2.global_factors(n, r, rng)
    ma, mb = prop2.local_factors(n, r, rng, orthogonal=True)
    assert np.linalg.matrix_rank(a @ b) == 2 * r
    assert np.linalg.matrix_rank(ma @ mb) == 4 * r
    assert prop2.params_global(n, r) == prop2.params_local(n, r) == 4 * n * r


def test_prop2_local_blocks_are_mutually_orthogonal():
    n, r, h = 32, 3, 16
    ma, mb = prop2.local_factors(n, r, np.random.default_rng(1), orthogonal=True)
    a1, a3 = ma[:h, :r], ma[:h, r:2 * r]
    b1, b2 = mb[:r, :h], mb[2 * r:3 * r, :h]
    assert_allclose(a1.T @ a3, 0, atol=1e-12)
    assert_allclose(b1 @ b2.T, 0, atol=1e-12)


@pytest.mark.parametrize("share", [0, 2, 4])
def test_reconstruction_overlap_rank_is_4r_minus_s(share):
    w = recon.two_by_two(64, 4, np.random.default_rng(share), spectrum="gaussian", share_b12=share)
    assert np.linalg.matrix_rank(w) == 16 - share


def test_reconstruction_literal_a1_a2_overlap_keeps_rank_4r():
    w = recon.two_by_two(64, 4, np.random.default_rng(0), spectrum="gaussian", share_a12=2)
    assert np.linalg.matrix_rank(w) == 16


def test_reconstruction_equal_spectra_ratio_is_one_half():
    w = recon.two_by_two(64, 4, np.random.default_rng(0), spectrum="equal")
    cur = recon.curves(w, 4, seed=0)
    assert_allclose(recon.ratios(cur), 0.5)
    assert recon.params_to_reach(cur, "local, true 2×2 partition", 0.0) == 4 * 64 * 4
    assert recon.params_to_reach(cur, "global", 0.0) == 2 * 64 * 16


def test_orthogonal_blocks_rejects_too_many_directions():
    with pytest.raises(ValueError, match="k\\*rank"):
        common.orthogonal_blocks(16, 2, 8, np.random.default_rng(0))


def test_hide_returns_partition_that_undoes_the_shuffle():
    w = np.arange(36.0).reshape(6, 6)
    hidden, truth = common.hide(w, 2, np.random.default_rng(0))
    assert_allclose(truth.apply(hidden), w)


def test_block_fit_is_exact_for_planted_block_ranks():
    rng = np.random.default_rng(0)
    w, truth = strategies.planted("orthogonal", 64, 0.0, rng)
    assert_allclose(strategies.block_fit(w, truth, 4), w, atol=1e-10)


def test_granularity_subspace_null_is_the_layer_mean_of_random_block_angles():
    from ripkit.nulls import random_block_angles

    got = granularity.subspace_null(2, 1, 3, 4, seed=0, shape=(32, 32))
    raw = random_block_angles(4, (16, 16), 1, draws=12, seed=np.random.default_rng([0, 2, 1, 32, 32]))
    assert_allclose(got["mean"], raw["mean"].reshape(4, 3).mean(axis=1))


def test_planted_control_scores_orthogonal_blocks_90_degrees():
    control = granularity.planted_control(0)
    assert control["shared pairs"] == pytest.approx(90.0, abs=1e-8)  # Prop. 2: orthogonal where comparable
    assert 80.0 < control["diagonal pairs"] < 89.0                      # unrelated coordinates: chance
    assert control["true partition"] == pytest.approx((4 * 90 + 2 * control["diagonal pairs"]) / 6)


# ------------------------------------------------------------------ --quick smoke runs
@pytest.mark.parametrize("name", ["cps_prop2", "cps_reconstruction"])
def test_quick_main_writes_png_csv_md(name, tmp_path):
    module = importlib.import_module(name)
    module.main(["--quick", "--out", str(tmp_path)])
    for ext in ("png", "csv", "md"):
        assert (tmp_path / f"{name}.{ext}").stat().st_size > 0
    md = (tmp_path / f"{name}.md").read_text()
    assert f"python studies/{name}.py --quick" in md
    assert "Verdict" in md


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cps_partition_strategies", "cps_granularity", "cps_spectra", "cps_heatmaps"])
def test_trained_studies_run_on_a_tiny_campaign(name, campaign, tmp_path, monkeypatch):
    use_tmp_cache(monkeypatch, tmp_path)
    module = importlib.import_module(name)
    module.main(["--quick", "--runs", str(campaign), "--out", str(tmp_path), "--seed", "0"]
                + (["--null-draws", "3"] if name == "cps_granularity" else []))
    for ext in ("png", "csv", "md"):
        assert (tmp_path / f"{name}.{ext}").stat().st_size > 0
    md = (tmp_path / f"{name}.md").read_text()
    assert f"--runs {campaign}" in md and "Verdict" in md
    assert "2 seed(s) [0, 1]" in md


def test_spectra_reads_a_user_peft_gralora_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    peft = pytest.importorskip("peft")

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj = torch.nn.Linear(32, 32)

        def forward(self, x):
            return self.q_proj(x)

    torch.manual_seed(0)
    model = peft.get_peft_model(Tiny(), peft.GraloraConfig(r=8, gralora_k=2, target_modules=["q_proj"]))
    for p in model.parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.1)
    model.save_pretrained(tmp_path / "ck")
    spectra_study = importlib.import_module("cps_spectra")
    agg = spectra_study.main(["--quick", "--runs", str(tmp_path / "none"), "--out", str(tmp_path),
                              "--checkpoint", f"user={tmp_path / 'ck'}"])
    row = agg[agg["method"] == "user"].iloc[0]
    assert row["rank_max"] == 16          # 2×2 blocks of rank r/k = 4
    assert 1 < row["eber_mean"] <= 16
