"""ripkit.train's loop on a tiny random BERT and synthetic data: schedule, determinism, resume, outputs."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ripkit.checkpoints import load_adapter
from ripkit.train import batch_indices, build_parser, get_lr, run
from ripkit.train import state as st
from _golden import synthetic_data
from _models import tiny_bert


def train(tmp, method, *extra, model_factory=tiny_bert):
    args = build_parser().parse_args(["--method", method, "--out", str(tmp), "--steps", "12", "--batch-size", "8",
                                      "--eval-every", "4", "--ckpt-every", "5", "--lr", "1e-2", "--quiet",
                                      "--threads", "1",
                                      "--targets", "query,value,intermediate.dense", *extra])
    return run(args, model_factory=model_factory, data=synthetic_data())


def tiny_bert_without_dropout():
    model = tiny_bert()
    for mod in model.modules():
        if isinstance(mod, torch.nn.Dropout):
            mod.p = 0.0
    return model


def tensors(folder):
    return load_file(str(Path(folder) / "adapter_model.safetensors"))


def test_lr_schedule_and_batches():
    assert get_lr(0, 100, 1.0, 0.06) == pytest.approx(1 / 6)
    assert get_lr(5, 100, 1.0, 0.06) == pytest.approx(1.0)
    assert get_lr(99, 100, 1.0, 0.06) == pytest.approx(1 / 94)
    a = batch_indices(7, 50, 8, seed=3)
    assert np.array_equal(a, batch_indices(7, 50, 8, seed=3)) and len(a) == 8
    epoch0 = np.concatenate([batch_indices(s, 50, 8, 3) for s in range(6)])
    assert len(set(epoch0.tolist())) == 48  # no repeats inside an epoch


@pytest.mark.parametrize("method,extra", [
    ("cps-lora", ["--repartition-every", "4", "--k", "2", "--r", "4"]),
    ("cps-lora", ["--repartition-every", "4", "--k", "2", "--r", "4", "--partitioner", "random"]),
    ("pissa", ["--r", "4"]),
    ("cosa", ["--a", "8", "--b", "8"])])
def test_resume_gives_the_same_final_weights(tmp_path, method, extra):
    train(tmp_path / "straight", method, *extra)
    stopped = train(tmp_path / "resumed", method, *extra, "--stop-after", "6")
    assert stopped == {"stopped_at": 6}
    assert st.find_state(tmp_path / "resumed").name == "state-00000006"
    assert not (tmp_path / "resumed" / "state-00000005").exists()  # replaced, not accumulated
    train(tmp_path / "resumed", method, *extra, "--resume")
    want, got = tensors(tmp_path / "straight"), tensors(tmp_path / "resumed")
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key], got[key]), key
    with open(tmp_path / "resumed" / "log.csv") as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh)]
    assert steps == list(range(13))  # no step lost or repeated in the log
    assert st.find_state(tmp_path / "resumed") is None
    assert [p.name for p in (tmp_path / "resumed").iterdir() if p.name.startswith((".", "state"))] == []


def test_grad_accum_is_the_same_batch_mean(tmp_path):
    """Two micro-batches of 4 give the 8-example mean gradient: same weights up to rounding
    (without dropout, whose masks are drawn per micro-batch)."""
    train(tmp_path / "one", "lora", "--r", "4", model_factory=tiny_bert_without_dropout)
    train(tmp_path / "two", "lora", "--r", "4", "--grad-accum", "2", model_factory=tiny_bert_without_dropout)
    a, b = tensors(tmp_path / "one"), tensors(tmp_path / "two")
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5)


def test_bfloat16_autocast_runs_on_cpu(tmp_path):
    meta = train(tmp_path, "lora", "--r", "4", "--dtype", "bfloat16")
    assert meta["training"]["dtype"] == "bfloat16"
    assert all(t.dtype == torch.float32 for t in tensors(tmp_path).values())  # weights stay float32


def test_same_seed_same_result_and_metadata(tmp_path):
    meta = train(tmp_path / "a", "lora", "--r", "4")
    train(tmp_path / "b", "lora", "--r", "4")
    a, b = tensors(tmp_path / "a"), tensors(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    saved = json.loads((tmp_path / "a" / "ripkit_adapter.json").read_text())
    for key in ("method", "base_seed", "dataset", "metrics", "ripkit_version", "base_model_hash", "layers"):
        assert key in saved
    assert meta["metrics"]["final_accuracy"] > meta["metrics"]["baseline_accuracy"]
    assert meta["parameters"]["head_modules"] == ["classifier"]
    train(tmp_path / "c", "lora", "--r", "4", "--seed", "1")
    assert not torch.equal(tensors(tmp_path / "c")["head.classifier.weight"], a["head.classifier.weight"])


def test_full_writes_delta_of_selected_layers(tmp_path):
    train(tmp_path, "full", "--lr", "1e-3")
    layers = {l.name: l for l in load_adapter(tmp_path)}
    assert set(layers) == {"bert.encoder.layer.0.attention.self.query", "bert.encoder.layer.0.attention.self.value",
                           "bert.encoder.layer.1.attention.self.query", "bert.encoder.layer.1.attention.self.value",
                           "bert.encoder.layer.1.intermediate.dense"}
    dw = layers["bert.encoder.layer.1.intermediate.dense"].delta_w()
    assert dw.shape == (64, 32) and np.abs(dw).max() > 0
    with open(tmp_path / "layers.csv") as fh:
        rows = {r["layer"]: r for r in csv.DictReader(fh)}
    np.testing.assert_allclose(float(rows["bert.encoder.layer.1.intermediate.dense"]["frobenius"]),
                               np.linalg.norm(dw), rtol=1e-5)


def test_layer_summary_matches_dense_svd(tmp_path):
    """layers.csv (from factors) against numpy's SVD of the dense ΔW that load_adapter gives."""
    train(tmp_path, "cps-lora", "--k", "2", "--r", "4", "--repartition-every", "5")
    layers = {l.name: l for l in load_adapter(tmp_path)}
    with open(tmp_path / "layers.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["layer"] for r in rows] == list(layers)
    for r in rows:
        s = np.linalg.svd(layers[r["layer"]].delta_w(), compute_uv=False)
        np.testing.assert_allclose([float(r[f"sv{i}"]) for i in (1, 2, 3, 4)], s[:4], rtol=1e-4, atol=1e-9)
        np.testing.assert_allclose(float(r["frobenius"]), np.linalg.norm(s), rtol=1e-4)


@pytest.mark.slow
def test_real_minilm_cosa_run_reloads_in_fresh_process(tmp_path):
    """One short CoSA run of the CLI on the packaged MiniLM and rotten tomatoes."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    root = Path(__file__).parents[2]
    cmd = [sys.executable, "-m", "ripkit.train", "--method", "cosa", "--a", "16", "--b", "16", "--steps", "2",
           "--batch-size", "4", "--eval-size", "8", "--max-length", "16", "--targets", "query,value",
           "--quiet", "--threads", "1", "--out", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    check = (f"from ripkit.checkpoints import load_adapter\n"
             f"layers = load_adapter({str(tmp_path)!r})\n"
             f"assert len(layers) == 12 and all(l.method == 'cosa' for l in layers)\n"
             f"for l in layers: l.dictionary()\nprint('ok', layers[0].delta_w().shape)")
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=env, cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("ok (384, 384)")
    meta = json.loads((tmp_path / "ripkit_adapter.json").read_text())
    assert meta["base_model"] == "minilm" and meta["scale"] == "cosa" and meta["dataset"]["n_train"] == 10202
