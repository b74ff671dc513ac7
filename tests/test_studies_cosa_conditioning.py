"""studies/cosa_conditioning.py: per-shape numbers against dense Ψ, and the runs reader (present, missing, wrong kind)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from studies import cosa_conditioning as cc  # noqa: E402
from studies._model_shapes import shape_table  # noqa: E402
from ripkit.kron import KroneckerDictionary  # noqa: E402
from ripkit.projections import layer_seed  # noqa: E402


@pytest.mark.parametrize("m, n, a, b", [(10, 8, 4, 3), (6, 9, 8, 3), (7, 5, 3, 6), (5, 5, 5, 5)])
def test_shape_row_matches_dense_psi(m, n, a, b):
    row = SimpleNamespace(model="toy", source="test", modules="x", m=m, n=n, a=a, b=b)
    out = cc.shape_conditioning(row, seed=2)
    dense = KroneckerDictionary.from_seed(m, n, a, b, layer_seed(2, f"{m}x{n}/{a}x{b}")).to_dense()
    rank = np.linalg.matrix_rank(dense)
    sv = np.linalg.svd(dense, compute_uv=False)
    assert out["injective"] == (rank == a * b) and out["kernel_dim"] == a * b - rank
    assert_allclose(out["ratio_high"], sv[0] ** 2, rtol=1e-10)
    if out["injective"]:
        assert_allclose(out["kappa"], sv[0] / sv[a * b - 1], rtol=1e-8)


def test_real_shapes_and_known_non_injective_ones():
    shapes = shape_table()
    qwen_kv = shapes[(shapes.model == "Qwen2-7B") & (shapes.modules == "k, v")].iloc[0]
    assert (qwen_kv.m, qwen_kv.n, qwen_kv.a) == (512, 3584, 1024)  # out 512 < a = 1024
    smol = shapes[(shapes.model == "SmolLM2-135M") & (shapes.a == 128)].set_index("modules")
    assert (smol.loc["k, v", "m"], smol.loc["gate, up", "m"]) == (192, 1536)
    roberta = shapes[shapes.model == "RoBERTa-base"]
    assert set(zip(roberta.m, roberta.n)) == {(768, 768), (3072, 768), (768, 3072)}


def _write_run(folder: Path, seed: int, kind: str, acc: float, loss: float):
    folder.mkdir(parents=True)
    layers = {"l0": {"kind": kind, "method": "cosa"}}
    (folder / "ripkit_adapter.json").write_text(json.dumps({
        "config": {"a": 128, "b": 128, "kind": kind}, "layers": layers,
        "metrics": {"final_accuracy": acc, "steps": 100}, "training": {"seed": seed}}))
    steps = np.arange(0, 101)
    pd.DataFrame({"step": steps, "loss": np.r_[np.nan, np.full(100, loss)]}).to_csv(folder / "log.csv", index=False)


def test_runs_missing_are_reported_with_their_commands(tmp_path):
    paired, curves, missing = cc.read_runs(tmp_path)
    assert paired.empty and curves == {} and len(missing) == 2 * len(cc.SEEDS)
    assert any("--kind orthogonal --out studies/runs/minilm/cosa-a128-b128-orth-s3" in c for c in missing)
    tv = cc.training_verdict(paired)
    assert tv["verdict"] == "not run"
    table = pd.DataFrame([cc.shape_conditioning(SimpleNamespace(model="m", source="s", modules="x", m=12, n=10, a=4,
                                                                b=3), seed=0)])
    assert "not run" in cc.verdict_text(table, tv)
    cc.plot(table, paired, curves)


def test_paired_runs_and_stated_rule(tmp_path):
    for seed, (g, o) in enumerate([(0.70, 0.74), (0.71, 0.73), (0.72, 0.75), (0.70, 0.72), (0.69, 0.71)]):
        _write_run(tmp_path / f"cosa-a128-b128-s{seed}", seed, "gaussian", g, 0.5)
        _write_run(tmp_path / f"cosa-a128-b128-orth-s{seed}", seed, "orthogonal", o, 0.45)
    paired, curves, missing = cc.read_runs(tmp_path)
    assert missing == [] and len(paired) == 5 and set(curves) == set(range(5))
    assert_allclose(paired.diff_accuracy, [0.04, 0.02, 0.03, 0.02, 0.02])
    assert_allclose(paired.diff_loss, 0.05)
    tv = cc.training_verdict(paired)
    assert tv["verdict"] == "orthonormal better" and tv["p_orth_better"] == pytest.approx(1 / 32)


def test_wrong_kind_in_an_arm_is_refused(tmp_path):
    _write_run(tmp_path / "cosa-a128-b128-orth-s0", 0, "gaussian", 0.7, 0.5)
    with pytest.raises(ValueError, match="expected 'orthogonal'"):
        cc.read_run(tmp_path / "cosa-a128-b128-orth-s0", "orthogonal")
