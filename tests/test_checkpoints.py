"""ripkit.checkpoints: PEFT checkpoints against peft's own get_delta_weight, ripkit round trips, corrupt files."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from ripkit.adapters import adapter_modules, inject
from ripkit.checkpoints import (ADAPTER_FILE, META_FILE, CheckpointError, apply_adapter, load_adapter,
                                save_adapter)
from _models import randomize_, tiny_bert


def rel_err(a, b):
    return np.linalg.norm(np.asarray(a) - np.asarray(b)) / max(np.linalg.norm(b), 1e-300)


def peft_checkpoint(tmp_path, kind):
    from peft import GraloraConfig, LoraConfig, VeraConfig, get_peft_model

    configs = {
        "lora": LoraConfig(r=4, lora_alpha=6, target_modules=["query", "value", "intermediate.dense"],
                           alpha_pattern={"intermediate.dense": 12}),
        "rslora": LoraConfig(r=4, lora_alpha=6, use_rslora=True, target_modules=["query", "key"]),
        "gralora": GraloraConfig(r=4, gralora_k=2, alpha=8, target_modules=["query", "value", "dense"]),
        "gralora-hybrid": GraloraConfig(r=4, gralora_k=2, alpha=8, hybrid_r=2, target_modules=["key"]),
        "vera": VeraConfig(r=4, target_modules=["query", "value"], save_projection=True),
    }
    model = get_peft_model(tiny_bert(), configs[kind])
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():  # B / lambda_b start at zero: give every adapter tensor random values
        for name, p in model.named_parameters():
            if any(t in name for t in ("lora_", "gralora_", "vera_lambda")):
                p.copy_(torch.randn(p.shape, generator=gen))
    reference = {}
    for name, mod in model.named_modules():
        if hasattr(mod, "get_delta_weight") and hasattr(mod, "base_layer"):
            reference[name.removeprefix("base_model.model.")] = mod.get_delta_weight("default").detach().numpy()
    model.save_pretrained(tmp_path)
    return reference


@pytest.mark.parametrize("kind", ["lora", "rslora", "gralora", "gralora-hybrid", "vera"])
def test_peft_delta_w_matches_peft(tmp_path, kind):
    reference = peft_checkpoint(tmp_path, kind)
    layers = load_adapter(tmp_path)  # no base model involved
    assert sorted(l.name for l in layers) == sorted(reference)
    for layer in layers:
        dw = layer.delta_w()
        assert dw.shape == layer.shape == reference[layer.name].shape
        assert rel_err(dw, reference[layer.name]) < 1e-6, layer.name
        assert layer.to_dict()["name"] == layer.name


@pytest.mark.parametrize("method,config", [("cosa", {"a": 8, "b": 4, "scaling": 2.0}),
                                           ("lora", {"r": 4, "alpha": 8}),
                                           ("block-lora", {"r": 4, "k": 2, "partition": "random"}),
                                           ("cps-lora", {"r": 4, "k": 2})])
def test_ripkit_round_trip(tmp_path, method, config):
    model = tiny_bert()
    inject(model, method=method, base_seed=4, **config)
    mods = adapter_modules(model)
    for mod in mods.values():
        randomize_(mod)
        if method == "cps-lora":
            mod.repartition("cosine")
            randomize_(mod, seed=2)
    save_adapter(model, tmp_path, metadata={"method": method, "base_seed": 4})
    layers = {l.name: l for l in load_adapter(tmp_path)}
    assert set(layers) == set(mods)
    for name, mod in mods.items():
        assert_allclose(layers[name].delta_w(), mod.delta_weight().detach().double().numpy(),
                        rtol=1e-5, atol=1e-7)
    if method == "cosa":
        layer = next(iter(layers.values()))
        left, right = layer.dictionary()
        assert left.shape == (layer.shape[0], 8) and right.shape == (4, layer.shape[1])
        assert_allclose(layer.core(), mods[layer.name].core.detach().double().numpy())
    # rebuilding the model from the checkpoint gives the same function
    ids = torch.randint(0, 60, (2, 6), generator=torch.Generator().manual_seed(1))
    fresh = tiny_bert()
    meta = apply_adapter(fresh, tmp_path)
    assert meta["method"] == method
    torch.testing.assert_close(fresh(input_ids=ids).logits, model(input_ids=ids).logits, rtol=0, atol=1e-6)


def test_cosa_reload_in_fresh_process(tmp_path):
    model = tiny_bert()
    model.save_pretrained(tmp_path / "base")
    inject(model, method="cosa", a=8, b=8, base_seed=11)
    for mod in adapter_modules(model).values():
        randomize_(mod)
    save_adapter(model, tmp_path / "adapter")
    ids = torch.arange(12).reshape(2, 6)
    np.save(tmp_path / "want.npy", model(input_ids=ids).logits.detach().numpy())
    script = f"""
