"""peft LoRA (``peft_type: "LORA"``): LoRA, rsLoRA, rank/alpha patterns, fan_in_fan_out, embedding
LoRA, ``lora_bias``, DoRA, and PiSSA/OLoRA initialisations saved without conversion.

Formulas follow peft 0.21, ``src/peft/tuners/lora/layer.py``:

- ``Linear.get_delta_weight``: ΔW = s·B·A (stored transposed when ``fan_in_fan_out``, as GPT-2's
  Conv1D; ripkit always returns (out, in)), s = alpha/r, or alpha/√r with ``use_rslora``
  (``LoraLayer.update_layer``); r and alpha per layer from ``rank_pattern``/``alpha_pattern`` with
  peft's ``get_pattern_key`` (first matching key, ``re.match(rf"(.*\\.)?({key})$", name)``).
- ``lora_bias``: merging adds s·``lora_B.bias`` to the bias (``Linear.merge``).
- ``Embedding.get_delta_weight``: ΔW = s·(B·A)ᵀ, shape (num_embeddings, embedding_dim).
- DoRA (``variants.py::DoraLinearVariant.merge_safe``, ``dora.py::get_weight_norm``): the merged
  weight is m ⊙ (W₀ + s·B·A) / ‖W₀ + s·B·A‖ with norms of the rows of the (out, in) weight
  (of the columns for embeddings, ``DoraEmbeddingVariant``), so ΔW = merged − W₀ needs W₀.
- PiSSA / OLoRA (``LoraLayer.pissa_init``, ``olora_init``): peft replaces W₀ by the residual
  W_res = W₀ − s·B₀·A₀ (B₀, A₀ from W₀'s SVD / QR, in float32, cast back to W₀'s dtype) and
  trains A, B from B₀, A₀; an adapter saved *without* ``path_initial_model_for_weight_conversion``
  stores only the trained A, B, and peft's loader recomputes W_res from W₀.  So
  ΔW = W_res − W₀ + s·B·A ( = s·(B·A − B₀·A₀) up to W_res's rounding); ripkit recomputes W_res
  with torch exactly as peft does (same calls, same order) when the base is given.  Randomized
  (``pissa_niter_*``) and data-dependent (CorDA, LoRA-GA, LoftQ) initialisations cannot be
  recomputed and are refused.  Converted adapters (``init_lora_weights: true``, rank 2r) are plain LoRA.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ripkit.formats._io import CheckpointError, short_repr
from ripkit.formats.peft_common import (Source, cfg_bool, cfg_int, cfg_number, extra_layers, full_delta_bias,
                                        group_keys, layer_meta, pattern_value)
from ripkit.formats.record import AdapterLayer, LayerOps, LazyFactors, check_finite, require_base

__all__ = ["read", "OPS"]

SUFFIXES = ("lora_A.weight", "lora_B.weight", "lora_B.bias", "lora_embedding_A", "lora_embedding_B",
            "lora_magnitude_vector", "base_layer.weight")
# config fields of peft 0.21 that turn on a LoRA variant whose merge ripkit does not reproduce
UNSUPPORTED_VARIANTS = ("alora_invocation_tokens", "use_qalora", "monteclora_config", "use_bdlora",
                        "arrow_config", "kasa_config", "trainable_token_indices", "layer_replication",
                        "target_parameters")
PLAIN_INITS = (True, False, "gaussian", "eva", "orthogonal", "mica")  # W₀ untouched: ΔW = s·B·A
RECOMPUTABLE_INITS = ("pissa", "olora")                                # W₀ → W_res, deterministic
CONVERT_HINT = ("save the adapter with model.save_pretrained(out, path_initial_model_for_weight_conversion="
                "FOLDER_OF_THE_UNTRAINED_ADAPTER), which peft converts to a plain LoRA of rank 2r")


def _init_kind(src: Source):
    init = src.config.get("init_lora_weights", True)
    if init in PLAIN_INITS or init in RECOMPUTABLE_INITS:
        return init
    if isinstance(init, str):
        return init  # refused lazily, with an explanation, by delta_w()
    raise CheckpointError(f"{src.config_path}: init_lora_weights={short_repr(init)}, expected true, false or a "
                          f"peft initialisation name")


@dataclass(frozen=True)
class _Options:
    """The adapter-wide settings of adapter_config.json that every layer uses."""

    r: int
    alpha: float
    rslora: bool
    fan_in_fan_out: bool
    dora: bool
    lora_bias: bool
    init: object


def _options(src: Source) -> _Options:
    cfg = src.config
    for key in UNSUPPORTED_VARIANTS:
        if cfg.get(key) not in (None, False, [], {}):
            raise CheckpointError(f"{src.config_path}: {key}={short_repr(cfg[key])} turns on a LoRA variant whose merge "
                                  f"ripkit does not reproduce; not supported")
    opts = _Options(cfg_int(src, "r", 8), cfg_number(src, "lora_alpha", 8), cfg_bool(src, "use_rslora"),
                    cfg_bool(src, "fan_in_fan_out"), cfg_bool(src, "use_dora"), cfg_bool(src, "lora_bias"),
                    _init_kind(src))
    if opts.dora and opts.init not in PLAIN_INITS:
        raise CheckpointError(f"{src.config_path}: DoRA with init_lora_weights={short_repr(opts.init)} is not supported")
    return opts


def read(src: Source) -> list[AdapterLayer]:
    """``AdapterLayer`` records of a peft LoRA checkpoint (see the module docstring)."""
    opts = _options(src)
    groups, leftover = group_keys(src, SUFFIXES)
    saved_base = {name: g.pop("base_layer.weight") for name, g in groups.items() if "base_layer.weight" in g}
    groups = {name: g for name, g in groups.items() if g}
    for name in saved_base:  # a saved embedding base weight without LoRA factors is not a LoRA layer
        if name not in groups:
            leftover.append(saved_base[name])
    extras, bias_keys = extra_layers(src, leftover, set(groups))
    layers = [_layer(src, opts, name, groups[name], bias_keys.get(name), saved_base.get(name))
              for name in sorted(groups) if src.select(name)]
    return layers + extras


def _layer(src: Source, opts: _Options, name: str, keys: dict, bias_key, saved_base) -> AdapterLayer:
    """One layer's record, after checking its keys, dtypes, shapes and rank against the config."""
    where = f"{src.tensors.path}: layer {name}"
    embedding = "lora_embedding_A" in keys or "lora_embedding_B" in keys
    need = {"lora_embedding_A", "lora_embedding_B"} if embedding else {"lora_A.weight", "lora_B.weight"}
    need |= {"lora_magnitude_vector"} if opts.dora else set()
    need |= {"lora_B.bias"} if opts.lora_bias and not embedding else set()
    if set(keys) != need:  # an orphan factor is an error, not a layer that silently vanishes
        raise CheckpointError(f"{where} has {sorted(keys)}; missing {sorted(need - set(keys))}, unexpected "
                              f"{sorted(set(keys) - need)} (use_dora={opts.dora}, lora_bias={opts.lora_bias})")
    src.tensors.check_float(*keys.values())
    short = {k.replace(".weight", "").replace(".bias", "_bias"): v for k, v in keys.items()}
    sh = LazyFactors(src.tensors, short, name).shapes
    a, b = (sh["lora_embedding_A"], sh["lora_embedding_B"]) if embedding else (sh["lora_A"], sh["lora_B"])
    if len(a) != 2 or len(b) != 2:
        raise CheckpointError(f"{where} has factors of shapes {a} and {b}; ripkit reads LoRA on Linear, Conv1D "
                              f"and Embedding layers (2-D factors), not convolutions")
    r = a[0]
    if b[1] != r or r == 0:
        raise CheckpointError(f"{where}: A has shape {a} and B {b}, expected A (r, in) and B (out, r) with the "
                              f"same r >= 1")
    r_cfg, r_key = pattern_value(src, "rank_pattern", name, opts.r, cfg_int)
    alpha, alpha_key = pattern_value(src, "alpha_pattern", name, opts.alpha, cfg_number)
    if r != r_cfg:
        raise CheckpointError(f"{where} has rank {r}, {src.config_path.name} gives r={r_cfg}"
                              + (f" (rank_pattern key {r_key!r})" if r_key else ""))
    shape = (a[1], b[0]) if embedding else (b[0], a[1])  # (out, in); embeddings (num_embeddings, dim)
    expected = {"lora_magnitude_vector": (shape[1] if embedding else shape[0],), "lora_B_bias": (shape[0],)}
    for key, want in expected.items():
        if key in sh and sh[key] != want:
            raise CheckpointError(f"{where}: {key} has shape {sh[key]}, expected {want}")
    if opts.dora:
        method = "peft-dora"
    elif opts.init not in PLAIN_INITS:
        method = "peft-lora-init"
    else:
        method = "peft-lora-embedding" if embedding else "peft-lora"
    factors = LazyFactors(src.tensors, {**short, **({"bias": bias_key} if bias_key else {})}, name)
    meta = layer_meta(src, method=method, shape=list(shape), r=r, alpha=alpha, use_rslora=opts.rslora,
                      layer_type="embedding" if embedding else "linear",
                      fan_in_fan_out=opts.fan_in_fan_out and not embedding, init_lora_weights=opts.init,
                      lora_bias=opts.lora_bias, **({"rank_pattern_key": r_key} if r_key else {}),
                      **({"alpha_pattern_key": alpha_key} if alpha_key else {}),
                      **({"saved_base_weight": saved_base} if saved_base else {}))
    scaling = alpha / math.sqrt(r) if opts.rslora else alpha / r
    needs = frozenset({"base"}) if method in ("peft-dora", "peft-lora-init") else frozenset()
    return AdapterLayer(name, method, shape, factors, float(scaling), meta, needs, factors.numel(*short),
                        src.context)


