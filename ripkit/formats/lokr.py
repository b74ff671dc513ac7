"""peft LoKr (``peft_type: "LOKR"``): the Kronecker product of two factors, each full or low-rank.

Formula of peft 0.21 ``src/peft/tuners/lokr/layer.py::LoKrLayer.get_delta_weight`` (``make_kron``):
ΔW = (w1 ⊗ w2)·alpha/r, w1 = ``lokr_w1`` or ``lokr_w1_a``·``lokr_w1_b``, w2 = ``lokr_w2`` or
``lokr_w2_a``·``lokr_w2_b``; r and alpha per layer from ``rank_pattern`` / ``alpha_pattern``.

Which factors are stored follows ``LoKrLayer.update_layer`` for a Linear layer: with
(a, b) = ``factorization(out, decompose_factor)`` and (c, d) = ``factorization(in, decompose_factor)``,
w1 is (a, c) and w2 (b, d); w1 is full unless ``decompose_both`` and r < max(a, c)/2, w2 is full
unless r < max(b, d)/2.  The scaling is alpha/r in every case, also when both factors are full (peft
0.21 has no special case; LyCORIS itself used 1 there).  ripkit checks the stored shapes against this
rule, so a checkpoint that does not come from a Linear layer (a convolution, ``lokr_t2``) is refused.

``low_rank()``: with w1 = U1·V1 and w2 = U2·V2 (a full factor is itself times an identity, on its
shorter side), w1 ⊗ w2 = (U1 ⊗ U2)·(V1 ⊗ V2); None when that is not of lower rank than ΔW.
"""
from __future__ import annotations

import numpy as np

from ripkit.formats._io import CheckpointError
from ripkit.formats.peft_common import (Source, cfg_bool, cfg_int, cfg_number, check_base_shape, extra_layers,
                                        group_keys, layer_factors, layer_meta, pattern_value, selected)
from ripkit.formats.record import AdapterLayer, LayerOps

__all__ = ["read", "OPS", "factorization"]

SUFFIXES = ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2")


def factorization(dimension: int, factor: int = -1) -> tuple[int, int]:
    """peft's ``lokr/layer.py::factorization`` (from LyCORIS): (m, n), m <= n, m·n = dimension."""
    if factor > 0 and dimension % factor == 0:
        return factor, dimension // factor
    if factor == -1:
        factor = dimension
    m, n = 1, dimension
    length = m + n
    while m < n:
        new_m = m + 1
        while dimension % new_m != 0:
            new_m += 1
        new_n = dimension // new_m
        if new_m + new_n > length or new_m > factor:
            break
        m, n = new_m, new_n
    return (n, m) if m > n else (m, n)


def _factor(src, name, sh, which: str) -> tuple[tuple[int, int], int | None]:
    """((rows, cols), rank or None if full) of w1 or w2."""
    full, a, b = f"lokr_{which}", f"lokr_{which}_a", f"lokr_{which}_b"
    if full in sh:
        if len(sh[full]) != 2:
            raise CheckpointError(f"{src.tensors.path}: layer {name}: {full} has shape {sh[full]}; ripkit reads LoKr "
                                  f"on Linear layers (2-D factors), not convolutions")
        return sh[full], None
    if len(sh[a]) != 2 or len(sh[b]) != 2 or sh[a][1] != sh[b][0]:
        raise CheckpointError(f"{src.tensors.path}: layer {name}: {a} {sh[a]} and {b} {sh[b]} are not the factors of "
                              f"a matrix (expected (rows, r) and (r, cols)); convolutions are not supported")
    return (sh[a][0], sh[b][1]), sh[a][1]


