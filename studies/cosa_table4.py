"""CoSA Table 4: δ_5, δ_10, δ_20 over independent dictionaries, beside the paper, with certified brackets.

Setting (CoSA appendix B.1): proxy layer m=512, n=256, the four presets
(a, b) = (32, 8), (64, 16), (128, 32), (256, 64); Ψ = Rᵀ⊗L with the 'unit'
scale (Ψ/√(mn) of the paper); N=1000 random s-sparse vectors; δ̂_s = 95th
percentile of |‖Ψα‖²/‖α‖² − 1| (an *estimate* of a percentile of the
distortion, not of δ_s).  Beside it, per dictionary, the certified bracket
lower ≤ δ_s ≤ upper of ``ripkit.rip.bracket`` — what the RIP constant itself is.

The paper's "±" is not defined.  We report two spreads: the std of δ̂_s across
dictionaries (what "over random initializations" suggests) and the std of
|r_i − 1| over the N samples within one dictionary (mean over dictionaries).

Run:  python -m studies.cosa_table4            (≈4 CPU-minutes; 10.5 min wall on 2 busy shared cores)
      python -m studies.cosa_table4 --quick    (≈1 min)
Writes figures/cosa_table4.{png,csv,md}.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

try:
    from studies._cosa_common import Timer, command_line, md_table, pm, study_parser, write_outputs
except ModuleNotFoundError:  # run as a file: python studies/cosa_table4.py
    from _cosa_common import Timer, command_line, md_table, pm, study_parser, write_outputs
from ripkit.plot import new_figure, style
from ripkit.rip import PAPER_TABLE4, PRESETS, isometry_ratios, rip_trials, sample_sparse_vectors, trial_dictionary
from ripkit.rip.presets import PAPER_PRESETS

NAME = "cosa_table4"
SPARSITY = (5, 10, 20)


def within_spread(p, seed: int, trials: int, n_samples: int) -> pd.DataFrame:
    """Per (trial, s): δ̂_s recomputed from the raw ratios, and mean/std of |r_i − 1| over the N samples.

    Uses exactly the dictionaries and samples of ``rip_trials`` (same SeedSequence keys).
    """
    rows = []
    for t in range(trials):
        d = trial_dictionary(p.m, p.n, p.a, p.b, seed, t, scale="unit")
        gram = d.gram_factors()
        for s in SPARSITY:
            ss = np.random.SeedSequence(seed, spawn_key=(t, 1, s))
            dev = np.abs(isometry_ratios(*gram, sample_sparse_vectors(p.a * p.b, s, n_samples, ss)) - 1.0)
            rows.append({"trial": t, "s": s, "p95": np.percentile(dev, 95), "dev_mean": dev.mean(),
                         "dev_std": dev.std(ddof=1)})
    return pd.DataFrame(rows)


def preset_rows(name: str, res, within: pd.DataFrame) -> list[dict]:
    rec, p = res.records, PRESETS[name]
    rows = []
    for s in SPARSITY:
        est = rec[(rec.estimator == "percentile") & (rec.s == s)].set_index("trial")["delta"]
        sup = rec[(rec.estimator == "support") & (rec.s == s)]["delta"]
        br = rec[(rec.estimator == "bracket") & (rec.s == s)]
        w = within[within.s == s].set_index("trial")
        if not np.allclose(w["p95"].loc[est.index], est, rtol=1e-12, atol=1e-12):
            raise RuntimeError(f"{name} s={s}: recomputed percentiles differ from rip_trials'")
        paper_mean, paper_std = PAPER_TABLE4[name][s]
        row = {"preset": name, "a": p.a, "b": p.b, "compression": p.m * p.n // (p.a * p.b), "s": s,
               "trials": len(est), "paper_mean": paper_mean, "paper_std": paper_std,
               "est_mean": est.mean(), "est_std_dicts": est.std(ddof=1), "est_min": est.min(),
               "est_max": est.max(), "dev_std_within": w["dev_std"].mean(),
               "z_vs_paper": (est.mean() - paper_mean) / paper_std,
               "support_lower_mean": sup.mean(), "mu_mean": res.coherence["mu"].mean()}
        if len(br):
            row.update(bracket_lower_mean=br["lower"].mean(), bracket_lower_min=br["lower"].min(),
                       bracket_upper_mean=br["upper"].mean(), bracket_upper_max=br["upper"].max(),
                       lower_by=br["lower_by"].mode().iloc[0], upper_by=br["upper_by"].mode().iloc[0],
                       bracket_seconds=br["seconds"].sum())
        rows.append(row)
    return rows


def plot(table: pd.DataFrame):
    fig, axes = new_figure(3, width=3.0, height=2.8)
    names = [n for n in PAPER_PRESETS if n in set(table.preset)]
    x = np.arange(len(names))
    labels = [f"({PRESETS[n].a},{PRESETS[n].b})\n{PRESETS[n].m * PRESETS[n].n // (PRESETS[n].a * PRESETS[n].b)}×"
              for n in names]
    with style():
        for ax, s in zip(axes, SPARSITY):
            t = table[table.s == s].set_index("preset").loc[names]
            ax.errorbar(x - 0.12, t.paper_mean, t.paper_std, fmt="s", mfc="none", color="C3", capsize=2,
                        label="paper Table 4 (± as printed)")
            ax.errorbar(x + 0.12, t.est_mean, t.est_std_dicts, fmt="o", color="C0", capsize=2,
                        label="ours: 95th pct (± std over dicts)")
            if "bracket_lower_mean" in t:
                ax.vlines(x + 0.3, t.bracket_lower_mean, t.bracket_upper_mean, color="k", linewidth=4, alpha=0.5,
                          label="certified lower–upper δ_s (mean)")
            ax.axhline(0.5, color="grey", linestyle="--", linewidth=0.8, label="0.5 threshold")
            ax.set_yscale("log")
            ax.set_xticks(x, labels)
            ax.set_title(f"s = {s}")
        axes[0].set_ylabel(r"$\delta_s$")
        axes[0].legend(frameon=False, fontsize=6, loc="upper left")
    return fig


def verdict(table: pd.DataFrame) -> str:
    inside = (table.z_vs_paper.abs() <= 1).sum()
    ratio_paper = (table.paper_std / table.paper_mean).agg(["min", "max"])
    ratio_within = (table.dev_std_within / table.est_mean).agg(["min", "max"])
    ratio_dicts = (table.est_std_dicts / table.est_mean).agg(["min", "max"])
    lines = [
        f"- **Percentile estimate vs Table 4.** {inside} of {len(table)} cells of our mean δ̂_s lie within "
        f"the paper's printed ± of its mean (|z| ≤ 1); |z| ranges {table.z_vs_paper.abs().min():.2f}–"
        f"{table.z_vs_paper.abs().max():.2f}. Our means are {'lower' if (table.z_vs_paper < 0).mean() > 0.5 else 'higher'} "
        f"than the paper's in {max((table.z_vs_paper < 0).sum(), (table.z_vs_paper > 0).sum())} of {len(table)} cells "
        f"(our range {table.est_mean.min():.3f}–{table.est_mean.max():.3f}, paper 0.082–0.166).",
        f"- **What the paper's ± is.** Across dictionaries δ̂_s varies very little: std/mean = "
        f"{ratio_dicts['min']:.2f}–{ratio_dicts['max']:.2f}, far below the paper's {ratio_paper['min']:.2f}–"
        f"{ratio_paper['max']:.2f}. The std of |r_i − 1| over the N samples *within one dictionary* gives "
        f"std/mean = {ratio_within['min']:.2f}–{ratio_within['max']:.2f} (for a near-Gaussian r, the half-normal gives "
        f"0.60/1.96 = 0.31). Evidence that the printed ± is a within-sample spread, not a spread over initializations; "
        f"by that reading the paper's ± says nothing about reproducibility across seeds.",
        "- **Trend in s.** The percentile estimate falls as s grows (as in the paper), but δ_s itself is "
        "non-decreasing in s by definition; the certified lower bounds rise with s. The fall is a property "
        "of the estimator (a sum of more terms concentrates), not of the dictionary.",
    ]
    if "bracket_lower_mean" in table:
        above = table[table.bracket_lower_min > 0.5]
        lines.append(
            f"- **The RIP constant itself.** Certified lower bounds on δ_s are {table.bracket_lower_mean.min():.2f}–"
            f"{table.bracket_lower_mean.max():.2f} (mean over dictionaries), i.e. "
            f"{(table.bracket_lower_mean / table.est_mean).min():.1f}–{(table.bracket_lower_mean / table.est_mean).max():.1f}× "
            f"the percentile estimate; in {len(above)} of {len(table)} cells *every* dictionary has δ_s > 0.5 "
            f"(certified). Table 4's numbers are typical distortions, not RIP constants; the claim "
            f"'δ_s < 0.5 for all configurations' does not hold for δ_s.")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = study_parser(NAME, __doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=None, help="dictionaries per preset (default 20; quick 3)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel trials (results do not depend on it)")
    args = parser.parse_args(argv)
    trials = args.trials or (3 if args.quick else 20)
    n_samples = 300 if args.quick else 1000
    budget = 0.2 if args.quick else None  # None: every adversarial search runs to the end (deterministic)
    rows = []
    with Timer() as timer:
        for name in PAPER_PRESETS:
            p = PRESETS[name]
            res = rip_trials(p.m, p.n, p.a, p.b, sparsity=SPARSITY, n_samples=n_samples, trials=trials,
                             seed=args.seed, scale="unit", estimators=("percentile", "support", "bracket"),
                             n_jobs=args.jobs, budget_seconds=budget)
            rows += preset_rows(name, res, within_spread(p, args.seed, trials, n_samples))
    table = pd.DataFrame(rows)
    show = pd.DataFrame({
        "config (a,b)": [f"({a},{b})" for a, b in zip(table.a, table.b)], "ratio": table.compression.map("{}×".format),
        "s": table.s, "paper δ_s": [pm(m, s) for m, s in zip(table.paper_mean, table.paper_std)],
        "ours δ̂_s (± over dicts)": [pm(m, s) for m, s in zip(table.est_mean, table.est_std_dicts)],
        "ours std of |r−1| within dict": table.dev_std_within, "z vs paper": table.z_vs_paper,
        "certified lower (mean / min)": [f"{m:.3f} / {s:.3f}" for m, s in zip(table.bracket_lower_mean, table.bracket_lower_min)],
        "certified upper (mean / max)": [f"{m:.3f} / {s:.3f}" for m, s in zip(table.bracket_upper_mean, table.bracket_upper_max)],
        "μ (mean)": table.mu_mean})
    md = f"""# CoSA Table 4 reproduction (appendix B.1–B.2)

Command: `{command_line(NAME, argv)}` — {timer.seconds:.0f} s on this machine.
{trials} independent dictionaries per preset (trial t drawn from SeedSequence({args.seed}, spawn_key=(t, 0))),
m=512, n=256, scale `unit` (Ψ/√(mn)), N={n_samples} random s-sparse vectors (CoSA Algorithm 1), 95th percentile.
Certified brackets from `ripkit.rip.bracket.rip_bracket` on the same dictionaries
({'adversarial searches capped at %.1f s' % budget if budget else 'every search run to completion'}).

**Read the columns this way.** "ours δ̂_s" is the paper's estimator — an *estimate* of the 95th percentile of
the distortion over random supports, not of δ_s. "certified lower" is attained by an explicit sparse vector,
so δ_s ≥ it (a lower bound); "certified upper" is proved, so δ_s ≤ it (an upper bound).

{md_table(show)}

## Verdict

{verdict(table)}
"""
    write_outputs(args.out, NAME, table, plot(table), md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
