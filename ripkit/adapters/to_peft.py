"""Export ripkit's LoRA-family adapters as a Hugging Face peft LoRA folder.

``export_peft(model, folder)`` writes ``adapter_config.json`` + ``adapter_model.safetensors``
that ``peft.PeftModel.from_pretrained(base, folder)`` loads onto the *original* base
model (the one ripkit's adapters were injected into, before any PiSSA or CPS-LoRA merge
changed its weights) and gives the same outputs as the ripkit model:

* LoRA → peft LoRA with the same r, alpha, A and B.
* PiSSA → a plain LoRA of rank 2r on the original W₀, as peft's own
  ``save_pretrained(path_initial_model_for_weight_conversion=...)``:
  A' = [A; A₀], B' = [B, −B₀], lora_alpha' = 2·alpha, so s·B'A' = s·(BA − B₀A₀).
* block-LoRA / CPS-LoRA → the exact plain-LoRA factorisation of the total ΔW
  (merged updates, then the current k×k blocks with their permutations; rank
  merged rank + k·r) with the scaling folded into B' (lora_alpha = r).
* trainable parameters outside the adapters (a classification head) → ``modules_to_save``.

peft takes one rank and alpha for the whole model; layers that differ (they do not, in
runs of one command) are padded with zero rank-one terms and have their scaling folded
in, which changes nothing in ΔW.  CoSA and full fine-tuning have no peft LoRA form here.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ripkit._atomic import atomic_path, atomic_write_text
from ripkit.adapters.block_lora import BlockLoRALinear
from ripkit.adapters.inject import adapter_modules
from ripkit.adapters.lora import LoRALinear

__all__ = ["PEFT_PREFIX", "lora_form", "export_peft"]

PEFT_PREFIX = "base_model.model."


@torch.no_grad()
def lora_form(mod: nn.Module) -> tuple[torch.Tensor, torch.Tensor, int, float]:
    """(lora_B (m, r'), lora_A (r', n), r', alpha') with (alpha'/r')·lora_B·lora_A = ΔW of ``mod`` on W₀."""
    if isinstance(mod, LoRALinear) and mod.init == "default":
        return mod.lora_B.detach(), mod.lora_A.detach(), mod.r, mod.alpha
    if isinstance(mod, LoRALinear):  # PiSSA: peft's conversion, scaling kept as alpha'/r' = alpha/r
        return (torch.cat([mod.lora_B, -mod.lora_B0], dim=1).detach(),
                torch.cat([mod.lora_A, mod.lora_A0], dim=0).detach(), 2 * mod.r, 2 * mod.alpha)
    if isinstance(mod, BlockLoRALinear):
        big_b, big_a = mod.delta_factors()
        return big_b.detach(), big_a.detach(), big_b.shape[1], float(big_b.shape[1])
    raise ValueError(f"{type(mod).__name__} has no peft LoRA form (LoRA, PiSSA, block-LoRA and CPS-LoRA do)")


def _uniform(forms: dict) -> dict:
    """Give every layer the same (r, alpha): fold the scaling into B and pad with zero columns/rows."""
    if len({(f[2], f[3]) for f in forms.values()}) <= 1:
        return forms
    rank = max(f[2] for f in forms.values())
    out = {}
    for name, (b, a, r, alpha) in forms.items():
        b = torch.cat([b * (alpha / r), b.new_zeros(b.shape[0], rank - r)], dim=1)
        a = torch.cat([a, a.new_zeros(rank - r, a.shape[1])], dim=0)
        out[name] = (b, a, rank, float(rank))
    return out


def export_peft(model: nn.Module, folder, *, base_model: str | None = None) -> Path:
    """Write the peft LoRA form of ``model``'s ripkit adapters (and trainable head) into ``folder``."""
    from safetensors.torch import save_file

    adapters = adapter_modules(model)
    if not adapters:
        raise ValueError("the model has no ripkit adapters to export")
    forms = _uniform({name: lora_form(mod) for name, mod in adapters.items()})
    tensors = {}
    for name, (b, a, _, _) in forms.items():
        tensors[f"{PEFT_PREFIX}{name}.lora_A.weight"] = a
        tensors[f"{PEFT_PREFIX}{name}.lora_B.weight"] = b
    inside = tuple(n + "." for n in adapters)
    heads = []
    for pname, p in model.named_parameters():
        if p.requires_grad and not pname.startswith(inside):
            tensors[PEFT_PREFIX + pname] = p.detach()
            heads.append(pname.rpartition(".")[0])
    r, alpha = next(iter(forms.values()))[2:]  # the same for every layer after _uniform
    config = {"peft_type": "LORA", "task_type": None, "base_model_name_or_path": base_model,
              "r": int(r), "lora_alpha": alpha, "lora_dropout": 0.0, "bias": "none",
              "target_modules": sorted(forms), "modules_to_save": sorted(set(heads)) or None,
              "fan_in_fan_out": False, "use_rslora": False, "use_dora": False, "init_lora_weights": True,
              "rank_pattern": {}, "alpha_pattern": {}, "inference_mode": True}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "adapter_model.safetensors") as tmp:
        save_file({k: v.to("cpu", torch.float32).contiguous() for k, v in tensors.items()}, str(tmp),
                  metadata={"format": "pt"})
    atomic_write_text(folder / "adapter_config.json", json.dumps(config, indent=2, sort_keys=True))
    return folder
