"""ripkit.formats.loha against peft's own merge (float64 copy, merge_and_unload, minus the float64 base)."""

import numpy as np
import pytest

from ripkit.formats import CheckpointError, load_adapter

from ._builders import rel_err, tiny_bert, tiny_llama
from ._family import (case_fixtures, check_corruption, check_exact, check_low_rank, check_without_base, corrupted,
                      refuses_edited_config)


def loha(**kw):
    from peft import LoHaConfig

    return LoHaConfig(**kw)


CASES = {  # alpha/r = 7/3 and 8/3 are not float32 numbers: peft's merge rounds them
    "llama-patterns": (tiny_llama, dict(r=3, alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                                        rank_pattern={"down_proj": 2}, alpha_pattern={"q_proj": 7})),
    "bert": (tiny_bert, dict(r=4, alpha=6, target_modules=["query", "dense"])),
}


build, case = case_fixtures(CASES, loha)


def test_exact_against_peft_merge(case):
    _, folder, reference = case
    assert check_exact(folder, reference) < 1e-10


def test_needs_no_base(case):
    _, folder, reference = case
    check_without_base(folder, reference, needs_base=False)


def test_low_rank_is_a_khatri_rao_product(case):
    check_low_rank(case[1])
    for layer in load_adapter(case[1] / "adapter"):
        assert layer.low_rank()[0].shape[1] == layer.meta["r"] ** 2  # 4, 9 or 16, below 32


def test_scaling_is_rounded_to_float32_as_peft_does(build):
    folder, reference = build("llama-patterns")  # alpha/r = 7/3 and 8/3
    for layer in load_adapter(folder / "adapter"):
        f = layer.factors
        exact = layer.meta["alpha"] / layer.meta["r"]
        assert layer.scaling == float(np.float32(exact)) and layer.meta["scaling_exact"] == exact
        naive = (f["hada_w1_a"] @ f["hada_w1_b"]) * (f["hada_w2_a"] @ f["hada_w2_b"]) * exact
        want = reference[layer.name + ".weight"]
        if exact != float(np.float32(exact)):
            assert rel_err(naive, want) > 1e-9 > rel_err(layer.delta_w(), want)
    q = next(l for l in load_adapter(folder / "adapter") if l.name.endswith("q_proj"))
    assert (q.meta["r"], q.meta["alpha"], q.meta["alpha_pattern_key"]) == (3, 7.0, "q_proj")


@pytest.mark.parametrize("edit,match", [
    ({"r": 4}, r"expected \(out, r\), \(r, in\) twice with r=4"),
    ({"rank_pattern": {"v_proj": 5}}, r"with r=5 \(rank_pattern key 'v_proj'\)"),
    ({"alpha": 1e9}, r"alpha=1000000000.0, expected a positive number at most 1e\+06"),
])
def test_inconsistent_configs_are_refused(tmp_path, edit, match):
    refuses_edited_config(tmp_path, tiny_llama(), loha(r=3, target_modules=["q_proj", "v_proj"]), edit, match)


@pytest.mark.parametrize("suffix,how,match", [
    ("hada_w2_b", "drop", r"missing \['hada_w2_b'\]"),
    ("hada_w1_b", "shape", r"hada_w1_b \(2, 65\), .*expected \(out, r\), \(r, in\) twice with r=2"),
    ("hada_w1_a", "nan", "contains NaN or infinite values"),
    ("hada_w1_a", "extra", "belongs to no LOHA layer"),
])
def test_corrupt_files_are_refused(build, tmp_path, suffix, how, match):
    check_corruption(build("llama-patterns")[0], tmp_path, suffix, how, match)


def test_cp_factors_of_convolutions_are_refused(build, tmp_path):
    from safetensors.numpy import load_file, save_file

    adapter = corrupted(build("bert")[0], tmp_path / "copy", "hada_w1_a", "extra")
    path = adapter / "adapter_model.safetensors"
    tensors = load_file(path)
    key = next(k for k in tensors if k.endswith(".unknown_factor"))
    tensors[key.replace(".unknown_factor", ".hada_t1")] = tensors.pop(key)
    save_file(tensors, path)
    with pytest.raises(CheckpointError, match=r"stores CP factors \(hada_t1/hada_t2, use_effective_conv2d"):
        load_adapter(adapter)
