"""peft (IA)³ (``peft_type: "IA3"``): a learned vector rescales the weight, so ΔW depends on W₀.

Formula of peft 0.21 ``src/peft/tuners/ia3/layer.py::Linear.merge``: W ← W ⊙ l, with ``ia3_l``
(out, 1) for attention-type layers (rows rescaled) and (1, in) for ``feedforward_modules`` (columns
rescaled; ``IA3Model._check_target_module_feedforward``: a module name that ends with an entry, or
fully matches the regex string), transposed for Conv1D (``fan_in_fan_out``).  So, in (out, in),

- ΔW = W₀ ⊙ l − W₀ = (diag(l) − I)·W₀ (rows) or W₀·(diag(l) − I) (feedforward, columns);
- a non-feedforward layer rescales its bias too: Δb = b₀ ⊙ l − b₀ (``delta_bias()``, from the base's bias).

Both need the base (``base=``); without it the record has ``shape=None`` (the file stores only one of
the two dimensions) and ``delta_w()`` raises ``BaseWeightsRequired``.  Convolutions (4-D or 5-D
``ia3_l``) are refused.
"""
from __future__ import annotations

import re

from ripkit.formats._io import CheckpointError, short_repr
from ripkit.formats.peft_common import (Source, base_matrix, base_shape, cfg_bool, extra_layers, group_keys,
                                        layer_factors, layer_meta, selected)
from ripkit.formats.record import AdapterLayer, LayerOps, require_base

__all__ = ["read", "OPS"]

WHY = "(IA)³ rescales W₀ itself (W ← W₀ ⊙ l), so ΔW = W₀ ⊙ l − W₀"


def _feedforward(src: Source):
    """peft's ``_check_target_module_feedforward`` as a predicate on module names."""
    ff = src.config.get("feedforward_modules")
    if ff is None:
        return lambda name: False
    if isinstance(ff, str):
        try:
            pattern = re.compile(ff)
        except re.error as exc:
            raise CheckpointError(f"{src.config_path}: feedforward_modules={short_repr(ff)} is not a valid regular "
                                  f"expression ({exc})") from None
        return lambda name: pattern.fullmatch(name) is not None
    if not isinstance(ff, list) or not all(isinstance(e, str) for e in ff):
        raise CheckpointError(f"{src.config_path}: feedforward_modules={short_repr(ff)}, expected a list of module "
                              f"names, a regular expression or null")
    return lambda name: any(name.endswith(e) for e in ff)


def read(src: Source) -> list[AdapterLayer]:
    """``AdapterLayer`` records of a peft (IA)³ checkpoint (see the module docstring)."""
    fifo = cfg_bool(src, "fan_in_fan_out")
    is_ff = _feedforward(src)
    groups, leftover = group_keys(src, ("ia3_l",))
    extras, bias_keys = extra_layers(src, leftover, set(groups))
    if bias_keys:
        raise CheckpointError(f"{src.config_path}: trained biases of (IA)³ layers are not supported")
    layers = []
    for name, keys in selected(src, groups):
        factors = layer_factors(src, name, keys)
        vec = factors.shapes["ia3_l"]
        ff = is_ff(name)
        # peft's ia3_l is (1, in) for a feedforward layer, (out, 1) otherwise
        if len(vec) != 2 or (vec[0] != 1 if ff else vec[1] != 1):
            raise CheckpointError(f"{src.tensors.path}: layer {name}: ia3_l has shape {vec}, expected "
                                  + ("(1, in) (a feedforward_modules layer)" if ff else "(out, 1) (not in "
                                     "feedforward_modules)") + "; convolutions are not supported")
        shape = base_shape(src, name, fifo)
        if shape is not None and (shape[1] if ff else shape[0]) != (vec[1] if ff else vec[0]):
            raise CheckpointError(f"layer {name}: the base weight is {shape} (out, in), ia3_l {vec}; not the base it "
                                  f"was trained on")
        meta = layer_meta(src, method="ia3", shape=list(shape) if shape else None, feedforward=ff,
                          fan_in_fan_out=fifo)
        layers.append(AdapterLayer(name, "ia3", shape, factors, 1.0, meta, frozenset({"base"}), factors.numel(),
                                   src.context))
    return layers + extras


def _delta_w(layer):
    w0 = base_matrix(layer, WHY)
    l_vec = layer.factors["ia3_l"]
    scale = l_vec.reshape(1, -1) if layer.meta["feedforward"] else l_vec.reshape(-1, 1)
    if scale.size != (w0.shape[1] if layer.meta["feedforward"] else w0.shape[0]):
        raise CheckpointError(f"layer {layer.name}: the base weight has shape {w0.shape} (out, in), ia3_l "
                              f"{l_vec.shape}; not the base it was trained on")
    return w0 * scale - w0


def _delta_bias(layer):
    if layer.meta["feedforward"]:
        return None  # peft rescales the input of a feedforward layer: its bias is untouched
    base = require_base(layer, "(IA)³ rescales the bias of a non-feedforward layer: Δb = b₀ ⊙ l − b₀")
    if not base.has(layer.name, "bias"):
        return None
    b0 = base.array(layer.name, "bias")
    l_vec = layer.factors["ia3_l"].reshape(-1)
    if b0.shape != l_vec.shape:
        raise CheckpointError(f"layer {layer.name}: the base bias has shape {b0.shape}, ia3_l {l_vec.shape}")
    return b0 * l_vec - b0


OPS = {"ia3": LayerOps(delta_w=_delta_w, delta_bias=_delta_bias)}
