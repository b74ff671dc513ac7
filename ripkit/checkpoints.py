"""Adapter checkpoints: ripkit's own (safetensors + JSON) and Hugging Face PEFT (LoRA, GraLoRA, VeRA).

``load_adapter(path)`` returns one ``AdapterLayer`` per adapted layer, without
the base model, with ``delta_w()`` = exactly what the adapter adds to the
(out, in) weight.  CoSA layers also give ``core()`` (Y) and ``dictionary()``
(L, R regenerated from the stored seed and checked against the stored
fingerprints; CoSA paper end of section 4.1: "only Y ... together with a random
seed").  Files are read with safetensors only, never pickle.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import nn

import ripkit
from ripkit.projections import fingerprint, projection_pair

__all__ = ["CheckpointError", "AdapterLayer", "ADAPTER_FILE", "META_FILE", "PEFT_CONFIG",
           "save_adapter", "load_adapter", "read_ripkit", "apply_adapter", "gralora_delta"]

ADAPTER_FILE = "adapter_model.safetensors"
META_FILE = "ripkit_adapter.json"
PEFT_CONFIG = "adapter_config.json"
FORMAT = "ripkit-adapter"
PEFT_PREFIX = "base_model.model."


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupt or does not match its metadata."""


@dataclass(frozen=True, eq=False)
class AdapterLayer:
    """One adapted layer: ΔW (m, n) = (out, in) from its stored factors.

    ``method``: 'cosa', 'lora', 'block-lora', 'full' (ripkit) or 'peft-lora',
    'gralora', 'vera' (PEFT).  ``factors`` are float64 arrays named as in the file.
    """

    name: str
    method: str
    shape: tuple[int, int]
    factors: Mapping[str, np.ndarray]
    scaling: float = 1.0
    meta: Mapping = field(default_factory=dict)

    def delta_w(self) -> np.ndarray:
        """What the adapter adds to W, float64, shape (m, n)."""
        f, s = self.factors, self.scaling
        if self.method == "cosa":
            left, right = self.dictionary()
            return s * (left @ f["core"] @ right)
        if self.method in ("lora", "peft-lora"):
            return s * (f["lora_B"] @ f["lora_A"])
        if self.method == "block-lora":
            return f["merged_A"] @ f["merged_B"] + s * _block_dense(self)
        if self.method == "gralora":
            return gralora_delta(f, self.meta["k"], s)
        if self.method == "vera":
            m, n = self.shape
            return (f["lambda_b"][:, None] * f["vera_B"][:m]) @ (f["lambda_d"][:, None] * f["vera_A"][:, :n])
        if self.method == "full":
            return f["delta"]
        raise CheckpointError(f"layer {self.name}: unknown method {self.method!r}")

    def core(self) -> np.ndarray:
        """The trained CoSA core Y (a, b)."""
        if self.method != "cosa":
            raise ValueError(f"core() needs a CoSA layer, {self.name} is {self.method!r}")
        return self.factors["core"]

    def dictionary(self) -> tuple[np.ndarray, np.ndarray]:
        """(L, R) regenerated from the seed, float64, verified against the stored fingerprints."""
        if self.method != "cosa":
            raise ValueError(f"dictionary() needs a CoSA layer, {self.name} is {self.method!r}")
        m, n = self.shape
        meta = self.meta
        left, right = projection_pair(m, n, meta["a"], meta["b"], int(meta["seed"]),
                                      scale=meta["scale"], kind=meta.get("kind", "gaussian"))
        want = meta.get("fingerprints", {})
        got = {"left": fingerprint(left), "right": fingerprint(right)}
        for key in ("left", "right"):
            if want.get(key) != got[key]:
                raise CheckpointError(f"layer {self.name}: regenerated {key} projection has fingerprint "
                                      f"{got[key]}, the checkpoint recorded {want.get(key)}")
        return left, right

    def to_dict(self) -> dict:
        return {"name": self.name, "method": self.method, "shape": list(self.shape),
                "scaling": self.scaling, "factors": {k: list(v.shape) for k, v in self.factors.items()},
                **{k: v for k, v in self.meta.items() if k not in ("shape", "method", "scaling")}}


def _block_dense(layer: AdapterLayer) -> np.ndarray:
    """Dense ΔW of a block-LoRA layer's current blocks, original coordinates (block_lora docstring)."""
    f, meta = layer.factors, layer.meta
    k, rb = meta["k"], meta["r"] // meta["k"]
    rc, cc = meta["row_cuts"], meta["col_cuts"]
    dense = np.zeros(layer.shape)
    for i in range(k):
        for j in range(k):
            b_ij = f["lora_B"][rc[i]:rc[i + 1], j * rb:(j + 1) * rb]
            a_ij = f["lora_A"][i * rb:(i + 1) * rb, cc[j]:cc[j + 1]]
            dense[rc[i]:rc[i + 1], cc[j]:cc[j + 1]] = b_ij @ a_ij
    out = np.empty_like(dense)
    out[np.ix_(f["row_perm"].astype(np.int64), f["col_perm"].astype(np.int64))] = dense
    return out


