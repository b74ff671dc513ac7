"""peft LoHa (``peft_type: "LOHA"``): the Hadamard product of two low-rank products.

Formula of peft 0.21 ``src/peft/tuners/loha/layer.py::LoHaLayer.get_delta_weight`` (``make_weight``,
``HadaWeight.forward``): ΔW = ((w1_a·w1_b) ⊙ (w2_a·w2_b))·s, with ``hada_w1_a``, ``hada_w2_a``
(out, r) and ``hada_w1_b``, ``hada_w2_b`` (r, in); r and alpha per layer from ``rank_pattern`` /
``alpha_pattern`` (``LoHaModel._create_and_replace``, peft's ``get_pattern_key``).

- s = alpha/r (``update_layer``), but peft passes it as ``torch.tensor(self.scaling)``, a float32
  scalar, so the merge multiplies by alpha/r rounded to float32 (2.6666667461… for 8/3), whatever
  the weights' precision; ripkit does the same, and ``meta['scaling_exact']`` keeps alpha/r.
- ``low_rank()``: (U1·V1) ⊙ (U2·V2) = (U1 ⊙ᵣ U2)·(V1 ⊙ᶜ V2), the row-wise (face-splitting) and
  column-wise Khatri–Rao products, rank ≤ r²; None when r² is not below min(out, in).
- Convolutions with ``use_effective_conv2d`` (``hada_t1``/``hada_t2``, CP factors) are refused;
  a plain Conv layer stores (r, in·k…) factors and its ΔW is the (out, in·k…) matrix peft reshapes.
"""
from __future__ import annotations

import numpy as np

from ripkit.formats._io import CheckpointError
from ripkit.formats.peft_common import (Source, cfg_int, cfg_number, check_base_shape, extra_layers, group_keys,
                                        layer_factors, layer_meta, pattern_value, selected)
from ripkit.formats.record import AdapterLayer, LayerOps

__all__ = ["read", "OPS"]

SUFFIXES = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")
CP = ("hada_t1", "hada_t2")


def read(src: Source) -> list[AdapterLayer]:
    """``AdapterLayer`` records of a peft LoHa checkpoint (see the module docstring)."""
    r_default, alpha_default = cfg_int(src, "r", 8), cfg_number(src, "alpha", 8)
    groups, leftover = group_keys(src, SUFFIXES + CP)
    extras, bias_keys = extra_layers(src, leftover, set(groups))
    if bias_keys:
        raise CheckpointError(f"{src.config_path}: trained biases of LoHa layers are not supported")
    layers = []
    for name, keys in selected(src, groups):
        if set(CP) & set(keys):
            raise CheckpointError(f"{src.tensors.path}: layer {name} stores CP factors (hada_t1/hada_t2, "
                                  f"use_effective_conv2d on a convolution); ripkit does not read them")
        factors = layer_factors(src, name, keys, SUFFIXES)
        sh = factors.shapes
        r, r_key = pattern_value(src, "rank_pattern", name, r_default, cfg_int)
        alpha, alpha_key = pattern_value(src, "alpha_pattern", name, alpha_default, cfg_number)
        w1a, w1b, w2a, w2b = (sh[k] for k in SUFFIXES)
        if (any(len(s) != 2 for s in (w1a, w1b, w2a, w2b)) or w1a != w2a or w1b != w2b or w1a[1] != r
                or w1b[0] != r):
            raise CheckpointError(f"{src.tensors.path}: layer {name}: hada_w1_a {w1a}, hada_w1_b {w1b}, hada_w2_a "
                                  f"{w2a}, hada_w2_b {w2b}; expected (out, r), (r, in) twice with r={r}"
                                  + (f" (rank_pattern key {r_key!r})" if r_key else ""))
        shape = (w1a[0], w1b[1])
        check_base_shape(src, name, shape)
        exact = alpha / r
        meta = layer_meta(src, method="loha", shape=list(shape), r=r, alpha=alpha, scaling_exact=exact,
                          **({"rank_pattern_key": r_key} if r_key else {}),
                          **({"alpha_pattern_key": alpha_key} if alpha_key else {}))
        layers.append(AdapterLayer(name, "loha", shape, factors, float(np.float32(exact)), meta, frozenset(),
                                   factors.numel(), src.context))
    return layers + extras


def _delta_w(layer):
    f = layer.factors
    return (f["hada_w1_a"] @ f["hada_w1_b"]) * (f["hada_w2_a"] @ f["hada_w2_b"]) * layer.scaling


def _low_rank(layer):
    f = layer.factors
    u1, u2, v1, v2 = f["hada_w1_a"], f["hada_w2_a"], f["hada_w1_b"], f["hada_w2_b"]
    m, n, r = u1.shape[0], v1.shape[1], u1.shape[1]
    if r * r >= min(m, n):
        return None
    u = (u1[:, :, None] * u2[:, None, :]).reshape(m, r * r)
    v = (v1[:, None, :] * v2[None, :, :]).reshape(r * r, n)
    return layer.scaling * u, v


OPS = {"loha": LayerOps(delta_w=_delta_w, low_rank=_low_rank)}
