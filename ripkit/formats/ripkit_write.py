"""Writing ripkit's own checkpoints (format 2): hashed, bound together, atomic.

``write_ripkit(folder, tensors, meta)`` writes ``adapter_model.safetensors`` then
``ripkit_adapter.json``, each to a temporary file in the folder, fsynced and renamed into place
(``ripkit._atomic``).  The JSON records a SHA-256 of every tensor (dtype, shape, bytes) and of
itself (``integrity.metadata_sha256``, over the canonical JSON without that field); the
safetensors header's ``__metadata__`` records the same metadata hash.  A crash between the two
renames leaves a new tensor file next to the old JSON, which the reader refuses as a mismatch
rather than mixing them.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

import ripkit
from ripkit._atomic import atomic_write_bytes
from ripkit.formats._io import DTYPES, NUMPY_TO_DTYPE, CheckpointError, safetensors_bytes, tensor_digest
from ripkit.formats.ripkit_format import (ADAPTER_FILE, FORMAT, HEADER_KEY, META_FILE, UnverifiedCheckpointWarning,
                                          _check_permutation, _open, check_tensors, layout, metadata_digest)

__all__ = ["write_ripkit", "upgrade_ripkit", "FORMAT_VERSION"]

FORMAT_VERSION = 2


def _as_raw(name: str, value) -> tuple[str, tuple, bytes]:
    """(dtype code, shape, little-endian bytes) of a numpy array or torch tensor (bf16 kept as BF16)."""
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[2], (bytes, bytearray)):
        return value[0], tuple(value[1]), bytes(value[2])
    if hasattr(value, "detach"):  # torch, imported by the caller already
        import torch

        t = value.detach().to("cpu").contiguous()
        if t.dtype == torch.bfloat16:
            return "BF16", tuple(t.shape), t.view(torch.int16).numpy().astype("<i2").tobytes()
        value = t.numpy()
    arr = np.asarray(value)
    arr = arr.astype(arr.dtype.newbyteorder("<")) if arr.dtype.byteorder == ">" else arr
    code = NUMPY_TO_DTYPE.get(arr.dtype.str)
    if code is None:
        raise TypeError(f"tensor {name!r} has dtype {arr.dtype}, which safetensors cannot store")
    return code, arr.shape, np.ascontiguousarray(arr).tobytes()


def write_ripkit(folder, tensors, meta: dict) -> Path:
    """Write a format-2 ripkit checkpoint into ``folder``; returns the folder.

    Parameters
    ----------
    folder : path
        Created if needed; existing checkpoint files are replaced atomically.
    tensors : mapping of str to array
        numpy arrays or torch tensors (any device; bf16 stays bf16), keyed ``<layer>.<factor>``
        and ``head.<parameter>`` as ``ripkit.formats.ripkit_format`` expects.
    meta : dict
        ``layers`` (per-layer metadata), ``head`` and anything else (method, seeds, metrics...);
        ``format``, ``format_version`` and ``integrity`` are set here, ``ripkit_version`` if absent.
        Must be strict JSON (no NaN or infinity).
    """
    raw = {name: _as_raw(name, value) for name, value in tensors.items()}
    meta = {k: v for k, v in meta.items() if k not in ("format", "format_version", "integrity")}
    try:  # never write what the reader would refuse
        expected, _ = layout("meta", meta)
        check_tensors("tensors", expected, {k: (code, shape) for k, (code, shape, _) in raw.items()})
        _check_values(meta, raw)
    except CheckpointError as exc:
        raise ValueError(f"write_ripkit: {exc}") from None
    return _write(Path(folder), raw, meta)


def _check_values(meta: dict, raw: dict) -> None:
    """Finite floating tensors and true permutations, as the reader will demand."""
    for key, (code, shape, data) in raw.items():
        if code in ("F64", "F32", "F16", "BF16"):
            arr = np.frombuffer(data, dtype={"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2"}[code])
            arr = (arr.astype(np.uint32) << 16).view(np.float32) if code == "BF16" else arr
            if not np.isfinite(arr).all():
                raise CheckpointError(f"tensor {key!r} contains NaN or infinite values")
    for name, lm in meta["layers"].items():
        if lm["method"] == "block-lora":
            for key, size in (("row_perm", lm["shape"][0]), ("col_perm", lm["shape"][1])):
                code, _, data = raw[f"{name}.{key}"]
                _check_permutation(name, key, np.frombuffer(data, dtype=np.dtype(DTYPES[code])), size)


def _write(folder: Path, raw: dict, meta: dict) -> Path:
    """Hash and write (no validation: ``write_ripkit`` validates; tests use this to forge hostile files)."""
    meta = dict(meta)
    meta.setdefault("ripkit_version", ripkit.__version__)
    meta.update(format=FORMAT, format_version=FORMAT_VERSION,
                integrity={"algorithm": "sha256",
                           "tensors": {k: tensor_digest(*raw[k]) for k in sorted(raw)}})
    try:
        digest = metadata_digest(meta)
    except ValueError as exc:
        raise ValueError(f"meta must be strict JSON (no NaN or infinity): {exc}") from None
    meta["integrity"]["metadata_sha256"] = digest
    text = json.dumps(meta, indent=1, sort_keys=True, allow_nan=False, ensure_ascii=False)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / ADAPTER_FILE, safetensors_bytes(raw, {"format": "pt", HEADER_KEY: digest}))
    atomic_write_bytes(folder / META_FILE, text.encode("utf-8"))
    return folder


def upgrade_ripkit(folder) -> Path:
    """Validate a format-1 checkpoint completely and rewrite it as format 2 (same tensor bytes).

    A format-2 checkpoint is verified and left as it is.  Raises ``CheckpointError`` if anything
    is wrong (the files are then untouched).
    """
    from ripkit.formats.ripkit_format import read_checked

    folder = Path(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnverifiedCheckpointWarning)
        meta, tensors, _, _ = _open(folder, verify=True)
        read_checked(folder)  # finiteness and permutations of every tensor
    if meta["format_version"] == FORMAT_VERSION:
        return folder
    raw = {k: (tensors.info(k).dtype, tensors.info(k).shape, tensors.raw(k).tobytes()) for k in tensors.keys()}
    return _write(folder, raw, {k: v for k, v in meta.items() if k not in ("format", "format_version", "integrity")})
