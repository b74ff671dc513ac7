"""``AdapterLayer``: one adapted layer of a checkpoint, read lazily, with its exact ΔW.

The record holds names, shapes and scalars (cheap) and a lazy mapping of its stored tensors:
a factor is read from the file and converted to float64 only when it is used, so loading a
224-layer LLM adapter touches no tensor data.  The maths of each method lives in the module of
its family (``ripkit.formats.registry.METHODS`` says which), as a ``LayerOps``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ripkit.formats._io import BaseWeightsRequired, CheckpointError, SafeTensors

__all__ = ["AdapterLayer", "LayerOps", "LayerContext", "LazyFactors", "require_base"]


class LazyFactors(Mapping):
    """``{short name: float64 array}`` read from a safetensors file on each access (not cached).

    ``shapes`` gives the stored shapes without reading any data.
    """

    def __init__(self, source: SafeTensors, keys: Mapping[str, str], layer: str = ""):
        self._source, self._keys, self._layer = source, dict(keys), layer

    def __getitem__(self, name: str) -> np.ndarray:
        key = self._keys[name]
        return self._source.array(key, what=f"{name} of layer {self._layer}" if self._layer else name)

    def __iter__(self):
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: self._source.info(key).shape for k, key in self._keys.items()}

    def numel(self, *names) -> int:
        return sum(int(np.prod(self._source.info(self._keys[n]).shape)) for n in names or self._keys)


@dataclass(frozen=True)
class LayerContext:
    """What a reader was given beyond the file: base weights and the CoSA reference's hash seed."""

    base: object = None            # ripkit.formats.base_weights.BaseWeights or None
    hash_seed: int | None = None
    hash_algorithm: str | None = None


def _none(layer):
    return None


@dataclass(frozen=True)
class LayerOps:
    """The maths of one method: each function takes the ``AdapterLayer``.

    ``delta_w`` → float64 (out, in); ``low_rank`` → (U, V) with U @ V = ΔW, or None;
    ``delta_bias`` → float64 (out,) or None; ``core``/``dictionary`` only for CoSA methods.
    """

    delta_w: Callable
    low_rank: Callable = _none
    delta_bias: Callable = _none
    core: Callable | None = None
    dictionary: Callable | None = None