def gralora_delta(factors: Mapping[str, np.ndarray], k: int, scaling: float) -> np.ndarray:
    """ΔW of a peft GraLoRA layer: gralora_A (k, n/k, r), gralora_B (k, r, m/k).

    Block (i, j) (output block i, input block j) is
    (A[j][:, i·r/k:(i+1)·r/k] @ B[i][j·r/k:(j+1)·r/k, :])ᵀ, as in peft's ``get_delta_weight``;
    a hybrid global part adds B_general @ A_general.
    """
    a, b = factors["gralora_A"], factors["gralora_B"]
    r = a.shape[2]
    rb = r // k
    n_j, m_i = a.shape[1], b.shape[2]
    dense = np.zeros((k * m_i, k * n_j))
    for i in range(k):
        for j in range(k):
            dense[i * m_i:(i + 1) * m_i, j * n_j:(j + 1) * n_j] = (
                a[j][:, i * rb:(i + 1) * rb] @ b[i][j * rb:(j + 1) * rb, :]).T
    if "general_A" in factors:
        dense = dense + factors["general_B"] @ factors["general_A"]
    return scaling * dense


# ---- reading files ---------------------------------------------------------------------------
def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"missing {path.name} in {path.parent}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc})") from None


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"missing {path.name} in {path.parent}")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises SafetensorError / OSError on bad bytes
        raise CheckpointError(f"{path} is truncated or not a safetensors file ({exc})") from None


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy() if t.is_floating_point() else t.cpu().numpy()


def _expected_shapes(meta: dict) -> dict[str, tuple]:
    m, n = meta["shape"]
    method = meta["method"]
    if method == "cosa":
        return {"core": (meta["a"], meta["b"])}
    if method == "lora":
        return {"lora_A": (meta["r"], n), "lora_B": (m, meta["r"])}
    if method == "block-lora":
        rank = meta["merge_rank"] * meta["n_repartitions"]
        return {"lora_A": (meta["r"], n), "lora_B": (m, meta["r"]), "row_perm": (m,), "col_perm": (n,),
                "merged_A": (m, rank), "merged_B": (rank, n)}
    if method == "full":
        return {"delta": (m, n)}
    raise CheckpointError(f"unknown method {method!r} in {META_FILE}")