import numpy as np, torch
from transformers import BertForSequenceClassification
from ripkit.checkpoints import apply_adapter, load_adapter
model = BertForSequenceClassification.from_pretrained({str(tmp_path / 'base')!r}).eval()
apply_adapter(model, {str(tmp_path / 'adapter')!r})
for layer in load_adapter({str(tmp_path / 'adapter')!r}):
    layer.dictionary()  # fingerprints verified
got = model(input_ids=torch.arange(12).reshape(2, 6)).logits.detach().numpy()
np.testing.assert_allclose(got, np.load({str(tmp_path / 'want.npy')!r}), rtol=0, atol=1e-6)
print("ok")
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).parents[1])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


@pytest.fixture
def saved(tmp_path):
    model = tiny_bert()
    inject(model, method="cosa", a=4, b=4, base_seed=2)
    save_adapter(model, tmp_path)
    return tmp_path


def test_truncated_file(saved):
    data = (saved / ADAPTER_FILE).read_bytes()
    (saved / ADAPTER_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or not a safetensors file"):
        load_adapter(saved)


def test_garbage_file(saved):
    (saved / ADAPTER_FILE).write_bytes(b"\x00\x01not a safetensors file at all")
    with pytest.raises(CheckpointError, match="truncated or not a safetensors file"):
        load_adapter(saved)


def test_missing_tensor_file(saved):
    (saved / ADAPTER_FILE).unlink()
    with pytest.raises(CheckpointError, match="missing adapter_model.safetensors"):
        load_adapter(saved)


def test_bad_json(saved):
    (saved / META_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_adapter(saved)


def edit_meta(folder, fn):
    meta = json.loads((folder / META_FILE).read_text())
    fn(meta)
    (folder / META_FILE).write_text(json.dumps(meta))


def test_shape_mismatch(saved):
    name = "bert.encoder.layer.0.attention.self.query"
    edit_meta(saved, lambda m: m["layers"][name].update(a=5))
    with pytest.raises(CheckpointError, match=r"\.core has shape \(4, 4\), ripkit_adapter.json says \(5, 4\)"):
        load_adapter(saved)


def test_key_mismatch(saved):
    edit_meta(saved, lambda m: m["layers"].pop("bert.encoder.layer.0.attention.self.query"))
    with pytest.raises(CheckpointError, match="unexpected"):
        load_adapter(saved)


def test_wrong_seed_fails_fingerprint(saved):
    name = "bert.encoder.layer.1.output.dense"
    edit_meta(saved, lambda m: m["layers"][name].update(seed=m["layers"][name]["seed"] + 1))
    layer = {l.name: l for l in load_adapter(saved)}[name]
    with pytest.raises(CheckpointError, match="fingerprint"):
        layer.delta_w()
    with pytest.raises(CheckpointError, match="regenerated projections"):
        apply_adapter(tiny_bert(), saved)


def test_wrong_model(saved):
    from transformers import BertConfig, BertForSequenceClassification

    other = BertForSequenceClassification(BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2,
                                                     num_attention_heads=2, intermediate_size=32))
    with pytest.raises(CheckpointError, match="expects Linear of shape"):
        apply_adapter(other, saved)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="neither ripkit_adapter.json"):
        load_adapter(tmp_path)
    with pytest.raises(CheckpointError, match="is not a checkpoint folder"):
        load_adapter(tmp_path / "missing")


def test_unsupported_peft(tmp_path):
    peft_checkpoint(tmp_path, "lora")
    cfg = json.loads((tmp_path / "adapter_config.json").read_text())
    (tmp_path / "adapter_config.json").write_text(json.dumps({**cfg, "use_dora": True}))
    with pytest.raises(CheckpointError, match="DoRA"):
        load_adapter(tmp_path)
    (tmp_path / "adapter_config.json").write_text(json.dumps({**cfg, "peft_type": "IA3"}))
    with pytest.raises(CheckpointError, match="peft_type='IA3' is not supported"):
        load_adapter(tmp_path)
