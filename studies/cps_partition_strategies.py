"""CPS-LoRA Table 5 analogue without training: partition strategies scored on ΔW itself.

Table 5 ranks reordering strategies by downstream accuracy (LLaMA2-7B, Math10K):
random (GraLoRA) 67.7% < spectral bi-clustering 69.6% < balance-1 70.0% ≈ balance-2 70.3%
≈ cosine sorting 70.3%.  Training costs hours; here every strategy partitions the same
ΔW into 2×2 blocks and is scored by what the partition itself buys:

* recovery: consensus score with the planted blocks (planted matrices only; 1 = exact);
* block-approximation error at a fixed budget: best rank r/k = 4 fit of every block
  (same parameters as LoRA r = 8), relative Frobenius error; global rank-8 error beside it;
* EBER of that block fit (≤ 16);
* mean angular distance between blocks (``ripkit.subspaces.block_angles``).

Data: planted 2×2 matrices (n = 256) of three kinds at four noise levels, then the
trained ΔW of the committed runs (full fine-tune, LoRA r = 8; Q/K/V/O layers).

Run: ``python studies/cps_partition_strategies.py [--quick]`` → ``figures/cps_partition_strategies.*``.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ripkit import partition as part
from ripkit import spectra
from ripkit.plot import new_figure, style
from ripkit.subspaces import block_angles

try:
    from studies import _cps_common as common
except ImportError:
    import _cps_common as common

NAME = "cps_partition_strategies"
K, R = 2, 8                      # 2×2 blocks, total rank budget 8 → rank 4 per block
N_PLANTED, NOISES, RANDOM_SEEDS = 256, (0.0, 0.5, 1.0, 2.0), 5
PAPER_ACC = {"random": 67.7, "contiguous": np.nan, "bicluster": 69.6, "balance-1": 70.0, "cosine": 70.3}
TRAINED = ("full fine-tune", "LoRA r=8")


def strategies(seed: int) -> dict:
    return {
        "random": lambda x, s: part.random_partition(x, K, seed=np.random.SeedSequence([seed, s])),
        "contiguous": lambda x, s: part.contiguous(x, K),
        "bicluster": lambda x, s: part.spectral_bicluster(x, K, seed=seed),
        "balance-1": lambda x, s: part.balance_sort(x, K, seed=seed),
        "cosine": lambda x, s: part.cosine_sort(x, K),
    }


def planted(kind: str, n: int, noise: float, rng) -> tuple[np.ndarray, part.Partition]:
    """A 2×2 block matrix with hidden row/column order, plus noise (std = noise × RMS of the blocks).

    ``checkerboard``: block-constant values (Kluger et al. 2003's bicluster model);
    ``block-diagonal``: rank-4 diagonal blocks with a positive mean, off-diagonal blocks
    10× weaker (the look of CPS-LoRA Figure 1); ``orthogonal``: Prop. 2's four rank-4
    blocks with mutually orthogonal bases (zero-mean: structure only in the subspaces).
    """
    h = n // 2
    if kind == "checkerboard":
        w = np.kron(rng.standard_normal((2, 2)), np.ones((h, h)))
    elif kind == "block-diagonal":
        w = np.zeros((n, n))
        for i in range(2):
            for j in range(2):
                blk = rng.standard_normal((h, 4)) @ rng.standard_normal((4, h)) / 2 + 1.0
                w[i * h:(i + 1) * h, j * h:(j + 1) * h] = blk if i == j else 0.1 * blk
    else:
        w = common.orthogonal_blocks(n, 2, 4, rng)
    w = w + noise * np.sqrt(np.mean(w ** 2)) * rng.standard_normal(w.shape)
    return common.hide(w, 2, rng)


def block_fit(w: np.ndarray, p: part.Partition, rank: int) -> np.ndarray:
    """Best rank-``rank`` approximation of every block of ``p``, in original coordinates."""
    out = np.zeros_like(w)
    for rows, cols in p.blocks():
        u, s, vt = np.linalg.svd(w[np.ix_(rows, cols)], full_matrices=False)
        out[np.ix_(rows, cols)] = (u[:, :rank] * s[:rank]) @ vt[:rank]
    return out


def score(x, w: np.ndarray, p: part.Partition, truth=None) -> dict:
    fit = block_fit(w, p, R // K)
    return {"recovery": part.consensus_score(p.blocks(), truth.blocks()) if truth is not None else np.nan,
            "block_error": part.block_approximation_error(x, p, R // K),
            "fit_eber": spectra.eber(fit), "angle_deg": block_angles(x, p).mean_degrees}


def evaluate(data: str, x, truth, seed: int, n_random: int) -> list[dict]:
    """Score every strategy on one matrix (x dense or factors); random is averaged over seeds."""
    w = x if isinstance(x, np.ndarray) else x[0] @ x[1]
    s = spectra.singular_values(w)
    global_err = float(np.sqrt(np.sum(s[R:] ** 2) / np.sum(s ** 2)))
    rows = []
    for name, fn in strategies(seed).items():
        reps = [score(x, w, fn(x, i), truth) for i in range(n_random if name == "random" else 1)]
        rows.append({"data": data, "strategy": name, "global_rank8_error": global_err,
                     **pd.DataFrame(reps).mean().to_dict()})
    if truth is not None:  # the planted partition itself: the best any strategy can do
        rows.append({"data": data, "strategy": "planted (oracle)", "global_rank8_error": global_err,
                     **score(x, w, truth, truth)})
    return rows


def run(args) -> tuple[pd.DataFrame, dict]:
    n = 128 if args.quick else N_PLANTED
    noises = NOISES[::2] if args.quick else NOISES
    n_random = 2 if args.quick else RANDOM_SEEDS
    rows = []
    for kind in ("checkerboard", "block-diagonal", "orthogonal"):
        for noise in noises:
            rng = np.random.default_rng([args.seed, n, int(noise * 10), len(kind)])
            w, truth = planted(kind, n, noise, rng)
            rows += [r | {"source": "planted", "kind": kind, "noise": noise}
                     for r in evaluate(f"planted {kind}, noise {noise}", w, truth, args.seed, n_random)]
    runs = common.available_runs(TRAINED)
    for label, path in runs.items():
        layers = common.load_layers(path, max_layers=2 if args.quick else None)
        for layer in layers:
            rows += [r | {"source": label, "kind": "trained", "noise": np.nan, "layer": layer.name}
                     for r in evaluate(label, common.factors(layer), None, args.seed, n_random)]
    return pd.DataFrame(rows), runs


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    metrics = ["recovery", "block_error", "global_rank8_error", "fit_eber", "angle_deg"]
    agg = df.groupby(["data", "strategy"], sort=False)[metrics].mean().reset_index()
    agg["paper_table5_acc"] = agg["strategy"].map(PAPER_ACC)
    return agg


def ordering(agg: pd.DataFrame, data: str) -> str:
    sub = agg[(agg["data"] == data) & (agg["strategy"] != "planted (oracle)")].sort_values("block_error")
    return " < ".join(f"{s} {e:.3f}" for s, e in zip(sub["strategy"], sub["block_error"]))


def gain_over_random(agg: pd.DataFrame, data: str) -> float:
    """Relative error reduction of the best data-driven strategy over random partitions."""
    sub = agg[agg["data"] == data].set_index("strategy")["block_error"]
    return float((sub["random"] - sub[["bicluster", "balance-1", "cosine"]].min()) / sub["random"])


def figure(agg: pd.DataFrame):
    datas = list(dict.fromkeys(agg["data"]))
    names = list(PAPER_ACC)
    fig, (ax,) = new_figure(width=7.5, height=3.4)
    with style():
        width = 0.8 / len(names)
        for i, name in enumerate(names):
            vals = [agg[(agg["data"] == d) & (agg["strategy"] == name)]["block_error"].iloc[0] for d in datas]
            ax.bar(np.arange(len(datas)) + i * width, vals, width, label=name)
        glob = [agg[agg["data"] == d]["global_rank8_error"].iloc[0] for d in datas]
        ax.plot(np.arange(len(datas)) + 0.4 - width / 2, glob, "k_", markersize=14, label="global rank 8")
        ax.set_xticks(np.arange(len(datas)) + 0.4 - width / 2)
        ax.set_xticklabels([d.replace("planted ", "").replace(", noise", "\nnoise") for d in datas],
                           rotation=90, fontsize=6)
        ax.set_ylabel("block rank-4 rel. error (budget = LoRA r=8)")
        ax.set_title("Partition strategies, 2×2 blocks (lower is better)")
        ax.set_ylim(0, 1.12)
        ax.legend(frameon=False, fontsize=6, ncol=6, loc="upper left")
    return fig


def report(agg: pd.DataFrame, runs: dict) -> str:
    planted_ok, lines = [], []
    for data in dict.fromkeys(agg["data"]):
        sub = agg[(agg["data"] == data) & (agg["strategy"] != "planted (oracle)")].set_index("strategy")["block_error"]
        tol = 0.01 * sub["random"]          # differences under 1% of random's error count as ties
        best_struct = sub[["bicluster", "balance-1", "cosine"]].min()
        paper_like = (min(sub["cosine"], sub["balance-1"]) <= sub["bicluster"] + tol) and sub["bicluster"] < sub["random"] - tol
        planted_ok.append(paper_like)
        lines.append(f"| {data} | {ordering(agg, data)} | {'yes' if best_struct < sub['random'] - tol else 'no'} "
                     f"| {'yes' if paper_like else 'no'} |")
    trained = [d for d in dict.fromkeys(agg["data"]) if not d.startswith("planted")]
    t_ok = [ok for d, ok in zip(dict.fromkeys(agg["data"]), planted_ok) if d in trained]
    show = agg.copy()

    best_trained = ", ".join(
        f"{d}: {agg[(agg['data'] == d)].sort_values('block_error')['strategy'].iloc[0]}" for d in trained)

    gain = max((gain_over_random(agg, d) for d in trained), default=np.nan)

    def rec(strategy, kind):
        sel = agg["data"].str.contains(kind) & (agg["strategy"] == strategy)
        return float(agg.loc[sel, "recovery"].mean())
    return f"""
Paper, Table 5 (accuracy, LLaMA2-7B on Math10K): random partitioning (GraLoRA) 67.7%,
spectral bi-clustering 69.6%, balance-1 70.0%, balance-2 70.3%, cosine similarity sorting 70.3%:
cosine ≈ balanced ≥ bicluster > random.  We score the partitions instead of training with
them (2×2 blocks, rank 4 per block = the parameters of LoRA r=8); `random` is the mean of
{RANDOM_SEEDS} seeds; trained rows are means over the Q/K/V/O layers of each run.
{common.missing_runs_note(runs, TRAINED)}

{common.ANGLE_DEFINITION}

{common.md_table(show)}

Ordering by block-approximation error (lower first), whether any structured strategy beats
random, and whether the paper's ordering (cosine or balance-1 ≤ bicluster < random) holds
(differences below 1% of random's error count as ties):

| data | ordering | structured < random | paper's order |
|---|---|---|---|
{chr(10).join(lines)}

**Verdict: {common.verdict(all(t_ok), partly=any(t_ok) or any(planted_ok))}.**  Recovery (consensus
with the planted blocks; random ≈ {rec('random', 'planted'):.2f}): checkerboards {rec('bicluster', 'checkerboard'):.2f} /
{rec('balance-1', 'checkerboard'):.2f} / {rec('cosine', 'checkerboard'):.2f} (bicluster / balance-1 / cosine, mean over noise
levels); block-diagonal {rec('bicluster', 'block-diagonal'):.2f} / {rec('balance-1', 'block-diagonal'):.2f} / {rec('cosine', 'block-diagonal'):.2f};
Prop. 2's zero-mean orthogonal blocks {rec('bicluster', 'orthogonal'):.2f} / {rec('balance-1', 'orthogonal'):.2f} /
{rec('cosine', 'orthogonal'):.2f}.  Every strategy sorts on entry values (P = ΔW − min ΔW, or the signed cosine
to one reference row), not on subspace membership, so blocks that differ only in their subspaces
(the structure Prop. 2 needs) stay hidden although the oracle partition fits them exactly.  Cosine
sorting, the paper's default, is the weakest on the block-diagonal planted matrices: within the
reference row's block the cosines spread from negative to large (the rank-4 part dominates the
mean), and the signed descending order sends the anti-correlated rows to the far end, among the
other block's rows.  On the trained ΔW
the paper's ordering holds in {sum(t_ok)} of {len(t_ok)} runs; best there: {best_trained}; the data-driven
partitions (bicluster, balance-1, cosine) improve on random's error by at most {gain:.1%}, so
MiniLM's ΔW shows little block structure these partitioners can use.  This checks the direction of Table 5 through a structure proxy, not its
accuracy numbers.
"""


def main(argv=None) -> pd.DataFrame:
    args = common.parse_args(argv, __doc__.splitlines()[0], name="cps_partition_strategies")
    t0 = time.perf_counter()
    with common.limit_threads():
        df, runs = run(args)
        agg = summarize(df)
        common.write_outputs(NAME, args, "CPS-LoRA Table 5 analogue: partition strategies scored on ΔW",
                             df, report(agg, runs), figure(agg), t0)
    return agg


if __name__ == "__main__":
    main()
