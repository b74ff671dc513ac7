"""CoSA Figure 3 (section 5.3.2): trainable parameters and memory, LoRA/PiSSA r=128 vs CoSA (1024, 256).

Counts follow from the published layer shapes (constants below, from each model's
Hugging Face ``config.json``) for the adapted modules q, k, v, o, gate, up, down:
LoRA/PiSSA add r·(in + out) per module, CoSA adds a·b (L, R are regenerated from a
seed, not trained).  Memory is given under four stated byte models, since the
paper does not say which it used; the 8B claim (644 MB vs 236 MB) is checked
against each.  A measured line on MiniLM counts the parameters ripkit's adapters
actually create and the bytes of AdamW's state after one real step.

Run:  python -m studies.cosa_params_memory           (≈20 s)
      python -m studies.cosa_params_memory --quick
Writes figures/cosa_params_memory.{png,csv,md}.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

try:
    from studies._cosa_common import Timer, command_line, md_table, study_parser, write_outputs
except ModuleNotFoundError:  # run as a file
    from _cosa_common import Timer, command_line, md_table, study_parser, write_outputs
from ripkit.plot import new_figure, style

NAME = "cosa_params_memory"
R_LORA, A_COSA, B_COSA = 128, 1024, 256
# Published configs (hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
# num_key_value_heads, head_dim), from the config.json of each model card on huggingface.co:
# meta-llama/Llama-3.2-1B, meta-llama/Llama-3.1-8B, Qwen/Qwen2-7B (head_dim = hidden / heads).
MODELS = {
    "Llama-3.2-1B": dict(hidden=2048, inter=8192, layers=16, heads=32, kv_heads=8, head_dim=64),
    "Llama-3.1-8B": dict(hidden=4096, inter=14336, layers=32, heads=32, kv_heads=8, head_dim=128),
    "Qwen2-7B": dict(hidden=3584, inter=18944, layers=28, heads=28, kv_heads=4, head_dim=128),
}
#: Section 5.3.2 / Table 3 (trainable parameters) and the one memory pair stated in the text (8B).
PAPER = {"Llama-3.2-1B": {"lora": 90e6, "cosa": 29e6}, "Llama-3.1-8B": {"lora": 336e6, "cosa": 58e6},
         "Qwen2-7B": {"lora": 323e6, "cosa": 51e6}}
PAPER_MEMORY_MB = {"Llama-3.1-8B": {"lora": 644, "cosa": 236}}
#: bytes per trainable parameter: (weights, AdamW exp_avg + exp_avg_sq).
BYTE_MODELS = {"fp32 weights + fp32 AdamW (12 B)": 12, "bf16 weights + fp32 AdamW (10 B)": 10,
               "bf16 weights + bf16 AdamW (6 B)": 6, "fp32 weights only (4 B)": 4, "bf16 weights only (2 B)": 2}


def module_shapes(cfg: dict) -> dict[str, tuple[int, int]]:
    """(out, in) of q, k, v, o, gate, up, down in one decoder layer."""
    h, i, q_out, kv_out = cfg["hidden"], cfg["inter"], cfg["heads"] * cfg["head_dim"], cfg["kv_heads"] * cfg["head_dim"]
    return {"q": (q_out, h), "k": (kv_out, h), "v": (kv_out, h), "o": (h, q_out),
            "gate": (i, h), "up": (i, h), "down": (h, i)}


def count_params(shapes: dict, layers: int) -> dict:
    """Trainable adapter parameters, and the elements of CoSA's frozen L, R if they were kept per layer."""
    lora = sum(R_LORA * (m + n) for m, n in shapes.values()) * layers
    cosa = A_COSA * B_COSA * len(shapes) * layers
    cosa_lr = sum(m * A_COSA + B_COSA * n for m, n in shapes.values()) * layers
    return {"lora": lora, "cosa": cosa, "cosa_frozen_LR_per_layer": cosa_lr}


