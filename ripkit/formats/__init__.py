"""Read any adapter checkpoint exactly, or refuse it with one clear error.

``load_adapter(path_or_hub_id, *, base=None, adapter_name=None, hash_seed=None,
hash_algorithm="siphash24", layers=None, verify=True)`` returns one ``AdapterLayer`` per adapted
layer; ``write_ripkit(folder, tensors, meta)`` writes ripkit's own format (version 2: SHA-256 of
every tensor and of the metadata, files bound together, atomic) and ``upgrade_ripkit(folder)``
rewrites a format-1 checkpoint (which loads with an ``UnverifiedCheckpointWarning``).  This package imports neither
torch nor peft: tensors are read lazily, one at a time, from a strictly validated safetensors
reader of its own (``_io``); torch is imported only to recompute what peft or the CoSA reference
code computed with torch (PiSSA/OLoRA residuals, the reference's projections, FourierFT's seeded
positions, OFT's float32 ``coft`` radius), and only when that ΔW is asked for.

Contract of the record (``record.AdapterLayer``, a frozen dataclass)
---------------------------------------------------------------------
- ``name``, ``method``, ``shape`` ((out, in) or None where the file does not record it),
  ``factors`` (stored tensors by short name, float64 on access), ``scaling``, ``meta``,
  ``needs`` (frozenset ⊂ {'base', 'hash_seed'}: what ``delta_w()`` needs beyond the file),
  ``trainable_parameters`` (stored trainable entries).
- ``delta_w()`` → float64 (out, in), exactly what merging adds to W.  An update that depends on
  W₀ is never returned without W₀: ``BaseWeightsRequired`` (a ``CheckpointError``) says so.
- ``low_rank()`` → (U (m, k), V (k, n)) with U @ V = ΔW, or None (full, DoRA, FourierFT, SHiRA,
  base-dependent).
- ``delta_bias()`` → float64 (out,) or None.  ``core()``/``dictionary()`` for CoSA layers.
- ``to_dict()`` → plain dict (shapes, not values).
- ``shape`` is None for 'peft-bias' records (only a bias is trained: ``delta_w()`` refuses, read
  ``delta_bias()``) and for VeRA, FourierFT, SHiRA, IA3, OFT, HRA and CoSA-reference layers loaded
  without ``base=`` (their files do not record both sides); analyzers skip them or say what is missing.

Families (``registry``): a new one is a module with ``read(source)`` and ``OPS`` plus one line.

=======================  ==========================================  =========================
file                     methods                                     ΔW needs
=======================  ==========================================  =========================
ripkit_adapter.json      cosa, lora (+ pissa), block-lora, full      nothing
peft LORA                peft-lora, peft-lora-embedding              nothing
                         peft-dora, peft-lora-init (PiSSA, OLoRA)    base weights
                         peft-full (modules_to_save), peft-bias      base weights
peft ADALORA             adalora                                     nothing
peft LOHA                loha                                        nothing
peft LOKR                lokr                                        nothing
peft VERA                vera                                        base (layer shapes only)
peft FOURIERFT           fourierft                                   base (layer shapes only)
peft GRALORA             gralora                                     nothing
peft IA3                 ia3                                         base weights
peft OFT                 oft                                         base weights
peft BOFT                boft                                        base weights
peft HRA                 hra                                         base weights
peft SHIRA               shira                                       base (layer shapes only)
CoSA reference (COSA)    cosa-reference                              hash seed + base shapes
=======================  ==========================================  =========================

Errors: every problem with a file is a ``CheckpointError`` (a ``ValueError``) naming the file,
the key and what was expected; bad arguments are ``ValueError``/``TypeError`` naming the argument.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ripkit.formats._io import BaseWeightsRequired, CheckpointError, SafeTensors, read_json
from ripkit.formats._pyhash import ALGORITHMS
from ripkit.formats.base_weights import BaseWeights, as_base
from ripkit.formats.record import AdapterLayer, LayerContext
from ripkit.formats.ripkit_format import ADAPTER_FILE, META_FILE, UnverifiedCheckpointWarning
from ripkit.formats.ripkit_write import upgrade_ripkit, write_ripkit

__all__ = ["load_adapter", "AdapterLayer", "CheckpointError", "BaseWeightsRequired", "BaseWeights",
           "UnverifiedCheckpointWarning", "write_ripkit", "upgrade_ripkit", "ADAPTER_FILE", "META_FILE",
           "PEFT_CONFIG"]

PEFT_CONFIG = "adapter_config.json"
PICKLE_FILE = "adapter_model.bin"
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def _pickle_refusal(path: Path) -> CheckpointError:
    return CheckpointError(
        f"{path} is a pickle (.bin): ripkit never unpickles, because loading a pickle can run arbitrary code; "
        f"convert it once with peft: PeftModel.from_pretrained(base_model, folder).save_pretrained(folder, "
        f"safe_serialization=True), which writes adapter_model.safetensors")


def _check_args(hash_seed, hash_algorithm, layers, adapter_name, verify):
    if hash_seed is not None and (isinstance(hash_seed, bool) or not isinstance(hash_seed, int)
                                  or not 0 <= hash_seed <= 4294967295):
        raise ValueError(f"hash_seed={hash_seed!r} must be an integer in [0, 4294967295] (the run's PYTHONHASHSEED)")
    if hash_algorithm not in ALGORITHMS:
        raise ValueError(f"hash_algorithm={hash_algorithm!r} must be one of {', '.join(map(repr, ALGORITHMS))} "
                         f"(siphash24: Python <= 3.10, siphash13: Python >= 3.11)")
    if adapter_name is not None and (not isinstance(adapter_name, str) or not adapter_name
                                     or "/" in adapter_name or "\\" in adapter_name or adapter_name in (".", "..")):
        raise ValueError(f"adapter_name={adapter_name!r} must be the name of an adapter (a subfolder name)")
    if not isinstance(verify, bool):
        raise TypeError(f"verify must be True or False, got {verify!r}")
    if layers is None:
        return lambda name: True
    if not isinstance(layers, str):
        raise TypeError(f"layers must be a regular expression (str), got {type(layers).__name__}")
    try:
        pattern = re.compile(layers)
    except re.error as exc:
        raise ValueError(f"layers={layers!r} is not a valid regular expression ({exc})") from None
    return lambda name: pattern.search(name) is not None


def _from_hub(repo_id: str) -> Path:
    """The local snapshot folder of a hub repository, through huggingface_hub's own cache/download."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise CheckpointError(f"{repo_id!r} is not a local path, and huggingface_hub (needed for hub ids) is "
                              f"not installed") from None
    patterns = [META_FILE, PEFT_CONFIG, ADAPTER_FILE, f"*/{PEFT_CONFIG}", f"*/{ADAPTER_FILE}", PICKLE_FILE]
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as exc:  # huggingface_hub raises many kinds (offline, not found, HTTP, ...)
        why = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise CheckpointError(f"{repo_id!r} is not a local path, and the hub repository is not in the local "
                              f"Hugging Face cache and could not be downloaded ({why[:300]})") from None


