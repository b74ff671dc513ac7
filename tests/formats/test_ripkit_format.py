"""ripkit's own format: every method read exactly, format-2 integrity, format-1 compatibility, validation."""
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from ripkit.adapters import adapter_modules, inject
from ripkit.checkpoints import read_ripkit, save_adapter
from ripkit.formats import (ADAPTER_FILE, META_FILE, CheckpointError, UnverifiedCheckpointWarning, load_adapter,
                            upgrade_ripkit, write_ripkit)

from ._builders import rel_err, tiny_bert

RUNS = Path(__file__).parents[2] / "studies" / "runs"
METHODS = {"cosa": {"a": 8, "b": 4, "scaling": 2.0}, "lora": {"r": 4, "alpha": 8},
           "block-lora": {"r": 4, "k": 2, "partition": "random"}, "cps-lora": {"r": 4, "k": 2}}


def randomize(module, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters(recurse=False):
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


def trained_checkpoint(folder, method, **extra):
    model = tiny_bert()
    inject(model, method=method, base_seed=4, **METHODS[method])
    mods = adapter_modules(model)
    for i, mod in enumerate(mods.values()):
        randomize(mod, i)
        if method == "cps-lora":  # two repartitions: merges, new permutations and cuts
            mod.repartition("cosine")
            randomize(mod, 100 + i)
            mod.repartition("balance")
            randomize(mod, 200 + i)
    save_adapter(model, folder, metadata={"method": method, **extra})
    return {name: mod.delta_weight().detach().double().numpy() for name, mod in mods.items()}


@pytest.fixture(scope="module", params=sorted(METHODS))
def checkpoint(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    return folder, trained_checkpoint(folder, request.param)


def test_delta_w_equals_the_torch_adapter(checkpoint):
    folder, want = checkpoint
    layers = load_adapter(folder)
    assert {l.name for l in layers} == set(want)
    for layer in layers:
        assert layer.meta["integrity"] == "verified (sha256)" and layer.needs == frozenset()
        assert rel_err(layer.delta_w(), want[layer.name]) < 1e-6  # float32 parameters, float64 arithmetic
        u, v = layer.low_rank()
        assert rel_err(u @ v, layer.delta_w()) < 1e-13


def test_trainable_parameters(checkpoint):
    folder, _ = checkpoint
    for layer in load_adapter(folder):
        m, n = layer.shape
        want = {"cosa": 8 * 4, "lora": 4 * (m + n), "block-lora": 4 * (m + n)}[layer.method]
        assert layer.trainable_parameters == want


def write_layer(folder, name, lm, tensors, *, check=True):
    """One-layer checkpoint; ``check=False`` forges a hash-consistent file the writer would refuse."""
    from ripkit.formats.ripkit_write import _as_raw, _write

    tensors = {f"{name}.{k}": v for k, v in tensors.items()}
    meta = {"method": lm["method"], "layers": {name: lm}, "head": {}}
    if check:
        return write_ripkit(folder, tensors, meta)
    return _write(folder, {k: _as_raw(k, v) for k, v in tensors.items()}, meta)


def test_pissa_lora_layer(tmp_path):
    """The trainer's PiSSA contract: ΔW = (alpha/r)·(B·A − B₀·A₀)."""
    rng = np.random.default_rng(0)
    t = {"lora_A": rng.standard_normal((4, 12)), "lora_B": rng.standard_normal((10, 4)),
         "lora_A0": rng.standard_normal((4, 12)), "lora_B0": rng.standard_normal((10, 4))}
    write_layer(tmp_path, "x", {"method": "lora", "shape": [10, 12], "r": 4, "alpha": 8.0, "seed": 0, "init": "pissa"}, t)
    layer = load_adapter(tmp_path)[0]
    assert rel_err(layer.delta_w(), 2.0 * (t["lora_B"] @ t["lora_A"] - t["lora_B0"] @ t["lora_A0"])) < 1e-14
    assert layer.low_rank()[0].shape == (10, 8)
    with pytest.raises(ValueError, match=r"write_ripkit: .*missing \['x.lora_A0', 'x.lora_B0'\]"):
        write_layer(tmp_path, "x", {"method": "lora", "shape": [10, 12], "r": 4, "alpha": 8.0, "seed": 0,
                                    "init": "pissa"}, {k: t[k] for k in ("lora_A", "lora_B")})


LORA = {"method": "lora", "shape": [10, 12], "r": 4, "alpha": 8.0, "seed": 0}
BLOCK = {"method": "block-lora", "shape": [10, 12], "r": 4, "k": 2, "alpha": 4.0, "scaling": 1.0, "seed": 0,
         "partition": "clustered", "row_cuts": [0, 5, 10], "col_cuts": [0, 6, 12], "n_repartitions": 0, "merge_rank": 8}


def block_tensors(rng, row_perm=None):
    return {"lora_A": rng.standard_normal((4, 12)), "lora_B": rng.standard_normal((10, 4)),
            "row_perm": np.array(row_perm if row_perm is not None else rng.permutation(10), dtype=np.int64),
            "col_perm": rng.permutation(12).astype(np.int64), "merged_A": np.zeros((10, 0)), "merged_B": np.zeros((0, 12))}


def test_block_lora_against_its_definition(tmp_path):
    rng = np.random.default_rng(1)
    t = block_tensors(rng)
    write_layer(tmp_path, "x", BLOCK, t)
    want = np.zeros((10, 12))
    rows, cols = [t["row_perm"][0:5], t["row_perm"][5:10]], [t["col_perm"][0:6], t["col_perm"][6:12]]
    for i in range(2):
        for j in range(2):  # block (i, j) = B_ij·A_ij (block_lora.py docstring)
            b_ij = t["lora_B"][5 * i:5 * (i + 1), 2 * j:2 * (j + 1)]
            a_ij = t["lora_A"][2 * i:2 * (i + 1), 6 * j:6 * (j + 1)]
            want[np.ix_(rows[i], cols[j])] = b_ij @ a_ij
    assert rel_err(load_adapter(tmp_path)[0].delta_w(), want) < 1e-14


@pytest.mark.parametrize("lm,tensors,match", [
    ({**LORA, "scaling": 0.5}, None, r"scaling=0.5, expected alpha / r = 8.0 / 4 = 2.0"),
    ({**LORA, "alpha": -8.0}, None, "alpha=-8.0, expected a positive number at most 1e\\+06"),
    ({**LORA, "r": 0}, None, "r=0, expected an integer >= 1"),
    ({**LORA, "shape": [10, -12]}, None, r"shape=\[10, -12\]"),
    ({**LORA, "method": "dora"}, None, "method='dora', expected one of"),
    ({**LORA, "init": "olora"}, None, "init='olora'"),
    ({**BLOCK, "row_cuts": [0, 7, 5, 10]}, "block", r"row_cuts=\[0, 7, 5, 10\], expected 3 integers strictly increasing"),
    ({**BLOCK, "col_cuts": [0, 6, 13]}, "block", "from 0 to 12"),
    ({**BLOCK, "merge_rank": 4}, "block", "merge_rank=4, expected k·r = 8"),
    ({**BLOCK, "partition": "spiral"}, "block", "partition='spiral'"),
    ({**BLOCK, "k": 3}, "block", "k=3, expected a divisor of r=4"),
])
def test_bad_layer_metadata_is_refused(tmp_path, lm, tensors, match):
    rng = np.random.default_rng(2)
    t = block_tensors(rng) if tensors == "block" else {"lora_A": rng.standard_normal((4, 12)),
                                                       "lora_B": rng.standard_normal((10, 4))}
    if lm.get("r") == 0 or lm["shape"] == [10, -12]:
        t = {}
    with pytest.raises(ValueError, match="write_ripkit: .*" + match):
        write_layer(tmp_path, "x", lm, t)
    write_layer(tmp_path, "x", lm, t, check=False)
    with pytest.raises(CheckpointError, match=match):
        load_adapter(tmp_path)


def test_duplicate_permutation_index_is_refused(tmp_path):
    t = block_tensors(np.random.default_rng(3), row_perm=[0, 1, 2, 3, 4, 5, 6, 7, 8, 8])
    with pytest.raises(ValueError, match="layer x: row_perm is not a permutation"):
        write_layer(tmp_path, "x", BLOCK, t)
    write_layer(tmp_path, "x", BLOCK, t, check=False)
    layer = load_adapter(tmp_path)[0]
    with pytest.raises(CheckpointError, match="row_perm is not a permutation of 0..9"):
        layer.delta_w()
    with pytest.raises(CheckpointError, match="row_perm is not a permutation"):
        read_ripkit(tmp_path)


def test_factor_dtypes_are_checked(tmp_path):
    t = block_tensors(np.random.default_rng(4))
    t["row_perm"] = t["row_perm"].astype(np.float32)
    write_layer(tmp_path, "x", BLOCK, t, check=False)
    with pytest.raises(CheckpointError, match="x.row_perm has dtype F32, expected an integer dtype"):
        load_adapter(tmp_path)
    write_layer(tmp_path, "x", LORA, {"lora_A": np.ones((4, 12), np.int32), "lora_B": np.ones((10, 4))}, check=False)
    with pytest.raises(CheckpointError, match="x.lora_A has dtype I32, expected a floating-point dtype"):
        load_adapter(tmp_path)


def test_non_finite_tensor_is_refused(tmp_path):
    a = np.ones((4, 12))
    a[1, 2] = np.nan
    with pytest.raises(ValueError, match="'x.lora_A' contains NaN"):
        write_layer(tmp_path, "x", LORA, {"lora_A": a, "lora_B": np.ones((10, 4))})
    write_layer(tmp_path, "x", LORA, {"lora_A": a, "lora_B": np.ones((10, 4))}, check=False)
    layer = load_adapter(tmp_path)[0]
    with pytest.raises(CheckpointError, match="'x.lora_A' .*contains NaN or infinite values"):
        layer.delta_w()


def test_bf16_tensors(tmp_path):
    a, b = torch.randn(4, 12).to(torch.bfloat16), torch.randn(10, 4).to(torch.bfloat16)
    write_layer(tmp_path, "x", LORA, {"lora_A": a, "lora_B": b})
    layer = load_adapter(tmp_path)[0]
    np.testing.assert_array_equal(layer.factors["lora_A"], a.float().double().numpy())
    assert rel_err(layer.delta_w(), 2.0 * (b.double() @ a.double()).numpy()) < 1e-15


# ---- integrity -------------------------------------------------------------------------------------
def flip_byte(path: Path, offset_from_end: int):
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0x01
    path.write_bytes(bytes(data))


def test_bit_flip_in_a_tensor_is_detected(checkpoint, tmp_path):
    folder, _ = checkpoint
    shutil.copytree(folder, tmp_path / "c")
    flip_byte(tmp_path / "c" / ADAPTER_FILE, 3)
    with pytest.raises(CheckpointError, match="does not match its SHA-256"):
        load_adapter(tmp_path / "c")
    layers = load_adapter(tmp_path / "c", verify=False)  # the metadata is still checked
    assert layers[0].meta["integrity"].startswith("metadata verified")


def test_swapped_files_are_detected(tmp_path):
    trained_checkpoint(tmp_path / "a", "lora")
    trained_checkpoint(tmp_path / "b", "lora", note="another run")
    shutil.copy(tmp_path / "b" / ADAPTER_FILE, tmp_path / "a" / ADAPTER_FILE)
    with pytest.raises(CheckpointError, match="was not written with this ripkit_adapter.json"):
        load_adapter(tmp_path / "a", verify=False)


def test_edited_json_is_detected_even_when_valid(checkpoint, tmp_path):
    folder, _ = checkpoint
    shutil.copytree(folder, tmp_path / "c")
    meta = json.loads((tmp_path / "c" / META_FILE).read_text())
    meta["method"] = "something else"
    (tmp_path / "c" / META_FILE).write_text(json.dumps(meta, indent=4))
    with pytest.raises(CheckpointError, match="does not match its recorded SHA-256"):
        load_adapter(tmp_path / "c")
    meta["method"] = json.loads((folder / META_FILE).read_text())["method"]
    (tmp_path / "c" / META_FILE).write_text(json.dumps(meta, indent=4))  # reformatted only: same content
    load_adapter(tmp_path / "c")


def test_base_model_hash_is_checked(tmp_path):
    from ripkit.formats.base_weights import BaseWeights

    tiny_bert().save_pretrained(tmp_path / "base")
    tiny_bert(seed=1).save_pretrained(tmp_path / "other")
    trained_checkpoint(tmp_path / "c", "lora", base_model_hash=BaseWeights(tmp_path / "base").files_hash())
    load_adapter(tmp_path / "c", base=tmp_path / "base")
    with pytest.raises(CheckpointError, match="base_model_hash=.* it is not the model this adapter was trained on"):
        load_adapter(tmp_path / "c", base=tmp_path / "other")


# ---- format 1 and the committed checkpoints ---------------------------------------------------
COMMITTED = sorted(p.parent for p in RUNS.glob("*/*/" + ADAPTER_FILE))


def _as_format_1(src, dst):
    """A copy of checkpoint ``src`` as format 1 wrote it: same tensors, no hashes."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("summary.*", "log.csv"))
    meta = json.loads((dst / META_FILE).read_text())
    meta.pop("integrity", None)
    meta["format_version"] = 1
    (dst / META_FILE).write_text(json.dumps(meta))
    return dst


@pytest.mark.skipif(not COMMITTED, reason="no committed checkpoint under studies/runs/")
def test_format_1_loads_with_a_warning_and_upgrades(tmp_path):
    src = _as_format_1(COMMITTED[0], tmp_path / "old")
    with pytest.warns(UnverifiedCheckpointWarning, match="format-1 ripkit checkpoint without hashes"):
        old = load_adapter(src)
    assert old[0].meta["integrity"] == "unverified (format 1: no hashes)"
    shutil.copytree(src, tmp_path / "c")
    upgrade_ripkit(tmp_path / "c")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = load_adapter(tmp_path / "c")
    assert new[0].meta["integrity"] == "verified (sha256)" and new[0].meta["format_version"] == 2
    for a, b in zip(old[:3], new[:3]):
        np.testing.assert_array_equal(a.delta_w(), b.delta_w())
    before = (tmp_path / "c" / ADAPTER_FILE).read_bytes()
    upgrade_ripkit(tmp_path / "c")  # already format 2: verified, left alone
    assert (tmp_path / "c" / ADAPTER_FILE).read_bytes() == before


@pytest.mark.parametrize("path", COMMITTED, ids=[p.name for p in COMMITTED])
def test_every_committed_run_loads(path):
    """Committed checkpoints are format 2: verified on load, no warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layers = load_adapter(path)
    assert layers and all(l.needs == frozenset() for l in layers)
    assert layers[0].meta["integrity"] == "verified (sha256)"


def test_read_ripkit_gives_torch_tensors_in_stored_dtype(checkpoint):
    folder, _ = checkpoint
    meta, tensors = read_ripkit(folder)
    assert meta["format_version"] == 2 and all(isinstance(t, torch.Tensor) for t in tensors.values())
    assert {t.dtype for t in tensors.values()} <= {torch.float32, torch.int64}
