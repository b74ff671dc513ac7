"""Tiny models from configs, real peft checkpoints, and peft's own merge as the reference ΔW."""
from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import torch

from _models import tiny_bert

__all__ = ["tiny_bert", "tiny_llama", "tiny_gpt2", "train_steps", "randomize_trainable", "peft_checkpoint",
           "merged_deltas", "assert_matches_merge", "rel_err"]


def rel_err(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / max(np.linalg.norm(b), 1e-300))


def tiny_llama(seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, vocab_size=64)).eval()


def tiny_gpt2(seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=64, n_positions=32, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg).eval()


def train_steps(model, steps: int = 3, lr: float = 1e-2, seed: int = 0):
    """A few real Adam steps on a made-up loss, so B·A moves away from its initial value."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        ids = torch.randint(0, 60, (2, 8), generator=gen)
        loss = model(input_ids=ids).logits.float().pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def randomize_trainable(model, seed: int = 3, std: float = 0.1):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=gen) * std)


def peft_checkpoint(folder: Path, base_model, config, *, train: str = "steps", extra_adapters=()) -> tuple:
    """Save ``base_model`` (W₀) to ``folder/base``, wrap it with peft, make the adapter non-zero, save it to
    ``folder/adapter``; returns (peft model, W₀ state dict in float64)."""
    from peft import get_peft_model

    folder = Path(folder)
    base_model.save_pretrained(folder / "base")
    w0 = {k: v.detach().double().clone() for k, v in base_model.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_peft_model(base_model, config)
        for name, cfg in extra_adapters:
            model.add_adapter(name, cfg)
        if train == "steps":
            for name in ["default", *[n for n, _ in extra_adapters]]:
                model.set_adapter(name)
                train_steps(model)
        else:
            randomize_trainable(model)
            for name, _ in extra_adapters:
                model.set_adapter(name)
                randomize_trainable(model, seed=5)
        model.set_adapter("default")
        model.save_pretrained(folder / "adapter")
    return model, w0


def merged_deltas(model, w0, adapter_names=None) -> dict[str, np.ndarray]:
    """peft's own merge on a float64 copy minus the float64 base: {state-dict key: change} for every changed key."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        merged = copy.deepcopy(model).double().merge_and_unload(adapter_names=adapter_names)
    out = {}
    for key, value in merged.state_dict().items():
        if key in w0 and value.shape == w0[key].shape:
            delta = (value.double() - w0[key]).numpy()
            if np.abs(delta).max() > 0:
                out[key] = delta
    return out


def assert_matches_merge(layers, reference: dict, tol: float = 1e-10):
    """Every change peft's merge makes is a ripkit ΔW or Δbias equal to it (nothing lost), and vice versa."""
    by_name = {layer.name: layer for layer in layers}
    seen = set()
    for key, want in reference.items():
        module, param = key.rsplit(".", 1)
        assert module in by_name, f"ripkit dropped the update of {key}"
        layer = by_name[module]
        got = layer.delta_w() if param == "weight" else layer.delta_bias()
        assert got is not None, f"{key}: ripkit returns no {param} update"
        if param == "weight" and layer.meta.get("fan_in_fan_out"):
            got = got.T  # ripkit's ΔW is (out, in); GPT-2's Conv1D stores (in, out)
        assert got.shape == want.shape, key
        assert rel_err(got, want) < tol, (key, rel_err(got, want))
        seen.add((module, param))
    for layer in layers:
        if (layer.name, "weight") not in seen and layer.shape is not None:
            assert np.abs(layer.delta_w()).max() == 0, f"ripkit reports an update of {layer.name} that peft does not merge"
