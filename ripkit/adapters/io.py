"""The torch side of ripkit checkpoints: write a model's adapters, put them back onto a base model.

A checkpoint is a folder with ``adapter_model.safetensors`` (tensors) and
``ripkit_adapter.json`` (metadata: one entry per adapted layer under ``layers``,
trainable head shapes under ``head``, and whatever the trainer records).  Reading a
checkpoint *without* a model (``load_adapter``, ΔW per layer) belongs to
``ripkit.checkpoints`` / ``ripkit.formats``; this module needs torch and the adapters.

Per-layer fields (``adapter_meta()`` of each adapter):

* ``cosa``: a, b, seed, scaling, scale, kind, fingerprints; tensor ``core`` (a, b).
* ``lora``: r, alpha, scaling (= alpha / r), seed; tensors ``lora_A`` (r, n), ``lora_B`` (m, r).
  PiSSA layers add ``"init": "pissa"`` and tensors ``lora_A0`` (r, n), ``lora_B0`` (m, r);
  ΔW relative to the original W₀ is scaling·(B·A − B₀·A₀).
* ``block-lora``: r, k, alpha, scaling, seed, partition, row/col cuts, n_repartitions,
  merge_rank, and for CPS-LoRA the ``partitioner``; tensors lora_A, lora_B, row_perm,
  col_perm, merged_A, merged_B.

All file writing goes through ``ripkit.formats.write_ripkit`` (format 2: SHA-256 of every tensor and
of the metadata, each file atomic, the JSON last; nothing the reader would refuse is written), all
reading through :func:`read_ripkit` (``ripkit.formats``: verified).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import nn

from ripkit.formats import ADAPTER_FILE, META_FILE, CheckpointError, write_ripkit
from ripkit.formats.ripkit_format import read_checked

__all__ = ["ADAPTER_FILE", "META_FILE", "save_adapter", "apply_adapter", "read_ripkit"]


def read_ripkit(path, *, verify: bool = True) -> tuple[dict, dict[str, torch.Tensor]]:
    """(metadata, tensors) of a ripkit checkpoint folder (or a file in it), every check of
    ``ripkit.formats`` done (hashes unless ``verify=False``, shapes, dtypes, finiteness,
    permutations); ``CheckpointError`` naming the file if unusable.  Tensors keep their stored
    dtype (bf16 as float32)."""
    folder = Path(path)
    folder = folder.parent if folder.is_file() else folder
    meta, arrays = read_checked(folder, verify=verify)
    return meta, {k: torch.from_numpy(v) for k, v in arrays.items()}


def save_adapter(model: nn.Module, path, *, metadata: dict | None = None,
                 full_deltas: Mapping[str, torch.Tensor] | None = None) -> Path:
    """Write ``adapter_model.safetensors`` + ``ripkit_adapter.json`` into folder ``path``.

    Saves every ripkit adapter's tensors, the other trainable parameters (task head,
    as ``head.*``) unless ``full_deltas`` is given, and for full fine-tuning the
    given ``{layer name: ΔW}``.  ``metadata`` (method, base seed, base model, dataset,
    metrics, ...) is stored as is.
    """
    from ripkit.adapters.inject import adapter_modules

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
    # write_ripkit takes the tensors as they are (detached, moved to the CPU, made contiguous there)
    return write_ripkit(Path(path), tensors, {**(metadata or {}), "layers": layers, "head": head})


def _tensor(tensors, key: str, shape: tuple, path) -> torch.Tensor:
    if key not in tensors:
        raise CheckpointError(f"{path}: tensor {key} is missing")
    if tuple(tensors[key].shape) != tuple(shape):
        raise CheckpointError(f"{path}: tensor {key} has shape {tuple(tensors[key].shape)}, expected {tuple(shape)}")
    return tensors[key]


def _rebuild(base: nn.Linear, name: str, lm: dict, tensors, path) -> nn.Module:
    """The adapter module of one layer, from its metadata and tensors (merges replayed, PiSSA re-applied)."""
    from ripkit.adapters import BlockLoRALinear, CoSALinear, LoRALinear

    m, n = lm["shape"]
    if lm["method"] == "cosa":
        mod = CoSALinear(base, lm["a"], lm["b"], seed=lm["seed"], scaling=lm["scaling"],
                         scale=lm["scale"], kind=lm.get("kind", "gaussian"))
        if mod.fingerprints != lm["fingerprints"]:
            raise CheckpointError(f"layer {name}: regenerated projections {mod.fingerprints} differ "
                             f"from the recorded {lm['fingerprints']}")
    elif lm["method"] == "lora":
        mod = LoRALinear(base, lm["r"], alpha=lm["alpha"], seed=lm["seed"])
        if lm.get("init", "default") == "pissa":
            a0 = _tensor(tensors, f"{name}.lora_A0", (lm["r"], n), path)
            b0 = _tensor(tensors, f"{name}.lora_B0", (m, lm["r"]), path)
            mod.set_pissa_init(a0, b0)  # W_res = W₀ − s·B₀A₀, the same arithmetic as at init
    elif lm["method"] == "block-lora":
        mod = BlockLoRALinear(base, lm["r"], lm["k"], partition=lm["partition"], alpha=lm["alpha"],
                              seed=lm["seed"], partitioner=lm.get("partitioner"))
        rank = lm["merge_rank"]
        total = rank * lm["n_repartitions"]
        t = {"row_perm": _tensor(tensors, f"{name}.row_perm", (m,), path),
             "col_perm": _tensor(tensors, f"{name}.col_perm", (n,), path),
             "merged_A": _tensor(tensors, f"{name}.merged_A", (m, total), path),
             "merged_B": _tensor(tensors, f"{name}.merged_B", (total, n), path)}
        for c in range(lm["n_repartitions"]):  # replay merges, same order and arithmetic
            mod.merge_factors(t["merged_A"][:, c * rank:(c + 1) * rank].to(base.weight),
                              t["merged_B"][c * rank:(c + 1) * rank].to(base.weight))
        mod.n_repartitions = lm["n_repartitions"]
        mod.set_partition(_SimplePartition(t["row_perm"].numpy(), t["col_perm"].numpy(),
                                           tuple(lm["row_cuts"]), tuple(lm["col_cuts"])))
    else:
        raise CheckpointError(f"{path}: layer {name} has method {lm['method']!r}; a 'full' checkpoint holds ΔW "
                         "of selected layers only (read it with load_adapter())")
    with torch.no_grad():
        for key, param in mod.named_parameters(recurse=False):
            param.copy_(_tensor(tensors, f"{name}.{key}", tuple(param.shape), path))
            param.requires_grad_(True)
    return mod


def apply_adapter(model: nn.Module, path) -> dict:
    """Inject the adapters of a ripkit checkpoint into ``model`` and load their weights; returns the metadata.

    ``model`` must be the original base model.  Layers are rebuilt from their own
    metadata (seed, sizes), CoSA projections are checked against the stored
    fingerprints, block-LoRA merges are replayed into the base weight in their
    original order, and PiSSA layers move s·B₀A₀ out of the base weight again.
    """
    meta, tensors = read_ripkit(path)
    for p in model.parameters():
        p.requires_grad_(False)
    for name, lm in meta["layers"].items():
        try:
            base = model.get_submodule(name)
        except AttributeError:
            raise CheckpointError(f"model has no module {name!r} named in {META_FILE}") from None
        if not isinstance(base, nn.Linear) or [base.out_features, base.in_features] != list(lm["shape"]):
            raise CheckpointError(f"module {name} is {base!r}, {META_FILE} expects Linear of shape {lm['shape']}")
        mod = _rebuild(base, name, lm, tensors, path)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, mod)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for pname, shape in meta.get("head", {}).items():
            if pname not in params or tuple(params[pname].shape) != tuple(shape):
                raise CheckpointError(f"head parameter {pname} of the checkpoint does not fit the model")
            params[pname].copy_(_tensor(tensors, f"head.{pname}", tuple(shape), path))
            params[pname].requires_grad_(True)
    return meta


@dataclass(frozen=True)
class _SimplePartition:
    """The four fields of ``ripkit.partition.Partition`` that ``BlockLoRALinear.set_partition`` reads."""

    row_perm: np.ndarray
    col_perm: np.ndarray
    row_cuts: tuple
    col_cuts: tuple
