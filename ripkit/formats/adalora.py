"""peft AdaLoRA (``peft_type: "ADALORA"``): an SVD-shaped LoRA, P·Λ·Q, whose rank budget is pruned
during training.

Formula of peft 0.21 ``src/peft/tuners/adalora/layer.py::SVDLinear.get_delta_weight``:
ΔW = B·(A ⊙ E)·s / (ranknum + 1e-5), with ``lora_A`` (r, in), ``lora_E`` (r, 1), ``lora_B`` (out, r)
(stored transposed for GPT-2's Conv1D, ``fan_in_fan_out``; ripkit always returns (out, in)).

- s = ``lora_alpha`` itself, not alpha/r (``AdaLoraLayer.update_layer``: ``scaling = lora_alpha``).
- ``ranknum`` is not saved; it is ``init_r`` for every layer: peft creates each layer at ``init_r``
  and ``AdaLoraModel.resize_modules_by_rank_pattern`` copies the old ``ranknum`` back after
  shrinking a layer to its allocated rank.
- ``rank_pattern`` (``{"<layer>.lora_E": [bool] * init_r}``, written by the budget allocation) says
  which singular triplets survived; the file stores only those
  (``AdaLoraModel.resize_state_dict_by_rank_pattern``), so a layer's stored rank must be the number
  of ``True`` entries (0 is allowed: ΔW = 0), and ``init_r`` without an entry.
- Conv2d layers (``SVDConv2d``) store A as (r, in·kh·kw): their ΔW is the (out, in·kh·kw) matrix that
  peft reshapes into the kernel.
"""
from __future__ import annotations

from ripkit.formats._io import CheckpointError, short_repr
from ripkit.formats.peft_common import (Source, cfg_bool, cfg_int, cfg_number, check_base_shape, extra_layers,
                                        full_delta_bias, group_keys, layer_factors, layer_meta, selected)
from ripkit.formats.record import AdapterLayer, LayerOps

__all__ = ["read", "OPS", "RANKNUM_EPS"]

SUFFIXES = ("lora_A", "lora_B", "lora_E")
RANKNUM_EPS = 1e-5  # peft: / (self.ranknum[adapter] + 1e-5)


def _rank_pattern(src: Source, init_r: int, names) -> dict[str, int]:
    """{layer: allocated rank} from rank_pattern; every entry must name a layer of the file."""
    pattern = src.config.get("rank_pattern") or {}
    if not isinstance(pattern, dict):
        raise CheckpointError(f"{src.config_path}: rank_pattern={short_repr(pattern)}, expected a JSON object "
                              f"{{'<layer>.lora_E': [true/false] * init_r}}")
    out = {}
    for key, mask in pattern.items():
        layer = key[:-len(".lora_E")] if key.endswith(".lora_E") else None
        if layer not in names:
            raise CheckpointError(f"{src.config_path}: rank_pattern key {short_repr(key)} names no AdaLoRA layer of "
                                  f"{src.tensors.path.name} (expected '<layer>.lora_E')")
        if not isinstance(mask, list) or len(mask) != init_r or not all(isinstance(m, bool) for m in mask):
            raise CheckpointError(f"{src.config_path}: rank_pattern[{key!r}]={short_repr(mask)}, expected a list of "
                                  f"init_r={init_r} booleans")
        out[layer] = sum(mask)
    return out


def read(src: Source) -> list[AdapterLayer]:
    """``AdapterLayer`` records of a peft AdaLoRA checkpoint (see the module docstring)."""
    init_r = cfg_int(src, "init_r", 12)
    alpha = cfg_number(src, "lora_alpha", 8)
    fifo = cfg_bool(src, "fan_in_fan_out")
    if cfg_bool(src, "use_dora"):
        raise CheckpointError(f"{src.config_path}: use_dora=true with AdaLoRA is not supported (peft refuses it too)")
    groups, leftover = group_keys(src, SUFFIXES)
    extras, bias_keys = extra_layers(src, leftover, set(groups))
    ranks = _rank_pattern(src, init_r, set(groups))
    layers = []
    for name, keys in selected(src, groups):
        factors = layer_factors(src, name, keys, SUFFIXES, bias_keys.get(name))
        sh = factors.shapes
        a, b, e = sh["lora_A"], sh["lora_B"], sh["lora_E"]
        r = ranks.get(name, init_r)
        if len(a) != 2 or len(b) != 2 or a[0] != r or b[1] != r or e != (r, 1):
            raise CheckpointError(f"{src.tensors.path}: layer {name}: lora_A {a}, lora_E {e}, lora_B {b}; expected "
                                  f"({r}, in), ({r}, 1), (out, {r}) with r = "
                                  + (f"{r} (the True entries of rank_pattern)" if name in ranks else f"init_r = {r}"))
        shape = (b[0], a[1])
        check_base_shape(src, name, shape, fifo)
        meta = layer_meta(src, method="adalora", shape=list(shape), r=r, init_r=init_r, alpha=alpha,
                          ranknum=float(init_r), fan_in_fan_out=fifo, rank_pattern=name in ranks)
        layers.append(AdapterLayer(name, "adalora", shape, factors, alpha / (init_r + RANKNUM_EPS), meta, frozenset(),
                                   factors.numel(*SUFFIXES), src.context))
    return layers + extras


def _low_rank(layer):
    f = layer.factors
    return layer.scaling * f["lora_B"], f["lora_A"] * f["lora_E"]


def _delta_w(layer):
    f = layer.factors
    # peft's order: (B @ (A * E)) * alpha / (ranknum + 1e-5)
    return f["lora_B"] @ (f["lora_A"] * f["lora_E"]) * layer.meta["alpha"] / (layer.meta["init_r"] + RANKNUM_EPS)


OPS = {"adalora": LayerOps(delta_w=_delta_w, low_rank=_low_rank, delta_bias=full_delta_bias)}
