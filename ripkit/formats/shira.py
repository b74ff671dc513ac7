"""peft SHiRA (``peft_type: "SHIRA"``): a sparse ΔW, trained values at stored positions.

Formula of peft 0.21 ``src/peft/tuners/shira/layer.py::Linear.get_delta_weight``: ΔW =
``sparse_coo_tensor(shira_indices, shira_weight · scaling, (out, in))`` added densely by ``merge``
(repeated positions add up), with ``scaling`` = 1.0 (``ShiraLayer.update_layer``; it is not saved).
``ShiraModel._get_adapter_state_dict`` saves the positions (``shira_indices``, (2, n): rows, columns;
float32 when saved on Windows), so no random mask is redrawn.  SHiRA adapts only ``nn.Linear``.

The file does not record the layer shapes: they come from the base (``base=``, header only).
Without it the record has ``shape=None`` and ``delta_w()`` says what is missing.
"""
from __future__ import annotations

import numpy as np

from ripkit.formats._io import CheckpointError
from ripkit.formats.peft_common import (Source, base_shape, extra_layers, group_keys, layer_factors, layer_meta,
                                        selected)
from ripkit.formats.record import AdapterLayer, LayerOps, require_base

__all__ = ["read", "OPS"]

SUFFIXES = ("shira_weight", "shira_indices")


def read(src: Source) -> list[AdapterLayer]:
    """``AdapterLayer`` records of a peft SHiRA checkpoint (see the module docstring)."""
    groups, leftover = group_keys(src, SUFFIXES)
    extras, bias_keys = extra_layers(src, leftover, set(groups))
    if bias_keys:
        raise CheckpointError(f"{src.config_path}: trained biases of SHiRA layers are not supported")
    layers = []
    for name, keys in selected(src, groups):
        factors = layer_factors(src, name, keys, SUFFIXES, integer=("shira_indices",))
        sh = factors.shapes
        n = sh["shira_weight"][0] if len(sh["shira_weight"]) == 1 else -1
        if n < 0 or sh["shira_indices"] != (2, n):
            raise CheckpointError(f"{src.tensors.path}: layer {name}: shira_weight {sh['shira_weight']}, shira_indices "
                                  f"{sh['shira_indices']}; expected (n,) and (2, n)")
        shape = base_shape(src, name)
        meta = layer_meta(src, method="shira", shape=list(shape) if shape else None, nonzeros=n)
        needs = frozenset() if shape else frozenset({"base"})
        layers.append(AdapterLayer(name, "shira", shape, factors, 1.0, meta, needs, n, src.context))
    return layers + extras


def _positions(factors, shape, name) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) as int64, checked to be integers inside ``shape``."""
    raw = factors["shira_indices"]
    idx = raw.astype(np.int64)
    if not np.array_equal(idx, raw) or (idx.size and (idx.min() < 0 or idx[0].max() >= shape[0]
                                                       or idx[1].max() >= shape[1])):
        raise CheckpointError(f"layer {name}: shira_indices are not integer positions inside the base weight "
                              f"{tuple(shape)} (out, in); not the base it was trained on, or a corrupted file")
    return idx[0], idx[1]


def _delta_w(layer):
    if layer.shape is None:
        require_base(layer, "the file does not record the layer's shape (only the base's shapes are read)")
    rows, cols = _positions(layer.factors, layer.shape, layer.name)
    out = np.zeros(layer.shape)
    np.add.at(out, (rows, cols), layer.factors["shira_weight"] * layer.scaling)
    return out


OPS = {"shira": LayerOps(delta_w=_delta_w)}
