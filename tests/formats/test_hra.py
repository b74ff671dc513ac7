"""ripkit.formats.hra against peft's own merge; refused without the base."""

import numpy as np
import pytest

from ripkit.formats.hra import reflect

from ._builders import rel_err, tiny_bert, tiny_llama
from ._family import (case_fixtures, check_corruption, check_exact, check_low_rank, check_without_base,
                      refuses_edited_config)


def hra(**kw):
    from peft import HRAConfig

    return HRAConfig(**kw)


CASES = {
    "llama": (tiny_llama, dict(r=4, target_modules=["q_proj", "down_proj"])),
    "bert-gram-schmidt-hra-only-bias": (tiny_bert, dict(r=3, apply_GS=True, bias="hra_only",
                                                        target_modules=["query", "dense"])),
}


build, case = case_fixtures(CASES, hra)


def test_exact_against_peft_merge(case):
    name, folder, reference = case
    assert check_exact(folder, reference) < 1e-10
    assert any(k.endswith(".bias") for k in reference) == name.endswith("bias")  # hra_only: trained biases


def test_refused_without_base(case):
    _, folder, reference = case
    check_without_base(folder, reference, needs_base=True,
                       match=r"needs the base model's weights: HRA reflects W₀ itself.* base=FOLDER_OR_MODEL")


def test_no_factors(case):
    check_low_rank(case[1], expect_none=True)


@pytest.mark.parametrize("apply_gs", [False, True])
@pytest.mark.parametrize("n,r", [(8, 1), (8, 2), (12, 5), (16, 16)])
def test_reflections_equal_peft_s(apply_gs, n, r):
    """Against ``HRALinear.get_delta_weight`` itself: W₀·H with peft's H."""
    import torch
    from peft.tuners.hra.layer import HRALinear

    layer = HRALinear(torch.nn.Linear(n, 6).double(), "default", hra(r=r, apply_GS=apply_gs, init_weights=False,
                                                                       target_modules=["x"]), r=r).double()
    u = layer.hra_u["default"].detach().numpy()
    w0 = np.random.default_rng(n * r).standard_normal((6, n))
    want = w0 @ layer.get_delta_weight("default").detach().numpy()
    assert rel_err(reflect(w0, u, apply_gs), want) < 1e-14


@pytest.mark.parametrize("edit,match", [
    ({"r": 5}, r"hra_u has shape \(32, 4\), expected \(in, r=5\)"),
    ({"bias": "lora_only"}, "bias='lora_only', expected one of 'none', 'all', 'hra_only'"),
])
def test_inconsistent_configs_are_refused(tmp_path, edit, match):
    refuses_edited_config(tmp_path, tiny_llama(), hra(r=4, target_modules=["q_proj"]), edit, match)


@pytest.mark.parametrize("suffix,how,match", [
    ("hra_u", "shape", r"hra_u has shape \(64, 5\), expected \(in, r=4\)"),
    ("hra_u", "nan", "contains NaN or infinite values"),
    ("hra_u", "extra", "belongs to no HRA layer"),
])
def test_corrupt_files_are_refused(build, tmp_path, suffix, how, match):
    check_corruption(build("llama")[0], tmp_path, suffix, how, match)
