"""Checkpoints of the CoSA authors' peft fork (``peft_type: "COSA"``, repository
``nobodyknowsme1/anonymous-submission``, ``peft/src/peft/tuners/lora/layer.py::CoSALayer``).

The fork saves only the trained core ``…lora_Y.weight`` (an ``nn.Linear(b, a)``, so Y is (a, b)).
Its frozen projections are regenerated at load from a torch Generator:

- ``L = torch.randn(a, out, generator=g) * (1/√a)`` with ``g.manual_seed(seed_L)`` (stored (a, out));
- ``R = torch.randn(in, b, generator=g) * (1/√b)`` with ``g.manual_seed(seed_R)`` (stored (in, b));
- ``seed_X = (compression_seed or 42) + hash(f"{layer_id}_X") % 10000``, ``hash`` being Python's
  salted string hash and ``layer_id = f"{_layer_name or class name}_{base layer type}_{adapter}"`` —
  ``_layer_name`` is never set, so ``layer_id`` is ``"CoSALinear_Linear_default"`` for every
  ``nn.Linear`` layer: all layers with the same (a, out) share L and all with the same (in, b) share R;
- ``get_delta_weight_compression``: ΔW = scaling · Lᵀ·(Y·Rᵀ), scaling = lora_alpha/r (or /√r with
  ``use_rslora``), transposed for storage when ``fan_in_fan_out``.

In ripkit's orientation (DESIGN.md) L_ripkit = Lᵀ (out, a) and R_ripkit = Rᵀ (b, in), so
ΔW = s·L_ripkit·Y·R_ripkit.  ``core()`` (Y) needs nothing more; ΔW needs the ``PYTHONHASHSEED``
of the run (``hash_seed=``; without it the seeds, hence L and R, are unrecoverable) and the layer
shapes, which the file does not store (``base=``, header only).  The hash is recomputed by
``ripkit.formats._pyhash`` for the run's Python: SipHash-2-4 (Python ≤ 3.10, the reference's
``python=3.10``; the default) or SipHash-1-3 (≥ 3.11, ``hash_algorithm="siphash13"``).
"""
from __future__ import annotations

import math

from ripkit.formats._io import CheckpointError, short_repr
from ripkit.formats._pyhash import string_hash
from ripkit.formats.peft_common import (Source, cfg_bool, cfg_int, cfg_number, extra_layers, group_keys,
                                        layer_meta)
from ripkit.formats.record import AdapterLayer, LayerOps, LazyFactors, require_base

__all__ = ["read", "OPS", "projection_seeds"]

CLASS_NAME = "CoSALinear"