@dataclass(frozen=True, eq=False)
class AdapterLayer:
    """One adapted layer: ΔW (m, n) = (out, in), exactly what merging adds to the weight.

    Parameters
    ----------
    name : str
        Module name in the base model (e.g. ``model.layers.0.self_attn.q_proj``).
    method : str
        ripkit: 'cosa', 'lora', 'block-lora', 'full'; peft: 'peft-lora', 'peft-lora-embedding',
        'peft-dora', 'peft-lora-init', 'peft-full', 'peft-bias', 'gralora', 'vera', 'adalora', 'loha',
        'lokr', 'ia3', 'fourierft', 'oft', 'boft', 'hra', 'shira'; the CoSA reference code:
        'cosa-reference'.  ``ripkit.formats.registry.METHODS`` lists them.
    shape : (int, int) or None
        (out, in) of ΔW; None when the file does not record it and no base was given
        (VeRA, FourierFT, SHiRA, IA3, OFT, HRA, CoSA reference format) or when only a bias is trained
        ('peft-bias').
    factors : Mapping[str, ndarray]
        The stored tensors of this layer, float64, named as in the file (read on access).
    scaling : float
        The factor the method's formula multiplies by (LoRA: alpha/r; CoSA: scaling).
    meta : Mapping
        Everything else the file records about the layer (r, alpha, k, cuts, seeds, ...).
    needs : frozenset of str
        What ``delta_w()`` needs beyond the adapter file: 'base' (the base weights W₀),
        'hash_seed' (the PYTHONHASHSEED of the CoSA reference run); empty when the file alone
        defines ΔW.
    trainable_parameters : int
        Number of stored trainable entries of this layer.
    """

    name: str
    method: str
    shape: tuple[int, int] | None
    factors: Mapping[str, np.ndarray]
    scaling: float = 1.0
    meta: Mapping = field(default_factory=dict)
    needs: frozenset = frozenset()
    trainable_parameters: int = 0
    context: LayerContext = field(default_factory=LayerContext, repr=False)

    @property
    def _ops(self) -> LayerOps:
        from ripkit.formats.registry import layer_ops

        return layer_ops(self.method)

    def delta_w(self) -> np.ndarray:
        """What merging adds to W, float64, shape (out, in).

        Raises ``BaseWeightsRequired`` when ΔW depends on W₀ and no base was given, and
        ``CheckpointError`` when a stored tensor is not finite or something else it needs is missing.
        """
        return check_finite(self.name, "ΔW", self._ops.delta_w(self))

    def low_rank(self) -> tuple[np.ndarray, np.ndarray] | None:
        """float64 (U (m, k), V (k, n)) with U @ V = ``delta_w()`` (to rounding), or None.

        Given whenever the update is naturally factorized (LoRA and its variants, AdaLoRA, block-LoRA
        with its merges, GraLoRA, VeRA, CoSA as (s·L·Y, R), LoHa as a Khatri–Rao product of rank r²,
        LoKr as a Kronecker product when that is of lower rank); None for full, DoRA, FourierFT, SHiRA
        and base-dependent updates (IA3, OFT, BOFT, HRA).
        """
        factors = self._ops.low_rank(self)
        if factors is not None:
            check_finite(self.name, "the factors of ΔW", factors[0])
            check_finite(self.name, "the factors of ΔW", factors[1])
        return factors

    def delta_bias(self) -> np.ndarray | None:
        """What merging adds to the bias (float64, (out,)), or None when the bias is unchanged."""
        bias = self._ops.delta_bias(self)
        return bias if bias is None else check_finite(self.name, "Δbias", bias)

    def core(self) -> np.ndarray:
        """The trained CoSA core Y (a, b)."""
        fn = self._ops.core
        if fn is None:
            raise ValueError(f"core() needs a CoSA layer, {self.name} is {self.method!r}")
        return fn(self)

    def dictionary(self) -> tuple[np.ndarray, np.ndarray]:
        """CoSA projections (L (m, a), R (b, n)), float64, regenerated and checked."""
        fn = self._ops.dictionary
        if fn is None:
            raise ValueError(f"dictionary() needs a CoSA layer, {self.name} is {self.method!r}")
        return fn(self)

    def to_dict(self) -> dict:
        shapes = (self.factors.shapes if isinstance(self.factors, LazyFactors)
                  else {k: tuple(np.shape(v)) for k, v in self.factors.items()})
        return {"name": self.name, "method": self.method,
                "shape": list(self.shape) if self.shape is not None else None,
                "scaling": self.scaling, "factors": {k: list(v) for k, v in shapes.items()},
                "needs": sorted(self.needs), "trainable_parameters": self.trainable_parameters,
                **{k: v for k, v in self.meta.items() if k not in ("shape", "method", "scaling", "name")}}


def require_base(layer: AdapterLayer, why: str):
    """The layer's base weights, or ``BaseWeightsRequired`` saying why they are needed and how to pass them."""
    base = layer.context.base
    if base is None:
        raise BaseWeightsRequired(
            f"layer {layer.name} ({layer.method}) needs the base model's weights: {why}; pass them with "
            f"load_adapter(path, base=FOLDER_OR_MODEL) — a Hugging Face model folder, a .safetensors file or "
            f"a loaded nn.Module — or --base FOLDER on the command line")
    return base


def check_finite(name: str, what: str, array: np.ndarray) -> np.ndarray:
    """Raise ``CheckpointError`` naming the layer if a computed quantity is not finite (e.g. an absurd
    scaling times finite factors overflowed)."""
    if not np.isfinite(array).all():
        raise CheckpointError(f"layer {name}: {what} is not finite (NaN or infinity; an absurd scaling or "
                              f"corrupted factors)")
    return array