# ---- maths -------------------------------------------------------------------------------------
def _factors(layer):
    """(U, V) with U @ V = s·B·A in (out, in) (embeddings: s·(B·A)ᵀ)."""
    f, s = layer.factors, layer.scaling
    if layer.meta.get("layer_type") == "embedding":
        return s * f["lora_embedding_A"].T, f["lora_embedding_B"].T
    return s * f["lora_B"], f["lora_A"]


def _plain_delta_w(layer):
    u, v = _factors(layer)
    return u @ v


def _delta_bias(layer):
    out = None
    if "lora_B_bias" in layer.factors:
        out = layer.scaling * layer.factors["lora_B_bias"]
    full = full_delta_bias(layer)  # bias='all'/'lora_only': the saved bias is the new full bias
    if full is not None:
        out = full if out is None else out + full
    return out


def _base_oi(layer, base):
    """W₀ in (out, in) orientation, float64."""
    w0 = base.array(layer.name)
    w0 = w0.T if layer.meta.get("fan_in_fan_out") else w0
    if w0.shape != layer.shape:
        raise CheckpointError(f"layer {layer.name}: the base weight has shape {w0.shape} (out, in), the adapter "
                              f"{layer.shape}; not the base it was trained on")
    return w0


def _dora_delta_w(layer):
    base = require_base(layer, "DoRA rescales W₀ + s·B·A by its norm, m/‖W₀ + s·B·A‖")
    w0 = _base_oi(layer, base)
    merged = w0 + _plain_delta_w(layer)
    axis = 0 if layer.meta.get("layer_type") == "embedding" else 1
    norm = np.linalg.norm(merged, axis=axis, keepdims=True)
    magnitude = layer.factors["lora_magnitude_vector"]
    factor = magnitude[None, :] if axis == 0 else magnitude[:, None]
    return check_finite(layer.name, "the DoRA update (a zero row/column norm?)", factor / norm * merged - w0)