def read(src: Source) -> list[AdapterLayer]:
    """``AdapterLayer`` records of a peft LoKr checkpoint (see the module docstring)."""
    r_default, alpha_default = cfg_int(src, "r", 8), cfg_number(src, "alpha", 8)
    both = cfg_bool(src, "decompose_both")
    dfactor = src.config.get("decompose_factor", -1)
    if isinstance(dfactor, bool) or not isinstance(dfactor, int) or (dfactor < 1 and dfactor != -1):
        raise CheckpointError(f"{src.config_path}: decompose_factor={dfactor!r}, expected -1 or a positive integer")
    groups, leftover = group_keys(src, SUFFIXES)
    extras, bias_keys = extra_layers(src, leftover, set(groups))
    if bias_keys:
        raise CheckpointError(f"{src.config_path}: trained biases of LoKr layers are not supported")
    layers = []
    for name, keys in selected(src, groups):
        if "lokr_t2" in keys:
            raise CheckpointError(f"{src.tensors.path}: layer {name} stores lokr_t2 (use_effective_conv2d on a "
                                  f"convolution); ripkit does not read it")
        r, r_key = pattern_value(src, "rank_pattern", name, r_default, cfg_int)
        alpha, alpha_key = pattern_value(src, "alpha_pattern", name, alpha_default, cfg_number)
        need = ({"lokr_w1"} if "lokr_w1" in keys else {"lokr_w1_a", "lokr_w1_b"}) | (
            {"lokr_w2"} if "lokr_w2" in keys else {"lokr_w2_a", "lokr_w2_b"})
        factors = layer_factors(src, name, keys, need)
        sh = factors.shapes
        (a, c), r1 = _factor(src, name, sh, "w1")
        (b, d), r2 = _factor(src, name, sh, "w2")
        shape = (a * b, c * d)
        check_base_shape(src, name, shape)
        fits = (a, b) == factorization(shape[0], dfactor) and (c, d) == factorization(shape[1], dfactor)
        use_w1 = not (both and r < max(a, c) / 2)  # peft: full w1 unless decompose_both and a small r
        use_w2 = not (r < max(b, d) / 2)
        if not fits or (r1 is None) != use_w1 or (r2 is None) != use_w2 or {r1, r2} - {None, r}:
            raise CheckpointError(
                f"{src.tensors.path}: layer {name}: factors {sorted(sh.items())} are not what peft's LoKr stores for a "
                f"Linear layer of shape {shape} with r={r}, decompose_both={both}, decompose_factor={dfactor} "
                f"(w1 {'full' if use_w1 else 'factored'}, w2 {'full' if use_w2 else 'factored'}, split as "
                f"{factorization(shape[0], dfactor)} x {factorization(shape[1], dfactor)})")
        meta = layer_meta(src, method="lokr", shape=list(shape), r=r, alpha=alpha, w1_shape=[a, c], w2_shape=[b, d],
                          w1_full=use_w1, w2_full=use_w2, decompose_both=both, decompose_factor=dfactor,
                          **({"rank_pattern_key": r_key} if r_key else {}),
                          **({"alpha_pattern_key": alpha_key} if alpha_key else {}))
        layers.append(AdapterLayer(name, "lokr", shape, factors, alpha / r, meta, frozenset(), factors.numel(),
                                   src.context))
    return layers + extras


def _pair(f, which: str) -> tuple[np.ndarray, np.ndarray]:
    """(U, V) with U @ V = w1 or w2; a full factor is split on its shorter side by an identity."""
    if f"lokr_{which}" not in f:
        return f[f"lokr_{which}_a"], f[f"lokr_{which}_b"]
    w = f[f"lokr_{which}"]
    return (w, np.eye(w.shape[1])) if w.shape[1] <= w.shape[0] else (np.eye(w.shape[0]), w)


def _w(f, which: str) -> np.ndarray:
    return f[f"lokr_{which}"] if f"lokr_{which}" in f else f[f"lokr_{which}_a"] @ f[f"lokr_{which}_b"]


def _delta_w(layer):
    f = layer.factors
    return np.kron(_w(f, "w1"), _w(f, "w2")) * layer.scaling


def _low_rank(layer):
    f = layer.factors
    (u1, v1), (u2, v2) = _pair(f, "w1"), _pair(f, "w2")
    if u1.shape[1] * u2.shape[1] >= min(layer.shape):
        return None
    return np.kron(u1, u2) * layer.scaling, np.kron(v1, v2)


OPS = {"lokr": LayerOps(delta_w=_delta_w, low_rank=_low_rank)}
