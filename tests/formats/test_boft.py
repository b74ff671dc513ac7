"""ripkit.formats.boft against peft's own merge; refused without the base."""

import numpy as np
import pytest

from ripkit.formats import load_adapter
from ripkit.formats.boft import block_butterfly_perm

from ._builders import merged_deltas, peft_checkpoint, tiny_bert, tiny_llama
from ._family import (case_fixtures, check_corruption, check_exact, check_low_rank, check_without_base,
                      refuses_edited_config)


def boft(**kw):
    from peft import BOFTConfig

    return BOFTConfig(**kw)


CASES = {  # on a CPU peft uses one butterfly factor (its CUDA extension is needed for more)
    "bert-block-size": (tiny_bert, dict(boft_block_size=8, target_modules=["query", "dense"])),
    "bert-block-num-boft-only-bias": (tiny_bert, dict(boft_block_size=0, boft_block_num=4, bias="boft_only",
                                                      target_modules=["value", "output.dense"])),
    "llama-block-num": (tiny_llama, dict(boft_block_size=0, boft_block_num=2, target_modules=["k_proj", "down_proj"])),
}


class BlockDiagonal:
    """What peft's CUDA extension ``fbd_cuda`` computes: (N, D, H, H) blocks → N block-diagonal (D·H, D·H)."""

    @staticmethod
    def forward(blocks):
        import torch

        return [torch.stack([torch.block_diag(*factor) for factor in blocks])]

    @staticmethod
    def backward(grad, blocks):
        import torch

        h = blocks.shape[-1]
        return [torch.stack([torch.stack([g[j * h:(j + 1) * h, j * h:(j + 1) * h] for j in range(blocks.shape[1])])
                             for g in grad])]


build, case = case_fixtures(CASES, boft)


@pytest.fixture(scope="module", params=[(2, 4), (3, 4), (2, 2)], ids=lambda p: f"factors{p[0]}-size{p[1]}")
def butterfly(request, tmp_path_factory):
    """Several butterfly factors, built by peft's CUDA code path with the block-diagonal kernel done in torch."""
    import peft.tuners.boft.layer as boft_layer

    factors, size = request.param
    saved, boft_layer._FBD_CUDA = boft_layer._FBD_CUDA, BlockDiagonal
    try:
        folder = tmp_path_factory.mktemp("butterfly")
        model, w0 = peft_checkpoint(folder, tiny_bert(), boft(boft_block_size=size, boft_n_butterfly_factor=factors,
                                                              target_modules=["query", "dense"]))
        reference = merged_deltas(model, w0)
    finally:
        boft_layer._FBD_CUDA = saved
    return factors, folder, reference


def test_the_rotations_moved(case):
    for layer in load_adapter(case[1] / "adapter"):
        assert np.abs(layer.factors["boft_R"]).max() > 1e-3 and np.abs(layer.factors["boft_s"] - 1).max() > 1e-3


def test_exact_against_peft_merge(case):
    name, folder, reference = case
    assert check_exact(folder, reference) < 1e-10
    assert any(k.endswith(".bias") for k in reference) == name.endswith("bias")  # boft_only: trained biases


def test_butterfly_factors_exact_against_peft_merge(butterfly):
    factors, folder, reference = butterfly
    assert {l.meta["butterfly_factors"] for l in load_adapter(folder / "adapter")} == {factors}
    assert check_exact(folder, reference) < 1e-10


def test_refused_without_base(case):
    _, folder, reference = case
    check_without_base(folder, reference, needs_base=True,
                       match=r"needs the base model's weights: BOFT rotates and rescales W₀.* base=FOLDER_OR_MODEL")
    assert all(l.shape is not None for l in load_adapter(folder / "adapter"))  # the file records both sides


def test_no_factors(case):
    check_low_rank(case[1], expect_none=True)


@pytest.mark.parametrize("n,b,r,factor", [(32, 4, 4, 1), (32, 2, 4, 1), (64, 8, 2, 2), (64, 4, 2, 2), (64, 2, 2, 2),
                                          (48, 6, 2, 1), (96, 3, 4, 2), (32, 8, 2, 0), (16, 8, 2, 1)])
def test_butterfly_permutation_is_peft_s(n, b, r, factor):
    from peft.tuners.boft.layer import BOFTLayer

    if b * r * 2 > n:
        with pytest.raises(ValueError, match="Invalid number of blocks"):
            block_butterfly_perm(n, b, r, factor)
        return
    want = BOFTLayer.block_butterfly_perm(None, n, b, r, factor).numpy()
    assert np.array_equal(block_butterfly_perm(n, b, r, factor), want)


@pytest.mark.parametrize("edit,match", [
    ({"boft_block_size": 4}, r"boft_R \(1, 4, 8, 8\) does not fit boft_block_size=4"),
    ({"boft_block_size": 8, "boft_block_num": 4}, "exactly one must be non-zero"),
    ({"boft_n_butterfly_factor": 0}, "boft_n_butterfly_factor=0, expected an integer >= 1"),
])
def test_inconsistent_configs_are_refused(tmp_path, edit, match):
    refuses_edited_config(tmp_path, tiny_llama(), boft(boft_block_size=8, target_modules=["q_proj"]), edit, match)


@pytest.mark.parametrize("suffix,how,match", [
    ("boft_s", "drop", r"missing \['boft_s'\]"),
    ("boft_s", "shape", r"boft_s \(32, 2\); expected \(factors, blocks, size, size\) and \(out, 1\)"),
    ("boft_R", "nan", "contains NaN or infinite values"),
    ("boft_R", "extra", "belongs to no BOFT layer"),
])
def test_corrupt_files_are_refused(build, tmp_path, suffix, how, match):
    check_corruption(build("bert-block-num-boft-only-bias")[0], tmp_path, suffix, how, match)
