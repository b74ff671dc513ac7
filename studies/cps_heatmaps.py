"""CPS-LoRA Figure 1: log|ΔW| heatmaps of trained layers before and after bicluster reordering.

Paper: Q/K/V/O update matrices of LLaMA2-7B and Qwen2.5-1.5B, after full fine-tuning
and after LoRA, show block-wise structure "visually prominent especially after
reordering them through bi-clustering".  Ours: a few Q/K/V layers of the committed
MiniLM runs (full fine-tune and LoRA r=8), reordered by ``spectral_bicluster`` (k = 2).
A picture can always look blocky after reordering, so we also score how much of ‖ΔW‖²
the reordered block grid explains — checkerboard energy (block means) and block-diagonal
energy — against the original order and against a null with ΔW's singular values and
Haar-random singular vectors (same spectrum, no planted blocks) reordered the same way.

Run: ``python studies/cps_heatmaps.py [--quick]`` → ``figures/cps_heatmaps.{png,csv,md}``.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ripkit import partition as part
from ripkit import spectra
from ripkit.plot import style

try:
    from studies import _cps_common as common
except ImportError:
    import _cps_common as common

NAME = "cps_heatmaps"
KS = (2, 4)
PLOT_K = 2
LAYERS = ("layer.0.attention.self.query", "layer.0.attention.self.value",
          "layer.5.attention.self.query", "layer.5.attention.self.value")
RUNS = ("full fine-tune", "LoRA r=8")


def null_like(w: np.ndarray, rng) -> np.ndarray:
    s = spectra.singular_values(w)
    return (common.orthonormal(rng, w.shape[0], s.size) * s) @ common.orthonormal(rng, w.shape[1], s.size).T


def scores(w: np.ndarray, p: part.Partition) -> dict:
    return {"checkerboard_energy": part.checkerboard_energy(w, p),
            "block_diagonal_energy": part.block_diagonal_energy(w, p)}


def analyse(label: str, name: str, w: np.ndarray, seed: int) -> list[dict]:
    rows = []
    null = null_like(w, np.random.default_rng([seed, w.shape[0], len(name)]))
    for k in KS:
        bic = part.spectral_bicluster(w, k, seed=seed)
        base = {"run": label, "layer": name, "k": k, "row_block_sizes": str(np.diff(bic.row_cuts).tolist())}
        rows.append(base | {"order": "original (contiguous cuts)"} | scores(w, part.contiguous(w, k)))
        rows.append(base | {"order": "bicluster"} | scores(w, bic))
        rows.append(base | {"order": "null (same spectrum), bicluster"}
                    | scores(null, part.spectral_bicluster(null, k, seed=seed)))
    return rows


def collect(args):
    runs = common.available_runs(RUNS)
    picked, rows = [], []
    for label, path in runs.items():
        layers = [l for l in common.load_layers(path) if l.name.endswith(LAYERS)]
        for layer in layers[:1 if args.quick else len(LAYERS)]:
            w = layer.delta_w()
            rows += analyse(label, layer.name, w, args.seed)
            picked.append((label, layer.name, w))
    return pd.DataFrame(rows), picked, runs


def figure(picked: list, seed: int):
    with style():
        n_rows = (len(picked) + 1) // 2            # two (original, reordered) pairs per row
        fig = Figure(figsize=(12.0, 2.7 * n_rows), layout="constrained")
        FigureCanvasAgg(fig)
        grid = fig.subplots(n_rows, 4, squeeze=False)
        pairs = [grid[i % n_rows, 2 * (i // n_rows):2 * (i // n_rows) + 2] for i in range(len(picked))]
        for row, (label, name, w) in zip(pairs, picked):
            p = part.spectral_bicluster(w, PLOT_K, seed=seed)
            logs = [np.log10(np.abs(w) + 1e-12), np.log10(np.abs(p.apply(w)) + 1e-12)]
            lo, hi = np.percentile(np.concatenate([v.ravel() for v in logs]), [1, 99.9])
            short = name.replace("bert.encoder.", "").replace("attention.self.", "")
            for ax, vals, title in zip(row, logs, ("original", f"bicluster k={PLOT_K}")):
                im = ax.imshow(vals, aspect="auto", interpolation="nearest", vmin=lo, vmax=hi)
                ax.set_title(f"{label}, {short}: {title}", fontsize=7)
                ax.grid(False)
                ax.set_xticks([])
                ax.set_yticks([])
            for c in p.row_cuts[1:-1]:
                row[1].axhline(c - 0.5, color="white", linewidth=0.8)
            for c in p.col_cuts[1:-1]:
                row[1].axvline(c - 0.5, color="white", linewidth=0.8)
            fig.colorbar(im, ax=list(row), label=r"$\log_{10}|\Delta W|$", shrink=0.8)
    return fig


def report(df: pd.DataFrame, runs: dict) -> str:
    agg = df.groupby(["run", "k", "order"], sort=False)[["checkerboard_energy", "block_diagonal_energy"]] \
        .mean().reset_index()
    piv = agg.pivot_table(index=["run", "k"], columns="order", values="checkerboard_energy", sort=False)
    ratios = (piv["bicluster"] / piv["null (same spectrum), bicluster"]).round(2)
    found, some = bool((ratios > 2).any()), bool((ratios > 1.1).any())
    summary = "; ".join(f"{run} k={k}: {piv.loc[(run, k), 'bicluster']:.3f} vs null "
                        f"{piv.loc[(run, k), 'null (same spectrum), bicluster']:.3f}" for run, k in piv.index)
    return f"""
Paper (Figure 1, no numbers): block structure in ΔW of full fine-tuning and LoRA, visible in
log|ΔW| after bi-clustering.  Ours: {', '.join(runs) or 'no run found'}; layers
{', '.join(LAYERS)} (those present in the run); heatmaps at k = {PLOT_K} (PNG: colour range
1st-99.9th percentile).  Checkerboard energy = share of ‖ΔW‖_F² explained by the block means
(Kluger et al.'s model, the structure spectral biclustering looks for); block-diagonal energy =
share inside the diagonal blocks.  Mean over layers:
{common.missing_runs_note(runs, RUNS)}

{common.md_table(agg)}

**Verdict: {common.verdict(found, partly=some)}.** Checkerboard energy after biclustering vs the
same-spectrum null: {summary} (ratios {ratios.tolist()}).  Reordering makes every heatmap look
blocky, the null included (biclustering any matrix sorts its rows and columns by value), so the
picture alone is no evidence.  {'Biclustering finds block-mean structure well beyond chance (ratio > 2) in at least one run.' if found else
'The trained blocks explain only a little more of ΔW than the blocks of a structure-free matrix with the same spectrum (ratio ≤ 2 everywhere): the MiniLM updates carry at most weak block structure, not the prominent blocks of Figure 1.'}
Per-layer numbers (and block sizes found) are in the CSV.
"""


def main(argv=None) -> pd.DataFrame:
    args = common.parse_args(argv, __doc__.splitlines()[0], name="cps_heatmaps")
    t0 = time.perf_counter()
    with common.limit_threads():
        df, picked, runs = collect(args)
        if not picked:
            raise SystemExit("cps_heatmaps: no full fine-tune or LoRA run found under studies/runs/")
        common.write_outputs(NAME, args, "CPS-LoRA Figure 1: log|ΔW| before and after bicluster reordering",
                             df, report(df, runs), figure(picked, args.seed), t0)
    return df


if __name__ == "__main__":
    main()
