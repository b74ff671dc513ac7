"""ripkit.formats.oft against peft's own merge and peft's own rotation module; refused without the base."""

import numpy as np
import pytest

from ripkit.formats import CheckpointError, load_adapter
from ripkit.formats.oft import _coft_project, cayley, coft_radius, skew

from ._builders import rel_err, tiny_bert, tiny_llama
from ._family import (case_fixtures, check_corruption, check_exact, check_low_rank, check_without_base, corrupted,
                      refuses_edited_config)


def oft(**kw):
    from peft import OFTConfig

    return OFTConfig(**kw)


CASES = {
    "llama-embedding": (tiny_llama, dict(oft_block_size=8, r=0,
                                         target_modules=["q_proj", "down_proj", "embed_tokens"])),
    "bert-coft": (tiny_bert, dict(oft_block_size=4, r=0, coft=True, target_modules=["query", "dense"])),
    "bert-coft-loose": (tiny_bert, dict(oft_block_size=4, r=0, coft=True, eps=1e3, target_modules=["key"])),
    "llama-share-exact-cayley": (tiny_llama, dict(r=4, oft_block_size=0, block_share=True, use_cayley_neumann=False,
                                                  target_modules=["q_proj", "o_proj"])),
    "bert-3-terms-oft-only-bias": (tiny_bert, dict(oft_block_size=8, r=0, num_cayley_neumann_terms=3, bias="oft_only",
                                                   target_modules=["value"])),
}


build, case = case_fixtures(CASES, oft)


def test_the_rotations_moved(case):
    for layer in load_adapter(case[1] / "adapter"):
        assert np.abs(layer.factors["oft_R"]).max() > 1e-3  # peft initialises them to zero (R = I)


def test_exact_against_peft_merge(case):
    name, folder, reference = case
    assert check_exact(folder, reference) < 1e-10
    assert any(k.endswith(".bias") for k in reference) == name.endswith("bias")  # oft_only: trained biases


def test_refused_without_base(case):
    _, folder, reference = case
    check_without_base(folder, reference, needs_base=True,
                       match=r"needs the base model's weights: OFT rotates W₀ itself.* base=FOLDER_OR_MODEL")


def test_no_factors(case):
    check_low_rank(case[1], expect_none=True)


@pytest.mark.parametrize("block,blocks,share", [(2, 3, False), (4, 5, False), (8, 2, False), (6, 1, True)])
@pytest.mark.parametrize("coft,eps", [(False, 6e-5), (True, 6e-5), (True, 0.7)])
@pytest.mark.parametrize("neumann,terms", [(True, 5), (True, 1), (True, 2), (True, 3), (True, 8), (False, None)])
def test_rotations_equal_peft_s_module(block, blocks, share, coft, eps, neumann, terms):
    """Against ``OFTRotationModule.get_weight`` itself, with norms on both sides of coft's radius."""
    import torch
    from peft.tuners.oft.layer import OFTRotationModule

    n_el = block * (block - 1) // 2
    module = OFTRotationModule(1 if share else blocks, n_el, block, block * blocks, coft=coft, eps=eps,
                               block_share=share, use_cayley_neumann=neumann, num_cayley_neumann_terms=terms or 5)
    gen = torch.Generator().manual_seed(block * 100 + blocks)
    spread = torch.logspace(-2, 0, module.weight.shape[0])[:, None]  # norms below and above coft's radius
    with torch.no_grad():
        module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * spread)
    q = module.weight.detach().double().numpy()
    module = module.double()
    want = module.get_weight().detach().numpy()
    q_skew = skew(q, block)
    if coft:
        q_skew = _coft_project(q_skew, eps)
    got = cayley(q_skew, neumann, terms)
    rows = blocks if share else q.shape[0]
    dense = np.zeros((block * rows, block * rows))
    for i in range(rows):
        dense[i * block:(i + 1) * block, i * block:(i + 1) * block] = got[0 if share else i]
    assert rel_err(dense, want) < 1e-14


def test_coft_radius_is_torch_s_float32():
    import torch

    for blocks in (1, 2, 19, 128, 4096):
        assert coft_radius(6e-5, blocks) == float(6e-5 * 1 / torch.sqrt(torch.tensor(blocks)))
        assert coft_radius(6e-5, blocks) == float(np.float32(coft_radius(6e-5, blocks)))


@pytest.mark.parametrize("edit,match", [
    ({"oft_block_size": None}, "no oft_block_size: an OFT checkpoint of peft < 0.14"),
    ({"peft_version": "0.17.1"}, r"use_cayley_neumann=true saved by peft '0.17.1' \(< 0.18\)"),
    ({"num_cayley_neumann_terms": 10 ** 6}, "num_cayley_neumann_terms=1000000, expected at most 1000"),
    ({"block_share": True}, r"oft_R.weight has shape \(4, 28\), expected \(1, b\(b-1\)/2\)"),
    ({"eps": -1}, "eps=-1, expected a positive number"),
])
def test_inconsistent_configs_are_refused(tmp_path, edit, match):
    refuses_edited_config(tmp_path, tiny_llama(), oft(oft_block_size=8, r=0, target_modules=["q_proj"]), edit, match)


def test_the_saved_embedding_must_be_the_base_s(build, tmp_path):
    from safetensors.numpy import load_file, save_file

    adapter = corrupted(build("llama-embedding")[0], tmp_path / "copy", "oft_R.weight", "extra")
    path = adapter / "adapter_model.safetensors"
    tensors = load_file(path)
    del tensors[next(k for k in tensors if k.endswith(".unknown_factor"))]
    key = next(k for k in tensors if k.endswith("embed_tokens.base_layer.weight"))
    tensors[key] = tensors[key] * 2
    save_file(tensors, path)
    layer = load_adapter(adapter, base=tmp_path / "copy" / "base", layers="embed_tokens")[0]
    with pytest.raises(CheckpointError, match="saves a base weight .* that differs from the base's"):
        layer.delta_w()


@pytest.mark.parametrize("suffix,how,match", [
    ("oft_R.weight", "shape", r"oft_R.weight has shape \(8, 29\), expected \(blocks, b\(b-1\)/2\)"),
    ("oft_R.weight", "nan", "contains NaN or infinite values"),
    ("oft_R.weight", "extra", "belongs to no OFT layer"),
    ("oft_embedding_R.weight", "drop", "belongs to no OFT layer"),  # the saved embedding alone is not an OFT layer
])
def test_corrupt_files_are_refused(build, tmp_path, suffix, how, match):
    check_corruption(build("llama-embedding")[0], tmp_path, suffix, how, match)
