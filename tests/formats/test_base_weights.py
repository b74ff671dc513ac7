"""ripkit.formats.base_weights: sharded folders, single files, modules, prefixes, pickles refused."""
import numpy as np
import pytest

from ripkit.formats import BaseWeights, CheckpointError, load_adapter
from ripkit.formats._io import safetensors_bytes

from ._builders import assert_matches_merge, merged_deltas, peft_checkpoint, tiny_llama


def dora():
    from peft import LoraConfig

    return LoraConfig(r=4, target_modules=["q_proj", "down_proj"], use_dora=True)


@pytest.fixture(scope="module")
def dora_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dora")
    model, w0 = peft_checkpoint(folder, tiny_llama(), dora())
    return folder, merged_deltas(model, w0)


def test_sharded_folder(dora_checkpoint, tmp_path):
    folder, reference = dora_checkpoint
    tiny_llama().save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").exists() and len(list(tmp_path.glob("*.safetensors"))) > 2
    base = BaseWeights(tmp_path)
    want = tiny_llama().state_dict()["model.layers.1.mlp.down_proj.weight"].double().numpy()
    np.testing.assert_array_equal(base.array("model.layers.1.mlp.down_proj"), want)
    assert_matches_merge(load_adapter(folder / "adapter", base=tmp_path), reference)


def test_base_saved_without_the_head_prefix(dora_checkpoint, tmp_path):
    """A LlamaModel folder (keys layers.0...) for an adapter trained on LlamaForCausalLM (model.layers.0...)."""
    folder, reference = dora_checkpoint
    tiny_llama().model.save_pretrained(tmp_path)
    assert BaseWeights(tmp_path).key("model.layers.0.self_attn.q_proj") == "layers.0.self_attn.q_proj.weight"
    assert_matches_merge(load_adapter(folder / "adapter", base=tmp_path), reference)


def test_ambiguous_and_missing_keys(tmp_path):
    raw = {k: ("F32", (2, 2), bytes(16)) for k in ("a.x.weight", "b.x.weight")}
    (tmp_path / "m.safetensors").write_bytes(safetensors_bytes(raw))
    base = BaseWeights(tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="x.weight matches several tensors"):
        base.array("x")
    with pytest.raises(CheckpointError, match="has no tensor y.weight"):
        base.shape("y")


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt"])
def test_pickles_are_refused(tmp_path, name):
    (tmp_path / name).write_bytes(b"\x80\x04not really")
    target = tmp_path if name.endswith(".bin") else tmp_path / name
    with pytest.raises(CheckpointError, match="pickled weights.*never unpickles.*safe_serialization=True"):
        BaseWeights(target)


def test_not_a_base(tmp_path):
    with pytest.raises(CheckpointError, match="has no \\*.safetensors weights"):
        BaseWeights(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        BaseWeights(tmp_path / "nope")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(CheckpointError, match="is not a model folder or a .safetensors file"):
        BaseWeights(tmp_path / "x.txt")
    with pytest.raises(CheckpointError, match="must be a model folder"):
        BaseWeights(3.5)


def test_index_pointing_outside_the_folder_is_refused(tmp_path):
    (tmp_path / "model.safetensors.index.json").write_text('{"weight_map": {"w": "../evil.safetensors"}}')
    with pytest.raises(CheckpointError, match="weight_map must map tensor names to .safetensors files in the same folder"):
        BaseWeights(tmp_path)
