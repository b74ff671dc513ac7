"""ripkit.train on a tiny random BERT and synthetic data: determinism, resume equivalence, outputs."""
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
from ripkit.train import batch_indices, build_parser, get_lr, main, run
from _models import tiny_bert


def synthetic_data(n=96, n_eval=32, length=8, seed=0):
    """Label 1 iff token 5 occurs: learnable by a tiny model in a few steps."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(6, 60, (n + n_eval, length), generator=gen)
    y = torch.randint(0, 2, (n + n_eval,), generator=gen)
    ids[y == 1, 3] = 5
    mask = torch.ones_like(ids)
    mask[::3, -2:] = 0
    return (ids[:n], mask[:n], y[:n]), (ids[n:], mask[n:], y[n:]), {"name": "synthetic", "n_train": n}


def train(tmp, method, *extra):
    args = build_parser().parse_args(["--method", method, "--out", str(tmp), "--steps", "12", "--batch-size", "8",
                                      "--eval-every", "4", "--ckpt-every", "5", "--lr", "1e-2", "--quiet",
                                      "--threads", "1",
                                      "--targets", "query,value,intermediate.dense", *extra])
    return run(args, model_factory=tiny_bert, data=synthetic_data())


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


@pytest.mark.parametrize("method,extra", [("cps-lora", ["--repartition-every", "4", "--k", "2", "--r", "4"]),
                                          ("cosa", ["--a", "8", "--b", "8"])])
def test_resume_gives_the_same_final_weights(tmp_path, method, extra):
    train(tmp_path / "straight", method, *extra)
    stopped = train(tmp_path / "resumed", method, *extra, "--stop-after", "6")
    assert stopped == {"stopped_at": 6}
    assert (tmp_path / "resumed" / "state" / "state.json").exists()
    train(tmp_path / "resumed", method, *extra, "--resume")
    want, got = tensors(tmp_path / "straight"), tensors(tmp_path / "resumed")
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key], got[key]), key
    with open(tmp_path / "resumed" / "log.csv") as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh)]
    assert steps == list(range(13))  # no step lost or repeated in the log
    assert not (tmp_path / "resumed" / "state").exists()


def test_same_seed_same_result_and_metadata(tmp_path):
    meta = train(tmp_path / "a", "lora", "--r", "4")
    train(tmp_path / "b", "lora", "--r", "4")
    a, b = tensors(tmp_path / "a"), tensors(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    saved = json.loads((tmp_path / "a" / "ripkit_adapter.json").read_text())
    for key in ("method", "base_seed", "dataset", "metrics", "ripkit_version", "base_model_hash", "layers"):
        assert key in saved
    assert meta["metrics"]["final_accuracy"] > meta["metrics"]["baseline_accuracy"]
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


def test_cli_errors(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--model", str(tmp_path / "nope")]) == 2
    assert "model=" in capsys.readouterr().err
    assert main(["--out", str(tmp_path), "--resume", "--model", "minilm", "--steps", "1"]) == 2


def test_real_minilm_cosa_run_reloads_in_fresh_process(tmp_path):
    """One short CoSA run of the CLI on the packaged MiniLM and rotten tomatoes."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    root = Path(__file__).parents[1]
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