def published_table() -> pd.DataFrame:
    rows = []
    for model, cfg in MODELS.items():
        c = count_params(module_shapes(cfg), cfg["layers"])
        row = {"model": model, "source": "published config", "lora_params": c["lora"], "cosa_params": c["cosa"],
               "paper_lora_params": PAPER[model]["lora"], "paper_cosa_params": PAPER[model]["cosa"],
               "cosa_over_lora": c["cosa"] / c["lora"], "cosa_frozen_LR_elements": c["cosa_frozen_LR_per_layer"]}
        for label, nbytes in BYTE_MODELS.items():
            row[f"lora_MB[{label}]"] = c["lora"] * nbytes / 1e6
            row[f"cosa_MB[{label}]"] = c["cosa"] * nbytes / 1e6
        rows.append(row)
    return pd.DataFrame(rows)


def measure_minilm(configs) -> pd.DataFrame:
    """Inject ripkit adapters into MiniLM, take one AdamW step, count parameters and state bytes."""
    import torch

    from ripkit.adapters import adapter_modules, inject
    from ripkit.data import load_model

    rows = []
    for method, cfg in configs:
        model, _ = load_model("minilm")
        inject(model, method=method, base_seed=0, head=(), **cfg)
        params = [p for mod in adapter_modules(model).values() for p in mod.parameters(recurse=False)]
        opt = torch.optim.AdamW(params, lr=1e-3)
        ids = torch.randint(1000, 2000, (2, 16))
        model(input_ids=ids).logits.sum().backward()
        opt.step()
        state = sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values() if t.dim() > 0)
        weights = sum(p.numel() * p.element_size() for p in params)
        frozen = sum(b.numel() * b.element_size() for mod in adapter_modules(model).values() for b in mod.buffers())
        shapes = [tuple(mod.base.weight.shape) for mod in adapter_modules(model).values()]
        formula = sum(cfg["r"] * (m + n) for m, n in shapes) if method == "lora" else cfg["a"] * cfg["b"] * len(shapes)
        rows.append({"model": "all-MiniLM-L6-v2", "source": "measured (ripkit adapters, fp32, AdamW)",
                     "method": method, "config": str(cfg), "modules": len(shapes),
                     "params_measured": sum(p.numel() for p in params), "params_formula": formula,
                     "weights_plus_adamw_MB": (weights + state) / 1e6, "bytes_per_param": (weights + state) / sum(p.numel() for p in params),
                     "frozen_LR_buffers_MB": frozen / 1e6})
    return pd.DataFrame(rows)


def plot(pub: pd.DataFrame, minilm: pd.DataFrame):
    fig, axes = new_figure(3, width=3.0, height=2.6)
    x = np.arange(len(pub))
    main_bytes = "fp32 weights + fp32 AdamW (12 B)"
    with style():
        ax = axes[0]
        ax.bar(x - 0.2, pub.lora_params / 1e6, 0.4, label="LoRA/PiSSA r=128 (ours)")
        ax.bar(x + 0.2, pub.cosa_params / 1e6, 0.4, label="CoSA (1024,256) (ours)")
        ax.plot(x - 0.2, pub.paper_lora_params / 1e6, "k_", markersize=14, label="paper")
        ax.plot(x + 0.2, pub.paper_cosa_params / 1e6, "k_", markersize=14)
        ax.set_xticks(x, pub.model, fontsize=7)
        ax.set(ylabel="trainable parameters (M)", title="(a) parameters")
        ax.legend(frameon=False, fontsize=6)
        ax = axes[1]
        ax.bar(x - 0.2, pub[f"lora_MB[{main_bytes}]"], 0.4, label="LoRA, 12 B/param")
        ax.bar(x + 0.2, pub[f"cosa_MB[{main_bytes}]"], 0.4, label="CoSA, 12 B/param")
        i8 = list(pub.model).index("Llama-3.1-8B")
        ax.plot([i8 - 0.2, i8 + 0.2], [PAPER_MEMORY_MB["Llama-3.1-8B"]["lora"], PAPER_MEMORY_MB["Llama-3.1-8B"]["cosa"]],
                "k*", markersize=8, label="paper 8B: 644 / 236 MB")
        ax.set_xticks(x, pub.model, fontsize=7)
        ax.set(ylabel="weights + AdamW state (MB)", title="(b) memory", yscale="log")
        ax.legend(frameon=False, fontsize=6)
        ax = axes[2]
        ax.bar(x, 100 * pub.cosa_over_lora, 0.5, label="published shapes")
        ax.axhline(32.6, color="grey", linestyle="--", label="paper: < 32.6 %")
        ax.set_xticks(x, pub.model, fontsize=7)
        ax.set(ylabel="CoSA / LoRA parameters (%)", title="(c) relative size")
        ax.legend(frameon=False, fontsize=6)
    return fig


