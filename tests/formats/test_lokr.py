"""ripkit.formats.lokr against peft's own merge (float64 copy, merge_and_unload, minus the float64 base)."""

import pytest

from ripkit.formats import load_adapter
from ripkit.formats.lokr import factorization

from ._builders import tiny_bert, tiny_llama
from ._family import (case_fixtures, check_corruption, check_exact, check_low_rank, check_without_base,
                      refuses_edited_config)


def lokr(**kw):
    from peft import LoKrConfig

    return LoKrConfig(**kw)


CASES = {  # name: (model, config); which factors are full follows from r and the layer shape
    "llama-full": (tiny_llama, dict(r=4, target_modules=["q_proj", "down_proj"])),               # w1, w2 full
    "llama-decompose-both": (tiny_llama, dict(r=1, alpha=3, decompose_both=True,                # both factored
                                              target_modules=["q_proj", "up_proj", "down_proj"])),
    "bert-factor-patterns": (tiny_bert, dict(r=2, decompose_factor=4, target_modules=["query", "dense"],
                                             rank_pattern={"query": 3}, alpha_pattern={"dense": 5})),
}


build, case = case_fixtures(CASES, lokr)


def test_exact_against_peft_merge(case):
    _, folder, reference = case
    assert check_exact(folder, reference) < 1e-10


def test_needs_no_base(case):
    _, folder, reference = case
    check_without_base(folder, reference, needs_base=False)


def test_low_rank(case):
    check_low_rank(case[1])


def test_which_factors_are_full(build):
    full = {l.name: (l.meta["w1_full"], l.meta["w2_full"]) for l in load_adapter(build("llama-full")[0] / "adapter")}
    assert set(full.values()) == {(True, True)}
    layers = load_adapter(build("llama-decompose-both")[0] / "adapter")
    assert {(l.meta["w1_full"], l.meta["w2_full"]) for l in layers} == {(False, False)}
    assert all(l.scaling == 3.0 and l.low_rank() is not None for l in layers)  # alpha/r even when factored


@pytest.mark.parametrize("dimension", [1, 2, 7, 12, 32, 64, 96, 127, 128, 768, 1536, 4096, 11008, 14336])
@pytest.mark.parametrize("factor", [-1, 2, 4, 8, 16, 5])
def test_factorization_is_peft_s(dimension, factor):
    from peft.tuners.lokr.layer import factorization as peft_factorization

    assert factorization(dimension, factor) == peft_factorization(dimension, factor)


@pytest.mark.parametrize("edit,match", [
    ({"decompose_both": True, "r": 1}, r"not what peft's LoKr stores for a Linear layer of shape \(32, 32\) with r=1, "
                                       r"decompose_both=True"),
    ({"decompose_factor": 2}, r"split as \(2, 16\) x \(2, 16\)"),
    ({"decompose_factor": 0}, "decompose_factor=0, expected -1 or a positive integer"),
])
def test_inconsistent_configs_are_refused(tmp_path, edit, match):
    refuses_edited_config(tmp_path, tiny_llama(), lokr(r=1, target_modules=["q_proj"]), edit, match)


@pytest.mark.parametrize("suffix,how,match", [
    ("lokr_w2_b", "drop", r"missing \['lokr_w2_b'\]"),
    ("lokr_w1_b", "shape", r"factors give ΔW of shape \(32, 72\) \(out, in\), the base weight has shape \(32, 64\)"),
    ("lokr_w2_a", "nan", "contains NaN or infinite values"),
    ("lokr_w1_a", "extra", "belongs to no LOKR layer"),
])
def test_corrupt_files_are_refused(build, tmp_path, suffix, how, match):
    check_corruption(build("llama-decompose-both")[0], tmp_path, suffix, how, match)
