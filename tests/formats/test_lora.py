"""ripkit.formats.lora against peft's own merge (float64 copy, merge_and_unload, minus the float64 base)."""
import json
import warnings

import numpy as np
import pytest

from ripkit.formats import BaseWeightsRequired, CheckpointError, load_adapter

from ._builders import (assert_matches_merge, merged_deltas, peft_checkpoint, rel_err, tiny_bert, tiny_gpt2,
                        tiny_llama, train_steps)


def lora(**kw):
    from peft import LoraConfig

    return LoraConfig(**kw)


CASES = {  # name: (model, config, base needed)
    "llama-patterns": (tiny_llama, dict(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "down_proj"],
                                        alpha_pattern={"q_proj|k_proj": 64},
                                        rank_pattern={"^model.layers.1.self_attn.v_proj": 2}), False),
    "bert-pattern": (tiny_bert, dict(r=4, lora_alpha=6, target_modules=["query", "value", "intermediate.dense"],
                                     alpha_pattern={"intermediate.dense": 12}), False),
    "rslora": (tiny_llama, dict(r=4, lora_alpha=8, use_rslora=True, target_modules=["q_proj", "up_proj"]), False),
    "layers-to-transform": (tiny_llama, dict(r=4, target_modules=["q_proj"], layers_to_transform=[1],
                                             layers_pattern="layers"), False),
    "gpt2-fan-in-fan-out": (tiny_gpt2, dict(r=4, target_modules=["c_attn", "c_proj"], fan_in_fan_out=True), False),
    "embedding": (tiny_llama, dict(r=4, lora_alpha=8, target_modules=["q_proj", "embed_tokens"]), False),
    "lora-bias": (tiny_bert, dict(r=4, target_modules=["query", "value"], lora_bias=True), False),
    "modules-to-save": (tiny_llama, dict(r=4, target_modules=["v_proj"], modules_to_save=["lm_head"]), True),
    "bias-all": (tiny_bert, dict(r=4, target_modules=["query"], bias="all"), True),
    "dora": (tiny_llama, dict(r=4, target_modules=["q_proj", "down_proj", "embed_tokens"], use_dora=True), True),
    "dora-gpt2": (tiny_gpt2, dict(r=4, target_modules=["c_attn"], fan_in_fan_out=True, use_dora=True), True),
    "pissa": (tiny_llama, dict(r=4, lora_alpha=8, target_modules=["q_proj", "down_proj"], init_lora_weights="pissa"), True),
    "pissa-gpt2": (tiny_gpt2, dict(r=4, target_modules=["c_attn"], fan_in_fan_out=True, init_lora_weights="pissa"), True),
    "olora": (tiny_llama, dict(r=4, lora_alpha=16, target_modules=["q_proj", "down_proj"], init_lora_weights="olora"), True),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request, tmp_path_factory):
    make, kw, needs_base = CASES[request.param]
    folder = tmp_path_factory.mktemp(request.param)
    model, w0 = peft_checkpoint(folder, make(), lora(**kw))
    return request.param, folder, merged_deltas(model, w0), needs_base


def test_exact_against_peft_merge(case):
    name, folder, reference, _ = case
    layers = load_adapter(folder / "adapter", base=folder / "base")
    assert reference, "the fixture must change the model"
    assert_matches_merge(layers, reference, tol=1e-10)


def test_base_dependent_layers_refuse_without_base(case):
    name, folder, reference, needs_base = case
    layers = load_adapter(folder / "adapter")  # loading itself never needs the base
    dependent = [l for l in layers if "base" in l.needs]
    assert bool(dependent) == needs_base
    for layer in layers:
        if layer in dependent:
            with pytest.raises(BaseWeightsRequired, match=r"needs the base model's weights: .* base=FOLDER_OR_MODEL"):
                layer.delta_w() if layer.shape is not None else layer.delta_bias()
        else:
            layer.delta_w()


def test_low_rank_is_delta_w(case):
    name, folder, _, _ = case
    for layer in load_adapter(folder / "adapter", base=folder / "base"):
        factors = layer.low_rank()
        if factors is None:
            assert layer.method in ("peft-dora", "peft-lora-init", "peft-full", "peft-bias")
            continue
        u, v = factors
        assert u.shape[0] == layer.shape[0] and v.shape[1] == layer.shape[1] and u.shape[1] == v.shape[0]
        assert rel_err(u @ v, layer.delta_w()) < 1e-13


