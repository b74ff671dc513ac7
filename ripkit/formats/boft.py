"""peft BOFT (``peft_type: "BOFT"``): W ← (W₀·Mᵀ) ⊙ s with M a product of butterfly-permuted
orthogonal block-diagonal factors, so ΔW depends on W₀.

Formulas of peft 0.21 ``src/peft/tuners/boft/layer.py``:

- ``boft_R`` (N, D, H, H): N butterfly factors of D blocks of size H (in = D·H); ``boft_s`` (out, 1).
- ``BOFTLayer.cayley_batch``: each block is Q = (I − S)(I + S)⁻¹ with S = ½(R − Rᵀ).
- ``Linear.get_delta_weight``: factor i is B_i = P_i·blockdiag(Q_i1, …, Q_iD)·P_iᵀ, P_i the permutation
  matrix of ``block_butterfly_perm(in, D/2^i, H/2, N−1)`` (``perm2mat``: row j has its 1 in column
  perm[j]); M = B_{N−1}···B_1·B_0.
- ``Linear.merge``: W ← (M·W₀ᵀ)ᵀ ⊙ s, so ΔW = (W₀·Mᵀ) ⊙ s − W₀ (s scales the rows).

peft builds N > 1 only where its CUDA block-diagonal extension compiles (elsewhere it forces
``boft_n_butterfly_factor`` to 1); ripkit reads N from the file and reproduces that path in float64.
peft's BOFT adapts Linear and Conv2d layers, not GPT-2's Conv1D, and resets ``fan_in_fan_out`` to
false for Linear ones; ripkit ignores it too.  Convolutions are refused (the base weight is not a matrix).
"""
from __future__ import annotations

import numpy as np

from ripkit.formats._io import CheckpointError
from ripkit.formats.peft_common import (Source, base_matrix, cfg_int, extra_layers, full_delta_bias, group_keys,
                                        layer_factors, layer_meta, selected)
from ripkit.formats.record import AdapterLayer, LayerOps

__all__ = ["read", "OPS", "block_butterfly_perm"]

SUFFIXES = ("boft_R", "boft_s")
WHY = "BOFT rotates and rescales W₀ itself (W ← (W₀·Mᵀ) ⊙ s), so ΔW = (W₀·Mᵀ) ⊙ s − W₀"


def read(src: Source) -> list[AdapterLayer]:
    """``AdapterLayer`` records of a peft BOFT checkpoint (see the module docstring)."""
    size_cfg = cfg_int(src, "boft_block_size", 4, minimum=0)
    num_cfg = cfg_int(src, "boft_block_num", 0, minimum=0)
    factor_cfg = cfg_int(src, "boft_n_butterfly_factor", 1)
    if (size_cfg == 0) == (num_cfg == 0):
        raise CheckpointError(f"{src.config_path}: boft_block_size={size_cfg}, boft_block_num={num_cfg}; exactly one "
                              f"must be non-zero")
    groups, leftover = group_keys(src, SUFFIXES)
    extras, bias_keys = extra_layers(src, leftover, set(groups), only="boft_only")
    layers = []
    for name, keys in selected(src, groups):
        factors = layer_factors(src, name, keys, SUFFIXES, bias_keys.get(name))
        sh = factors.shapes
        rot, scale = sh["boft_R"], sh["boft_s"]
        if len(rot) != 4 or rot[2] != rot[3] or min(rot) < 1 or len(scale) != 2 or scale[1] != 1:
            raise CheckpointError(f"{src.tensors.path}: layer {name}: boft_R {rot}, boft_s {scale}; expected "
                                  f"(factors, blocks, size, size) and (out, 1)")
        n_factors, blocks, size = rot[:3]
        where = f"{src.tensors.path}: layer {name}: boft_R {rot}"
        if (size_cfg and size != size_cfg) or (num_cfg and blocks != num_cfg):
            raise CheckpointError(f"{where} does not fit boft_block_size={size_cfg}, boft_block_num={num_cfg}")
        if n_factors not in (1, factor_cfg):  # 1: peft's CPU fallback; else the CUDA path's N
            raise CheckpointError(f"{where} has {n_factors} butterfly factors, boft_n_butterfly_factor={factor_cfg}")
        if n_factors > 1 and (size % 2 or blocks % 2 ** (n_factors - 1) or blocks % 2):
            raise CheckpointError(f"{where}: {n_factors} butterfly factors need an even block size and a block count "
                                  f"divisible by 2^{n_factors - 1}")
        shape = (scale[0], blocks * size)
        meta = layer_meta(src, method="boft", shape=list(shape), butterfly_factors=n_factors, blocks=blocks,
                          block_size=size)
        layers.append(AdapterLayer(name, "boft", shape, factors, 1.0, meta, frozenset({"base"}),
                                   factors.numel(*SUFFIXES), src.context))
    return layers + extras


def block_butterfly_perm(n: int, b: int, r: int, n_butterfly_factor: int) -> np.ndarray:
    """peft's ``BOFTLayer.block_butterfly_perm`` (the float ``torch.arange`` steps included)."""
    if n_butterfly_factor == 0:
        return np.arange(n)
    if b * r * 2 > n:
        raise ValueError("Invalid number of blocks!")
    block = n // b
    step = block / r
    sorted_seq = np.concatenate([np.arange(0, step, 2), np.arange(1, step, 2)])
    order = np.empty(block, dtype=np.int64)
    initial = np.arange(block)
    for i, pos in enumerate(sorted_seq):
        order[int(i * r):int(i * r + r)] = initial[int(pos * r):int(pos * r + r)]
    indices = np.arange(n)
    for start in range(0, n, block):
        indices[start:start + block] = indices[start:start + block][order]
    return indices


def butterfly(layer) -> np.ndarray:
    """M (in, in) as ``Linear.get_delta_weight`` builds it."""
    rot = layer.factors["boft_R"]
    n_factors, blocks, size, _ = rot.shape
    n = blocks * size
    skew = 0.5 * (rot - rot.transpose(0, 1, 3, 2))
    eye = np.eye(size)
    # Q = (I − S)(I + S)⁻¹, i.e. Q·(I + S) = I − S, solved as (I + S)ᵀ·Qᵀ = (I − S)ᵀ
    q = np.linalg.solve((eye + skew).transpose(0, 1, 3, 2), (eye - skew).transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    m = None
    for i in range(n_factors):
        diag = np.zeros((n, n))
        for j in range(blocks):
            diag[j * size:(j + 1) * size, j * size:(j + 1) * size] = q[i, j]
        perm = block_butterfly_perm(n, int(blocks / 2 ** i), int(size / 2), n_factors - 1)
        factor = diag[perm][:, perm]  # P·D·Pᵀ with P[j, perm[j]] = 1
        m = factor if m is None else factor @ m
    return m


def _delta_w(layer):
    w0 = base_matrix(layer, WHY)
    return (w0 @ butterfly(layer).T) * layer.factors["boft_s"] - w0


OPS = {"boft": LayerOps(delta_w=_delta_w, delta_bias=full_delta_bias)}
