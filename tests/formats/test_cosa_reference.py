"""The CoSA authors' checkpoint layout (peft fork, peft_type "COSA"), written here by the test.

The expected ΔW is computed independently from the fork's source
(``peft/src/peft/tuners/lora/layer.py``: ``_generate_compression_matrix_L/R`` and
``get_delta_weight_compression``), with Python's own ``hash()`` run under ``PYTHONHASHSEED``.
"""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from ripkit.formats import CheckpointError, load_adapter
from ripkit.formats._io import safetensors_bytes
from ripkit.formats._pyhash import siphash, string_hash

from ._builders import rel_err, tiny_llama

A, B, R_, ALPHA, SEED, HASH_SEED = 8, 6, 8, 16, 7, 123
TARGETS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.o_proj", "mlp.down_proj")


def python_hash(text: str, seed: int) -> int:
    """hash(text) of this interpreter run with PYTHONHASHSEED=seed."""
    out = subprocess.run([sys.executable, "-c", "import sys; print(hash(sys.argv[1]))", text],
                         env={**os.environ, "PYTHONHASHSEED": str(seed)}, capture_output=True, text=True, check=True)
    return int(out.stdout)


def write_reference_checkpoint(folder, compression_seed=SEED):
    base = tiny_llama()
    base.save_pretrained(folder / "base")
    rng = np.random.default_rng(0)
    cores = {f"model.layers.{i}.{t}": rng.standard_normal((A, B)).astype(np.float32) for i in range(2) for t in TARGETS}
    tensors = {f"base_model.model.{name}.lora_Y.weight": ("F32", y.shape, y.tobytes()) for name, y in cores.items()}
    (folder / "adapter").mkdir()
    (folder / "adapter" / "adapter_model.safetensors").write_bytes(safetensors_bytes(tensors, {"format": "pt"}))
    config = {"peft_type": "COSA", "r": R_, "lora_alpha": ALPHA, "use_compression": True, "compression_a": A,
              "compression_b": B, "compression_seed": compression_seed, "target_modules": ["q_proj", "k_proj", "o_proj",
                                                                                         "down_proj"],
              "base_model_name_or_path": "tiny-llama", "fan_in_fan_out": False, "use_rslora": False}
    (folder / "adapter" / "adapter_config.json").write_text(json.dumps(config))
    return cores, {k: v.detach().double().numpy() for k, v in base.state_dict().items()}


def reference_delta(y, out, inp, compression_seed=SEED):
    """s·Lᵀ·(Y·Rᵀ) with L, R drawn as the fork does (layer id identical for every nn.Linear)."""
    layer_id = "CoSALinear_Linear_default"
    seed_l = (compression_seed or 42) + python_hash(f"{layer_id}_L", HASH_SEED) % 10000
    seed_r = (compression_seed or 42) + python_hash(f"{layer_id}_R", HASH_SEED) % 10000
    g = torch.Generator(device="cpu")
    g.manual_seed(seed_l)
    left = torch.randn(A, out, generator=g, dtype=torch.float32) * (1 / math.sqrt(A))
    g.manual_seed(seed_r)
    right = torch.randn(inp, B, generator=g, dtype=torch.float32) * (1 / math.sqrt(B))
    y = torch.from_numpy(y).double()
    return (ALPHA / R_ * (left.double().t() @ (y @ right.double().t()))).numpy()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cosa-reference")
    cores, w0 = write_reference_checkpoint(folder)
    return folder, cores, w0


def test_delta_w_matches_the_reference_formula(checkpoint):
    folder, cores, w0 = checkpoint
    layers = load_adapter(folder / "adapter", base=folder / "base", hash_seed=HASH_SEED, hash_algorithm="siphash13")
    assert sorted(l.name for l in layers) == sorted(cores)
    for layer in layers:
        out, inp = w0[layer.name + ".weight"].shape
        assert layer.shape == (out, inp) and layer.method == "cosa-reference"
        assert rel_err(layer.delta_w(), reference_delta(cores[layer.name].astype(np.float64), out, inp)) < 1e-12
        u, v = layer.low_rank()
        assert u.shape == (out, B) and rel_err(u @ v, layer.delta_w()) < 1e-13
        left, right = layer.dictionary()
        assert left.shape == (out, A) and right.shape == (B, inp)
        assert rel_err(layer.scaling * left @ layer.core() @ right, layer.delta_w()) < 1e-13


def test_core_needs_nothing_and_delta_w_says_what_is_missing(checkpoint):
    folder, cores, _ = checkpoint
    layers = load_adapter(folder / "adapter")  # neither base nor hash seed
    for layer in layers:
        np.testing.assert_array_equal(layer.core(), cores[layer.name].astype(np.float64))
        assert layer.shape is None and layer.needs == frozenset({"hash_seed", "base"})
        assert layer.trainable_parameters == A * B
    with pytest.raises(CheckpointError, match=r"salted string hash.*hash_seed=N.*cannot be recovered"):
        layers[0].delta_w()
    with pytest.raises(CheckpointError, match="does not store the layer's \\(out, in\\).*base=FOLDER_OR_MODEL"):
        load_adapter(folder / "adapter", hash_seed=HASH_SEED)[0].delta_w()


