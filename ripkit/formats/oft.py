"""peft OFT (``peft_type: "OFT"``, peft ≥ 0.14): W ← W₀·Rᵀ with an orthogonal block-diagonal R, so
ΔW depends on W₀.

Formulas of peft 0.21 ``src/peft/tuners/oft/layer.py``:

- ``OFTRotationModule.get_weight``: each stored row q (``oft_R.weight``, (blocks, b(b−1)/2); one row
  shared by all blocks with ``block_share``) fills the strict upper triangle of a skew-symmetric
  Q = U − Uᵀ (``_pytorch_skew_symmetric``, ``torch.triu_indices`` order).  With ``coft``, first
  ``_project_batch``: Q ← eps'·Q/‖Q‖_F wherever ‖Q‖_F > eps', eps' = eps/√blocks in float32 — computed
  by torch (``coft_radius``; this reader's only torch import, for ``coft`` layers only), because
  torch's float32 sqrt is not correctly rounded on every CPU and nothing else reproduces it.  Then
  the Cayley transform (``_cayley_batch``): R_b = I + 2Q + 2Q² + … + 2Q^{k−2} + Q^{k−1} with
  ``use_cayley_neumann`` (k = ``num_cayley_neumann_terms``), else (I − Q)(I + Q)⁻¹;
  R = blockdiag(R_1, …) of size in (``_block_diagonal``).
- ``Linear.merge``: W ← (R·W₀ᵀ)ᵀ = W₀·Rᵀ, so ΔW = W₀·(Rᵀ − I); ``Embedding.merge``
  (``oft_embedding_R``): W ← W₀·R, ΔW = W₀·(R − I).

ΔW is computed block by block (R is never formed).  peft's OFT adapts Linear, Embedding and Conv2d
layers, not GPT-2's Conv1D, and its layers ignore ``fan_in_fan_out``; so does ripkit.  Refused:
convolutions, checkpoints older than peft 0.14 (no ``oft_block_size``: a different parametrization) and Cayley–Neumann
checkpoints older than peft 0.18 (its series changed).  A saved embedding base weight (peft saves it
with embedding layers) must equal the base's.
"""
from __future__ import annotations

import math

import numpy as np

from ripkit.formats._io import CheckpointError, short_repr
from ripkit.formats.peft_common import (Source, base_matrix, base_shape, cfg_bool, cfg_int, cfg_number,
                                        check_layer_keys, extra_layers, full_delta_bias, group_keys, layer_factors,
                                        layer_meta, selected)
from ripkit.formats.record import AdapterLayer, LayerOps

__all__ = ["read", "OPS", "cayley", "skew", "coft_radius"]

SUFFIXES = ("oft_R.weight", "oft_embedding_R.weight", "base_layer.weight")
MAX_TERMS = 1000  # peft's default is 5; a larger count is a corrupted file, not a training choice
WHY = "OFT rotates W₀ itself (W ← W₀·Rᵀ), so ΔW = W₀·(Rᵀ − I)"


def _version(text) -> tuple[int, ...]:
    parts = []
    for piece in str(text).partition("@")[0].split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit()) if piece[:1].isdigit() else ""
        parts.append(int(digits[:9]) if digits else 0)
    return tuple(parts)


def _options(src: Source) -> dict:
    cfg = src.config
    if "oft_block_size" not in cfg:
        raise CheckpointError(f"{src.config_path}: no oft_block_size: an OFT checkpoint of peft < 0.14, whose "
                              f"parametrization peft itself no longer loads; not supported")
    neumann = cfg_bool(src, "use_cayley_neumann", True)
    if neumann and _version(cfg.get("peft_version", "0.0.0")) < (0, 18, 0):
        raise CheckpointError(f"{src.config_path}: use_cayley_neumann=true saved by peft "
                              f"{short_repr(cfg.get('peft_version'))} (< 0.18), whose Cayley–Neumann series differs "
                              f"from today's; not supported")
    terms = cfg_int(src, "num_cayley_neumann_terms", 5, minimum=0) if neumann else None
    if terms is not None and terms > MAX_TERMS:
        raise CheckpointError(f"{src.config_path}: num_cayley_neumann_terms={terms}, expected at most {MAX_TERMS}")
    return {"coft": cfg_bool(src, "coft"), "eps": cfg_number(src, "eps", 6e-5),
            "block_share": cfg_bool(src, "block_share"), "neumann": neumann, "terms": terms}