def read(src: Source) -> list[AdapterLayer]:
    cfg = src.config
    if not cfg_bool(src, "use_compression"):
        raise CheckpointError(f"{src.config_path}: use_compression is false: this CoSA-fork checkpoint is its "
                              f"A·B + projection variant, which ripkit does not read (only the compressed L·Y·R form)")
    if cfg_bool(src, "use_dora"):
        raise CheckpointError(f"{src.config_path}: use_dora=true with CoSA is not supported")
    a_cfg, b_cfg = cfg_int(src, "compression_a", 128), cfg_int(src, "compression_b", 128)
    adaptive = cfg_bool(src, "use_adaptive_compression")
    seed = cfg.get("compression_seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise CheckpointError(f"{src.config_path}: compression_seed={short_repr(seed)}, expected an integer or null")
    r = cfg_int(src, "r", 8)
    alpha = cfg_number(src, "lora_alpha", 8)
    scaling = alpha / math.sqrt(r) if cfg_bool(src, "use_rslora") else alpha / r
    fifo = cfg_bool(src, "fan_in_fan_out")
    groups, leftover = group_keys(src, ("lora_Y.weight",))
    extras, bias_keys = extra_layers(src, leftover, set(groups))
    if bias_keys:
        raise CheckpointError(f"{src.config_path}: trained biases of CoSA layers are not supported")
    base, adapter = src.context.base, src.adapter_name or "default"
    layers = []
    for name in sorted(groups):
        if not src.select(name):
            continue
        key = groups[name]["lora_Y.weight"]
        info = src.tensors.info(key)
        if not info.is_float or len(info.shape) != 2 or min(info.shape) == 0:
            raise CheckpointError(f"{src.tensors.path}: tensor {key!r} has dtype {info.dtype} and shape {info.shape}, "
                                  f"expected a floating-point (a, b) core")
        a, b = info.shape
        if not adaptive and (a, b) != (a_cfg, b_cfg):
            raise CheckpointError(f"{src.tensors.path}: layer {name}: lora_Y has shape {(a, b)}, "
                                  f"{src.config_path.name} says (compression_a, compression_b) = {(a_cfg, b_cfg)}")
        shape, base_type = None, "Conv1D" if fifo else "Linear"
        if base is not None:
            w = base.shape(name)
            if len(w) != 2:
                raise CheckpointError(f"layer {name}: the base weight has shape {w}, expected a matrix")
            shape = (w[1], w[0]) if fifo else tuple(w)
            base_type = base.module_type(name) or base_type
        layer_id = f"{CLASS_NAME}_{base_type}_{adapter}"
        meta = layer_meta(src, method="cosa-reference", shape=list(shape) if shape else None, a=a, b=b, r=r,
                          alpha=alpha, compression_seed=seed, layer_id=layer_id, fan_in_fan_out=fifo,
                          hash_seed=src.context.hash_seed, hash_algorithm=src.context.hash_algorithm,
                          projection_dtype="float32 (torch CPU Generator, as the fork creates them)")
        if src.context.hash_seed is not None:
            meta["projection_seeds"] = projection_seeds(layer_id, seed, src.context.hash_seed,
                                                        src.context.hash_algorithm)
        needs = frozenset({"hash_seed"} if shape else {"hash_seed", "base"})
        layers.append(AdapterLayer(name, "cosa-reference", shape, LazyFactors(src.tensors, {"lora_Y": key}, name),
                                   float(scaling), meta, needs, a * b, src.context))
    _report_sharing(layers)
    return layers + extras


def projection_seeds(layer_id: str, compression_seed, hash_seed: int, algorithm: str) -> dict[str, int]:
    """The fork's ``matrix_seed`` of L and R: ``(compression_seed or 42) + hash(f"{layer_id}_X") % 10000``."""
    start = compression_seed or 42
    return {side: start + string_hash(f"{layer_id}_{side}", hash_seed, algorithm) % 10000 for side in ("L", "R")}


def _report_sharing(layers):
    """meta['L_shared_by'] / ['R_shared_by']: how many layers use the same L (same id and (a, out)) / R."""
    if any(layer.shape is None for layer in layers):
        for layer in layers:
            layer.meta["projections_shared"] = ("unknown until the layer shapes are known (base=); the layer id "
                                                f"{layer.meta['layer_id']!r} does not depend on the layer")
        return
    for side, key in (("L", lambda l: (l.meta["layer_id"], l.meta["a"], l.shape[0])),
                      ("R", lambda l: (l.meta["layer_id"], l.meta["b"], l.shape[1]))):
        counts = {}
        for layer in layers:
            counts[key(layer)] = counts.get(key(layer), 0) + 1
        for layer in layers:
            layer.meta[f"{side}_shared_by"] = counts[key(layer)]


def _dictionary(layer):
    """(L_ripkit (out, a), R_ripkit (b, in)), float64, regenerated exactly as the fork does."""
    import torch

    ctx = layer.context
    if ctx.hash_seed is None:
        raise CheckpointError(
            f"layer {layer.name} (cosa-reference): L and R were seeded with Python's salted string hash, "
            f"compression_seed + hash('{layer.meta['layer_id']}_L') % 10000, which depends on the PYTHONHASHSEED "
            f"of the training run; pass it as load_adapter(path, hash_seed=N) (--hash-seed N), e.g. 0 for "
            f"PYTHONHASHSEED=0. Without it the projections cannot be recovered; core() (Y) needs nothing")
    if layer.shape is None:
        require_base(layer, "the file does not store the layer's (out, in) that L and R are drawn at; only the "
                            "base's weight shapes are read")
    seeds = projection_seeds(layer.meta["layer_id"], layer.meta["compression_seed"], ctx.hash_seed,
                             ctx.hash_algorithm)
    (out, inp), a, b = layer.shape, layer.meta["a"], layer.meta["b"]
    g = torch.Generator(device="cpu")
    g.manual_seed(seeds["L"])
    left = torch.randn(a, out, generator=g, dtype=torch.float32) * (1 / math.sqrt(a))
    g.manual_seed(seeds["R"])
    right = torch.randn(inp, b, generator=g, dtype=torch.float32) * (1 / math.sqrt(b))
    return left.double().numpy().T.copy(), right.double().numpy().T.copy()


def _low_rank(layer):
    left, right = _dictionary(layer)
    return layer.scaling * (left @ layer.factors["lora_Y"]), right


def _delta_w(layer):
    u, v = _low_rank(layer)
    return u @ v


OPS = {"cosa-reference": LayerOps(delta_w=_delta_w, low_rank=_low_rank, core=lambda l: l.factors["lora_Y"],
                                  dictionary=_dictionary)}