def _initial_residual_change(layer, base) -> np.ndarray:
    """W_res − W₀ in (out, in), W_res recomputed by torch exactly as peft's pissa_init / olora_init."""
    import torch

    init, r, s = layer.meta["init_lora_weights"], layer.meta["r"], layer.scaling
    fifo = layer.meta.get("fan_in_fan_out")
    w = base.tensor(layer.name)
    if w.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise CheckpointError(f"layer {layer.name}: peft initialises {init} only from float32/float16/bfloat16 "
                              f"base weights, the base has {w.dtype}")
    w_oi = w.T if fifo else w
    if tuple(w_oi.shape) != layer.shape:
        raise CheckpointError(f"layer {layer.name}: the base weight has shape {tuple(w_oi.shape)} (out, in), the "
                              f"adapter {layer.shape}; not the base it was trained on")
    with torch.no_grad():
        if init == "pissa":  # LoraLayer.pissa_init, init_lora_weights == "pissa"
            weight = w.to(torch.float32)
            weight = weight.T if fifo else weight
            V, S, Uh = torch.linalg.svd(weight.data, full_matrices=False)
            Vr, Sr, Uhr = V[:, :r], S[:r], Uh[:r]
            Sr /= s
            lora_A = torch.diag(torch.sqrt(Sr)) @ Uhr
            lora_B = Vr @ torch.diag(torch.sqrt(Sr))
            residual = (weight.data - s * lora_B @ lora_A).to(w.dtype)
        else:  # LoraLayer.olora_init
            weight = w.to(torch.float32)
            Q, R = torch.linalg.qr(weight.data)
            lora_A, lora_B = R[:r].contiguous(), Q[:, :r].contiguous()
            residual = (weight.data - s * lora_B @ lora_A).to(w.dtype)
    return residual.double().numpy() - w_oi.double().numpy()