def test_layers_of_one_shape_share_projections(checkpoint):
    folder, _, _ = checkpoint
    layers = {l.name: l for l in load_adapter(folder / "adapter", base=folder / "base", hash_seed=HASH_SEED,
                                              hash_algorithm="siphash13")}
    q, k, o, down = (layers[f"model.layers.0.{t}"] for t in TARGETS)
    q1 = layers["model.layers.1.self_attn.q_proj"]
    # L depends on (a, out): q, o, down (out 32) of both blocks share it; R on (in, b): q, k, o (in 32)
    assert (q.meta["L_shared_by"], q.meta["R_shared_by"], k.meta["L_shared_by"]) == (6, 6, 2)
    assert down.meta["R_shared_by"] == 2 and q.meta["projection_seeds"] == down.meta["projection_seeds"]
    np.testing.assert_array_equal(q.dictionary()[0], q1.dictionary()[0])
    np.testing.assert_array_equal(q.dictionary()[0], down.dictionary()[0])
    np.testing.assert_array_equal(q.dictionary()[1], k.dictionary()[1])


def test_default_algorithm_is_the_reference_python(checkpoint):
    """The reference ran Python 3.10 (SipHash-2-4); this interpreter's hash() is SipHash-1-3 from 3.11 on."""
    folder, _, _ = checkpoint
    layer = load_adapter(folder / "adapter", base=folder / "base", hash_seed=HASH_SEED)[0]
    assert layer.meta["hash_algorithm"] == "siphash24"
    want = SEED + string_hash("CoSALinear_Linear_default_L", HASH_SEED, "siphash24") % 10000
    assert layer.meta["projection_seeds"]["L"] == want


def test_compression_seed_zero_means_42(tmp_path):
    cores, w0 = write_reference_checkpoint(tmp_path, compression_seed=0)
    layer = load_adapter(tmp_path / "adapter", base=tmp_path / "base", hash_seed=HASH_SEED,
                         hash_algorithm="siphash13")[0]
    out, inp = w0[layer.name + ".weight"].shape
    want = reference_delta(cores[layer.name].astype(np.float64), out, inp, compression_seed=0)
    assert rel_err(layer.delta_w(), want) < 1e-12


@pytest.mark.parametrize("edit,match", [({"use_compression": False}, "use_compression is false"),
                                        ({"compression_a": 4}, r"lora_Y has shape \(8, 6\)"),
                                        ({"compression_seed": 1.5}, "compression_seed=1.5")])
def test_bad_configs(tmp_path, edit, match):
    write_reference_checkpoint(tmp_path)
    cfg_path = tmp_path / "adapter" / "adapter_config.json"
    cfg_path.write_text(json.dumps({**json.loads(cfg_path.read_text()), **edit}))
    with pytest.raises(CheckpointError, match=match):
        load_adapter(tmp_path / "adapter")


# ---- CPython's string hash, reimplemented -------------------------------------------------------
def test_siphash24_reference_vectors():
    """SipHash paper, appendix A: key 00..0f; messages of length 0 and 15 (00 01 .. 0e)."""
    k0, k1 = int.from_bytes(bytes(range(8)), "little"), int.from_bytes(bytes(range(8, 16)), "little")
    assert siphash(k0, k1, b"", 2, 4) == 0x726FDB47DD0E0E31
    assert siphash(k0, k1, bytes(range(15)), 2, 4) == 0xA129CA6149BE45E5


@pytest.mark.parametrize("seed", [0, 1, 123, 4294967295])
def test_string_hash_equals_this_interpreters_hash(seed):
    assert sys.hash_info.algorithm == "siphash13" and sys.version_info >= (3, 11)
    words = ["", "a", "CoSALinear_Linear_default_L", "exactly8", "sixteen-bytes-xx", "é", "€uro", "😀x"]
    script = "import sys; print(*[hash(w) for w in sys.argv[1:]])"
    out = subprocess.run([sys.executable, "-c", script, *words], env={**os.environ, "PYTHONHASHSEED": str(seed)},
                         capture_output=True, text=True, check=True).stdout.split()
    assert [int(x) for x in out] == [string_hash(w, seed, "siphash13") for w in words]


def test_bad_hash_arguments(checkpoint):
    folder, _, _ = checkpoint
    with pytest.raises(ValueError, match="hash_seed=-1 must be an integer"):
        load_adapter(folder / "adapter", hash_seed=-1)
    with pytest.raises(ValueError, match="hash_algorithm='fnv'"):
        load_adapter(folder / "adapter", hash_seed=0, hash_algorithm="fnv")
