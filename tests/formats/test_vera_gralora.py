"""ripkit.formats.vera and .gralora against peft's own merge."""
import json

import pytest

from ripkit.formats import BaseWeightsRequired, CheckpointError, load_adapter

from ._builders import assert_matches_merge, merged_deltas, peft_checkpoint, rel_err, tiny_bert, tiny_llama


def configs():
    from peft import GraloraConfig, VeraConfig

    return {
        "gralora": (tiny_bert, GraloraConfig(r=4, gralora_k=2, alpha=8, target_modules=["query", "value", "dense"])),
        "gralora-hybrid": (tiny_bert, GraloraConfig(r=4, gralora_k=2, alpha=8, hybrid_r=2, target_modules=["key"])),
        "gralora-llama": (tiny_llama, GraloraConfig(r=8, gralora_k=4, alpha=16, target_modules=["q_proj", "down_proj"])),
        # mixed widths: vera_A is stored at the largest in_features (64), query's is 32
        "vera": (tiny_bert, VeraConfig(r=4, target_modules=["query", "intermediate.dense", "output.dense"],
                                       save_projection=True)),
    }


@pytest.fixture(scope="module", params=["gralora", "gralora-hybrid", "gralora-llama", "vera"])
def case(request, tmp_path_factory):
    make, config = configs()[request.param]
    folder = tmp_path_factory.mktemp(request.param)
    model, w0 = peft_checkpoint(folder, make(), config, train="random")
    return request.param, folder, merged_deltas(model, w0)


def test_exact_against_peft_merge(case):
    name, folder, reference = case
    assert_matches_merge(load_adapter(folder / "adapter", base=folder / "base"), reference)


def test_without_base(case):
    name, folder, reference = case
    layers = load_adapter(folder / "adapter")
    if name.startswith("gralora"):
        assert_matches_merge(layers, reference)  # GraLoRA records every shape itself
        return
    # VeRA: the file does not say how wide each layer is; ripkit 0.1 returned query's ΔW at width 64
    assert all(l.shape is None and l.needs == frozenset({"base"}) for l in layers)
    with pytest.raises(BaseWeightsRequired, match="does not record the layer's in_features"):
        layers[0].delta_w()


def test_low_rank(case):
    name, folder, _ = case
    for layer in load_adapter(folder / "adapter", base=folder / "base"):
        u, v = layer.low_rank()
        assert rel_err(u @ v, layer.delta_w()) < 1e-13
        assert u.shape[1] == (layer.meta["r"] if name == "vera" else layer.meta["k"] * layer.meta["r"]
                              + layer.meta["hybrid_r"])


def test_vera_without_projections_is_refused(tmp_path):
    from peft import VeraConfig

    peft_checkpoint(tmp_path, tiny_bert(), VeraConfig(r=4, target_modules=["query"], save_projection=False),
                    train="random")
    with pytest.raises(CheckpointError, match="saved without its projections.*save_projection=True"):
        load_adapter(tmp_path / "adapter")


def test_gralora_inconsistent_config(tmp_path):
    from peft import GraloraConfig

    peft_checkpoint(tmp_path, tiny_bert(), GraloraConfig(r=4, gralora_k=2, alpha=8, target_modules=["key"]),
                    train="random")
    cfg_path = tmp_path / "adapter" / "adapter_config.json"
    cfg_path.write_text(json.dumps({**json.loads(cfg_path.read_text()), "gralora_k": 4}))
    with pytest.raises(CheckpointError, match="do not fit gralora_k=4"):
        load_adapter(tmp_path / "adapter")