def _init_delta_w(layer):
    init = layer.meta["init_lora_weights"]
    if layer.meta.get("layer_type") == "embedding" or (init == "olora" and layer.meta.get("fan_in_fan_out")):
        raise CheckpointError(f"layer {layer.name}: init_lora_weights={init!r} on "
                              f"{'an embedding' if layer.meta.get('layer_type') == 'embedding' else 'a fan_in_fan_out layer'} "
                              f"is not reproduced by ripkit (peft's own init does not handle it consistently); {CONVERT_HINT}")
    if init not in RECOMPUTABLE_INITS:
        why = {"loftq": "LoftQ replaces W₀ by a quantized copy and starts A, B from the quantization error",
               "corda": "CorDA starts A, B from the SVD of W₀ times a data covariance",
               "lora_ga": "LoRA-GA starts A, B from gradients on training data"}.get(
            init, f"init_lora_weights={init!r} starts A, B from a randomized or data-dependent decomposition")
        if isinstance(init, str) and init.startswith("pissa_niter_"):
            why = f"{init} starts A, B from torch.svd_lowrank, a randomized SVD whose draw the file does not record"
        raise CheckpointError(f"layer {layer.name}: the adapter was saved without conversion, so ΔW = s·(B·A − B₀·A₀) "
                              f"needs the initial B₀, A₀, which cannot be recomputed: {why}; {CONVERT_HINT}")
    base = require_base(layer, f"init_lora_weights={init!r} moved s·B₀·A₀ out of W₀; ΔW = s·(B·A − B₀·A₀)")
    return check_finite(layer.name, "ΔW", _initial_residual_change(layer, base) + _plain_delta_w(layer))


OPS = {
    "peft-lora": LayerOps(delta_w=_plain_delta_w, low_rank=_factors, delta_bias=_delta_bias),
    "peft-lora-embedding": LayerOps(delta_w=_plain_delta_w, low_rank=_factors, delta_bias=_delta_bias),
    "peft-dora": LayerOps(delta_w=_dora_delta_w, delta_bias=_delta_bias),
    "peft-lora-init": LayerOps(delta_w=_init_delta_w, delta_bias=_delta_bias),
}
