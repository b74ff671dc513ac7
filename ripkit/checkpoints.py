"""Adapter checkpoints — backwards-compatible home of the names studies and scripts import.

Reading lives in ``ripkit.formats`` (every adapter family, exact or refused, no torch on the
reading path): ``load_adapter``, ``AdapterLayer``, ``CheckpointError`` are re-exported here.
This module keeps the torch side: ``save_adapter`` (now written through
``ripkit.formats.write_ripkit``: hashed, atomic) and ``apply_adapter`` / ``read_ripkit``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import nn

from ripkit.formats import (ADAPTER_FILE, META_FILE, PEFT_CONFIG, AdapterLayer, BaseWeightsRequired,
                            CheckpointError, load_adapter, upgrade_ripkit, write_ripkit)
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


# ---- writing and applying ripkit checkpoints ------------------------------------------------
def save_adapter(model: nn.Module, path, *, metadata: dict | None = None,
                 full_deltas: Mapping[str, torch.Tensor] | None = None) -> Path:
    """Write ``adapter_model.safetensors`` + ``ripkit_adapter.json`` into folder ``path`` (format 2:
    SHA-256 of every tensor and of the metadata, both files written atomically).

    Saves every ripkit adapter's tensors, the other trainable parameters (task head,
    as ``head.*``) unless ``full_deltas`` is given, and for full fine-tuning the
    given ``{layer name: ΔW}``.  ``metadata`` (method, base seed, base model, dataset,
    metrics, ...) is stored as is.
    """
    from ripkit.adapters.inject import adapter_modules

    folder = Path(path)
    tensors, layers, head = {}, {}, {}
    adapters = adapter_modules(model)
    for name, mod in adapters.items():
        layers[name] = mod.adapter_meta()
        tensors.update({f"{name}.{k}": v for k, v in mod.adapter_tensors().items()})
    for name, delta in (full_deltas or {}).items():
        layers[name] = {"method": "full", "shape": list(delta.shape)}
        tensors[f"{name}.delta"] = delta
    if full_deltas is None:
        inside = tuple(n + "." for n in adapters)
        for pname, p in model.named_parameters():
            if p.requires_grad and not pname.startswith(inside):
                tensors[f"head.{pname}"] = p
                head[pname] = list(p.shape)
    return write_ripkit(folder, tensors, {**(metadata or {}), "layers": layers, "head": head})


def apply_adapter(model: nn.Module, path) -> dict:
    """Inject the adapters of a ripkit checkpoint into ``model`` and load their weights; returns the metadata.

    Layers are rebuilt from their own metadata (seed, sizes), CoSA projections are
    checked against the stored fingerprints, and block-LoRA merges are replayed
    into the base weight in their original order.
    """
    from ripkit.adapters import BlockLoRALinear, CoSALinear, LoRALinear

    meta, tensors = read_ripkit(path)
    for p in model.parameters():
        p.requires_grad_(False)
    for name, lm in meta["layers"].items():
        if lm["method"] == "full":
            raise CheckpointError(f"{path}: a 'full' checkpoint holds ΔW of selected layers only; "
                                  "read it with load_adapter()")
        try:
            base = model.get_submodule(name)
        except AttributeError:
            raise CheckpointError(f"model has no module {name!r} named in {META_FILE}") from None
        if not isinstance(base, nn.Linear) or [base.out_features, base.in_features] != lm["shape"]:
            raise CheckpointError(f"module {name} is {base!r}, {META_FILE} expects Linear of shape {lm['shape']}")
        if lm["method"] == "cosa":
            mod = CoSALinear(base, lm["a"], lm["b"], seed=lm["seed"], scaling=lm["scaling"],
                             scale=lm["scale"], kind=lm.get("kind", "gaussian"))
            if mod.fingerprints != lm["fingerprints"]:
                raise CheckpointError(f"layer {name}: regenerated projections {mod.fingerprints} differ "
                                      f"from the recorded {lm['fingerprints']}")
        elif lm["method"] == "lora":
            mod = LoRALinear(base, lm["r"], alpha=lm["alpha"], seed=lm["seed"])
        else:
            mod = BlockLoRALinear(base, lm["r"], lm["k"], partition=lm["partition"], alpha=lm["alpha"],
                                  seed=lm["seed"])
            t = {k: tensors[f"{name}.{k}"] for k in ("row_perm", "col_perm", "merged_A", "merged_B")}
            rank = lm["merge_rank"]
            for c in range(lm["n_repartitions"]):  # replay merges, same order and arithmetic
                mod.merge_factors(t["merged_A"][:, c * rank:(c + 1) * rank].to(base.weight),
                                  t["merged_B"][c * rank:(c + 1) * rank].to(base.weight))
            mod.n_repartitions = lm["n_repartitions"]
            mod.set_partition(_SimplePartition(t["row_perm"].numpy(), t["col_perm"].numpy(),
                                               tuple(lm["row_cuts"]), tuple(lm["col_cuts"])))
        with torch.no_grad():
            for key, param in mod.named_parameters(recurse=False):
                param.copy_(tensors[f"{name}.{key}"])
                param.requires_grad_(True)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, mod)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for pname in meta.get("head", {}):
            if pname not in params or tuple(params[pname].shape) != tuple(meta["head"][pname]):
                raise CheckpointError(f"head parameter {pname} of the checkpoint does not fit the model")
            params[pname].copy_(tensors[f"head.{pname}"])
            params[pname].requires_grad_(True)
    return meta


@dataclass(frozen=True)
class _SimplePartition:
    """The four fields of ``ripkit.partition.Partition`` that ``BlockLoRALinear.set_partition`` reads."""

    row_perm: np.ndarray
    col_perm: np.ndarray
    row_cuts: tuple
    col_cuts: tuple
