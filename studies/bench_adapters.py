"""Adapter cost: CoSA vs LoRA (ripkit and peft) vs block LoRA / GraLoRA on MiniLM, and Figure 3 counts.

Part 1 times fine-tuning steps (forward + backward + AdamW) of all-MiniLM-L6-v2
with adapters on every attention and FFN linear layer, on the device at hand
(CPU here), and measures the memory of the trainable parameters plus the AdamW
state (CoSA paper section 4.2: "about 3× the trainable parameters").
Part 2 counts the trainable parameters of CoSA (a, b) = (1024, 256) and LoRA
r = 128 on q, k, v, o, gate, up, down from the published architecture shapes
(CoSA paper Figure 3: 29M / 58M / 51M vs 90M / 336M / 323M).

All models are built first and their steps interleaved (round r times one step of
every model, in a rotated order), so a burst of load on this shared machine hits
every adapter alike; torch and BLAS threads are pinned.  CoSA is timed with eq. 9's
product order (the default, ``ripkit.adapters.cosa``) and with ``order='auto'``
(the cheapest order for the shape), for a = b and for a ≠ b.

    python studies/bench_adapters.py [--quick] [--threads 1]
Writes <out>/bench_adapters.{csv,md} (figures/ with --update-figures).
"""
from __future__ import annotations

import statistics
import time

import pandas as pd
import torch

from ripkit._atomic import atomic_write_text
from ripkit._cli import positive_int
from ripkit.adapters import CoSALinear, adapter_modules, inject, parameter_report
from ripkit.adapters.cosa import step_costs
from ripkit.adapters.inject import DEFAULT_TARGETS
from ripkit.data import load_model

try:
    from studies._bench import environment, environment_lines, pin_threads
    from studies._common import command_line, study_parser
except ModuleNotFoundError:  # run as a file
    from _bench import environment, environment_lines, pin_threads
    from _common import command_line, study_parser

NAME = "bench_adapters"
SEED, BATCH, SEQ = 0, 16, 64

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


def build(label: str, impl: str, method: str, config: dict) -> dict:
    """A model with its adapters, optimizer and batch, ready to step."""
    torch.manual_seed(SEED)
    model, _ = load_model("minilm")
    order = config.pop("order", None)
    if impl == "peft":
        model = _peft(model, method)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    elif method == "full":
        inject(model, DEFAULT_TARGETS, "full")
        trainable = sum(p.numel() for p in model.parameters())
    else:
        inject(model, DEFAULT_TARGETS, method, base_seed=SEED, **config)
        trainable = parameter_report(model).trainable
    if order is not None:  # inject() takes no order: set it on the CoSA layers
        for mod in adapter_modules(model).values():
            if isinstance(mod, CoSALinear):
                mod.order = order
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(SEED)
    return {"label": label, "impl": impl, "model": model, "params": params, "trainable": trainable,
            "opt": torch.optim.AdamW(params, lr=1e-4), "ids": torch.randint(1000, 20000, (BATCH, SEQ), generator=gen),
            "labels": torch.randint(0, 2, (BATCH,), generator=gen), "times": []}


def step(case: dict) -> float:
    t0 = time.perf_counter()
    loss = torch.nn.functional.cross_entropy(case["model"](input_ids=case["ids"]).logits, case["labels"])
    case["opt"].zero_grad(set_to_none=True)
    loss.backward()
    case["opt"].step()
    return time.perf_counter() - t0


def report_row(case: dict) -> dict:
    params, opt, times = case["params"], case["opt"], case["times"]
    param_mb = sum(p.numel() * p.element_size() for p in params) / 2**20
    state_mb = sum(t.numel() * t.element_size() for st in opt.state.values() for t in st.values()
                   if torch.is_tensor(t)) / 2**20
    return {"part": "minilm", "adapter": case["label"], "implementation": case["impl"],
            "trainable_params": case["trainable"], "trainable_MiB": round(param_mb, 2),
            "adamw_state_MiB": round(state_mb, 2), "params_plus_state_MiB": round(param_mb + state_mb, 2),
            "step_s_median": round(statistics.median(times), 3), "step_s_min": round(min(times), 3)}


def order_table() -> pd.DataFrame:
    """Multiply-adds per training step of one CoSA layer, per product order, at MiniLM's shapes."""
    rows = []
    tokens = BATCH * SEQ
    for (m, n) in ((384, 384), (1536, 384), (384, 1536)):
        for a, b in ((32, 32), (32, 128), (128, 32), (64, 64), (128, 128)):
            costs = step_costs(m, n, a, b, tokens)
            best = min(costs, key=costs.get)
            rows.append({"shape (out, in)": f"{m}×{n}", "(a, b)": f"({a}, {b})",
                         **{f"{k} MMAC": round(v / 1e6, 1) for k, v in costs.items()}, "auto picks": best,
                         "eq9 / auto": round(costs["eq9"] / costs[best], 2)})
    return pd.DataFrame(rows)


