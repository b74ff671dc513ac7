"""Checks every peft family's tests share: exact against peft's merge, refusal without the base,
low-rank factors equal to ΔW, and corrupted copies of a real checkpoint."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ripkit.formats import BaseWeightsRequired, CheckpointError, load_adapter

from ._builders import assert_matches_merge, merged_deltas, peft_checkpoint, rel_err

__all__ = ["builder", "case_fixtures", "refuses_edited_config", "max_error", "check_exact", "check_without_base",
           "check_low_rank", "corrupted", "load_everything", "check_corruption", "NEEDS_BASE"]

NEEDS_BASE = r"needs the base model's weights: .* base=FOLDER_OR_MODEL"


def builder(tmp_path_factory, cases: dict, config, train: str = "steps"):
    """``get(name)`` → (folder, peft's merge deltas) of ``cases[name] = (make_model, config kwargs)``, built once."""
    cache = {}

    def get(name):
        if name not in cache:
            make, kw = cases[name]
            folder = tmp_path_factory.mktemp(name)
            model, w0 = peft_checkpoint(folder, make(), config(**kw), train=train)
            cache[name] = folder, merged_deltas(model, w0)
        return cache[name]

    return get


def case_fixtures(cases: dict, config):
    """The (``build``, ``case``) fixture pair of a family's test module: ``build(name)`` → (folder, merge
    deltas), built once per module; ``case`` → (name, folder, deltas) for every entry of ``cases``."""

    @pytest.fixture(scope="module")
    def build(tmp_path_factory):
        return builder(tmp_path_factory, cases, config)

    @pytest.fixture(params=sorted(cases))
    def case(request, build):
        return request.param, *build(request.param)

    return build, case


def refuses_edited_config(tmp_path: Path, model, config, edit: dict, match: str):
    """A real checkpoint whose adapter_config.json is then edited (``None`` deletes a key) is refused on load."""
    peft_checkpoint(tmp_path, model, config, train="random")
    cfg_path = tmp_path / "adapter" / "adapter_config.json"
    edited = {**json.loads(cfg_path.read_text()), **edit}
    cfg_path.write_text(json.dumps({k: v for k, v in edited.items() if v is not None}))
    with pytest.raises(CheckpointError, match=match):
        load_adapter(tmp_path / "adapter")


def max_error(layers, reference) -> float:
    """Largest relative error of a ripkit ΔW against peft's merge (the number each family reports)."""
    errors = [0.0]
    for layer in layers:
        want = reference.get(layer.name + ".weight")
        if want is not None:
            got = layer.delta_w()
            errors.append(rel_err(got.T if layer.meta.get("fan_in_fan_out") else got, want))
    return max(errors)


def check_exact(folder: Path, reference: dict, tol: float = 1e-10) -> float:
    """ripkit's ΔW (with the base) equals peft's merge for every changed tensor, nothing lost or added."""
    assert reference, "the fixture must change the model"
    layers = load_adapter(folder / "adapter", base=folder / "base")
    assert_matches_merge(layers, reference, tol=tol)
    return max_error(layers, reference)


def check_without_base(folder: Path, reference: dict, needs_base: bool, match: str = NEEDS_BASE):
    """Loading never needs the base; ΔW refuses with one clear message when it depends on it."""
    layers = load_adapter(folder / "adapter")
    if not needs_base:
        assert_matches_merge(layers, reference)
        return
    for layer in layers:
        assert "base" in layer.needs
        with pytest.raises(BaseWeightsRequired, match=match):
            layer.delta_w()


def check_low_rank(folder: Path, expect_none: bool = False):
    for layer in load_adapter(folder / "adapter", base=folder / "base"):
        factors = layer.low_rank()
        if expect_none:
            assert factors is None
            continue
        if factors is None:
            continue
        u, v = factors
        assert u.shape[0] == layer.shape[0] and v.shape[1] == layer.shape[1] and u.shape[1] == v.shape[0]
        assert u.shape[1] < min(layer.shape)
        assert rel_err(u @ v, layer.delta_w()) < 1e-13


def corrupted(folder: Path, dst: Path, suffix: str, how: str) -> Path:
    """A copy of ``folder`` (checkpoint + base) whose first non-empty tensor ending in ``suffix`` is dropped ('drop'),
    given one more column ('shape'), made NaN ('nan'), or joined by an unknown neighbour ('extra')."""
    from safetensors.numpy import load_file, save_file

    shutil.copytree(folder, dst)
    path = dst / "adapter" / "adapter_model.safetensors"
    tensors = load_file(path)
    key = sorted(k for k in tensors if k.endswith(suffix) and tensors[k].size)[0]
    if how == "drop":
        del tensors[key]
    elif how == "shape":
        value = tensors[key]
        tensors[key] = np.concatenate([value, value[..., :1]], axis=-1) if value.ndim else value
    elif how == "nan":
        tensors[key] = tensors[key].copy()
        tensors[key].reshape(-1)[0] = np.nan
    elif how == "extra":
        tensors[key.rsplit(".", 1)[0] + ".unknown_factor"] = np.zeros(2, dtype=np.float32)
    else:
        raise ValueError(how)
    save_file(tensors, path)
    return dst / "adapter"


def load_everything(adapter: Path, base: Path):
    """Load and evaluate every layer (what a user does); corrupted files must fail with CheckpointError."""
    for layer in load_adapter(adapter, base=base):
        layer.delta_w()
        layer.delta_bias()
        layer.low_rank()


def check_corruption(folder: Path, tmp_path: Path, suffix: str, how: str, match: str):
    adapter = corrupted(folder, tmp_path / "copy", suffix, how)
    with pytest.raises(CheckpointError, match=match):
        load_everything(adapter, tmp_path / "copy" / "base")
