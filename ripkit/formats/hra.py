"""peft HRA (``peft_type: "HRA"``): W ← W₀·H with H a product of r Householder reflections, so ΔW
depends on W₀.

Formulas of peft 0.21 ``src/peft/tuners/hra/layer.py``:

- ``HRALinear.get_delta_weight``: ``hra_u`` (in, r); without ``apply_GS``, its columns are normalized
  and H = (I − 2u₁u₁ᵀ)(I − 2u₂u₂ᵀ)···(I − 2u_ru_rᵀ), built left to right
  (``weight - 2 * weight @ u @ uᵀ``);
  with ``apply_GS``, the columns are orthonormalized in order (Gram–Schmidt, each against the ones
  before) into U and H = I − 2UUᵀ.
- ``HRALinear.merge``: W ← W₀·H, so ΔW = W₀·(H − I).

ripkit applies the reflections to W₀ one at a time (O(out·in·r); H is never formed).  Without the
base the record has ``shape=None`` (the file stores only ``in``) and ``delta_w()`` raises
``BaseWeightsRequired``.  Convolutions (``hra_u`` (in·k·k, r)) are refused (the base weight is not a
matrix); ``bias="hra_only"`` biases are read as full new biases (``delta_bias()``, needs the base).
"""
from __future__ import annotations

import numpy as np

from ripkit.formats._io import CheckpointError
from ripkit.formats.peft_common import (Source, base_matrix, base_shape, cfg_bool, cfg_int, extra_layers,
                                        full_delta_bias, group_keys, layer_factors, layer_meta, selected)
from ripkit.formats.record import AdapterLayer, LayerOps

__all__ = ["read", "OPS", "reflect"]

WHY = "HRA reflects W₀ itself (W ← W₀·H), so ΔW = W₀·(H − I)"


def read(src: Source) -> list[AdapterLayer]:
    """``AdapterLayer`` records of a peft HRA checkpoint (see the module docstring)."""
    r = cfg_int(src, "r", 8)
    gs = cfg_bool(src, "apply_GS")
    groups, leftover = group_keys(src, ("hra_u",))
    extras, bias_keys = extra_layers(src, leftover, set(groups), only="hra_only")
    layers = []
    for name, keys in selected(src, groups):
        factors = layer_factors(src, name, keys, bias_key=bias_keys.get(name))
        stored = factors.shapes["hra_u"]
        if len(stored) != 2 or stored[1] != r or stored[0] < 1:
            raise CheckpointError(f"{src.tensors.path}: layer {name}: hra_u has shape {stored}, expected (in, r={r})")
        shape = base_shape(src, name)
        if shape is not None and shape[1] != stored[0]:
            raise CheckpointError(f"layer {name}: the base weight is {shape} (out, in), hra_u {stored}; not the base "
                                  f"it was trained on")
        meta = layer_meta(src, method="hra", shape=list(shape) if shape else None, r=r, apply_GS=gs)
        layers.append(AdapterLayer(name, "hra", shape, factors, 1.0, meta, frozenset({"base"}),
                                   factors.numel("hra_u"), src.context))
    return layers + extras


def reflect(w0: np.ndarray, u: np.ndarray, apply_gs: bool) -> np.ndarray:
    """W₀·H for peft's H built from the columns of ``u`` (see the module docstring)."""
    if apply_gs:
        basis = []
        for i in range(u.shape[1]):
            v = u[:, i]
            for b in basis:  # peft: ui = ui - (weight[j].t() @ ui) * weight[j], with the updated ui
                v = v - (b @ v) * b
            basis.append(v / np.linalg.norm(v))
        q = np.stack(basis, axis=1)
        return w0 - 2 * (w0 @ q) @ q.T
    u = u / np.linalg.norm(u, axis=0)
    out = w0
    for i in range(u.shape[1]):
        col = u[:, i:i + 1]
        out = out - 2 * (out @ col) @ col.T
    return out


def _delta_w(layer):
    w0 = base_matrix(layer, WHY)
    u = layer.factors["hra_u"]
    if w0.shape[1] != u.shape[0]:
        raise CheckpointError(f"layer {layer.name}: the base weight has shape {w0.shape} (out, in), hra_u {u.shape}; "
                              f"not the base it was trained on")
    return reflect(w0, u, layer.meta["apply_GS"]) - w0


OPS = {"hra": LayerOps(delta_w=_delta_w, delta_bias=full_delta_bias)}
