"""Base-model weights W₀, read lazily one layer at a time (``load_adapter(path, base=...)``).

``base`` may be a local Hugging Face model folder (``model.safetensors``, or shards listed in
``model.safetensors.index.json``), a single ``.safetensors`` file, or a loaded ``torch.nn.Module``
(its ``state_dict``; torch is only touched in that case).  Pickled weights (``*.bin``) are refused.
Layer names are the module names peft uses (``model.layers.0.self_attn.q_proj``); a base saved
without or with one more leading prefix (``LlamaModel`` vs ``LlamaForCausalLM``) is matched when
the match is unique.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ripkit.formats._io import CheckpointError, SafeTensors, read_json

__all__ = ["BaseWeights", "as_base"]

INDEX = "model.safetensors.index.json"


def _pickle_refusal(path: Path) -> CheckpointError:
    return CheckpointError(
        f"{path} holds pickled weights (*.bin): ripkit never unpickles, because loading a pickle can run "
        f"arbitrary code; convert it once with transformers, e.g. "
        f"AutoModel.from_pretrained(folder).save_pretrained(folder, safe_serialization=True)")


class BaseWeights:
    """Lazy access to base weights by module name; see the module docstring for what ``base`` may be."""

    def __init__(self, base):
        self.module = None
        self._files: dict[str, SafeTensors] = {}
        self.files: list[Path] = []
        if hasattr(base, "state_dict") and callable(base.state_dict):
            self._init_module(base)
            return
        try:
            path = Path(base)
        except TypeError:
            raise CheckpointError(f"base={base!r} must be a model folder, a .safetensors file or an nn.Module") from None
        self.description = str(path)
        if path.is_dir():
            self._init_folder(path)
        elif path.suffix == ".safetensors":
            self.files = [path]
            self._key_file = {k: path for k in self._open(path).keys()}
        elif path.suffix in (".bin", ".pt", ".pth", ".ckpt"):
            raise _pickle_refusal(path)
        elif not path.exists():
            raise CheckpointError(f"base={str(path)!r} does not exist")
        else:
            raise CheckpointError(f"base={str(path)!r} is not a model folder or a .safetensors file")

    def _init_module(self, module):
        self.module = module
        self.description = f"nn.Module {type(module).__name__}"
        self._state = module.state_dict()
        if any(".lora_" in k or ".base_layer." in k for k in self._state):
            raise CheckpointError("base= is a PEFT model (it has LoRA/base_layer parameters); pass the original "
                                  "base model the adapter was trained on")
        self._key_file = dict.fromkeys(self._state)

    def _init_folder(self, folder: Path):
        index = folder / INDEX
        if index.exists():
            weight_map = read_json(index).get("weight_map")
            if not isinstance(weight_map, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) and Path(v).name == v and v.endswith(".safetensors")
                    for k, v in weight_map.items()):
                raise CheckpointError(f"{index}: weight_map must map tensor names to .safetensors files "
                                      f"in the same folder")
            self._key_file = {k: folder / v for k, v in weight_map.items()}
            self.files = sorted(set(self._key_file.values()))
            return
        self.files = sorted(folder.glob("*.safetensors"))
        if not self.files:
            pickles = sorted(folder.glob("*.bin"))
            if pickles:
                raise _pickle_refusal(pickles[0])
            raise CheckpointError(f"base folder {folder} has no *.safetensors weights")
        self._key_file = {}
        for f in self.files:
            for k in self._open(f).keys():
                self._key_file[k] = f

    def _open(self, path: Path) -> SafeTensors:
        if path not in self._files:
            self._files[path] = SafeTensors(path)
        return self._files[path]

    # ---- lookup ---------------------------------------------------------------------------------
    def key(self, name: str, param: str = "weight", *, required: bool = True) -> str | None:
        """The base's key for ``name.param``: exact, else the unique key that differs by a leading prefix."""
        want = f"{name}.{param}"
        if want in self._key_file:
            return want
        parts = name.split(".")
        candidates = {k for k in self._key_file if k.endswith("." + want)}
        candidates |= {".".join(parts[i:]) + f".{param}" for i in range(1, len(parts))} & set(self._key_file)
        if len(candidates) == 1:
            return candidates.pop()
        if not required:
            return None
        if candidates:
            raise CheckpointError(f"base {self.description}: {want} matches several tensors "
                                  f"({', '.join(sorted(candidates)[:4])}); cannot tell which is the layer's")
        raise CheckpointError(f"base {self.description} has no tensor {want} (is it the model the adapter "
                              f"was trained on?)")

    def has(self, name: str, param: str = "weight") -> bool:
        return self.key(name, param, required=False) is not None

    def shape(self, name: str, param: str = "weight") -> tuple[int, ...]:
        key = self.key(name, param)
        if self.module is not None:
            return tuple(self._state[key].shape)
        return self._open(self._key_file[key]).info(key).shape

    def array(self, name: str, param: str = "weight") -> np.ndarray:
        """float64 copy of a base tensor in its stored orientation, checked finite."""
        key = self.key(name, param)
        if self.module is not None:
            out = self._state[key].detach().to("cpu").double().numpy().copy()
            if not np.isfinite(out).all():
                raise CheckpointError(f"base {self.description}: {key} contains NaN or infinite values")
            return out
        return self._open(self._key_file[key]).array(key, what="base weight")

    def tensor(self, name: str, param: str = "weight"):
        """The base tensor as torch, in its stored dtype (for recomputing peft's own initialisations)."""
        import torch

        key = self.key(name, param)
        if self.module is not None:
            return self._state[key].detach().to("cpu")
        source = self._open(self._key_file[key])
        info = source.info(key)
        raw = np.array(source.raw(key))  # own copy: torch wants a writable buffer
        if info.dtype == "BF16":
            return torch.from_numpy(raw.view(np.int16)).view(torch.bfloat16)
        out = torch.from_numpy(raw)
        if info.is_float and not torch.isfinite(out).all():
            raise CheckpointError(f"base {self.description}: {key} contains NaN or infinite values")
        return out

    def module_type(self, name: str) -> str | None:
        """Class name of the base module ``name`` (only known for an nn.Module base)."""
        if self.module is None:
            return None
        try:
            return type(self.module.get_submodule(name)).__name__
        except AttributeError:
            return None

    def files_hash(self) -> str | None:
        """SHA-256 (16 hex digits) over the weight files' names and bytes, sorted by name — the
        ``base_model_hash`` ripkit's trainer records (``ripkit.data.weights_hash``); None for a module."""
        if self.module is not None:
            return None
        h = hashlib.sha256()
        for f in sorted(self.files, key=lambda p: p.name):
            self._open(f)  # a regular, well-formed safetensors file before its bytes are hashed
            h.update(f.name.encode())
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        return h.hexdigest()[:16]


def as_base(base) -> BaseWeights | None:
    """``BaseWeights`` for a ``base=`` argument (None stays None)."""
    if base is None or isinstance(base, BaseWeights):
        return base
    return BaseWeights(base)
