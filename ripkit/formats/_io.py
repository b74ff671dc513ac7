"""Safe reading and writing of checkpoint files: the one place that touches bytes.

Every reader in ``ripkit.formats`` goes through this module, so the rules hold for all of them:

- only regular files are opened (``O_NONBLOCK`` then ``fstat``: a FIFO, a device such as
  ``/dev/zero``, a folder, a symlink loop or an unreadable file is a ``CheckpointError``, never a
  hang or an out-of-memory read);
- JSON is size-capped before it is parsed and parsed strictly (no ``NaN``/``Infinity``, no
  duplicate keys, nesting too deep for the parser is an error, not a ``RecursionError``);
- safetensors files are read by a small strict reader of our own (format: 8-byte little-endian
  header length, a JSON header, raw little-endian bytes; https://github.com/huggingface/safetensors):
  the header is validated completely before any tensor is touched (dtype known, shape
  non-negative, offsets inside the file, contiguous and non-overlapping, byte count equal to
  prod(shape)·itemsize), and tensors are read one at a time from a read-only ``mmap`` of the
  descriptor that was checked — no ``import torch`` on the reading path;
- every message names the file, the key and what was expected.
"""
from __future__ import annotations

import errno
import hashlib
import json
import math
import mmap
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["CheckpointError", "BaseWeightsRequired", "JSON_LIMIT", "read_json", "loads_json",
           "canonical_json", "short_repr", "SafeTensors", "TensorInfo", "FLOAT_DTYPES", "NUMPY_TO_DTYPE", "safetensors_bytes",
           "tensor_digest"]

JSON_LIMIT = 64 << 20      # adapter configs and ripkit metadata are kilobytes; 64 MiB is generous
HEADER_LIMIT = 100 << 20   # the cap safetensors itself puts on a header

# safetensors dtype -> numpy dtype of the stored bytes (little-endian); BF16 is read as its bits
DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
          "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
          "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?"}
FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16"})
# numpy dtype (as ``dtype.str``) -> safetensors dtype code, for writing
NUMPY_TO_DTYPE = {np.dtype(v).str: k for k, v in DTYPES.items() if k not in ("BF16", "U16")}
NUMPY_TO_DTYPE[np.dtype("<u2").str] = "U16"


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, corrupt, inconsistent or of an unsupported kind."""


class BaseWeightsRequired(CheckpointError):
    """ΔW of this layer depends on the base weights W₀, which were not given (``base=``)."""


def short_repr(value, limit: int = 80) -> str:
    """``repr`` cut to ``limit`` characters, so a hostile value cannot flood an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


# ---- opening files -----------------------------------------------------------------------------
def _open_regular(path) -> tuple[int, int]:
    """(descriptor, size) of a regular file; anything else is a ``CheckpointError``.

    ``O_NONBLOCK`` makes opening a FIFO return at once instead of waiting for a writer, and the
    ``fstat`` of the opened descriptor (not of the name, which could be swapped) decides.
    """
    path = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise CheckpointError(f"missing {path}") from None
    except OSError as exc:
        why = {errno.ELOOP: "is a symlink loop", errno.EACCES: "is not readable (permission denied)",
               errno.EPERM: "is not readable (permission denied)", errno.ENOTDIR: "is not inside a folder",
               errno.ENAMETOOLONG: "has a name that is too long"}.get(exc.errno, f"cannot be opened ({exc.strerror})")
        raise CheckpointError(f"{path} {why}") from None
    try:
        st = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        raise CheckpointError(f"{path} cannot be inspected ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = ("a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        raise CheckpointError(f"{path} is {kind}, expected a regular file")
    return fd, st.st_size


def _pread_exact(fd: int, n: int, offset: int, path) -> bytes:
    chunks, got = [], 0
    while got < n:
        try:
            chunk = os.pread(fd, n - got, offset + got)
        except OSError as exc:
            raise CheckpointError(f"{path} cannot be read ({exc.strerror})") from None
        if not chunk:
            raise CheckpointError(f"{path} is truncated: expected {n} bytes at offset {offset}, got {got}")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_bytes(path, limit: int = JSON_LIMIT) -> bytes:
    """The whole content of a regular file of at most ``limit`` bytes."""
    fd, size = _open_regular(path)
    try:
        if size > limit:
            raise CheckpointError(f"{path} is {size:,} bytes, more than the {limit:,} a checkpoint "
                                  f"description may have")
        return _pread_exact(fd, size, 0, path)
    finally:
        os.close(fd)


# ---- strict JSON ------------------------------------------------------------------------------
def _reject_constant(name):
    raise ValueError(f"non-finite number {name} (strict JSON has no NaN or Infinity)")


def _no_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def loads_json(data: bytes | str, where: str):
    """Parse strict JSON (no NaN/Infinity, no duplicate keys); any failure names ``where``."""
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray, memoryview)) else data
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{where} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise CheckpointError(f"{where} is nested too deeply to be a checkpoint description") from None
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"{where} is not valid JSON ({exc})") from None


