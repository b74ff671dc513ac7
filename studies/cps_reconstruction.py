"""CPS-LoRA appendices B and C / Figure 6: global vs block-wise low-rank reconstruction.

Target: an n×n matrix of 2×2 blocks A_ij B_ij, each of rank r, with mutually
orthogonal bases (n = 256, r = 16 as the paper).  Best global rank-q approximation
(Eckart-Young, 2nq parameters) against the best rank-q' approximation of every block
of the true partition (q'·Σ(|I|+|J|) = 4nq' parameters), and the same with a random
partition.  Appendix C: if two blocks share s basis vectors the rank drops to 4r − s.
The paper writes "A₁ and A₂" share s vectors; in Prop. 2's layout A₁ (top-left) and A₂
(bottom-left) live in different rows, so we test that literally and also the overlap
that can reduce rank: B₁, B₂ (same block column) sharing s row-basis vectors.

Run: ``python studies/cps_reconstruction.py [--quick]`` → ``figures/cps_reconstruction.*``.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ripkit import spectra
from ripkit.partition import block_approximation_error, contiguous, random_partition
from ripkit.plot import new_figure, style

try:
    from studies import _cps_common as common
except ImportError:
    import _cps_common as common

NAME = "cps_reconstruction"
N, R = 256, 16
QUICK_N, QUICK_R = 128, 8
SHARES = (0, 4, 8, 12, 16)


def two_by_two(n: int, r: int, rng, *, spectrum: str, share_b12: int = 0, share_a12: int = 0):
    """2×2 blocks of rank r; orthogonal bases except for the requested shared vectors.

    ``share_b12``: B₁ and B₂ (blocks (1,1), (2,1), same block column) share that many
    row-basis vectors.  ``share_a12``: A₁ (top rows) and A₂ (bottom rows) share that
    many column-basis vectors as vectors of R^{n/2} (the paper's literal wording).
    """
    h = n // 2
    qa = common.orthonormal(rng, h, 4 * r)
    a1, a3 = qa[:, :r], qa[:, r:2 * r]
    a2 = np.hstack([qa[:, :share_a12], qa[:, 2 * r:3 * r - share_a12]])   # same R^{h} as A₁
    a4 = qa[:, 3 * r - share_a12:4 * r - share_a12]
    qb = common.orthonormal(rng, h, 4 * r)
    b1, b2 = qb[:, :r], qb[:, r - share_b12:2 * r - share_b12]            # left block column
    b3, b4 = qb[:, 2 * r:3 * r], qb[:, 3 * r:4 * r]                        # right block column

    def core():
        return rng.standard_normal((r, r)) if spectrum == "gaussian" else np.diag(2.0 ** (-np.arange(r) / 4))

    top = np.hstack([a1 @ core() @ b1.T, a3 @ core() @ b3.T])
    bottom = np.hstack([a2 @ core() @ b2.T, a4 @ core() @ b4.T])
    return np.vstack([top, bottom])


def curves(w: np.ndarray, r: int, seed: int) -> pd.DataFrame:
    """Error vs parameters: global rank q, local rank q' on the true and a random 2×2 partition."""
    n = w.shape[0]
    s = spectra.singular_values(w)
    e2 = np.concatenate([np.cumsum((s ** 2)[::-1])[::-1], [0.0]])  # e2[q] = Σ_{i>q} σ²
    rows = [{"method": "global", "rank": q, "params": 2 * n * q, "rel_error": np.sqrt(e2[q] / e2[0])}
            for q in range(1, 4 * r + 1)]
    for label, part in (("local, true 2×2 partition", contiguous(w, 2)),
                        ("local, random 2×2 partition", random_partition(w, 2, seed=seed))):
        per_q = sum(len(ri) + len(ci) for ri, ci in part.blocks())
        rows += [{"method": label, "rank": q, "params": per_q * q,
                  "rel_error": block_approximation_error(w, part, q)} for q in range(1, 2 * r + 1)]
    return pd.DataFrame(rows)


def params_to_reach(cur: pd.DataFrame, method: str, err: float) -> float:
    ok = cur[(cur["method"] == method) & (cur["rel_error"] <= err + 1e-9)]
    return float(ok["params"].min()) if len(ok) else np.nan


def ratios(cur: pd.DataFrame) -> np.ndarray:
    """Local/global parameters at equal error, one per local point with error > 0 (steps, no interpolation)."""
    loc = cur[(cur["method"] == "local, true 2×2 partition") & (cur["rel_error"] > 1e-9)]
    return np.array([p / params_to_reach(cur, "global", e) for p, e in zip(loc["params"], loc["rel_error"])])


def run(n: int, r: int, seed: int):
    summary, all_curves = [], []
    for spectrum in ("equal", "gaussian"):
        for where, share in [("B1,B2 (same block column)", s) for s in SHARES] + \
                            [("A1,A2 (paper's wording)", r // 2)]:
            if share > r:
                continue
            rng = np.random.default_rng([seed, n, r, share, spectrum == "equal"])
            kw = {"share_a12": share} if where.startswith("A1") else {"share_b12": share}
            w = two_by_two(n, r, rng, spectrum=spectrum, **kw)
            cur = curves(w, r, seed).assign(spectrum=spectrum, shared=where, s=share)
            rank = spectra.numerical_rank(w)
            rat = ratios(cur)
            exact_g = params_to_reach(cur, "global", 0.0)
            exact_l = params_to_reach(cur, "local, true 2×2 partition", 0.0)
            summary.append({
                "spectrum": spectrum, "shared": where, "s": share, "rank": rank,
                "predicted_rank": 4 * r - (share if where.startswith("B") else 0),
                "paper_ratio": 0.5 if share == 0 else np.nan,
                "ratio_exact": exact_l / exact_g, "ratio_median": np.median(rat),
                "ratio_min": rat.min(), "ratio_max": rat.max(),
                "random_partition_err_at_r": cur.query("method == 'local, random 2×2 partition' and rank == @r")
                ["rel_error"].iloc[0]})
            all_curves.append(cur)
    return pd.DataFrame(summary), pd.concat(all_curves, ignore_index=True)


def figure(cur: pd.DataFrame, summary: pd.DataFrame, n: int, r: int):
    fig, (ax, ax2) = new_figure(2, width=3.8, height=3.0)
    with style():
        for spectrum, color in (("equal", "C0"), ("gaussian", "C1")):
            sub = cur[(cur["spectrum"] == spectrum) & (cur["s"] == 0) & cur["shared"].str.startswith("B")]
            for method, ls in (("global", "-"), ("local, true 2×2 partition", "--"),
                               ("local, random 2×2 partition", ":")):
                c = sub[sub["method"] == method]
                ax.plot(c["params"], c["rel_error"], ls, color=color, linewidth=1.2,
                        label=f"{method} ({spectrum} spectra)")
        ax.set_xlabel("parameters")
        ax.set_ylabel(r"$\|\Delta W - \hat W\|_F / \|\Delta W\|_F$")
        ax.set_title(f"Fig. 6: 4 orthogonal blocks, n={n}, r={r}")
        ax.legend(frameon=False, fontsize=6)
        b = summary[summary["shared"].str.startswith("B") & (summary["spectrum"] == "gaussian")]
        ax2.plot(b["s"], b["rank"], "o-", label="measured rank (B1,B2 share s)")
        ax2.plot(b["s"], 4 * r - b["s"], "k:", label="paper: 4r − s")
        a = summary[summary["shared"].str.startswith("A") & (summary["spectrum"] == "gaussian")]
        ax2.plot(a["s"], a["rank"], "s", color="C3", label="A1,A2 share s (literal)")
        ax2.set_xlabel("shared basis vectors s")
        ax2.set_ylabel("rank of ΔW")
        ax2.set_title("Appendix C: overlap lowers the rank")
        ax2.legend(frameon=False, fontsize=7)
    return fig


def report(summary: pd.DataFrame, n: int, r: int) -> str:
    s0 = summary[summary["s"] == 0]
    b = summary[summary["shared"].str.startswith("B")]
    a = summary[summary["shared"].str.startswith("A")]
    ok_rank = bool((b["rank"] == b["predicted_rank"]).all())
    ok_ratio = bool(np.allclose(s0["ratio_exact"], 0.5) and (s0["ratio_median"] - 0.5).abs().max() < 0.1)
    table = summary.rename(columns={"predicted_rank": "paper rank (4r−s)", "paper_ratio": "paper ratio",
                                    "ratio_exact": "ours ratio (exact fit)",
                                    "ratio_median": "ours ratio (median, equal error)",
                                    "random_partition_err_at_r": "rel. error, random partition, rank r/block"})
    return f"""
Paper (appendix B, Figure 6; n = 256, r = 16): "local adaptation achieves the same
reconstruction accuracy as the global approach while using only half the number of
parameters".  Appendix C: with s shared basis vectors the rank becomes 4r − s.
Ours: n = {n}, r = {r}.  Ratio = local parameters / global parameters needed for the same
relative Frobenius error (global: smallest rank q reaching the local point's error; integer
ranks, no interpolation); min/max over all local ranks q' = 1..{r - 1}.  Spectra: `equal`
(every block σ = 2^(-i/4)), `gaussian` (Gaussian r×r core per block: the blocks' spectra differ).

{common.md_table(table)}

**Verdict — ranks: {common.verdict(ok_rank)}.** Rank 4r = {4 * r} with orthogonal blocks and
4r − s when B1, B2 share s vectors, exactly.  Taken literally (A1, A2 sharing s vectors of
R^(n/2)), the overlap does not lower the rank (measured {sorted(set(a['rank']))}): A1 and A2 multiply
different rows; the overlap that matters is within a block row ([A1 A3]) or block column ([B1; B2]).

**Verdict — parameter ratio: {common.verdict(ok_ratio, partly=True)}.** With orthogonal blocks the
local fit needs exactly half the parameters for exact reconstruction and, at equal error, a median
ratio of {s0['ratio_median'].round(3).tolist()} (equal / Gaussian spectra), ranging over
{s0['ratio_min'].min():.3f}–{s0['ratio_max'].max():.3f} across all local ranks.  (With very unequal block
spectra the ratio can move off 0.5: the global SVD spends its rank on the strongest directions of
any block while the local fit gives every block the same rank.)
The advantage shrinks as blocks share directions (ratio_exact = 4nr / (2n(4r−s)) = 2r/(4r−s)) and
needs the right partition: on a random 2×2 partition a rank-r-per-block fit (same parameters as
exact local reconstruction) leaves a relative error of {s0['random_partition_err_at_r'].mean():.2f}.
"""


def main(argv=None) -> pd.DataFrame:
    args = common.parse_args(argv, __doc__.splitlines()[0], name="cps_reconstruction")
    t0 = time.perf_counter()
    n, r = (QUICK_N, QUICK_R) if args.quick else (N, R)
    with common.limit_threads():
        summary, cur = run(n, r, args.seed)
        table = pd.concat([summary.assign(kind="summary"), cur.assign(kind="curve")], ignore_index=True)
        common.write_outputs(NAME, args, "CPS-LoRA appendix B/C, Figure 6: global vs block-wise reconstruction",
                             table, report(summary, n, r), figure(cur, summary, n, r), t0)
    return summary


if __name__ == "__main__":
    main()