CASES = [("CoSA a=b=128", "ripkit", "cosa", {"a": 128, "b": 128}),
         ("CoSA a=b=128, order=auto", "ripkit", "cosa", {"a": 128, "b": 128, "order": "auto"}),
         ("CoSA a=32 b=128", "ripkit", "cosa", {"a": 32, "b": 128}),
         ("CoSA a=32 b=128, order=auto", "ripkit", "cosa", {"a": 32, "b": 128, "order": "auto"}),
         ("CoSA a=128 b=32", "ripkit", "cosa", {"a": 128, "b": 32}),
         ("CoSA a=128 b=32, order=auto", "ripkit", "cosa", {"a": 128, "b": 32, "order": "auto"}),
         ("LoRA r=8", "ripkit", "lora", {"r": 8}),
         ("LoRA r=8", "peft", "lora", {}),
         ("block-LoRA k=2 r=8 (contiguous)", "ripkit", "block-lora", {"r": 8, "k": 2}),
         ("CPS-LoRA k=2 r=8 (between repartitions)", "ripkit", "cps-lora", {"r": 8, "k": 2}),
         ("GraLoRA k=2 r=8", "peft", "gralora", {}),
         ("full fine-tuning", "torch", "full", {})]
QUICK = [0, 2, 3, 6, 7]


def main(argv=None) -> None:
    ap = study_parser(NAME, __doc__.split("\n")[0])
    ap.add_argument("--threads", type=positive_int, default=1, help="torch/BLAS threads (pinned)")
    ap.add_argument("--steps", type=positive_int, default=7, help="timed steps per model (after 2 warm-up steps)")
    args = ap.parse_args(argv)
    pin_threads(args.threads)
    env_start = environment(args.threads)
    warmup, timed = (1, 2) if args.quick else (2, args.steps)
    cases = [build(*c[:3], dict(c[3])) for i, c in enumerate(CASES) if not args.quick or i in QUICK]
    for r in range(warmup + timed):  # interleaved: one step of every model per round, rotated order
        for case in cases[r % len(cases):] + cases[:r % len(cases)]:
            t = step(case)
            if r >= warmup:
                case["times"].append(t)
        print(f"round {r + 1}/{warmup + timed} done", flush=True)
    bench = pd.DataFrame([report_row(c) for c in cases])
    lora = bench[(bench.adapter == "LoRA r=8") & (bench.implementation == "peft")].step_s_median.iloc[0]
    bench["vs_peft_lora"] = (bench.step_s_median / lora).round(2)
    counts, orders = figure3_counts(), order_table()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    table = pd.concat([bench, counts], ignore_index=True).astype({"trainable_params": "Int64"})
    atomic_write_text(out / f"{NAME}.csv", table.to_csv(index=False))
    md = ["# Adapter cost on all-MiniLM-L6-v2 (CPU) and trainable parameters at LLM scale", "",
          f"Command: `{command_line(NAME, argv)}`.", *environment_lines(env_start, environment(args.threads)), "",
          f"Part 1: {timed} timed steps per model (after {warmup} warm-up), interleaved across models, of forward + "
          f"backward + AdamW, batch {BATCH}, sequence {SEQ}, adapters on all 36 attention/FFN linear layers, "
          f"classifier head trainable, device {'cuda' if torch.cuda.is_available() else 'cpu'}. `vs_peft_lora`: "
          "median step time over peft's LoRA r=8 in this run.", "",
          bench.drop(columns="part").to_markdown(index=False), "",
          "Multiply-adds of one CoSA layer per training step (forward and backward, Y trainable, the input's "
          f"gradient needed; {BATCH * SEQ} tokens) for each product order (`ripkit.adapters.cosa.step_costs`): "
          "eq. 9's L(Y(Rx)) is the cheapest whenever a = b, so `order='auto'` changes nothing there; for a ≠ b "
          "forming YR or LY first saves up to half the adapter's work.", "",
          orders.to_markdown(index=False), "",
          "Part 2: trainable parameters (millions) on q, k, v, o, gate, up, down of every layer, from the "
          "published shapes (hidden, intermediate, layers, k/v width), against CoSA paper Figure 3.", "",
          counts.drop(columns="part").to_markdown(index=False), ""]
    atomic_write_text(out / f"{NAME}.md", "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
