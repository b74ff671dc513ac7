"""Which module reads which adapter type: a new family is one new module plus one line here.

``PEFT_TYPES`` maps a peft ``peft_type`` (``adapter_config.json``) to the module whose
``read(source)`` turns the file into ``AdapterLayer`` records (peft's ``PEFT_TYPE_TO_TUNER_MAPPING``
is the model).  ``METHODS`` maps each record ``method`` to the module whose ``OPS[method]``
(a ``LayerOps``) holds its maths.  Modules are imported on first use, so ``import ripkit.formats``
stays cheap.
"""
from __future__ import annotations

import importlib

from ripkit.formats._io import CheckpointError, short_repr

__all__ = ["PEFT_TYPES", "METHODS", "RIPKIT_FORMAT", "reader", "layer_ops", "supported"]

PEFT_TYPES = {
    "LORA": "ripkit.formats.lora",                # LoRA, rsLoRA, DoRA, PiSSA/OLoRA, embeddings, ...
    "VERA": "ripkit.formats.vera",
    "GRALORA": "ripkit.formats.gralora",
    "ADALORA": "ripkit.formats.adalora",
    "LOHA": "ripkit.formats.loha",
    "LOKR": "ripkit.formats.lokr",
    "IA3": "ripkit.formats.ia3",
    "FOURIERFT": "ripkit.formats.fourierft",
    "OFT": "ripkit.formats.oft",
    "BOFT": "ripkit.formats.boft",
    "HRA": "ripkit.formats.hra",
    "SHIRA": "ripkit.formats.shira",
    "COSA": "ripkit.formats.cosa_reference",      # the CoSA authors' peft fork
}
RIPKIT_FORMAT = "ripkit.formats.ripkit_format"    # ripkit_adapter.json: cosa, lora, block-lora, full

METHODS = {
    "cosa": RIPKIT_FORMAT, "lora": RIPKIT_FORMAT, "block-lora": RIPKIT_FORMAT, "full": RIPKIT_FORMAT,
    "peft-lora": "ripkit.formats.lora", "peft-lora-embedding": "ripkit.formats.lora",
    "peft-dora": "ripkit.formats.lora", "peft-lora-init": "ripkit.formats.lora",
    "peft-full": "ripkit.formats.peft_common", "peft-bias": "ripkit.formats.peft_common",
    "vera": "ripkit.formats.vera", "gralora": "ripkit.formats.gralora",
    "cosa-reference": "ripkit.formats.cosa_reference",
    "adalora": "ripkit.formats.adalora",
    "loha": "ripkit.formats.loha",
    "lokr": "ripkit.formats.lokr",
    "ia3": "ripkit.formats.ia3",
    "fourierft": "ripkit.formats.fourierft",
    "oft": "ripkit.formats.oft",
    "boft": "ripkit.formats.boft",
    "hra": "ripkit.formats.hra",
    "shira": "ripkit.formats.shira",
}


def supported() -> str:
    return ", ".join(sorted(PEFT_TYPES))


def reader(peft_type: str, config_path) -> object:
    """The module that reads ``peft_type``, or one clear "not supported" error."""
    if not isinstance(peft_type, str) or peft_type.upper() not in PEFT_TYPES:
        raise CheckpointError(f"{config_path}: peft_type={short_repr(peft_type)} is not supported; ripkit reads "
                              f"{supported()} (and ripkit's own ripkit_adapter.json)")
    return importlib.import_module(PEFT_TYPES[peft_type.upper()])


def layer_ops(method: str):
    try:
        module = METHODS[method]
    except KeyError:
        raise CheckpointError(f"unknown method {method!r}; known: {', '.join(sorted(METHODS))}") from None
    return importlib.import_module(module).OPS[method]
