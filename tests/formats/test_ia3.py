"""ripkit.formats.ia3 against peft's own merge: ΔW (and Δbias) depend on W₀, refused without the base."""

import numpy as np
import pytest

from ripkit.formats import BaseWeightsRequired, CheckpointError, load_adapter

from ._builders import assert_matches_merge, tiny_bert, tiny_gpt2, tiny_llama
from ._family import (case_fixtures, check_corruption, check_exact, check_low_rank, check_without_base,
                      refuses_edited_config)


def ia3(**kw):
    from peft import IA3Config

    return IA3Config(**kw)


CASES = {  # BERT's Linear layers have biases: attention-type layers rescale them too
    "bert": (tiny_bert, dict(target_modules=["query", "value", "output.dense", "intermediate.dense"],
                             feedforward_modules=["output.dense"])),
    "llama-regex": (tiny_llama, dict(target_modules=["k_proj", "v_proj", "down_proj"],
                                     feedforward_modules=r".*\.mlp\.down_proj")),
    "gpt2-fan-in-fan-out": (tiny_gpt2, dict(target_modules=["c_attn", "mlp.c_proj"], feedforward_modules=["mlp.c_proj"],
                                            fan_in_fan_out=True)),
}


build, case = case_fixtures(CASES, ia3)


def test_the_vectors_moved(case):
    for layer in load_adapter(case[1] / "adapter"):
        assert np.abs(layer.factors["ia3_l"] - 1).max() > 1e-3  # trained away from peft's init (ones)


def test_exact_against_peft_merge(case):
    _, folder, reference = case
    assert check_exact(folder, reference) < 1e-10


def test_refused_without_base(case):
    _, folder, reference = case
    check_without_base(folder, reference, needs_base=True,
                       match=r"needs the base model's weights: \(IA\)³ rescales W₀ itself.* base=FOLDER_OR_MODEL")
    for layer in load_adapter(folder / "adapter"):
        assert layer.shape is None and layer.low_rank() is None
        if not layer.meta["feedforward"]:
            with pytest.raises(BaseWeightsRequired, match=r"rescales the bias .* base=FOLDER_OR_MODEL"):
                layer.delta_bias()


def test_no_factors(case):
    check_low_rank(case[1], expect_none=True)


def test_feedforward_layers_scale_columns(build):
    layers = {l.name: l for l in load_adapter(build("bert")[0] / "adapter", base=build("bert")[0] / "base")}
    ff = layers["bert.encoder.layer.0.output.dense"]
    attention = layers["bert.encoder.layer.0.attention.self.query"]
    assert ff.meta["feedforward"] and not attention.meta["feedforward"]
    assert ff.factors["ia3_l"].shape == (1, ff.shape[1]) and ff.delta_bias() is None
    assert attention.factors["ia3_l"].shape == (attention.shape[0], 1) and attention.delta_bias() is not None


def test_base_as_module(build):
    folder, reference = build("llama-regex")
    assert_matches_merge(load_adapter(folder / "adapter", base=tiny_llama()), reference)


@pytest.mark.parametrize("edit,match", [
    ({"feedforward_modules": ["q_proj"]},
     r"ia3_l has shape \(1, 64\), expected \(out, 1\) \(not in feedforward_modules\)"),
    ({"feedforward_modules": ["k_proj", "down_proj"]}, r"ia3_l has shape \(16, 1\), expected \(1, in\)"),
    ({"feedforward_modules": "("}, r"feedforward_modules='\(' is not a valid regular expression"),
])
def test_inconsistent_configs_are_refused(tmp_path, edit, match):
    config = ia3(target_modules=["k_proj", "down_proj"], feedforward_modules=["down_proj"])
    refuses_edited_config(tmp_path, tiny_llama(), config, edit, match)


def test_wrong_base_is_refused(build, tmp_path):
    tiny_bert().save_pretrained(tmp_path / "other")
    with pytest.raises(CheckpointError, match="has no tensor model.layers.0.mlp.down_proj.weight"):
        load_adapter(build("llama-regex")[0] / "adapter", base=tmp_path / "other")


@pytest.mark.parametrize("suffix,how,match", [
    ("ia3_l", "shape", r"the base weight is \(32, 64\) \(out, in\), ia3_l \(1, 65\); not the base"),
    ("ia3_l", "nan", "contains NaN or infinite values"),
    ("ia3_l", "extra", "belongs to no IA3 layer"),
])
def test_corrupt_files_are_refused(build, tmp_path, suffix, how, match):
    check_corruption(build("llama-regex")[0], tmp_path, suffix, how, match)
