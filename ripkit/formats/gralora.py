"""peft GraLoRA (``peft_type: "GRALORA"``): k×k contiguous blocks, each of rank r/k, plus an
optional global LoRA of rank ``hybrid_r``.

Formula of peft 0.21 ``src/peft/tuners/gralora/layer.py::GraloraLayer.get_delta_weight``:
``gralora_A`` (k, n/k, r), ``gralora_B`` (k, r, m/k); block (i, j) of ΔW (output block i, input
block j) is s·(A[j][:, i·r/k:(i+1)·r/k] @ B[i][j·r/k:(j+1)·r/k, :])ᵀ; the hybrid part adds
s·B_general·A_general; s = alpha / (r + hybrid_r) (``update_layer``).
"""
from __future__ import annotations

import numpy as np

from ripkit.formats._io import CheckpointError
from ripkit.formats.peft_common import Source, cfg_int, cfg_number, extra_layers, group_keys, layer_meta
from ripkit.formats.record import AdapterLayer, LayerOps, LazyFactors

__all__ = ["read", "OPS", "gralora_delta"]

SHORT = {"gralora_A": "gralora_A", "gralora_B": "gralora_B", "gralora_A_general.weight": "general_A",
         "gralora_B_general.weight": "general_B"}  # key suffix -> factor name (as ripkit has always named them)
SUFFIXES = tuple(SHORT)


def read(src: Source) -> list[AdapterLayer]:
    k = cfg_int(src, "gralora_k", 2)
    hybrid = cfg_int(src, "hybrid_r", 0, minimum=0)
    alpha = cfg_number(src, "alpha", 64)
    r_cfg = cfg_int(src, "r", 32)
    groups, leftover = group_keys(src, SUFFIXES)
    extras, bias_keys = extra_layers(src, leftover, set(groups))
    if bias_keys:
        raise CheckpointError(f"{src.config_path}: trained biases of GraLoRA layers ({sorted(bias_keys)[:3]}) are "
                              f"not supported")
    layers = []
    for name in sorted(groups):
        if not src.select(name):
            continue
        keys = groups[name]
        need = {"gralora_A", "gralora_B"} | ({"gralora_A_general.weight", "gralora_B_general.weight"} if hybrid else set())
        if set(keys) != need:
            raise CheckpointError(f"{src.tensors.path}: layer {name} has {sorted(keys)}; missing "
                                  f"{sorted(need - set(keys))}, unexpected {sorted(set(keys) - need)} (hybrid_r={hybrid})")
        factors = LazyFactors(src.tensors, {SHORT[key]: v for key, v in keys.items()}, name)
        src.tensors.check_float(*keys.values())
        sh = factors.shapes
        a, b = sh["gralora_A"], sh["gralora_B"]
        if len(a) != 3 or len(b) != 3 or a[0] != k or b[0] != k or a[2] != b[1] or a[2] != r_cfg or r_cfg % k:
            raise CheckpointError(f"{src.tensors.path}: layer {name}: gralora_A {a} / gralora_B {b} do not fit "
                                  f"gralora_k={k}, r={r_cfg} (expected (k, in/k, r) and (k, r, out/k), r divisible by k)")
        shape = (k * b[2], k * a[1])
        if hybrid and (sh["general_A"] != (hybrid, shape[1]) or sh["general_B"] != (shape[0], hybrid)):
            raise CheckpointError(f"{src.tensors.path}: layer {name}: hybrid factors {sh['general_A']}, "
                                  f"{sh['general_B']} do not fit hybrid_r={hybrid} and shape {shape}")
        meta = layer_meta(src, method="gralora", shape=list(shape), r=r_cfg, k=k, hybrid_r=hybrid, alpha=alpha)
        layers.append(AdapterLayer(name, "gralora", shape, factors, alpha / (r_cfg + hybrid), meta, frozenset(),
                                   factors.numel(), src.context))
    return layers + extras


def _low_rank(layer):
    """(U, V): block (i, j) owns the rank-r/k slot t = i·k + j; the hybrid part is appended."""
    f, k, s = layer.factors, layer.meta["k"], layer.scaling
    a, b = f["gralora_A"], f["gralora_B"]
    rb, n_j, m_i = a.shape[2] // k, a.shape[1], b.shape[2]
    u = np.zeros((k * m_i, k * k * rb))
    v = np.zeros((k * k * rb, k * n_j))
    for i in range(k):
        for j in range(k):
            t = slice((i * k + j) * rb, (i * k + j + 1) * rb)
            u[i * m_i:(i + 1) * m_i, t] = b[i][j * rb:(j + 1) * rb, :].T
            v[t, j * n_j:(j + 1) * n_j] = a[j][:, i * rb:(i + 1) * rb].T
    u *= s
    if "general_A" in f:
        u, v = np.hstack([u, s * f["general_B"]]), np.vstack([v, f["general_A"]])
    return u, v


def gralora_delta(factors, k: int, scaling: float) -> np.ndarray:
    """Dense ΔW of a GraLoRA layer from ``gralora_A``/``gralora_B`` (+ ``general_A``/``general_B``)."""
    a, b = factors["gralora_A"], factors["gralora_B"]
    rb, n_j, m_i = a.shape[2] // k, a.shape[1], b.shape[2]
    dense = np.zeros((k * m_i, k * n_j))
    for i in range(k):
        for j in range(k):
            dense[i * m_i:(i + 1) * m_i, j * n_j:(j + 1) * n_j] = (
                a[j][:, i * rb:(i + 1) * rb] @ b[i][j * rb:(j + 1) * rb, :]).T
    if "general_A" in factors:
        dense = dense + factors["general_B"] @ factors["general_A"]
    return scaling * dense


OPS = {"gralora": LayerOps(delta_w=lambda layer: gralora_delta(layer.factors, layer.meta["k"], layer.scaling),
                           low_rank=_low_rank)}
