"""CPS-LoRA Figure 1 over seeds: block energy of trained ΔW after biclustering, against a same-spectrum null.

Paper: Q/K/V/O update matrices of LLaMA2-7B and Qwen2.5-1.5B, after full fine-tuning and after
LoRA, show block-wise structure "visually prominent especially after reordering them through
bi-clustering" (no numbers).  Any matrix looks blocky after its rows and columns are sorted, so
we score what the picture shows: the share of ‖ΔW‖_F² explained by the block means of the
bicluster partition (checkerboard energy, Kluger et al. 2003's model) and inside its diagonal
blocks, and compare it with the same score on random matrices with ΔW's singular values and
Haar-random singular vectors (``ripkit.nulls.same_spectrum_matrix``), biclustered the same way.

Ours: the campaign's full fine-tuning and LoRA r=8 runs (MiniLM, 5 seeds each), Figure 1's
layers (query and value of the first and last layer), k = 2 and 4, from the committed summaries
(each with its null draws per layer).  The heatmaps are drawn from the committed seed-0
checkpoints, reduced 4× (mean of log₁₀|ΔW| over 4×4 cells) to keep the figure small.

Run: ``python studies/cps_heatmaps.py [--quick] [--runs DIR]`` → ``cps_heatmaps.{png,csv,md}``.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ripkit import partition as part
from ripkit.plot import style
from ripkit.runsummary import FIGURE1_LAYERS
from ripkit.stats import VERDICT_RULE, null_verdict

try:
    from studies import _cps_common as common
    from studies import _trained as trained
except ImportError:
    import _cps_common as common
    import _trained as trained

NAME = "cps_heatmaps"
GROUPS = {"full": "full fine-tune", "lora-r8": "LoRA r=8"}
KS = (2, 4)
SCORES = ("checkerboard", "block_diagonal")
PLOT_LAYERS = ("layer.0.attention.self.query", "layer.5.attention.self.value")
REDUCE = 4


def run_rows(group: str, runs: dict) -> tuple[list[dict], list[dict]]:
    """Per (seed, layer, k): observed scores; per (seed, k): the test rows' inputs."""
    rows, tests = [], []
    for seed, summ in runs.items():
        table = summ.block_table()
        for k in KS:
            obs = table[(table.k == k) & (table.partition == "bicluster") & (table.variant == "delta")
                        & table.layer.str.endswith(FIGURE1_LAYERS)]
            nulls = []
            for _, r in obs.iterrows():
                null = summ.array(f"fig1_null/{r.layer}/k{k}")  # (draws, 2)
                nulls.append(null)
                rows.append({"group": group, "seed": seed, "layer": r.layer, "k": k,
                             **{s: r[s] for s in SCORES},
                             **{f"null {s} mean": float(null[:, i].mean()) for i, s in enumerate(SCORES)}})
            if nulls:
                layer_mean_null = np.mean(nulls, axis=0)  # (draws, 2): mean over layers of draw d
                tests.append({"group": group, "seed": seed, "k": k, "layers": len(nulls),
                              **{s: float(obs[s].mean()) for s in SCORES},
                              **{f"null {s}": layer_mean_null[:, i] for i, s in enumerate(SCORES)}})
    return rows, tests


def verdicts(tests: list[dict]) -> pd.DataFrame:
    out = []
    df = pd.DataFrame(tests)
    for (group, k), g in df.groupby(["group", "k"], sort=False):
        for s in SCORES:
            obs = g[s].to_numpy()
            null = np.stack(g[f"null {s}"].to_list())
            v = null_verdict(obs, null, paper_direction="greater")
            out.append({"run": GROUPS[group], "k": k, "score": s, "seeds": len(obs), "observed": float(obs.mean()),
                        "observed per seed": ", ".join(f"{x:.3f}" for x in obs),
                        "null (same spectrum)": float(null.mean()), "ratio": float(obs.mean() / null.mean()),
                        "p (every seed)": v.p_paper, "p against": v.p_opposite, "draws": null.shape[1],
                        "verdict": v.verdict, "note": v.note})
    return pd.DataFrame(out)


