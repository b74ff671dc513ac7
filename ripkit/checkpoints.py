"""Adapter checkpoints — backwards-compatible home of the names studies and scripts import.

Reading lives in ``ripkit.formats`` (every adapter family, exact or refused, no torch on the
reading path): ``load_adapter``, ``AdapterLayer``, ``CheckpointError`` are re-exported here.
The torch side — ``save_adapter`` (written through ``ripkit.formats.write_ripkit``: hashed,
atomic) and ``apply_adapter`` — lives in ``ripkit.adapters.io``; ``read_ripkit`` gives a
checkpoint's metadata and tensors as torch tensors, every check done.
"""
from __future__ import annotations

from ripkit.adapters.io import apply_adapter, read_ripkit, save_adapter
from ripkit.formats import (ADAPTER_FILE, META_FILE, PEFT_CONFIG, AdapterLayer, BaseWeightsRequired,
                            CheckpointError, load_adapter, upgrade_ripkit)
from ripkit.formats.gralora import gralora_delta

__all__ = ["CheckpointError", "BaseWeightsRequired", "AdapterLayer", "ADAPTER_FILE", "META_FILE", "PEFT_CONFIG",
           "save_adapter", "load_adapter", "read_ripkit", "apply_adapter", "gralora_delta", "upgrade_ripkit"]
