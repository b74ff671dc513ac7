"""ripkit.formats._io: the strict safetensors reader against safetensors itself, strict JSON, special files."""
import json
import os
import struct

import numpy as np
import pytest
import torch

from ripkit.formats._io import CheckpointError, SafeTensors, loads_json, read_json, safetensors_bytes

DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
          torch.int8, torch.uint8, torch.bool]


def sample(dtype, shape, seed):
    gen = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.rand(shape, generator=gen) > 0.5
    if dtype.is_floating_point:
        return (torch.randn(shape, generator=gen) * 100).to(dtype)
    return torch.randint(-100 if dtype != torch.uint8 else 0, 100, shape, generator=gen).to(dtype)


def test_reader_agrees_with_safetensors(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    tensors = {f"t{i}.{dtype}".replace("torch.", ""): sample(dtype, shape, i)
               for i, (dtype, shape) in enumerate([(d, s) for d in DTYPES for s in [(3, 5), (0, 4), (7,)]])}
    save_file(tensors, str(tmp_path / "x.safetensors"), metadata={"format": "pt", "note": "é"})
    ours = SafeTensors(tmp_path / "x.safetensors")
    assert ours.metadata == {"format": "pt", "note": "é"} and sorted(ours.keys()) == sorted(tensors)
    with safe_open(str(tmp_path / "x.safetensors"), "pt") as theirs:
        for key in theirs.keys():
            want = theirs.get_tensor(key)
            got = ours.array(key)
            assert got.shape == tuple(want.shape)
            if want.dtype.is_floating_point:
                assert got.dtype == np.float64
                np.testing.assert_array_equal(got, want.double().numpy())  # bf16 → float32 → float64 exactly
            else:
                np.testing.assert_array_equal(got, want.long().numpy())


def test_writer_is_read_by_safetensors(tmp_path):
    from safetensors import safe_open

    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1, -2], dtype=np.int64),
              "c": np.zeros((0, 3), dtype=np.float64)}
    raw = {k: ({np.float32: "F32", np.int64: "I64", np.float64: "F64"}[v.dtype.type], v.shape, v.tobytes())
           for k, v in arrays.items()}
    (tmp_path / "y.safetensors").write_bytes(safetensors_bytes(raw, {"k": "v"}))
    with safe_open(str(tmp_path / "y.safetensors"), "np") as f:
        assert f.metadata() == {"k": "v"}
        for k, v in arrays.items():
            np.testing.assert_array_equal(f.get_tensor(k), v)


def with_header(header: dict, data: bytes = b"", length=None) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


GOOD = {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}


@pytest.mark.parametrize("content,match", [
    (b"", "0 bytes, the 8-byte header length is missing"),
    (b"\x01\x02\x03", "3 bytes"),
    (with_header(GOOD, bytes(16), length=2**40), "header length 1,099,511,627,776 bytes"),
    (with_header(GOOD, bytes(15)), "tensors cover 16 bytes, the data section has 15|data_offsets"),
    (with_header(GOOD, bytes(24)), "tensors cover 16 bytes, the data section has 24"),
    (with_header({"w": {**GOOD["w"], "dtype": "F8"}}, bytes(16)), "dtype 'F8', expected one of"),
    (with_header({"w": {**GOOD["w"], "shape": [2, -2]}}, bytes(16)), "shape \\[2, -2\\]"),
    (with_header({"w": {**GOOD["w"], "shape": [2, True]}}, bytes(16)), "shape \\[2, true\\]|shape \\[2, True\\]"),
    (with_header({"w": {**GOOD["w"], "shape": [3, 2]}}, bytes(16)), "needs 24 bytes, its data_offsets span 16"),
    (with_header({"w": {**GOOD["w"], "data_offsets": [8, 24]}}, bytes(24)), "starts at byte 8, expected 0"),
    (with_header({"w": {**GOOD["w"], "data_offsets": [0, 2**62]}}, bytes(16)), "data_offsets"),
    (with_header({"w": {**GOOD["w"], "extra": 1}}, bytes(16)), "exactly dtype, shape and data_offsets"),
    (with_header({"a": GOOD["w"], "b": GOOD["w"]}, bytes(16)), "starts at byte 0, expected 16"),
    (with_header({"__metadata__": {"a": 1}, **GOOD}, bytes(16)), "__metadata__ must map strings to strings"),
    (with_header([1, 2]), "must be a JSON object"),
    (struct.pack("<Q", 10) + b'{"w": NaN}', "strict JSON has no NaN"),
    (struct.pack("<Q", 4) + b"\xff\xfe{}", "not UTF-8"),
])
def test_bad_headers_are_refused(tmp_path, content, match):
    (tmp_path / "x.safetensors").write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        SafeTensors(tmp_path / "x.safetensors")


def test_duplicate_tensor_names_are_refused(tmp_path):
    text = b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
    (tmp_path / "x.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + bytes(4))
    with pytest.raises(CheckpointError, match="duplicate key 'w'"):
        SafeTensors(tmp_path / "x.safetensors")


@pytest.mark.parametrize("text,match", [
    ('{"a": NaN}', "NaN"), ('{"a": -Infinity}', "-Infinity"), ('{"a": 1, "a": 2}', "duplicate key 'a'"),
    ("[" * 100000 + "]" * 100000, "nested too deeply"), ("{", "not valid JSON"), ("[1, 2]", "must hold a JSON object"),
])
def test_strict_json(tmp_path, text, match):
    (tmp_path / "c.json").write_text(text)
    with pytest.raises(CheckpointError, match=match):
        read_json(tmp_path / "c.json")


def test_json_size_cap(tmp_path, monkeypatch):
    import ripkit.formats._io as io

    (tmp_path / "c.json").write_text('{"a": "' + "x" * 200 + '"}')
    monkeypatch.setattr(io, "JSON_LIMIT", 100)
    monkeypatch.setattr(io.read_bytes, "__defaults__", (100,))
    with pytest.raises(CheckpointError, match="more than the 100 a checkpoint description may have"):
        read_json(tmp_path / "c.json")


def special_files(tmp_path):
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "fifo")
    os.symlink("/dev/zero", tmp_path / "zero")
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    return {"folder": "is a folder", "fifo": "is a FIFO", "zero": "is a device", "loop": "is a symlink loop",
            "missing": "missing"}


def test_special_files_are_refused_without_blocking(tmp_path):
    for name, match in special_files(tmp_path).items():
        with pytest.raises(CheckpointError, match=match):
            read_json(tmp_path / name)
        with pytest.raises(CheckpointError, match=match):
            SafeTensors(tmp_path / name)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path):
    (tmp_path / "c.json").write_text("{}")
    os.chmod(tmp_path / "c.json", 0)
    with pytest.raises(CheckpointError, match="permission denied"):
        read_json(tmp_path / "c.json")


def test_loads_json_names_where():
    with pytest.raises(CheckpointError, match="^somewhere is not valid JSON"):
        loads_json(b"{x", "somewhere")