def _reduced(x: np.ndarray) -> np.ndarray:
    m, n = (x.shape[0] // REDUCE) * REDUCE, (x.shape[1] // REDUCE) * REDUCE
    return x[:m, :n].reshape(m // REDUCE, REDUCE, n // REDUCE, REDUCE).mean(axis=(1, 3))


def figure(picked: list, seed: int):
    with style():
        fig = Figure(figsize=(8.0, 2.1 * len(picked)), layout="constrained", dpi=100)
        FigureCanvasAgg(fig)
        grid = fig.subplots(len(picked), 2, squeeze=False)
        for row, (label, name, w) in zip(grid, picked):
            p = part.spectral_bicluster(w, 2, seed=seed)
            logs = [_reduced(np.log10(np.abs(v) + 1e-12)) for v in (w, p.apply(w))]
            lo, hi = np.percentile(np.concatenate([v.ravel() for v in logs]), [1, 99.9])
            short = name.replace("bert.encoder.", "").replace("attention.self.", "")
            for ax, vals, title in zip(row, logs, ("original order", "bicluster k=2")):
                im = ax.imshow(vals, aspect="auto", interpolation="nearest", vmin=lo, vmax=hi)
                ax.set_title(f"{label}, {short}: {title}", fontsize=7)
                ax.grid(False)
                ax.set_xticks([])
                ax.set_yticks([])
            for c in p.row_cuts[1:-1]:
                row[1].axhline(c / REDUCE - 0.5, color="white", linewidth=0.8)
            for c in p.col_cuts[1:-1]:
                row[1].axvline(c / REDUCE - 0.5, color="white", linewidth=0.8)
            fig.colorbar(im, ax=list(row), label=r"$\log_{10}|\Delta W|$ (4×4 means)", shrink=0.8)
    return fig


def heatmap_inputs(quick: bool) -> list:
    """(label, layer, ΔW) from the committed seed-0 checkpoints."""
    from ripkit.checkpoints import load_adapter

    picked = []
    for group, label in GROUPS.items():
        folder = trained.COMMITTED / f"{group}-s0"
        if not (folder / "adapter_model.safetensors").exists():
            continue
        for layer in load_adapter(folder):
            if layer.name.endswith(PLOT_LAYERS[:1] if quick else PLOT_LAYERS):
                picked.append((label, layer.name, layer.delta_w()))
    return picked


def report(table: pd.DataFrame, ver: pd.DataFrame, groups, runs_dir) -> str:
    notes = "\n".join(f"- {r.run}, k={r.k}, {r.score}: ratio {r.ratio:.2f} to the null — **{r.note}**."
                      for _, r in ver.iterrows())
    return f"""
{trained.runs_note(groups, runs_dir)}

Verdict rule: {VERDICT_RULE}.  Per seed, the score (mean over Figure 1's
layers present in the run) is tested against the same mean over same-spectrum random matrices
biclustered the same way (Monte-Carlo p over the summaries' null draws); the claim "more block
structure than chance" must hold in every seed (intersection–union).  Checkerboard energy =
share of ‖ΔW‖_F² explained by the block means; block-diagonal energy = share inside the diagonal
blocks of the bicluster partition.

{common.md_table(ver.drop(columns=["note"]), floatfmt=".3g")}

## Verdicts

{notes}

A ratio near 1 means the biclustered trained matrix has no more block-mean structure than a
structure-free matrix of the same spectrum: the blocky look of the heatmaps is what sorting does to
any matrix.  Full fine-tuning saves ΔW only for the trained layers listed in its metadata (query and
value of layers 0 and 5, and one FFN); LoRA has all of them.  MiniLM only (100 steps, CPU);
SmolLM2 GPU campaign pending (no GPU lent).  Per-layer rows are in the CSV.
"""


def main(argv=None) -> pd.DataFrame:
    parser = common.study_parser(NAME, __doc__.splitlines()[0])
    trained.add_runs_argument(parser)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    with common.limit_threads():
        groups = {g: trained.group_runs(g, args.runs) for g in GROUPS}
        groups = {g: (dict(list(r.items())[:2]) if args.quick else r) for g, r in groups.items() if r}
        if not groups:
            parser.exit(2, f"{NAME}: error: no full fine-tune or LoRA run summaries found\n")
        rows, tests = [], []
        for g, runs in groups.items():
            r, t = run_rows(g, runs)
            rows += r
            tests += t
        table, ver = pd.DataFrame(rows), verdicts(tests)
        picked = heatmap_inputs(args.quick)
        fig = figure(picked, args.seed) if picked else None
        if fig is None:
            from ripkit.plot import new_figure
            fig, _ = new_figure(1)
        common.write_outputs(NAME, args, "CPS-LoRA Figure 1: block energy after biclustering vs a same-spectrum null",
                             table, report(table, ver, groups, args.runs), fig, t0)
    return ver


if __name__ == "__main__":
    main()
