"""Adapter checkpoints — backwards-compatible home of the names studies and scripts import.

Reading lives in ``ripkit.formats`` (every adapter family, exact or refused, no torch on the
reading path): ``load_adapter``, ``AdapterLayer``, ``CheckpointError`` are re-exported here.
The torch side — ``save_adapter`` (written through ``ripkit.formats.write_ripkit``: hashed,
atomic) and ``apply_adapter`` — lives in ``ripkit.adapters.io``; ``read_ripkit`` gives a
checkpoint's metadata and tensors as torch tensors, every check done.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ripkit.adapters.io import apply_adapter, save_adapter
from ripkit.formats import (ADAPTER_FILE, META_FILE, PEFT_CONFIG, AdapterLayer, BaseWeightsRequired,
                            CheckpointError, load_adapter, upgrade_ripkit)
from ripkit.formats.gralora import gralora_delta
from ripkit.formats.ripkit_format import read_checked

__all__ = ["CheckpointError", "BaseWeightsRequired", "AdapterLayer", "ADAPTER_FILE", "META_FILE", "PEFT_CONFIG",
           "save_adapter", "load_adapter", "read_ripkit", "apply_adapter", "gralora_delta", "upgrade_ripkit"]


def read_ripkit(path, *, verify: bool = True) -> tuple[dict, dict[str, torch.Tensor]]:
    """(metadata, tensors) of a ripkit checkpoint folder, every check of ``ripkit.formats`` done."""
    folder = Path(path)
    folder = folder.parent if folder.is_file() else folder
    meta, arrays = read_checked(folder, verify=verify)
    return meta, {k: torch.from_numpy(v) for k, v in arrays.items()}
