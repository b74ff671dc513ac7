"""ripkit.formats.fourierft against peft's own merge (float64 copy, merge_and_unload, minus the float64 base)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ripkit.formats import BaseWeightsRequired, CheckpointError, load_adapter

from ._builders import rel_err, tiny_bert, tiny_gpt2, tiny_llama
from ._family import case_fixtures, check_corruption, check_exact, check_low_rank, refuses_edited_config

ROOT = Path(__file__).parents[2]


def fourierft(**kw):
    from peft import FourierFTConfig

    return FourierFTConfig(**kw)


CASES = {
    "llama-pattern": (tiny_llama, dict(n_frequency=40, scaling=50.0, random_loc_seed=11,
                                       target_modules=["q_proj", "v_proj", "down_proj"],
                                       n_frequency_pattern={"down_proj": 100})),
    "bert": (tiny_bert, dict(n_frequency=64, target_modules=["query", "intermediate.dense"])),
    "gpt2-fan-in-fan-out": (tiny_gpt2, dict(n_frequency=30, target_modules=["c_attn"], fan_in_fan_out=True)),
}


build, case = case_fixtures(CASES, fourierft)


def test_exact_against_peft_merge(case):
    _, folder, reference = case
    assert check_exact(folder, reference) < 1e-10


def test_shapes_need_the_base(case):
    """The file stores only the coefficients: the positions are a permutation of out·in."""
    for layer in load_adapter(case[1] / "adapter"):
        assert layer.shape is None and layer.needs == frozenset({"base"})
        with pytest.raises(BaseWeightsRequired, match=r"does not record the layer's shape.* base=FOLDER_OR_MODEL"):
            layer.delta_w()
    for layer in load_adapter(case[1] / "adapter", base=case[1] / "base"):
        assert layer.needs == frozenset() and layer.trainable_parameters == layer.meta["n_frequency"]


def test_no_factors(case):
    check_low_rank(case[1], expect_none=True)


def test_pattern_and_seed(build):
    folder, reference = build("llama-pattern")
    layers = {l.name: l for l in load_adapter(folder / "adapter", base=folder / "base")}
    down = layers["model.layers.0.mlp.down_proj"]
    assert down.meta["n_frequency"] == 100 and down.meta["n_frequency_pattern_key"] == "down_proj"
    assert layers["model.layers.0.self_attn.q_proj"].meta["n_frequency"] == 40
    spectrum = np.abs(np.fft.fft2(down.delta_w()))  # Re(ifft2(S)): S's 100 coefficients and their conjugates
    assert 90 <= np.count_nonzero(spectrum > 1e-4 * spectrum.max()) <= 200
    cfg_path = folder / "adapter" / "adapter_config.json"
    config = json.loads(cfg_path.read_text())
    try:  # another seed draws other positions: the seed is part of the update
        cfg_path.write_text(json.dumps({**config, "random_loc_seed": 12}))
        moved = load_adapter(folder / "adapter", base=folder / "base", layers="layers.0.mlp.down_proj")[0]
        assert rel_err(moved.delta_w(), reference["model.layers.0.mlp.down_proj.weight"]) > 0.5
    finally:
        cfg_path.write_text(json.dumps(config))


def test_loading_imports_no_torch(build):
    """torch (for the positions) is imported by delta_w() only, not by loading."""
    folder, _ = build("bert")
    script = ("import sys\nfrom ripkit.formats import load_adapter\n"
              f"layers = load_adapter({str(folder / 'adapter')!r}, base={str(folder / 'base')!r})\n"
              "print(len(layers), 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["4", "False"]


@pytest.mark.parametrize("edit,match", [
    ({"n_frequency": 30}, r"fourierft_spectrum has shape \(20,\), expected \(30,\) \(n_frequency\)"),
    ({"n_frequency_pattern": {"q_proj": 10}}, r"expected \(10,\) \(n_frequency, pattern key 'q_proj'\)"),
    ({"random_loc_seed": 2 ** 64}, "random_loc_seed=18446744073709551616, expected an integer below 2"),
    ({"scaling": -1.0}, "scaling=-1.0, expected a positive number"),
])
def test_inconsistent_configs_are_refused(tmp_path, edit, match):
    refuses_edited_config(tmp_path, tiny_llama(), fourierft(n_frequency=20, target_modules=["q_proj"]), edit, match)


def test_more_coefficients_than_entries_is_refused(build):
    import torch

    base = tiny_llama()
    base.model.layers[0].mlp.down_proj.weight = torch.nn.Parameter(torch.zeros(8, 8))  # not the trained-on base
    with pytest.raises(CheckpointError, match=r"n_frequency=100 exceeds out·in = 64 of the base weight"):
        load_adapter(build("llama-pattern")[0] / "adapter", base=base)


@pytest.mark.parametrize("suffix,how,match", [
    ("fourierft_spectrum", "shape", r"fourierft_spectrum has shape \(101,\), expected \(100,\)"),
    ("fourierft_spectrum", "nan", "contains NaN or infinite values"),
    ("fourierft_spectrum", "extra", "belongs to no FOURIERFT layer"),
])
def test_corrupt_files_are_refused(build, tmp_path, suffix, how, match):
    check_corruption(build("llama-pattern")[0], tmp_path, suffix, how, match)
