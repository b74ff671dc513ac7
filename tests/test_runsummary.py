"""ripkit.runsummary on tiny trained runs: contents against independent computations, round trip, seeding."""
import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.linalg import subspace_angles

from ripkit import partition as part
from ripkit.checkpoints import load_adapter
from ripkit.runsummary import (ANGLE_STATS, BLOCK_STATS, block_statistics, low_rank_factors, read_summary,
                               summarize_run, write_summary)
from ripkit.train import build_parser, run
from _models import synthetic_data, tiny_bert


def _train(folder, method, *extra):
    args = build_parser().parse_args(["--method", method, "--out", str(folder), "--steps", "4", "--batch-size", "8",
                                      "--eval-every", "4", "--lr", "1e-2", "--quiet", "--threads", "1", *extra])
    run(args, model_factory=tiny_bert, data=synthetic_data())
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"lora": _train(root / "lora-r8-s0", "lora", "--r", "8"),
            "cps": _train(root / "cps-lora-k2-r8-s0", "cps-lora", "--k", "2", "--r", "8", "--repartition-every", "2"),
            "cosa": _train(root / "cosa-a8-b8-s0", "cosa", "--a", "8", "--b", "8")}


def _direct(w, p, dim):
    """The paper's metric with scipy, mean pair reading, blocks from Partition.blocks()."""
    bases = [np.linalg.svd(w[np.ix_(r, c)], full_matrices=False) for r, c in p.blocks()]
    vals = [max(np.degrees(np.mean(subspace_angles(a[0][:, :dim], b[0][:, :dim]))),
                np.degrees(np.mean(subspace_angles(a[2][:dim].T, b[2][:dim].T))))
            for i, a in enumerate(bases) for b in bases[i + 1:]]
    return np.mean(vals)


def test_block_statistics_match_independent_computations():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((32, 3)) @ rng.standard_normal((3, 48))  # rank 3: the factor route
    p = part.random_partition(w, 2, seed=1)
    got = block_statistics(low_rank_factors(w), p, rank=2)
    dense = block_statistics(w, p, rank=2)
    assert_allclose(got[:3], dense[:3], atol=1e-8)  # d = 1 readings through factors = dense
    stat = dict(zip(BLOCK_STATS, got))
    assert stat["angle_d1_mean"] == pytest.approx(_direct(w, p, 1), abs=1e-6)
    assert stat["angle_d2_mean"] == pytest.approx(_direct(w, p, 2), abs=1e-6)
    assert np.isnan(stat["angle_d4_mean"])  # rank-3 blocks: the top-4 basis is not determined → refused
    assert stat["block_error"] == pytest.approx(part.block_approximation_error(w, p, 2), abs=1e-12)
    assert stat["checkerboard"] == pytest.approx(part.checkerboard_energy(w, p), abs=1e-12)
    assert stat["block_diagonal"] == pytest.approx(part.block_diagonal_energy(w, p), abs=1e-12)


def test_summaries_hold_the_spectra_and_block_statistics(runs, tmp_path):
    s = summarize_run(runs["lora"], null_draws=2)
    layers = load_adapter(runs["lora"])
    for layer in layers:
        assert_allclose(s.array(f"sv/{layer.name}"), np.linalg.svd(layer.delta_w(), compute_uv=False),
                        rtol=1e-6, atol=1e-7)
    table = s.block_table()
    assert set(table.partition) == {"contiguous", "cosine", "balance", "bicluster"}
    assert s.array("blocks/random_layer_mean/k2").shape == (2, len(BLOCK_STATS))
    write_summary(s, tmp_path / "lora")
    back = read_summary(tmp_path / "lora")
    assert back.meta == s.meta and back.arrays.keys() == s.arrays.keys()
    again = summarize_run(runs["lora"], null_draws=2)  # seeded: bit-identical
    assert all(np.array_equal(again.arrays[k], s.arrays[k], equal_nan=True) for k in s.arrays)


def test_block_runs_keep_current_blocks_and_their_own_partition(runs):
    s = summarize_run(runs["cps"], null_draws=2)
    layer = load_adapter(runs["cps"])[0]
    current = layer.delta_w() - layer.factors["merged_A"] @ layer.factors["merged_B"]
    assert_allclose(s.array(f"sv_current/{layer.name}"), np.linalg.svd(current, compute_uv=False)[:32],
                    rtol=1e-5, atol=1e-7)
    own = s.block_table().query("partition == 'own'")
    assert set(own.variant) == {"delta", "current"} and set(own.k) == {2}
    assert not np.isnan(own[list(ANGLE_STATS[:3])].to_numpy()).any()


def test_cosa_summary_has_the_core(runs):
    s = summarize_run(runs["cosa"])
    layer = load_adapter(runs["cosa"])[0]
    row = s.layers[0]
    y = layer.core()
    assert row["core_frobenius"] == pytest.approx(np.linalg.norm(y), rel=1e-12)
    assert row["core_fraction_below"] == pytest.approx(np.mean(np.abs(y) < 1e-4))
    assert_allclose(s.array(f"core_sv/{layer.name}"), np.linalg.svd(y, compute_uv=False), rtol=1e-6)
    assert s.meta["blocks"]["index"] == []


def test_read_refuses_another_version(runs, tmp_path):
    s = summarize_run(runs["cosa"])
    write_summary(s, tmp_path)
    text = (tmp_path / "summary.json").read_text().replace('"ripkit_summary_version": 1', '"ripkit_summary_version": 0')
    (tmp_path / "summary.json").write_text(text)
    with pytest.raises(ValueError, match="summary version 0"):
        read_summary(tmp_path)