def _present(path: Path) -> bool:
    return os.path.lexists(path)  # a dangling symlink or a loop is present, and refused when opened


def _resolve(target, adapter_name) -> tuple[Path, str, str | None]:
    """(folder, 'ripkit' | 'peft', adapter name) for a path or hub id."""
    if isinstance(target, (str, os.PathLike)):
        path = Path(target)
    else:
        raise TypeError(f"path must be a str or a path, got {type(target).__name__}")
    if _present(path):
        if path.suffix == ".bin":
            raise _pickle_refusal(path)
        folder = path if path.is_dir() else path.parent
    elif isinstance(target, str) and _HUB_ID.fullmatch(target):
        folder = _from_hub(target)
    else:
        raise CheckpointError(f"path={str(target)!r} is not a checkpoint folder or file (and not a hub id org/name)")
    if _present(folder / META_FILE):
        if adapter_name is not None:
            raise ValueError(f"adapter_name={adapter_name!r} applies to peft folders; {folder} is a ripkit checkpoint")
        return folder, "ripkit", None
    top = _present(folder / PEFT_CONFIG)
    try:
        subs = sorted(d.name for d in folder.iterdir() if d.is_dir() and _present(d / PEFT_CONFIG))
    except OSError as exc:
        raise CheckpointError(f"{folder} cannot be listed ({exc.strerror})") from None
    available = (["default"] if top else []) + subs
    if adapter_name is not None:
        if adapter_name == "default" and top:
            return folder, "peft", None
        if adapter_name in subs:
            return folder / adapter_name, "peft", adapter_name
        raise CheckpointError(f"{folder} has no adapter {adapter_name!r}; it holds {available or 'none'}")
    if len(available) > 1:
        raise CheckpointError(f"{folder} holds several adapters ({', '.join(available)}); choose one with "
                              f"adapter_name= (--adapter-name)")
    if top:
        return folder, "peft", None
    if subs:
        return folder / subs[0], "peft", subs[0]
    if _present(folder / PICKLE_FILE):
        raise _pickle_refusal(folder / PICKLE_FILE)
    raise CheckpointError(f"{folder} has neither {META_FILE} (ripkit) nor {PEFT_CONFIG} (peft)")


