"""peft VeRA (``peft_type: "VERA"``): shared random A, B and per-layer scaling vectors.

Formula of peft 0.21 ``src/peft/tuners/vera/layer.py::Linear.get_delta_weight``:
ΔW = (λ_b ⊙ B[:out]) @ (λ_d ⊙ A[:, :in]) with ``vera_A`` (r, max in) and ``vera_B`` (max out, r)
shared by all layers (``base_model.vera_A``/``vera_B``, saved with ``save_projection=True``).
The file does not record each layer's ``in_features`` (A is stored at the largest width), so
each layer's shape comes from the base (``base=``; only its header is read).  Without it the
record has ``shape=None`` and ``delta_w()`` says what is missing (ripkit up to 0.1 returned
ΔW at the width of A, wrong for every layer narrower than the widest).
"""
from __future__ import annotations

from ripkit.formats._io import CheckpointError
from ripkit.formats.peft_common import Source, cfg_bool, cfg_int, extra_layers, group_keys, layer_meta
from ripkit.formats.record import AdapterLayer, LayerOps, LazyFactors, require_base

__all__ = ["read", "OPS"]

SHARED = ("base_model.vera_A", "base_model.vera_B")


def read(src: Source) -> list[AdapterLayer]:
    r = cfg_int(src, "r", 256)
    fifo = cfg_bool(src, "fan_in_fan_out")
    if not cfg_bool(src, "save_projection", True) or not all(k in src.tensors for k in SHARED):
        raise CheckpointError(f"{src.tensors.path}: VeRA checkpoint saved without its projections "
                              f"(save_projection=false, no base_model.vera_A/vera_B): ripkit does not regenerate "
                              f"them from projection_prng_key; save with save_projection=True")
    src.tensors.check_float(*SHARED)
    a_shape, b_shape = src.tensors.info(SHARED[0]).shape, src.tensors.info(SHARED[1]).shape
    if len(a_shape) != 2 or len(b_shape) != 2 or a_shape[0] != r or b_shape[1] != r:
        raise CheckpointError(f"{src.tensors.path}: vera_A {a_shape} / vera_B {b_shape} do not fit r={r} "
                              f"(expected (r, in) and (out, r))")
    groups, leftover = group_keys(src, ("vera_lambda_b", "vera_lambda_d"))
    extras, bias_keys = extra_layers(src, [k for k in leftover if k not in SHARED], set(groups))
    if bias_keys:
        raise CheckpointError(f"{src.config_path}: trained biases of VeRA layers are not supported")
    base = src.context.base
    layers = []
    for name in sorted(groups):
        if not src.select(name):
            continue
        keys = groups[name]
        if set(keys) != {"vera_lambda_b", "vera_lambda_d"}:
            raise CheckpointError(f"{src.tensors.path}: layer {name} has {sorted(keys)}, expected vera_lambda_b "
                                  f"and vera_lambda_d")
        factors = LazyFactors(src.tensors, {"lambda_b": keys["vera_lambda_b"], "lambda_d": keys["vera_lambda_d"],
                                            "vera_A": SHARED[0], "vera_B": SHARED[1]}, name)
        sh = factors.shapes
        if len(sh["lambda_b"]) != 1 or sh["lambda_d"] != (r,) or sh["lambda_b"][0] > b_shape[0]:
            raise CheckpointError(f"{src.tensors.path}: layer {name}: lambda_b {sh['lambda_b']} / lambda_d "
                                  f"{sh['lambda_d']} do not fit r={r} and vera_B {b_shape}")
        src.tensors.check_float(*keys.values())
        m, n = sh["lambda_b"][0], None
        if base is not None:
            w = base.shape(name)
            n = (w[0] if fifo else w[1]) if len(w) == 2 else None
            if n is None or (w[1] if fifo else w[0]) != m or n > a_shape[1]:
                raise CheckpointError(f"layer {name}: the base weight has shape {w}, which does not fit the VeRA "
                                      f"layer (out {m}, in <= {a_shape[1]}); not the base it was trained on")
        shape = (m, n) if n is not None else None
        meta = layer_meta(src, method="vera", shape=list(shape) if shape else None, r=r, fan_in_fan_out=fifo,
                          projection_prng_key=src.config.get("projection_prng_key"), shared_A_width=a_shape[1])
        layers.append(AdapterLayer(name, "vera", shape, factors, 1.0, meta, frozenset() if shape else frozenset({"base"}),
                                   factors.numel("lambda_b", "lambda_d"), src.context))
    return layers + extras


def _low_rank(layer):
    f = layer.factors
    if layer.shape is None:
        require_base(layer, "the file does not record the layer's in_features: vera_A is shared at the largest "
                            "width and peft slices it to each layer's width (only the base's shapes are read)")
    m, n = layer.shape
    return f["lambda_b"][:, None] * f["vera_B"][:m], f["lambda_d"][:, None] * f["vera_A"][:, :n]


def _delta_w(layer):
    u, v = _low_rank(layer)
    return u @ v


OPS = {"vera": LayerOps(delta_w=_delta_w, low_rank=_low_rank)}