def read_json(path) -> dict:
    """A JSON object from a regular file of at most ``JSON_LIMIT`` bytes."""
    obj = loads_json(read_bytes(path), str(path))
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} must hold a JSON object, got {type(obj).__name__}")
    return obj


def canonical_json(obj) -> bytes:
    """The bytes that are hashed: sorted keys, no spaces, UTF-8, finite numbers only."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


# ---- safetensors --------------------------------------------------------------------------------
@dataclass(frozen=True)
class TensorInfo:
    """One header entry: dtype code ('F32', 'BF16', ...), shape and byte range in the data section."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


class SafeTensors:
    """A safetensors file with a completely validated header; tensors are read one at a time.

    ``array(name)`` returns float64 for floating tensors (BF16 → float32 by shifting the stored
    16 bits, then float64, exactly) after checking they are finite, and int64 for integer ones.
    """

    def __init__(self, path):
        self.path = Path(path)
        fd, size = _open_regular(self.path)
        try:
            if size < 8:
                raise CheckpointError(f"{self.path} is truncated or not a safetensors file "
                                      f"({size} bytes, the 8-byte header length is missing)")
            n = int.from_bytes(_pread_exact(fd, 8, 0, self.path), "little")
            if n > HEADER_LIMIT or n > size - 8:
                raise CheckpointError(f"{self.path} is truncated or not a safetensors file (header length "
                                      f"{n:,} bytes, the file has {size - 8:,} after the length field)")
            header = loads_json(_pread_exact(fd, n, 8, self.path), f"{self.path} (safetensors header)")
            self._start = 8 + n
            self._infos, self.metadata = self._validate(header, size - self._start)
            self._mm = mmap.mmap(fd, size, access=mmap.ACCESS_READ) if size > 0 else None
        finally:
            os.close(fd)

    def _validate(self, header, data_size: int):
        where = f"{self.path} (safetensors header)"
        if not isinstance(header, dict):
            raise CheckpointError(f"{where} must be a JSON object, got {type(header).__name__}")
        metadata = header.get("__metadata__", {})
        if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in metadata.items()):
            raise CheckpointError(f"{where}: __metadata__ must map strings to strings")
        infos = {}
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
                raise CheckpointError(f"{where}: entry {short_repr(name)} must have exactly dtype, shape and data_offsets")
            dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
            if dtype not in DTYPES:
                raise CheckpointError(f"{where}: tensor {short_repr(name)} has dtype {short_repr(dtype)}, expected one of "
                                      f"{', '.join(sorted(DTYPES))}")
            if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
                raise CheckpointError(f"{where}: tensor {short_repr(name)} has shape {short_repr(shape)}, expected a list of "
                                      f"non-negative integers")
            if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) for o in offsets)
                    or not 0 <= offsets[0] <= offsets[1] <= data_size):
                raise CheckpointError(f"{where}: tensor {short_repr(name)} has data_offsets {short_repr(offsets)}, expected "
                                      f"[begin, end] with 0 <= begin <= end <= {data_size}")
            nbytes = math.prod(shape) * np.dtype(DTYPES[dtype]).itemsize
            if offsets[1] - offsets[0] != nbytes:
                raise CheckpointError(f"{where}: tensor {name!r} of dtype {dtype} and shape {shape} needs "
                                      f"{nbytes:,} bytes, its data_offsets span {offsets[1] - offsets[0]:,}")
            infos[name] = TensorInfo(name, dtype, tuple(shape), offsets[0], offsets[1])
        position = 0  # the data section is covered exactly, in order, without gaps or overlaps
        for info in sorted(infos.values(), key=lambda i: (i.begin, i.end)):
            if info.begin != position:
                raise CheckpointError(f"{where}: tensor {info.name!r} starts at byte {info.begin}, expected "
                                      f"{position} (tensors must be contiguous and must not overlap)")
            position = info.end
        if position != data_size:
            raise CheckpointError(f"{where}: tensors cover {position:,} bytes, the data section has "
                                  f"{data_size:,} (truncated or padded file)")
        return infos, dict(metadata)

    # -- queries --
    def keys(self) -> list[str]:
        return list(self._infos)

    def __contains__(self, name) -> bool:
        return name in self._infos

    def info(self, name: str) -> TensorInfo:
        try:
            return self._infos[name]
        except KeyError:
            raise CheckpointError(f"{self.path} lacks tensor {name!r}") from None

    def check_float(self, *names: str) -> None:
        """Refuse a factor stored with a non-floating dtype (e.g. float bytes relabelled as int32)."""
        for name in names:
            info = self.info(name)
            if not info.is_float:
                raise CheckpointError(f"{self.path}: tensor {short_repr(name)} has dtype {info.dtype}, expected a "
                                      f"floating-point dtype")

    def _view(self, info: TensorInfo) -> np.ndarray:
        if info.numel == 0:
            return np.zeros(info.shape, dtype=DTYPES[info.dtype])
        return np.frombuffer(self._mm, dtype=DTYPES[info.dtype], count=info.numel,
                             offset=self._start + info.begin).reshape(info.shape)

    def raw(self, name: str) -> np.ndarray:
        """The stored values as a read-only array in the stored dtype (BF16: its uint16 bits)."""
        return self._view(self.info(name))

    def array(self, name: str, *, what: str | None = None) -> np.ndarray:
        """float64 (floating dtypes, checked finite) or int64 (integer dtypes) copy of one tensor."""
        info = self.info(name)
        view = self._view(info)
        if info.dtype == "BF16":
            out = (view.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        elif info.is_float:
            out = view.astype(np.float64)
        else:
            return view.astype(np.int64)
        if not np.isfinite(out).all():
            raise CheckpointError(f"{self.path}: tensor {name!r}{f' ({what})' if what else ''} contains "
                                  f"NaN or infinite values")
        return out

    def digest(self, name: str) -> str:
        """SHA-256 of one tensor's dtype, shape and bytes (what ripkit's format records)."""
        info = self.info(name)
        h = hashlib.sha256(f"{info.dtype}|{list(info.shape)}|".encode())
        if info.numel:
            h.update(memoryview(self._mm)[self._start + info.begin:self._start + info.end])
        return h.hexdigest()


def tensor_digest(dtype: str, shape, data: bytes) -> str:
    """``SafeTensors.digest`` of a tensor given as (dtype code, shape, bytes)."""
    h = hashlib.sha256(f"{dtype}|{list(shape)}|".encode())
    h.update(data)
    return h.hexdigest()


def safetensors_bytes(tensors: dict, metadata: dict[str, str] | None = None) -> bytes:
    """Serialize ``{name: (dtype code, shape, bytes)}`` as a safetensors file (sorted by name)."""
    header, offset, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = dict(metadata)
    for name in sorted(tensors):
        dtype, shape, data = tensors[name]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data section starts 8-byte aligned, as safetensors writes it
    return len(text).to_bytes(8, "little") + text + b"".join(blobs)