def load_adapter(path_or_hub_id, *, base=None, adapter_name: str | None = None, hash_seed: int | None = None,
                 hash_algorithm: str = "siphash24", layers: str | None = None,
                 verify: bool = True) -> list[AdapterLayer]:
    """One ``AdapterLayer`` per adapted layer of a ripkit or peft checkpoint, read lazily.

    Parameters
    ----------
    path_or_hub_id : str or path
        A checkpoint folder (or a file in it), or a hub id ``org/name`` resolved through
        huggingface_hub's cache (and download, when online).
    base : path or nn.Module, optional
        The base model's weights W₀: a Hugging Face folder (sharded too), a ``.safetensors`` file
        or a loaded module.  Needed by updates that depend on W₀ (DoRA, PiSSA/OLoRA saved without
        conversion, modules_to_save) and for shapes the file does not store (VeRA, CoSA reference);
        checks ripkit's ``base_model_hash``.  Read lazily, layer by layer.
    adapter_name : str, optional
        peft saves non-default adapters in ``<folder>/<adapter_name>/``; required when a folder holds several.
    hash_seed : int, optional
        The ``PYTHONHASHSEED`` of a CoSA reference run (its projections' seeds use ``hash()``).
    hash_algorithm : {'siphash24', 'siphash13'}
        The string hash of that run's Python: 'siphash24' up to 3.10 (the reference's documented
        Python 3.10), 'siphash13' from 3.11.
    layers : str, optional
        Regular expression; only layers whose name it matches (``re.search``) are read.
    verify : bool
        Check ripkit checkpoints' tensor SHA-256 (the metadata hash is always checked).

    Raises
    ------
    CheckpointError
        The checkpoint is missing, corrupt, inconsistent or of an unsupported kind (the message
        says which file, key and expectation).
    """
    select = _check_args(hash_seed, hash_algorithm, layers, adapter_name, verify)
    folder, kind, adapter_name = _resolve(path_or_hub_id, adapter_name)
    context = LayerContext(as_base(base), hash_seed, hash_algorithm)
    if kind == "ripkit":
        from ripkit.formats import ripkit_format

        out = ripkit_format.read(folder, context, select, verify)
    else:
        from ripkit.formats import registry
        from ripkit.formats.peft_common import Source

        config_path = folder / PEFT_CONFIG
        config = read_json(config_path)
        module = registry.reader(config.get("peft_type"), config_path)
        if not _present(folder / ADAPTER_FILE) and _present(folder / PICKLE_FILE):
            raise _pickle_refusal(folder / PICKLE_FILE)
        source = Source(folder, config_path, config, SafeTensors(folder / ADAPTER_FILE), context, select, adapter_name)
        out = module.read(source)
    if not out:
        raise CheckpointError(f"{folder} has no adapted layer" + (f" matching layers={layers!r}" if layers else ""))
    return out
