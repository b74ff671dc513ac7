"""ripkit.formats.shira against peft's own merge: the sparse positions are read from the file."""
import json

import numpy as np
import pytest

from ripkit.formats import BaseWeightsRequired, CheckpointError, load_adapter

from ._builders import tiny_bert, tiny_llama
from ._family import case_fixtures, check_corruption, check_exact, check_low_rank


def shira(**kw):
    from peft import ShiraConfig

    return ShiraConfig(**kw)


CASES = {
    "llama": (tiny_llama, dict(r=2, random_seed=3, target_modules=["q_proj", "down_proj"])),
    "bert": (tiny_bert, dict(r=1, target_modules=["query", "dense"])),
}


build, case = case_fixtures(CASES, shira)


def test_exact_against_peft_merge(case):
    _, folder, reference = case
    assert check_exact(folder, reference) < 1e-10
    r = json.loads((folder / "adapter" / "adapter_config.json").read_text())["r"]
    for layer in load_adapter(folder / "adapter", base=folder / "base"):
        assert np.count_nonzero(layer.delta_w()) == layer.trainable_parameters == r * sum(layer.shape)


def test_shapes_need_the_base(case):
    for layer in load_adapter(case[1] / "adapter"):
        assert layer.shape is None and layer.needs == frozenset({"base"})
        with pytest.raises(BaseWeightsRequired, match=r"does not record the layer's shape.* base=FOLDER_OR_MODEL"):
            layer.delta_w()


def test_no_factors(case):
    check_low_rank(case[1], expect_none=True)


def test_positions_outside_the_base_are_refused(build):
    import torch

    base = tiny_llama()
    base.model.layers[0].self_attn.q_proj.weight = torch.nn.Parameter(torch.zeros(4, 4))  # not the trained-on base
    layer = load_adapter(build("llama")[0] / "adapter", base=base, layers=r"layers\.0\.self_attn")[0]
    with pytest.raises(CheckpointError, match=r"shira_indices are not integer positions inside the base weight "
                                              r"\(4, 4\)"):
        layer.delta_w()


@pytest.mark.parametrize("suffix,how,match", [
    ("shira_indices", "drop", r"missing \['shira_indices'\]"),
    ("shira_weight", "shape", r"shira_weight \(193,\), shira_indices \(2, 192\); expected \(n,\) and \(2, n\)"),
    ("shira_weight", "nan", "contains NaN or infinite values"),
    ("shira_weight", "extra", "belongs to no SHIRA layer"),
])
def test_corrupt_files_are_refused(build, tmp_path, suffix, how, match):
    check_corruption(build("llama")[0], tmp_path, suffix, how, match)