def read(src: Source) -> list[AdapterLayer]:
    """``AdapterLayer`` records of a peft OFT checkpoint (see the module docstring)."""
    opts = _options(src)
    groups, leftover = group_keys(src, SUFFIXES)
    for name, g in groups.items():  # a saved base weight belongs to an adapted embedding, else it is a leftover
        if "base_layer.weight" in g and "oft_embedding_R.weight" not in g:
            leftover.append(g.pop("base_layer.weight"))
    groups = {name: g for name, g in groups.items() if g}
    extras, bias_keys = extra_layers(src, leftover, set(groups), only="oft_only")
    layers = []
    for name, keys in selected(src, groups):
        embedding = "oft_embedding_R.weight" in keys
        rkey = "oft_embedding_R.weight" if embedding else "oft_R.weight"
        check_layer_keys(src, name, keys, {rkey} | ({"base_layer.weight"} & set(keys)))
        short = {"oft_R": keys[rkey]}
        if "base_layer.weight" in keys:  # peft saves the base weight of an adapted embedding
            short["saved_base"] = keys["base_layer.weight"]
        factors = layer_factors(src, name, short, bias_key=bias_keys.get(name))
        stored = factors.shapes["oft_R"]
        block = (1 + math.isqrt(1 + 8 * stored[1])) // 2 if len(stored) == 2 else 0
        if len(stored) != 2 or block * (block - 1) // 2 != stored[1] or block < 1 or stored[0] < 1 \
                or (opts["block_share"] and stored[0] != 1):
            raise CheckpointError(f"{src.tensors.path}: layer {name}: {rkey} has shape {stored}, expected "
                                  f"({'1' if opts['block_share'] else 'blocks'}, b(b-1)/2) for a block size b")
        shape = base_shape(src, name)
        if shape is not None:
            n_in = shape[1]
            if n_in % block or (not opts["block_share"] and n_in != stored[0] * block):
                raise CheckpointError(f"layer {name}: the base weight is {shape} (out, in), which does not fit "
                                      f"{stored[0]} OFT block(s) of size {block}; not the base it was trained on")
        meta = layer_meta(src, method="oft", shape=list(shape) if shape else None, block_size=block,
                          blocks=stored[0], layer_type="embedding" if embedding else "linear",
                          coft=opts["coft"], eps=opts["eps"], block_share=opts["block_share"],
                          use_cayley_neumann=opts["neumann"], num_cayley_neumann_terms=opts["terms"])
        layers.append(AdapterLayer(name, "oft", shape, factors, 1.0, meta, frozenset({"base"}), factors.numel("oft_R"),
                                   src.context))
    return layers + extras


# ---- maths ---------------------------------------------------------------------------------------
def skew(vec: np.ndarray, block: int) -> np.ndarray:
    """(blocks, b, b) skew-symmetric matrices whose strict upper triangles (row-major) are ``vec``'s rows."""
    rows, cols = np.triu_indices(block, 1)
    out = np.zeros((vec.shape[0], block, block))
    out[:, rows, cols] = vec
    return out - out.transpose(0, 2, 1)


def coft_radius(eps: float, blocks: int) -> float:
    """eps' of ``OFTRotationModule._project_batch``: ``eps * 1 / torch.sqrt(torch.tensor(blocks))``, a float32.

    Computed by torch itself (imported here, only for ``coft`` layers): torch's float32 sqrt is not
    correctly rounded on every CPU (√19 gives 4.3588986 where IEEE gives 4.3588991), so numpy's can
    differ from peft's radius by one float32 ulp, and ΔW by ~1e-7 relative.
    """
    import torch

    return float(eps * 1 / torch.sqrt(torch.tensor(blocks)))


def _coft_project(q: np.ndarray, eps: float) -> np.ndarray:
    """``OFTRotationModule._project_batch``: every Q with ‖Q‖_F > eps' is scaled to norm eps'."""
    radius = coft_radius(eps, q.shape[0])
    norm = np.sqrt(np.sum(q * q, axis=(1, 2), keepdims=True))
    return np.where(norm <= radius, q, radius * (q / np.where(norm == 0, 1, norm)))


def cayley(q: np.ndarray, neumann: bool, terms: int | None) -> np.ndarray:
    """peft's ``_cayley_batch`` on skew-symmetric (blocks, b, b): the truncated Neumann series or the exact
    (I − Q)(I + Q)⁻¹."""
    eye = np.broadcast_to(np.eye(q.shape[-1]), q.shape)
    if not neumann:
        return np.linalg.solve((eye + q).transpose(0, 2, 1), (eye - q).transpose(0, 2, 1)).transpose(0, 2, 1)
    r = eye.copy()
    if terms > 1:
        r += 2.0 * q
        if terms > 2:
            power = q @ q
            r += 2.0 * power
            for _ in range(3, terms - 1):
                power = power @ q
                r += 2.0 * power
            r += power @ q
    return r


def rotations(layer) -> np.ndarray:
    """The layer's (blocks, b, b) rotation blocks, as peft's ``get_weight`` computes them."""
    meta = layer.meta
    q = skew(layer.factors["oft_R"], meta["block_size"])
    if meta["coft"]:
        q = _coft_project(q, meta["eps"])
    return cayley(q, meta["use_cayley_neumann"], meta["num_cayley_neumann_terms"])


def _delta_w(layer):
    w0 = base_matrix(layer, WHY)
    if "saved_base" in layer.factors and not np.array_equal(layer.factors["saved_base"], w0):
        raise CheckpointError(f"layer {layer.name}: the checkpoint saves a base weight (save_embedding_layers) that "
                              f"differs from the base's; pass the base the adapter was trained on")
    block = layer.meta["block_size"]
    if w0.shape[1] % block:
        raise CheckpointError(f"layer {layer.name}: the base weight has shape {w0.shape}, whose {w0.shape[1]} columns "
                              f"are not a multiple of the OFT block size {block}")
    blocks = rotations(layer)
    n_blocks = w0.shape[1] // block
    if blocks.shape[0] not in (1, n_blocks):
        raise CheckpointError(f"layer {layer.name}: {blocks.shape[0]} OFT blocks of size {block} do not fit the base "
                              f"weight's {w0.shape[1]} columns")
    blocks = np.broadcast_to(blocks, (n_blocks, block, block))
    if layer.meta["layer_type"] != "embedding":
        blocks = blocks.transpose(0, 2, 1)  # Linear: W₀·Rᵀ; Embedding: W₀·R
    w0_blocks = w0.reshape(w0.shape[0], n_blocks, block)
    return np.einsum("onk,nkc->onc", w0_blocks, blocks).reshape(w0.shape) - w0


OPS = {"oft": LayerOps(delta_w=_delta_w, delta_bias=full_delta_bias)}
