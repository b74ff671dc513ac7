"""load_adapter: resolving paths, adapters and hub ids; pickles refused; torch-free and lazy reading."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ripkit.formats._io as io
from ripkit.formats import CheckpointError, load_adapter

from ._builders import peft_checkpoint, tiny_llama
from ._llm_lora import write_llm_lora

ROOT = Path(__file__).parents[2]


def lora():
    from peft import LoraConfig

    return LoraConfig(r=4, target_modules=["q_proj", "v_proj"])


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lora")
    peft_checkpoint(folder, tiny_llama(), lora(), train="random")
    return folder / "adapter"


def test_a_file_inside_the_folder_is_the_folder(adapter):
    names = [l.name for l in load_adapter(adapter)]
    assert [l.name for l in load_adapter(adapter / "adapter_model.safetensors")] == names
    assert [l.name for l in load_adapter(str(adapter / "adapter_config.json"))] == names


def test_pickled_adapters_are_refused(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    (tmp_path / "adapter_model.bin").write_bytes(b"\x80\x04pickle")
    for target in (tmp_path, tmp_path / "adapter_model.bin"):
        with pytest.raises(CheckpointError, match=r"adapter_model.bin is a pickle .* arbitrary code.*"
                                                  r"save_pretrained\(folder, safe_serialization=True\)"):
            load_adapter(target)
    (tmp_path / "adapter_config.json").unlink()
    with pytest.raises(CheckpointError, match="is a pickle"):
        load_adapter(tmp_path)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="neither ripkit_adapter.json .* nor adapter_config.json"):
        load_adapter(tmp_path)
    with pytest.raises(CheckpointError, match="is not a checkpoint folder or file"):
        load_adapter(tmp_path / "missing")


@pytest.mark.parametrize("kwargs,error,match", [
    ({"layers": "("}, ValueError, r"layers='\(' is not a valid regular expression"),
    ({"layers": 3}, TypeError, "layers must be a regular expression"),
    ({"adapter_name": "../x"}, ValueError, "adapter_name='../x'"),
    ({"verify": "yes"}, TypeError, "verify must be True or False"),
    ({"hash_seed": 2**32}, ValueError, "hash_seed=4294967296"),
])
def test_bad_arguments(adapter, kwargs, error, match):
    with pytest.raises(error, match=match):
        load_adapter(adapter, **kwargs)
    with pytest.raises(TypeError, match="path must be a str or a path"):
        load_adapter(42)


def make_hub_cache(cache: Path, repo: str, adapter: Path):
    """The layout huggingface_hub's cache uses: models--org--name/{refs/main, snapshots/<commit>/...}."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = cache / ("models--" + repo.replace("/", "--"))
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in ("adapter_config.json", "adapter_model.safetensors"):
        (snap / f).write_bytes((adapter / f).read_bytes())


def test_hub_id_through_the_huggingface_cache(adapter, tmp_path):
    make_hub_cache(tmp_path / "hub", "someone/tiny-lora", adapter)
    script = ("import sys\nfrom ripkit.formats import load_adapter, CheckpointError\n"
              "print(len(load_adapter('someone/tiny-lora')))\n"
              "try:\n    load_adapter('someone/absent')\nexcept CheckpointError as e:\n    print(str(e))\n")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "4" and len(lines) == 2
    assert "'someone/absent' is not a local path, and the hub repository is not in the local" in lines[1]


def test_reading_imports_neither_torch_nor_peft(adapter):
    script = (f"import sys\nfrom ripkit.formats import load_adapter\n"
              f"for l in load_adapter({str(adapter)!r}):\n    l.delta_w(); l.low_rank()\n"
              f"print(sorted(m for m in ('torch', 'peft', 'safetensors', 'ripkit.adapters', 'transformers') "
              f"if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_loading_reads_no_tensor_data(tmp_path, monkeypatch):
    """Two Llama-3.1-8B-shaped blocks (14 layers, r = 16): load_adapter only parses headers."""
    write_llm_lora(tmp_path, n_layers=2)
    reads = []
    original = io.SafeTensors._view
    monkeypatch.setattr(io.SafeTensors, "_view", lambda self, info: reads.append(info.name) or original(self, info))
    layers = load_adapter(tmp_path)
    assert len(layers) == 14 and reads == []
    q = next(l for l in layers if l.name == "model.layers.0.self_attn.q_proj")
    assert q.shape == (4096, 4096) and q.trainable_parameters == 16 * 8192 and q.scaling == 2.0
    q.low_rank()
    assert len(reads) == 2  # one layer's A and B, read when used
