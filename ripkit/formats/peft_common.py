"""What every peft reader shares: the opened checkpoint, config checks, key grouping, and the
parts of a peft checkpoint that are not the adapter itself (``modules_to_save``, trained biases,
saved embedding layers), read as full-weight updates that need the base weights.

peft sources followed (0.21): ``peft/utils/save_and_load.py::get_peft_model_state_dict`` (which
keys are saved, ``base_model.model.`` prefix, adapter name removed), ``peft/utils/other.py::
get_pattern_key`` (rank/alpha patterns), ``_set_trainable`` (modules_to_save: module name
``endswith`` an entry), ``tuners_utils.py::_get_learnable_bias_state_dict`` (``bias='all'``/``'lora_only'``).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ripkit.formats._io import CheckpointError, SafeTensors, short_repr
from ripkit.formats.record import AdapterLayer, LayerContext, LayerOps, LazyFactors, require_base

__all__ = ["PREFIX", "Source", "group_keys", "pattern_value", "extra_layers", "OPS", "MAX_SCALAR",
           "cfg_int", "cfg_number", "cfg_bool", "cfg_choice", "layer_meta", "check_layer_keys", "base_shape",
           "base_matrix", "check_base_shape", "full_delta_bias", "selected", "layer_factors"]

PREFIX = "base_model.model."
EMBEDDING_LAYER_NAMES = ("embed_tokens", "lm_head")  # peft.utils.constants


@dataclass
class Source:
    """An opened checkpoint: its folder, config (dict and path), tensors, and what the caller gave."""

    folder: Path
    config_path: Path
    config: dict
    tensors: SafeTensors
    context: LayerContext = field(default_factory=LayerContext)
    select: Callable[[str], bool] = lambda name: True
    adapter_name: str | None = None


# ---- config fields: each check names the file and the key --------------------------------------
def _bad(src: Source, key: str, value, expected: str) -> CheckpointError:
    return CheckpointError(f"{src.config_path}: {key}={short_repr(value)}, expected {expected}")


def cfg_int(src: Source, key: str, default=None, *, minimum: int = 1, value=None) -> int:
    value = src.config.get(key, default) if value is None else value
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _bad(src, key, value, f"an integer >= {minimum}")
    return value


MAX_SCALAR = 1e6  # alpha, scaling: anything larger is a corrupted file, not a training choice


def cfg_number(src: Source, key: str, default=None, *, value=None) -> float:
    value = src.config.get(key, default) if value is None else value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_SCALAR:
        raise _bad(src, key, value, f"a positive number at most {MAX_SCALAR:g}")
    return float(value)


def cfg_bool(src: Source, key: str, default: bool = False) -> bool:
    value = src.config.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _bad(src, key, value, "true or false")
    return value


def cfg_choice(src: Source, key: str, choices, default=None):
    value = src.config.get(key, default)
    if value not in choices:
        raise _bad(src, key, value, f"one of {', '.join(map(repr, choices))}")
    return value


def pattern_value(src: Source, field_name: str, name: str, default, check: Callable,
                  template: str = r"(.*\.)?({})$"):
    """peft's ``get_pattern_key``: the first key (in file order) with ``re.match(template.format(key), name)``,
    else the layer's full name if it is a key, else ``default``; returns (value, key or None).

    ``template`` is ``(.*\\.)?({key})$`` for ``rank_pattern``/``alpha_pattern`` (``utils/other.py``); FourierFT's
    ``n_frequency_pattern`` uses ``.*\\.{key}$`` (``FourierFTModel._create_and_replace``).
    """
    patterns = src.config.get(field_name) or {}
    if not isinstance(patterns, dict):
        raise _bad(src, field_name, patterns, "a JSON object {pattern: value}")
    for key, value in patterns.items():
        try:
            hit = re.match(template.format(key), name)
        except re.error as exc:
            raise CheckpointError(f"{src.config_path}: {field_name} key {short_repr(key)} is not a valid regular "
                                  f"expression ({exc})") from None
        if hit:
            return check(src, f"{field_name}[{key!r}]", value=value), key
    if name in patterns:  # peft looks the full name up when no pattern matches
        return check(src, f"{field_name}[{name!r}]", value=patterns[name]), name
    return default, None


# ---- keys ------------------------------------------------------------------------------------
def group_keys(src: Source, suffixes) -> tuple[dict[str, dict[str, str]], list[str]]:
    """``({module: {suffix: key}}, leftover keys)`` for keys ``PREFIX + module + '.' + suffix``.

    Longer suffixes win (``lora_B.bias`` before ``bias``); keys without the prefix are leftovers.
    """
    ordered = sorted(suffixes, key=len, reverse=True)
    groups: dict[str, dict[str, str]] = {}
    leftover = []
    for key in src.tensors.keys():
        rest = key[len(PREFIX):] if key.startswith(PREFIX) else None
        suffix = next((s for s in ordered if rest is not None and rest.endswith("." + s)), None)
        if suffix is None:
            leftover.append(key)
            continue
        groups.setdefault(rest[:-len(suffix) - 1], {})[suffix] = key
    return groups, leftover


def check_layer_keys(src: Source, name: str, keys, need, why: str = "") -> None:
    """An orphan or missing factor is an error naming the layer, never a layer that silently vanishes."""
    have, need = set(keys), set(need)
    if have != need:
        raise CheckpointError(f"{src.tensors.path}: layer {name} has {sorted(have)}; missing {sorted(need - have)}, "
                              f"unexpected {sorted(have - need)}" + (f" ({why})" if why else ""))


def selected(src: Source, groups: dict) -> list[tuple[str, dict[str, str]]]:
    """(layer, {suffix: key}) of the grouped layers that ``layers=`` selects, sorted by name."""
    return [(name, groups[name]) for name in sorted(groups) if src.select(name)]


def layer_factors(src: Source, name: str, keys: dict[str, str], need=None, bias_key: str | None = None,
                  integer=()) -> LazyFactors:
    """The layer's ``{short name: key}`` as ``LazyFactors``, after checking the set of keys (against ``need``,
    when given) and that all but the ``integer`` ones are floating point; a trained bias joins as 'bias'."""
    if need is not None:
        check_layer_keys(src, name, keys, need)
    src.tensors.check_float(*(key for short, key in keys.items() if short not in integer))
    return LazyFactors(src.tensors, {**keys, **({"bias": bias_key} if bias_key else {})}, name)


def layer_meta(src: Source, **extra) -> dict:
    cfg = src.config
    return {"peft_type": cfg.get("peft_type"), "peft_version": cfg.get("peft_version"),
            "base_model": cfg.get("base_model_name_or_path"), "adapter_name": src.adapter_name or "default",
            **extra}


# ---- modules_to_save, trained biases, saved embedding layers -----------------------------------
def _in_modules_to_save(module: str, entries) -> str | None:
    parts = module.split(".")
    for i in range(len(parts), 0, -1):  # the saved module or one of its parents was wrapped
        prefix = ".".join(parts[:i])
        for entry in entries:
            if prefix.endswith(entry):
                return entry
    return None


def extra_layers(src: Source, leftover: list[str], adapted: set[str],
                 only: str = "lora_only") -> tuple[list[AdapterLayer], dict[str, str]]:
    """Records for saved tensors that are not adapter factors, and ``{adapted layer: bias key}``.

    Every leftover key must be explained (modules_to_save, a trained bias, a saved embedding layer);
    anything else is a ``CheckpointError`` naming it, so nothing is dropped silently.  ``only`` is the
    family's name for "train the biases of the adapted layers" (``lora_only``, ``oft_only``, ...).
    """
    entries = src.config.get("modules_to_save") or []
    if not isinstance(entries, list) or not all(isinstance(e, str) and e for e in entries):
        raise _bad(src, "modules_to_save", entries, "a list of module names or null")
    bias_mode = cfg_choice(src, "bias", ("none", "all", only), "none")
    modules: dict[str, dict[str, str]] = {}
    adapted_bias = {}
    for key in leftover:
        rest = key[len(PREFIX):] if key.startswith(PREFIX) else None
        if rest is None or "." not in rest:
            raise CheckpointError(f"{src.tensors.path}: tensor {key!r} is not a peft key "
                                  f"(expected {PREFIX}<module>.<parameter>)")
        module, param = rest.rsplit(".", 1)
        why = None
        if (mts := _in_modules_to_save(module, entries)) is not None:
            why = f"modules_to_save entry {mts!r}"
        elif param == "bias" and bias_mode != "none":
            if module.endswith(".base_layer") and module[:-len(".base_layer")] in adapted:
                adapted_bias[module[:-len(".base_layer")]] = key
                continue
            why = f"bias={bias_mode!r}"
        elif module.split(".")[-1] in EMBEDDING_LAYER_NAMES and param == "weight":
            why = "embedding layer saved with save_embedding_layers (e.g. a resized vocabulary)"
        if why is None:
            raise CheckpointError(f"{src.tensors.path}: tensor {key!r} belongs to no {src.config.get('peft_type')} "
                                  f"layer, is not in modules_to_save and is not a trained bias; ripkit does not "
                                  f"know what merging it would do")
        modules.setdefault(module, {"why": why})[param] = key
    layers = []
    for module, keys in modules.items():
        why = keys.pop("why")
        if not src.select(module):
            continue
        factors = LazyFactors(src.tensors, keys, module)
        shapes = factors.shapes
        if set(keys) - {"weight", "bias"} or ("weight" in keys and len(shapes["weight"]) != 2) \
                or ("bias" in keys and len(shapes["bias"]) != 1):
            raise CheckpointError(f"{src.tensors.path}: module {module} ({why}) saves {sorted(shapes.items())}; "
                                  f"ripkit reads full updates of matrix weights (2-D) and biases (1-D) only")
        src.tensors.check_float(*keys.values())
        method = "peft-full" if "weight" in keys else "peft-bias"
        shape = tuple(shapes["weight"]) if "weight" in keys else None
        meta = layer_meta(src, saved_as=why, method=method)
        layers.append(AdapterLayer(module, method, shape, factors, 1.0, meta, frozenset({"base"}),
                                   factors.numel(), src.context))
    return layers, adapted_bias


# ---- base weights ----------------------------------------------------------------------------
def base_shape(src: Source, name: str, fan_in_fan_out: bool = False) -> tuple[int, int] | None:
    """(out, in) of the layer's base weight, from the base's header only; None when no base was given."""
    base = src.context.base
    if base is None:
        return None
    w = base.shape(name)
    if len(w) != 2:
        raise CheckpointError(f"layer {name}: the base weight has shape {w}; ripkit reads updates of matrix weights "
                              f"(Linear, Conv1D, Embedding), not convolutions")
    return (w[1], w[0]) if fan_in_fan_out else tuple(w)


def check_base_shape(src: Source, name: str, shape: tuple[int, int], fan_in_fan_out: bool = False) -> None:
    """When a base was given, the (out, in) an adapter's factors imply must be its weight's (a convolution's
    kernel counts as (out, in·k…), the matrix peft reshapes); read from the header only."""
    base = src.context.base
    if base is None:
        return
    w = base.shape(name)
    matrix = (w[1], w[0]) if fan_in_fan_out and len(w) == 2 else (w[0], math.prod(w[1:])) if w else ()
    if matrix != tuple(shape):
        raise CheckpointError(f"layer {name}: the adapter's factors give ΔW of shape {tuple(shape)} (out, in), the "
                              f"base weight has shape {w}; not the base it was trained on")


def base_matrix(layer: AdapterLayer, why: str) -> np.ndarray:
    """W₀ of the layer as float64 (out, in) (transposed from Conv1D's (in, out) when ``fan_in_fan_out``), or
    ``BaseWeightsRequired`` saying ``why`` ΔW needs it."""
    w0 = require_base(layer, why).array(layer.name)
    if w0.ndim != 2:
        raise CheckpointError(f"layer {layer.name}: the base weight has shape {w0.shape}; ripkit reads updates of "
                              f"matrix weights (Linear, Conv1D, Embedding), not convolutions")
    w0 = w0.T if layer.meta.get("fan_in_fan_out") else w0
    if layer.shape is not None and w0.shape != tuple(layer.shape):
        raise CheckpointError(f"layer {layer.name}: the base weight has shape {w0.shape} (out, in), the adapter "
                              f"{tuple(layer.shape)}; not the base it was trained on")
    return w0


def _full_delta_w(layer: AdapterLayer) -> np.ndarray:
    base = require_base(layer, "the checkpoint stores the new full weight; ΔW = W_new − W₀")
    w0 = base.array(layer.name)
    new = layer.factors["weight"]
    if w0.shape != new.shape:
        raise CheckpointError(f"layer {layer.name}: the checkpoint's weight has shape {new.shape}, the base's "
                              f"{w0.shape} (a resized vocabulary, or not the base it was trained on)")
    return new - w0


def full_delta_bias(layer: AdapterLayer, key: str = "bias") -> np.ndarray | None:
    """b_new − b₀ for a layer whose checkpoint stores the full new bias (None if it stores none)."""
    if key not in layer.factors:
        return None
    base = require_base(layer, "the checkpoint stores the new full bias; Δb = b_new − b₀")
    b0 = base.array(layer.name, "bias")
    new = layer.factors[key]
    if b0.shape != new.shape:
        raise CheckpointError(f"layer {layer.name}: the checkpoint's bias has shape {new.shape}, the base's {b0.shape}")
    return new - b0


def _bias_only_delta_w(layer: AdapterLayer):
    raise CheckpointError(f"layer {layer.name}: only its bias is trained ({layer.meta.get('saved_as')}); its weight "
                          f"is unchanged and its shape is not stored — read the update with delta_bias()")


OPS = {
    "peft-full": LayerOps(delta_w=_full_delta_w, delta_bias=full_delta_bias),
    "peft-bias": LayerOps(delta_w=_bias_only_delta_w, delta_bias=full_delta_bias),
}
