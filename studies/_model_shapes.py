"""Adapted module shapes (out, in) of the models the CoSA studies check, with the (a, b) used on each.

ΔW is (out, in) = (m, n) (DESIGN.md).  Decoder shapes come from ``cosa_params_memory``
(published config.json of each model card); the encoders and SmolLM2 are added here:

* RoBERTa-base (``roberta-base`` config.json): hidden 768, FFN 3072, 12 layers;
  modules query, key, value, attention.output.dense, intermediate.dense, output.dense.
* all-MiniLM-L6-v2 (DESIGN.md): hidden 384, FFN 1536, 6 layers, the same six modules.
* SmolLM2-135M (DESIGN.md, verified on the packaged GGUF): hidden 576, 9 query / 3 KV
  heads of dim 64 (k, v out 192), MLP 1536, 30 layers.

Our reading of the CoSA paper's (a, b) per model (stated, since the paper spreads it
over appendix C): C.1 gives (128, 56) as the NLU default for RoBERTa; B.3 analyses a
RoBERTa-base CoLA model trained with (128, 128), and Table 2's 1.18M trainable
parameters for RoBERTa-base equal 36·128² + the classification head (589,824 + 592,130
= 1,181,954), i.e. (128, 128) on three modules per layer, so both are listed.  C.2 and
§5.3.2 give (1024, 256) for the NLG models (Llama-3.2-1B, Llama-3.1-8B, Qwen2-7B).
SmolLM2-135M and MiniLM are not in the paper: (1024, 256) is the paper's NLG default,
(128, 128) what ripkit trains (issue 14's campaign, the committed MiniLM runs).
"""
from __future__ import annotations

import pandas as pd

try:
    from studies.cosa_params_memory import MODELS as DECODERS, module_shapes
except ModuleNotFoundError:  # run as a file
    from cosa_params_memory import MODELS as DECODERS, module_shapes

__all__ = ["MODELS", "CONFIGS", "model_shapes", "shape_table"]

#: decoder configs (q, k, v, o, gate, up, down) and encoder configs (six BERT modules)
MODELS = {**DECODERS,
          "SmolLM2-135M": dict(hidden=576, inter=1536, layers=30, heads=9, kv_heads=3, head_dim=64),
          "RoBERTa-base": dict(hidden=768, inter=3072, layers=12, encoder=True),
          "all-MiniLM-L6-v2": dict(hidden=384, inter=1536, layers=6, encoder=True)}

#: (model, (a, b), where the (a, b) comes from)
CONFIGS = [
    ("RoBERTa-base", (128, 56), "paper C.1 (NLU default)"),
    ("RoBERTa-base", (128, 128), "paper B.3 (trained CoLA model; Table 2's 1.18M)"),
    ("Llama-3.2-1B", (1024, 256), "paper C.2, §5.3.2 (NLG default)"),
    ("Llama-3.1-8B", (1024, 256), "paper C.2, §5.3.2 (NLG default)"),
    ("Qwen2-7B", (1024, 256), "paper C.2, §5.3.2 (NLG default)"),
    ("SmolLM2-135M", (1024, 256), "paper's NLG default on ripkit's decoder"),
    ("SmolLM2-135M", (128, 128), "ripkit's campaign (issue 14)"),
    ("all-MiniLM-L6-v2", (128, 128), "ripkit's committed runs"),
]


def model_shapes(model: str) -> dict[str, tuple[int, int]]:
    """(out, in) per adapted module of one layer of ``model``."""
    cfg = MODELS[model]
    if cfg.get("encoder"):
        h, i = cfg["hidden"], cfg["inter"]
        return {"query": (h, h), "key": (h, h), "value": (h, h), "attention.output": (h, h),
                "intermediate": (i, h), "output": (h, i)}
    return module_shapes(cfg)


def shape_table(configs=CONFIGS) -> pd.DataFrame:
    """One row per (model, (a, b), distinct (m, n)): the modules sharing that shape."""
    rows = []
    for model, (a, b), source in configs:
        by_shape: dict[tuple[int, int], list[str]] = {}
        for module, shape in model_shapes(model).items():
            by_shape.setdefault(shape, []).append(module)
        for (m, n), modules in by_shape.items():
            rows.append({"model": model, "a": a, "b": b, "source": source, "modules": ", ".join(modules),
                         "m": m, "n": n})
    return pd.DataFrame(rows)
