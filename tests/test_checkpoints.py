"""ripkit.checkpoints (the torch side and the backwards-compatible names): save/apply round trips, corrupt files.

Reading every adapter family is tested in tests/formats/."""
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
from ripkit import checkpoints
from ripkit.checkpoints import (ADAPTER_FILE, META_FILE, CheckpointError, apply_adapter, load_adapter, read_ripkit,
                                save_adapter)
from ripkit.formats import write_ripkit
from _models import randomize_, tiny_bert


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


@pytest.mark.slow  # a fresh interpreter importing transformers: 8-16 s on 2 busy cores
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
    with pytest.raises(CheckpointError, match="missing .*adapter_model.safetensors"):
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


def test_edited_metadata_is_detected(saved):
    name = "bert.encoder.layer.1.output.dense"
    edit_meta(saved, lambda m: m["layers"][name].update(seed=m["layers"][name]["seed"] + 1))
    with pytest.raises(CheckpointError, match="does not match its recorded SHA-256"):
        load_adapter(saved)
    with pytest.raises(CheckpointError, match="does not match its recorded SHA-256"):
        apply_adapter(tiny_bert(), saved)


def test_wrong_seed_fails_fingerprint(saved):
    """A consistent (re-hashed) checkpoint whose seed does not give the recorded projections."""
    meta, tensors = read_ripkit(saved)
    name = "bert.encoder.layer.1.output.dense"
    meta["layers"][name]["seed"] += 1
    write_ripkit(saved, tensors, meta)
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


def test_saved_checkpoint_is_format_2_and_verified(saved):
    meta = json.loads((saved / META_FILE).read_text())
    assert meta["format_version"] == 2 and len(meta["integrity"]["tensors"]) == 12 + 2  # layers + classifier head
    assert all(l.meta["integrity"] == "verified (sha256)" for l in load_adapter(saved))


def test_public_names_are_the_formats_ones():
    import ripkit.formats as formats

    assert load_adapter is formats.load_adapter and CheckpointError is formats.CheckpointError
    assert checkpoints.AdapterLayer is formats.AdapterLayer