def test_silent_errors_of_ripkit_0_1_are_gone(tmp_path):
    """What issue 11 found: s·B·A for PiSSA (rel. error 3.45) and a regex alpha_pattern read as a suffix (0.75)."""
    model, w0 = peft_checkpoint(tmp_path, tiny_llama(), lora(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj"],
                                                             init_lora_weights="pissa", alpha_pattern={"q_proj|k_proj": 64}))
    reference = merged_deltas(model, w0)
    for layer in load_adapter(tmp_path / "adapter", base=tmp_path / "base"):
        want = reference[layer.name + ".weight"]
        naive = 8 / 4 * layer.factors["lora_B"] @ layer.factors["lora_A"]
        assert rel_err(naive, want) > 0.5 and rel_err(layer.delta_w(), want) < 1e-10
        assert layer.scaling == 64 / 4 and layer.meta["alpha_pattern_key"] == "q_proj|k_proj"


def test_converted_pissa_is_plain_lora(tmp_path):
    """path_initial_model_for_weight_conversion gives a rank-2r LoRA on W₀: read without the base."""
    from peft import get_peft_model

    base = tiny_llama()
    base.save_pretrained(tmp_path / "base")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_peft_model(base, lora(r=4, lora_alpha=8, target_modules=["q_proj"], init_lora_weights="pissa"))
        model.peft_config["default"].init_lora_weights = True
        model.save_pretrained(tmp_path / "initial")
        model.peft_config["default"].init_lora_weights = "pissa"
        train_steps(model)
        model.save_pretrained(tmp_path / "plain")
        model.save_pretrained(tmp_path / "converted", path_initial_model_for_weight_conversion=str(tmp_path / "initial"))
    assert json.loads((tmp_path / "converted" / "adapter_config.json").read_text())["init_lora_weights"] is True
    converted = {l.name: l for l in load_adapter(tmp_path / "converted")}
    assert all(l.method == "peft-lora" and l.needs == frozenset() and l.meta["r"] == 8 for l in converted.values())
    for layer in load_adapter(tmp_path / "plain", base=tmp_path / "base"):
        # equal up to the float32 rounding of peft's residual W₀ − s·B₀·A₀
        assert rel_err(converted[layer.name].delta_w(), layer.delta_w()) < 1e-4


@pytest.mark.parametrize("init,match", [("pissa_niter_4", "randomized SVD"), ("loftq", "LoftQ replaces W₀"),
                                        ("corda", "CorDA"), ("lora_ga", "LoRA-GA")])
def test_unrecoverable_initialisations_are_refused(tmp_path, init, match):
    peft_checkpoint(tmp_path, tiny_llama(), lora(r=4, target_modules=["q_proj"]), train="random")
    cfg_path = tmp_path / "adapter" / "adapter_config.json"
    cfg_path.write_text(json.dumps({**json.loads(cfg_path.read_text()), "init_lora_weights": init}))
    layer = load_adapter(tmp_path / "adapter", base=tmp_path / "base")[0]
    assert layer.method == "peft-lora-init" and layer.low_rank() is None
    with pytest.raises(CheckpointError, match=f"{match}.*path_initial_model_for_weight_conversion"):
        layer.delta_w()


def test_several_adapters(tmp_path):
    extra = [("second", lora(r=2, lora_alpha=4, target_modules=["k_proj"]))]
    model, w0 = peft_checkpoint(tmp_path, tiny_llama(), lora(r=4, target_modules=["q_proj"]), extra_adapters=extra)
    with pytest.raises(CheckpointError, match=r"several adapters \(default, second\); choose one with adapter_name"):
        load_adapter(tmp_path / "adapter")
    for name in ("default", "second"):
        layers = load_adapter(tmp_path / "adapter", adapter_name=name)
        assert all(l.meta["adapter_name"] == name for l in layers)
        assert_matches_merge(layers, merged_deltas(model, w0, adapter_names=[name]))
    with pytest.raises(CheckpointError, match=r"no adapter 'third'; it holds \['default', 'second'\]"):
        load_adapter(tmp_path / "adapter", adapter_name="third")


