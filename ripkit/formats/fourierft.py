"""peft FourierFT (``peft_type: "FOURIERFT"``): ΔW is the real part of the inverse 2-D DFT of a sparse
spectrum whose positions are drawn from a seeded torch Generator.

Formula of peft 0.21 ``src/peft/tuners/fourierft/layer.py`` (``FourierFTLayer.update_layer``,
``get_delta_weight``): for a layer (out, in) with ``n`` trained coefficients ``fourierft_spectrum``,

    idx = torch.randperm(out·in, generator=torch.Generator().manual_seed(random_loc_seed))[:n]
    S = zeros(out, in) (float32); S[idx // in, idx % in] = spectrum.float()
    ΔW = ifft2(S).real · scaling, cast to the weights' dtype

(transposed into Conv1D's (in, out) when ``fan_in_fan_out``; ripkit returns (out, in)).  ``n`` per
layer: the first ``n_frequency_pattern`` key with ``re.match(rf".*\\.{key}$", name)``, else the full
name as a key, else ``n_frequency`` (``FourierFTModel._create_and_replace``).

ripkit imports torch lazily, in ``delta_w()`` only, for the positions: they come from torch's
``randperm`` and its CPU generator, which no other library reproduces (they are those of the
installed torch, as when peft itself loads the adapter).  It then computes the inverse DFT exactly as
peft does, in float32 (complex64) — peft's merge does so whatever the model's precision — so
``delta_w()`` equals peft's merge on the CPU; a float64 DFT, or peft's merge on a GPU (cuFFT), differs
by float32 rounding, ~1e-7 relative.

The file stores neither ``in`` nor ``out``: the layer shapes come from the base (``base=``, header
only).  Without it the record has ``shape=None`` and ``delta_w()`` says what is missing.
"""
from __future__ import annotations

from ripkit.formats._io import CheckpointError
from ripkit.formats.peft_common import (Source, base_shape, cfg_bool, cfg_int, cfg_number, extra_layers,
                                        full_delta_bias, group_keys, layer_factors, layer_meta, pattern_value,
                                        selected)
from ripkit.formats.record import AdapterLayer, LayerOps, require_base

__all__ = ["read", "OPS"]


def read(src: Source) -> list[AdapterLayer]:
    """``AdapterLayer`` records of a peft FourierFT checkpoint (see the module docstring)."""
    n_default = cfg_int(src, "n_frequency", 1000)
    scaling = cfg_number(src, "scaling", 150.0)
    seed = cfg_int(src, "random_loc_seed", 777, minimum=0)
    if seed >= 2 ** 64:  # torch.Generator.manual_seed takes at most 64 bits
        raise CheckpointError(f"{src.config_path}: random_loc_seed={seed}, expected an integer below 2**64")
    fifo = cfg_bool(src, "fan_in_fan_out")
    groups, leftover = group_keys(src, ("fourierft_spectrum",))
    extras, bias_keys = extra_layers(src, leftover, set(groups), only="fourier_only")
    layers = []
    for name, keys in selected(src, groups):
        factors = layer_factors(src, name, {"spectrum": keys["fourierft_spectrum"]}, bias_key=bias_keys.get(name))
        n, n_key = pattern_value(src, "n_frequency_pattern", name, n_default, cfg_int, template=r".*\.{}$")
        stored = factors.shapes["spectrum"]
        if stored != (n,):
            raise CheckpointError(f"{src.tensors.path}: layer {name}: fourierft_spectrum has shape {stored}, expected "
                                  f"({n},) (n_frequency" + (f", pattern key {n_key!r})" if n_key else ")"))
        shape = base_shape(src, name, fifo)
        if shape is not None and n > shape[0] * shape[1]:
            raise CheckpointError(f"layer {name}: n_frequency={n} exceeds out·in = {shape[0] * shape[1]} of the base "
                                  f"weight; not the base it was trained on")
        meta = layer_meta(src, method="fourierft", shape=list(shape) if shape else None, n_frequency=n,
                          random_loc_seed=seed, fan_in_fan_out=fifo,
                          **({"n_frequency_pattern_key": n_key} if n_key else {}))
        layers.append(AdapterLayer(name, "fourierft", shape, factors, scaling, meta,
                                   frozenset() if shape else frozenset({"base"}), n, src.context))
    return layers + extras


def _delta_w(layer):
    if layer.shape is None:
        require_base(layer, "the file does not record the layer's shape, and FourierFT's spectral positions are a "
                            "random permutation of out·in (only the base's shapes are read)")
    import torch  # the positions come from torch's CPU generator (see the module docstring)

    out, n_in = layer.shape
    spectrum = torch.from_numpy(layer.factors["spectrum"])
    with torch.no_grad():
        generator = torch.Generator().manual_seed(layer.meta["random_loc_seed"])
        idx = torch.randperm(out * n_in, generator=generator)[:spectrum.numel()]
        dense = torch.zeros(out, n_in, dtype=torch.float32)
        dense[idx // n_in, idx % n_in] = spectrum.float()
        delta = torch.fft.ifft2(dense).real * layer.scaling
    return delta.double().numpy()


OPS = {"fourierft": LayerOps(delta_w=_delta_w, delta_bias=full_delta_bias)}