def read_ripkit(path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(metadata, tensors) of a ripkit checkpoint folder, keys and shapes checked."""
    folder = Path(path)
    folder = folder.parent if folder.is_file() else folder
    meta = _read_json(folder / META_FILE)
    if meta.get("format") != FORMAT or not isinstance(meta.get("layers"), dict):
        raise CheckpointError(f"{folder / META_FILE} is not a ripkit adapter description "
                              f"(format={meta.get('format')!r})")
    tensors = _read_tensors(folder / ADAPTER_FILE)
    expected = {f"head.{k}": tuple(v) for k, v in meta.get("head", {}).items()}
    for name, layer in meta["layers"].items():
        expected.update({f"{name}.{k}": tuple(v) for k, v in _expected_shapes(layer).items()})
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{folder / ADAPTER_FILE} does not match {META_FILE}: "
                              f"missing {missing[:5]}, unexpected {extra[:5]}")
    for key, shape in expected.items():
        if tuple(tensors[key].shape) != shape:
            raise CheckpointError(f"{key} has shape {tuple(tensors[key].shape)}, {META_FILE} says {shape}")
        if tensors[key].is_floating_point() and not torch.isfinite(tensors[key]).all():
            raise CheckpointError(f"{key} contains NaN or infinite values")
    return meta, tensors


def _ripkit_layers(folder: Path) -> list[AdapterLayer]:
    meta, tensors = read_ripkit(folder)
    layers = []
    for name, lm in meta["layers"].items():
        factors = {k: _np(tensors[f"{name}.{k}"]) for k in _expected_shapes(lm)}
        layers.append(AdapterLayer(name, lm["method"], tuple(lm["shape"]), factors,
                                   float(lm.get("scaling", 1.0)), lm))
    return layers


def _pattern_value(name: str, pattern: dict, default):
    for key, value in (pattern or {}).items():
        if re.match(rf"(.*\.)?{key}$", name):
            return value
    return default


def _peft_layers(folder: Path) -> list[AdapterLayer]:
    cfg = _read_json(folder / PEFT_CONFIG)
    kind = str(cfg.get("peft_type", "")).upper()
    tensors = _read_tensors(folder / ADAPTER_FILE)
    suffixes = {"LORA": ("lora_A.weight", "lora_B.weight"),
                "GRALORA": ("gralora_A", "gralora_B"), "VERA": ("vera_lambda_b", "vera_lambda_d")}
    if kind not in suffixes:
        raise CheckpointError(f"peft_type={kind!r} is not supported (LORA, GRALORA, VERA)")
    if kind == "LORA" and cfg.get("use_dora"):
        raise CheckpointError("DoRA checkpoints (use_dora=true) are not supported: ΔW depends on W₀")
    first = suffixes[kind][0]
    names = sorted(k[len(PEFT_PREFIX):-len(first) - 1] for k in tensors
                   if k.startswith(PEFT_PREFIX) and k.endswith("." + first))
    if not names:
        raise CheckpointError(f"{folder / ADAPTER_FILE} holds no {kind} tensors (*.{first})")

    def get(key):
        if key not in tensors:
            raise CheckpointError(f"{folder / ADAPTER_FILE} lacks tensor {key}")
        return _np(tensors[key])

    layers = []
    for name in names:
        p = PEFT_PREFIX + name + "."
        if kind == "LORA":
            f = {"lora_A": get(p + "lora_A.weight"), "lora_B": get(p + "lora_B.weight")}
            r = f["lora_A"].shape[0]
            if f["lora_B"].shape[1] != r:
                raise CheckpointError(f"{name}: lora_B {f['lora_B'].shape} does not match lora_A {f['lora_A'].shape}")
            alpha = _pattern_value(name, cfg.get("alpha_pattern"), cfg.get("lora_alpha", 8))
            scaling = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
            shape = (f["lora_B"].shape[0], f["lora_A"].shape[1])
            meta = {"r": r, "alpha": alpha}
            method = "peft-lora"
        elif kind == "GRALORA":
            f = {"gralora_A": get(p + "gralora_A"), "gralora_B": get(p + "gralora_B")}
            k, hybrid = int(cfg["gralora_k"]), int(cfg.get("hybrid_r", 0))
            a, b = f["gralora_A"], f["gralora_B"]
            if a.ndim != 3 or b.ndim != 3 or a.shape[0] != k or b.shape[0] != k or a.shape[2] != b.shape[1]:
                raise CheckpointError(f"{name}: gralora_A {a.shape} / gralora_B {b.shape} do not fit gralora_k={k}")
            if hybrid > 0:
                f["general_A"] = get(p + "gralora_A_general.weight")
                f["general_B"] = get(p + "gralora_B_general.weight")
            r = a.shape[2]
            scaling = cfg.get("alpha", 64) / (r + hybrid)
            shape = (k * b.shape[2], k * a.shape[1])
            meta = {"r": r, "k": k, "hybrid_r": hybrid, "alpha": cfg.get("alpha")}
            method = "gralora"
        else:
            if "base_model.vera_A" not in tensors:
                raise CheckpointError("VeRA checkpoint saved without projections (save_projection=false): "
                                      "vera_A/vera_B cannot be read without regenerating them in peft")
            f = {"lambda_b": get(p + "vera_lambda_b"), "lambda_d": get(p + "vera_lambda_d"),
                 "vera_A": get("base_model.vera_A"), "vera_B": get("base_model.vera_B")}
            shape = (f["lambda_b"].shape[0], f["vera_A"].shape[1])
            scaling, method, meta = 1.0, "vera", {"r": f["lambda_d"].shape[0],
                                                  "projection_prng_key": cfg.get("projection_prng_key")}
        meta.update(method=method, shape=list(shape), base_model=cfg.get("base_model_name_or_path"))
        layers.append(AdapterLayer(name, method, shape, f, float(scaling), meta))
    return layers


def load_adapter(path) -> list[AdapterLayer]:
    """One ``AdapterLayer`` per adapted layer of a ripkit or Hugging Face PEFT checkpoint folder.

    The base model is not needed.  Raises ``CheckpointError`` for a missing,
    truncated, corrupt or inconsistent checkpoint.
    """
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    if not folder.is_dir():
        raise CheckpointError(f"path={str(path)!r} is not a checkpoint folder")
    if (folder / META_FILE).exists():
        return _ripkit_layers(folder)
    if (folder / PEFT_CONFIG).exists():
        return _peft_layers(folder)
    raise CheckpointError(f"{folder} has neither {META_FILE} (ripkit) nor {PEFT_CONFIG} (peft)")


# ---- writing and applying ripkit checkpoints ------------------------------------------------
def save_adapter(model: nn.Module, path, *, metadata: dict | None = None,
                 full_deltas: Mapping[str, torch.Tensor] | None = None) -> Path:
    """Write ``adapter_model.safetensors`` + ``ripkit_adapter.json`` into folder ``path``.

    Saves every ripkit adapter's tensors, the other trainable parameters (task head,
    as ``head.*``) unless ``full_deltas`` is given, and for full fine-tuning the
    given ``{layer name: ΔW}``.  ``metadata`` (method, base seed, base model, dataset,
    metrics, ...) is stored as is.
    """
    from safetensors.torch import save_file

    from ripkit.adapters.inject import adapter_modules

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    tensors, layers, head = {}, {}, {}
    adapters = adapter_modules(model)
    for name, mod in adapters.items():
        layers[name] = mod.adapter_meta()
        tensors.update({f"{name}.{k}": v for k, v in mod.adapter_tensors().items()})
    for name, delta in (full_deltas or {}).items():
        layers[name] = {"method": "full", "shape": list(delta.shape)}
        tensors[f"{name}.delta"] = delta
    if full_deltas is None:
        inside = tuple(n + "." for n in adapters)
        for pname, p in model.named_parameters():
            if p.requires_grad and not pname.startswith(inside):
                tensors[f"head.{pname}"] = p
                head[pname] = list(p.shape)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    save_file(tensors, str(folder / ADAPTER_FILE), metadata={"format": "pt"})
    meta = {"format": FORMAT, "format_version": 1, "ripkit_version": ripkit.__version__,
            **(metadata or {}), "layers": layers, "head": head}
    (folder / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))
    return folder


def apply_adapter(model: nn.Module, path) -> dict:
    """Inject the adapters of a ripkit checkpoint into ``model`` and load their weights; returns the metadata.

    Layers are rebuilt from their own metadata (seed, sizes), CoSA projections are
    checked against the stored fingerprints, and block-LoRA merges are replayed
    into the base weight in their original order.
    """
    from ripkit.adapters import BlockLoRALinear, CoSALinear, LoRALinear

    meta, tensors = read_ripkit(path)
    for p in model.parameters():
        p.requires_grad_(False)
    for name, lm in meta["layers"].items():
        if lm["method"] == "full":
            raise CheckpointError(f"{path}: a 'full' checkpoint holds ΔW of selected layers only; "
                                  "read it with load_adapter()")
        try:
            base = model.get_submodule(name)
        except AttributeError:
            raise CheckpointError(f"model has no module {name!r} named in {META_FILE}") from None
        if not isinstance(base, nn.Linear) or [base.out_features, base.in_features] != lm["shape"]:
            raise CheckpointError(f"module {name} is {base!r}, {META_FILE} expects Linear of shape {lm['shape']}")
        if lm["method"] == "cosa":
            mod = CoSALinear(base, lm["a"], lm["b"], seed=lm["seed"], scaling=lm["scaling"],
                             scale=lm["scale"], kind=lm.get("kind", "gaussian"))
            if mod.fingerprints != lm["fingerprints"]:
                raise CheckpointError(f"layer {name}: regenerated projections {mod.fingerprints} differ "
                                      f"from the recorded {lm['fingerprints']}")
        elif lm["method"] == "lora":
            mod = LoRALinear(base, lm["r"], alpha=lm["alpha"], seed=lm["seed"])
        else:
            mod = BlockLoRALinear(base, lm["r"], lm["k"], partition=lm["partition"], alpha=lm["alpha"],
                                  seed=lm["seed"])
            t = {k: tensors[f"{name}.{k}"] for k in ("row_perm", "col_perm", "merged_A", "merged_B")}
            rank = lm["merge_rank"]
            for c in range(lm["n_repartitions"]):  # replay merges, same order and arithmetic
                mod.merge_factors(t["merged_A"][:, c * rank:(c + 1) * rank].to(base.weight),
                                  t["merged_B"][c * rank:(c + 1) * rank].to(base.weight))
            mod.n_repartitions = lm["n_repartitions"]
            mod.set_partition(_SimplePartition(t["row_perm"].numpy(), t["col_perm"].numpy(),
                                               tuple(lm["row_cuts"]), tuple(lm["col_cuts"])))
        with torch.no_grad():
            for key, param in mod.named_parameters(recurse=False):
                param.copy_(tensors[f"{name}.{key}"])
                param.requires_grad_(True)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, mod)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for pname in meta.get("head", {}):
            if pname not in params or tuple(params[pname].shape) != tuple(meta["head"][pname]):
                raise CheckpointError(f"head parameter {pname} of the checkpoint does not fit the model")
            params[pname].copy_(tensors[f"head.{pname}"])
            params[pname].requires_grad_(True)
    return meta


@dataclass(frozen=True)
class _SimplePartition:
    """The four fields of ``ripkit.partition.Partition`` that ``BlockLoRALinear.set_partition`` reads."""

    row_perm: np.ndarray
    col_perm: np.ndarray
    row_cuts: tuple
    col_cuts: tuple