@pytest.mark.parametrize("edit,match", [
    ({"use_qalora": True}, "use_qalora=True turns on a LoRA variant"),
    ({"r": 3}, "has rank 4, adapter_config.json gives r=3"),
    ({"rank_pattern": {"q_proj": 8}}, r"gives r=8 \(rank_pattern key 'q_proj'\)"),
    ({"alpha_pattern": {"(": 8}}, "alpha_pattern key '\\(' is not a valid regular expression"),
    ({"lora_alpha": -8}, "lora_alpha=-8, expected a positive number at most 1e\\+06"),
    ({"lora_bias": True}, r"missing \['lora_B.bias'\]"),
    ({"use_dora": True}, r"missing \['lora_magnitude_vector'\]"),
    ({"peft_type": "PREFIX_TUNING"}, r"peft_type=.PREFIX_TUNING. is not supported; ripkit reads ADALORA, .*, VERA"),
])
def test_inconsistent_configs_are_refused(tmp_path, edit, match):
    peft_checkpoint(tmp_path, tiny_llama(), lora(r=4, target_modules=["q_proj"]), train="random")
    cfg_path = tmp_path / "adapter" / "adapter_config.json"
    cfg_path.write_text(json.dumps({**json.loads(cfg_path.read_text()), **edit}))
    with pytest.raises(CheckpointError, match=match):
        load_adapter(tmp_path / "adapter")


def test_absurd_scaling_is_refused(tmp_path):
    peft_checkpoint(tmp_path, tiny_llama(), lora(r=4, target_modules=["q_proj"]), train="random")
    cfg_path = tmp_path / "adapter" / "adapter_config.json"
    cfg_path.write_text(json.dumps({**json.loads(cfg_path.read_text()), "lora_alpha": 1e308}))
    with pytest.raises(CheckpointError, match="lora_alpha=1e\\+308, expected a positive number at most 1e\\+06"):
        load_adapter(tmp_path / "adapter")


def test_wrong_base_is_refused(tmp_path):
    peft_checkpoint(tmp_path, tiny_llama(), lora(r=4, target_modules=["q_proj"], use_dora=True), train="random")
    other = tiny_bert()
    other.save_pretrained(tmp_path / "other")
    layer = load_adapter(tmp_path / "adapter", base=tmp_path / "other")[0]
    with pytest.raises(CheckpointError, match="has no tensor model.layers.0.self_attn.q_proj.weight"):
        layer.delta_w()


def test_base_as_module_and_as_safetensors_file(tmp_path):
    model, w0 = peft_checkpoint(tmp_path, tiny_llama(), lora(r=4, target_modules=["q_proj"], use_dora=True))
    reference = merged_deltas(model, w0)
    assert_matches_merge(load_adapter(tmp_path / "adapter", base=tmp_path / "base" / "model.safetensors"), reference)
    assert_matches_merge(load_adapter(tmp_path / "adapter", base=tiny_llama()), reference)
    with pytest.raises(CheckpointError, match="is a PEFT model"):
        load_adapter(tmp_path / "adapter", base=model)


def test_layers_filter(case):
    name, folder, _, _ = case
    everything = load_adapter(folder / "adapter")
    some = load_adapter(folder / "adapter", layers=r"\.1\.")
    assert [l.name for l in some] == [l.name for l in everything if ".1." in l.name]
    with pytest.raises(CheckpointError, match="has no adapted layer matching layers='nothing-here'"):
        load_adapter(folder / "adapter", layers="nothing-here")


def test_trainable_parameters_and_to_dict(tmp_path):
    peft_checkpoint(tmp_path, tiny_llama(), lora(r=4, target_modules=["q_proj", "embed_tokens"], lora_alpha=8),
                    train="random")
    for layer in load_adapter(tmp_path / "adapter"):
        m, n = layer.shape
        assert layer.trainable_parameters == 4 * (m + n)
        d = layer.to_dict()
        assert d["name"] == layer.name and d["needs"] == [] and np.isclose(d["scaling"], 2.0)
        json.dumps(d)
