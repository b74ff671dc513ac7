"""Adapter cost: CoSA vs LoRA (ripkit and peft) vs block LoRA / GraLoRA on MiniLM, and Figure 3 counts.

Part 1 times fine-tuning steps (forward + backward + AdamW) of all-MiniLM-L6-v2
with adapters on every attention and FFN linear layer, on the device at hand
(CPU here), and measures the memory of the trainable parameters plus the AdamW
state (CoSA paper section 4.2: "about 3× the trainable parameters").
Part 2 counts the trainable parameters of CoSA (a, b) = (1024, 256) and LoRA
r = 128 on q, k, v, o, gate, up, down from the published architecture shapes
(CoSA paper Figure 3: 29M / 58M / 51M vs 90M / 336M / 323M).

    python studies/bench_adapters.py        # writes figures/bench_adapters.{csv,md}
"""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from ripkit.adapters import inject, parameter_report
from ripkit.adapters.inject import DEFAULT_TARGETS
from ripkit.data import load_model

SEED, BATCH, SEQ, WARMUP, TIMED = 0, 16, 64, 2, 5
FIGURES = Path(__file__).resolve().parents[1] / "figures"

# (hidden, intermediate, layers, k/v output size) from the models' published config.json
ARCHS = {"Llama-3.2-1B": (2048, 8192, 16, 512), "Llama-3.1-8B": (4096, 14336, 32, 1024),
         "Qwen2-7B": (3584, 18944, 28, 512)}
PAPER = {"Llama-3.2-1B": (29, 90), "Llama-3.1-8B": (58, 336), "Qwen2-7B": (51, 323)}


def module_shapes(hidden, inter, kv):
    """(out, in) of q, k, v, o, gate, up, down."""
    return [(hidden, hidden), (kv, hidden), (kv, hidden), (hidden, hidden),
            (inter, hidden), (inter, hidden), (hidden, inter)]


def figure3_counts() -> pd.DataFrame:
    rows = []
    for name, (hidden, inter, layers, kv) in ARCHS.items():
        shapes = module_shapes(hidden, inter, kv)
        cosa = layers * len(shapes) * 1024 * 256
        lora = layers * sum((m + n) * 128 for m, n in shapes)
        rows.append({"part": "figure3", "model": name, "cosa_1024x256_M": round(cosa / 1e6, 1),
                     "lora_r128_M": round(lora / 1e6, 1), "paper_cosa_M": PAPER[name][0],
                     "paper_lora_M": PAPER[name][1]})
    return pd.DataFrame(rows)


def _peft(model, kind):
    from peft import GraloraConfig, LoraConfig, get_peft_model

    # the same 36 layers as ripkit's DEFAULT_TARGETS (a regex string must match the whole name)
    targets = (r".*encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense"
               r"|intermediate\.dense|output\.dense)")
    if kind == "lora":
        cfg = LoraConfig(r=8, lora_alpha=8, target_modules=targets, modules_to_save=["classifier"])
    else:
        cfg = GraloraConfig(r=8, gralora_k=2, alpha=8, target_modules=targets, modules_to_save=["classifier"])
    return get_peft_model(model, cfg)


def time_method(label: str, impl: str, method: str, config: dict) -> dict:
    torch.manual_seed(SEED)
    model, _ = load_model("minilm")
    if impl == "peft":
        model = _peft(model, method)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    elif method == "full":
        inject(model, DEFAULT_TARGETS, "full")
        trainable = sum(p.numel() for p in model.parameters())
    else:
        inject(model, DEFAULT_TARGETS, method, base_seed=SEED, **config)
        trainable = parameter_report(model).trainable
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    gen = torch.Generator().manual_seed(SEED)
    ids = torch.randint(1000, 20000, (BATCH, SEQ), generator=gen)
    labels = torch.randint(0, 2, (BATCH,), generator=gen)
    times = []
    for i in range(WARMUP + TIMED):
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(input_ids=ids).logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= WARMUP:
            times.append(time.perf_counter() - t0)
    param_mb = sum(p.numel() * p.element_size() for p in params) / 2**20
    state_mb = sum(t.numel() * t.element_size() for st in opt.state.values() for t in st.values()
                   if torch.is_tensor(t)) / 2**20
    return {"part": "minilm", "adapter": label, "implementation": impl, "trainable_params": trainable,
            "trainable_MiB": round(param_mb, 2), "adamw_state_MiB": round(state_mb, 2),
            "params_plus_state_MiB": round(param_mb + state_mb, 2),
            "step_s_median": round(statistics.median(times), 3), "step_s_min": round(min(times), 3)}


def main() -> None:
    torch.set_num_threads(int(os.environ.get("RIPKIT_THREADS", "1")))
    cases = [("CoSA a=b=128", "ripkit", "cosa", {"a": 128, "b": 128}),
             ("LoRA r=8", "ripkit", "lora", {"r": 8}),
             ("LoRA r=8", "peft", "lora", {}),
             ("block-LoRA k=2 r=8 (contiguous)", "ripkit", "block-lora", {"r": 8, "k": 2}),
             ("CPS-LoRA k=2 r=8 (between repartitions)", "ripkit", "cps-lora", {"r": 8, "k": 2}),
             ("GraLoRA k=2 r=8", "peft", "gralora", {}),
             ("full fine-tuning", "torch", "full", {})]
    rows = [time_method(*c) for c in cases]
    bench, counts = pd.DataFrame(rows), figure3_counts()
    FIGURES.mkdir(exist_ok=True)
    table = pd.concat([bench, counts], ignore_index=True).astype({"trainable_params": "Int64"})
    table.to_csv(FIGURES / "bench_adapters.csv", index=False)
    load = os.getloadavg()[0]
    md = ["# Adapter cost on all-MiniLM-L6-v2 (CPU) and trainable parameters at LLM scale", "",
          f"Part 1: {TIMED} timed steps (after {WARMUP} warm-up) of forward + backward + AdamW, batch {BATCH}, "
          f"sequence {SEQ}, adapters on all 36 attention/FFN linear layers, classifier head trainable, "
          f"{torch.get_num_threads()} torch thread(s), torch {torch.__version__}, device "
          f"{'cuda' if torch.cuda.is_available() else 'cpu'}. The machine was shared (1-min load average "
          f"{load:.1f} on 2 cores when the run ended), so step times are noisy: compare within this table only.",
          "", bench.drop(columns="part").to_markdown(index=False), "",
          "Part 2: trainable parameters (millions) on q, k, v, o, gate, up, down of every layer, from the "
          "published shapes (hidden, intermediate, layers, k/v width), against CoSA paper Figure 3.", "",
          counts.drop(columns="part").to_markdown(index=False), ""]
    (FIGURES / "bench_adapters.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