def verdict(pub: pd.DataFrame, minilm: pd.DataFrame | None = None) -> str:
    r8 = pub.set_index("model").loc["Llama-3.1-8B"]
    lines = ["- **Parameters.** " + "; ".join(
        f"{r.model}: LoRA {r.lora_params / 1e6:.2f}M (paper {r.paper_lora_params / 1e6:.0f}M), CoSA "
        f"{r.cosa_params / 1e6:.2f}M (paper {r.paper_cosa_params / 1e6:.0f}M)" for r in pub.itertuples())
        + ". All six agree with the paper to its rounding (CoSA's counts are truncated, 58.7M → '58M'). "
        f"CoSA/LoRA = {100 * pub.cosa_over_lora.min():.1f}–{100 * pub.cosa_over_lora.max():.1f} % "
        "(paper: 'less than 32.6 %'): agrees."]
    fits = []
    for label in BYTE_MODELS:
        lo, co = r8[f"lora_MB[{label}]"], r8[f"cosa_MB[{label}]"]
        fits.append(f"{label}: LoRA {lo:,.0f} MB, CoSA {co:,.0f} MB")
    ratio_mem, ratio_par = 644 / 236, r8.lora_params / r8.cosa_params
    lines.append(
        "- **Memory, 8B (paper: LoRA/PiSSA 644 MB, CoSA 236 MB, 'including optimizer states').** "
        + "; ".join(fits) + f". Not consistent: any per-parameter byte model gives the parameter ratio "
        f"{ratio_par:.2f}×, while 644/236 = {ratio_mem:.2f}×. 644 MB is close to LoRA's bf16 weights alone "
        f"({r8['lora_MB[bf16 weights only (2 B)]']:.0f} MB = {r8.lora_params * 2 / 2**20:.0f} MiB) and 236 MB to CoSA's fp32 "
        f"weights alone ({r8['cosa_MB[fp32 weights only (4 B)]']:.0f} MB): the two bars seem to use different precisions "
        f"and neither includes AdamW's two moment buffers (which would triple fp32 weights). With equal precision and "
        f"AdamW state, CoSA saves {100 * (1 - 1 / ratio_par):.0f} % (more than the paper's 'more than 60 %', "
        f"which therefore holds, but its stated MB figures do not follow from the parameter counts).")
    lines.append(
        f"- **Frozen projections.** Kept per layer as dense buffers, CoSA's L and R of 8B would hold "
        f"{r8.cosa_frozen_LR_elements / 1e9:.2f}G elements, far more than the trainable core; they are not trained "
        f"(no optimizer state), but unless they are shared across layers or generated on the fly they occupy "
        f"{r8.cosa_frozen_LR_elements * 2 / 1e9:.1f} GB in bf16, device memory the paper's figure does not show. "
        "The reference implementation (nobodyknowsme1/anonymous-submission, `peft/src/peft/tuners/lora/layer.py`) "
        "does keep them per layer, as frozen `nn.Parameter`s (lines 1193–1194), drawn at the `cosa` scale "
        "(`L_std = 1 / math.sqrt(compression_a)`, `R_std = 1 / math.sqrt(compression_b)`, lines 1178–1179) — yet its "
        "seed `(self._experiment_seed or 42) + hash(f\"{layer_id}_L\") % 10000` (lines 1249, 1269; `_experiment_seed` "
        "is the config's `compression_seed`) uses a `layer_id` built "
        "from the class name `CoSALinear`, the base layer's type and the adapter name unless `_layer_name` is set "
        "(`_get_layer_identifier`, lines 1233–1238), and nothing in that repository sets `_layer_name`: every layer "
        "with the same output size holds the same L and every layer with the same input size the same R, so one "
        "copy per shape would do. Python's `hash` of a string is salted per process, so these L, R are not "
        "reproducible across processes unless `PYTHONHASHSEED` is fixed (only `lora_Y` is saved).")
    if minilm is not None and len(minilm):
        big = minilm[minilm.config == str({"a": A_COSA, "b": B_COSA})].iloc[0]
        small = minilm[minilm.config == str({"r": R_LORA})].iloc[0]
        lines.append(
            f"- **MiniLM (measured).** The formulas match the parameters ripkit creates exactly, and AdamW's state is "
            f"measured at {big.bytes_per_param:.0f} B per fp32 parameter. On a small model CoSA (1024, 256) is *larger* "
            f"than LoRA r=128 ({big.params_measured / 1e6:.2f}M vs {small.params_measured / 1e6:.2f}M): a·b does not shrink "
            f"with the layer, r·(m+n) does. The saving is a property of wide layers (m + n ≫ a·b/r).")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = study_parser(NAME, __doc__.split("\n")[0])
    args = parser.parse_args(argv)
    configs = [("lora", {"r": 128}), ("cosa", {"a": 1024, "b": 256})]
    if not args.quick:
        configs += [("lora", {"r": 8}), ("cosa", {"a": 128, "b": 128})]
    with Timer() as timer:
        pub = published_table()
        minilm = measure_minilm(configs)
    table = pd.concat([pub, minilm], ignore_index=True)
    show = pub[["model", "lora_params", "paper_lora_params", "cosa_params", "paper_cosa_params", "cosa_over_lora"]].copy()
    for c in ("lora_params", "paper_lora_params", "cosa_params", "paper_cosa_params"):
        show[c] = (show[c] / 1e6).map("{:.2f}M".format)
    mem = pd.DataFrame([{"bytes model": label, **{f"{m} {k}": pub.set_index("model").loc[m, f"{k}_MB[{label}]"]
                                                   for m in ("Llama-3.1-8B",) for k in ("lora", "cosa")}}
                        for label in BYTE_MODELS])
    md = f"""# CoSA Figure 3 reproduction (section 5.3.2): parameters and memory

Command: `{command_line(NAME, argv)}` — {timer.seconds:.0f} s on this machine.
Adapted modules q, k, v, o, gate, up, down in every decoder layer; LoRA/PiSSA r = {R_LORA} (r·(in+out) per
module), CoSA (a, b) = ({A_COSA}, {B_COSA}) (a·b per module). Shapes from the published configs (constants in
the script, each citing its model card's config.json). Memory in MB = 10⁶ bytes, computed (not measured) for
the three LLMs, under the byte models listed; the paper does not state its precision.

## Trainable parameters

{md_table(show)}

## Memory of Llama-3.1-8B adapters (weights + AdamW state), MB; paper: LoRA 644, CoSA 236

{md_table(mem, floatfmt=",.0f")}

## Measured on all-MiniLM-L6-v2 (6 linear modules per layer × 6 layers; no gate projection)

{md_table(minilm.drop(columns=["model", "source"]), floatfmt=".3f")}

`params_measured` counts the parameters ripkit's adapters create; `params_formula` is the same formula as for
the LLMs; `weights_plus_adamw_MB` is measured from the tensors (fp32; AdamW's exp_avg and exp_avg_sq, 12 B per
parameter); `frozen_LR_buffers_MB` is CoSA's regenerated L, R held as buffers (not trained, no optimizer state).

## Verdict

{verdict(pub, minilm)}
"""
    write_outputs(args.out, NAME, table, plot(pub, minilm), md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
