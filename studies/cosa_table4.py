"""CoSA Table 4: δ̂_5, δ̂_10, δ̂_20 over many dictionaries, each cell judged against the spread across dictionaries.

Setting (CoSA appendix B.1): proxy layer m=512, n=256, the four presets
(a, b) = (32, 8), (64, 16), (128, 32), (256, 64); Ψ = Rᵀ⊗L with the 'unit'
scale (Ψ/√(mn) of the paper); N=1000 random s-sparse vectors (Algorithm 1);
δ̂_s = 95th percentile of |‖Ψα‖²/‖α‖² − 1| (eq. 26) — an *estimate* of a
percentile of the distortion, not of δ_s (``studies/rip_bracket.py`` brackets δ_s).

**Verdict rule (stated before the numbers).**  Table 4 reports one number per cell
"over random initializations", so its value should look like a draw of the same
estimator on a fresh dictionary.  Per cell we draw 200 dictionaries and test the
paper's value against their δ̂_s with ``ripkit.stats.null_test`` (two-sided
Monte-Carlo p = 2·min of the one-sided (1 + #{draws at least as extreme})/(1 + 200),
smallest attainable ≈ 0.01).  A cell *reproduces* when p ≥ 0.05 and *does not*
when p < 0.05; beside it z = (paper − our mean)/our across-dictionary std.  If the
paper's value is a mean over K > 1 dictionaries its own spread is √K smaller, so
this rule is lenient towards the paper.  The first 20 dictionaries are those of
``rip_bracket`` and of the earlier 20-dictionary run (z over them is shown too).

The paper's "±" is not defined.  Two spreads sit beside it: the std of δ̂_s across
dictionaries and the std of |r_i − 1| over the N samples within one dictionary
(mean over dictionaries); the evidence says the printed ± is the latter.

Run:  python studies/cosa_table4.py            (≈ 2 min on 2 cores)
      python studies/cosa_table4.py --quick    (≈ 20 s: 20 dictionaries, N = 300)
Writes <out>/cosa_table4.{png,csv,md} (figures/ with --update-figures).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

try:
    from studies._cosa_common import Timer, command_line, md_table, pm, study_parser, write_outputs
except ModuleNotFoundError:  # run as a file: python studies/cosa_table4.py
    from _cosa_common import Timer, command_line, md_table, pm, study_parser, write_outputs
from ripkit._cli import positive_int
from ripkit.plot import new_figure, style
from ripkit.rip import PAPER_TABLE4, PRESETS, rip_trials
from ripkit.rip.presets import PAPER_PRESETS
from ripkit.stats import ALPHA, null_test

NAME = "cosa_table4"
SPARSITY = (5, 10, 20)
#: the dictionaries of the earlier run and of ``rip_bracket`` (z over them kept for traceability)
FIRST = 20


def estimates(name: str, trials: int, n_samples: int, seed: int, jobs: int) -> pd.DataFrame:
    """Per (trial, s): the percentile estimate δ̂_s and the within-sample std of |r_i − 1| (``rip_trials``)."""
    p = PRESETS[name]
    res = rip_trials(p.m, p.n, p.a, p.b, sparsity=SPARSITY, n_samples=n_samples, trials=trials, seed=seed,
                     scale="unit", estimators=("percentile",), n_jobs=jobs)
    rec = res.records
    return rec[["trial", "s", "delta", "abs_dev_mean", "abs_dev_std"]].assign(preset=name)


def judge_cell(name: str, s: int, cell: pd.DataFrame) -> dict:
    """The paper's (mean, ±) of one cell against our δ̂_s over dictionaries (module docstring's rule)."""
    p = PRESETS[name]
    est = cell.sort_values("trial")["delta"].to_numpy()
    paper_mean, paper_std = PAPER_TABLE4[name][s]
    test = null_test(paper_mean, est, alternative="two-sided")
    first = est[:FIRST]
    return {"preset": name, "a": p.a, "b": p.b, "compression": p.m * p.n // (p.a * p.b), "s": s,
            "trials": est.size, "paper_mean": paper_mean, "paper_std": paper_std,
            "est_mean": est.mean(), "est_std_dicts": est.std(ddof=1), "est_min": est.min(), "est_max": est.max(),
            "z": test.z, "p_two_sided": test.p_value,
            "n_dicts_beyond_paper": int(np.count_nonzero(np.abs(est - est.mean()) >= abs(paper_mean - est.mean()))),
            "z_first20": (paper_mean - first.mean()) / first.std(ddof=1) if first.size > 1 else np.nan,
            "paper_above_all_first20": bool(paper_mean > first.max()),
            "reproduces": bool(test.p_value >= ALPHA),
            "dev_std_within": cell["abs_dev_std"].mean(), "z_vs_paper_pm": (est.mean() - paper_mean) / paper_std}


def plot(table: pd.DataFrame, draws: pd.DataFrame):
    fig, axes = new_figure(3, width=3.0, height=2.8)
    names = [n for n in PAPER_PRESETS if n in set(table.preset)]
    x = np.arange(len(names))
    labels = [f"({PRESETS[n].a},{PRESETS[n].b})\n{PRESETS[n].m * PRESETS[n].n // (PRESETS[n].a * PRESETS[n].b)}×"
              for n in names]
    jitter = np.random.default_rng(0).uniform(-0.12, 0.12, size=draws.trial.max() + 1)  # plotting only
    with style():
        for ax, s in zip(axes, SPARSITY):
            t = table[table.s == s].set_index("preset").loc[names]
            for i, name in enumerate(names):
                d = draws[(draws.preset == name) & (draws.s == s)]
                ax.plot(i + 0.15 + jitter[d.trial], d.delta, ".", color="C0", alpha=0.25, markersize=2,
                        label="ours: δ̂_s per dictionary" if i == 0 else None)
            ax.errorbar(x - 0.15, t.paper_mean, t.paper_std, fmt="s", mfc="none", color="C3", capsize=2,
                        label="paper Table 4 (± as printed)")
            ax.plot(x + 0.15, t.est_mean, "_", color="k", markersize=12, label="ours: mean over dictionaries")
            for i, r in enumerate(t.itertuples()):
                if not r.reproduces:
                    ax.annotate(f"p={r.p_two_sided:.2g}", (i, r.paper_mean), textcoords="offset points",
                                xytext=(-8, 8), fontsize=6, color="C3")
            ax.set_xticks(x, labels)
            ax.set_title(f"s = {s}")
        axes[0].set_ylabel(r"95th-percentile estimate $\hat\delta_s$")
        axes[0].legend(frameon=False, fontsize=6, loc="upper left")
    return fig


def verdict(table: pd.DataFrame) -> str:
    ok = table[table.reproduces]
    bad = table[~table.reproduces]
    rows_bad = [n for n in PAPER_PRESETS if n in set(bad.preset) and (bad.preset == n).sum() == len(SPARSITY)]
    ratio_paper = (table.paper_std / table.paper_mean).agg(["min", "max"])
    ratio_within = (table.dev_std_within / table.est_mean).agg(["min", "max"])
    ratio_dicts = (table.est_std_dicts / table.est_mean).agg(["min", "max"])
    inside_pm = int((table.z_vs_paper_pm.abs() <= 1).sum())
    lines = [
        f"- **Against the spread across dictionaries:** {len(ok)} of {len(table)} cells reproduce (p ≥ {ALPHA}). "
        + ("Not reproduced: " + "; ".join(
            f"({r.a},{r.b}) s={r.s}: paper {r.paper_mean:.3f} vs ours {r.est_mean:.3f} ± {r.est_std_dicts:.3f}, "
            f"z = {r.z:.1f}, p = {r.p_two_sided:.3g}" for r in bad.itertuples()) + "." if len(bad) else "")
        + (f" The whole {', '.join(f'`{n}`' for n in rows_bad)} row does not reproduce: the paper's values lie above "
           f"every one of our first {FIRST} dictionaries in "
           f"{int(table[table.preset.isin(rows_bad)].paper_above_all_first20.sum())} of {len(SPARSITY) * len(rows_bad)} "
           f"of its cells (z over those {FIRST}: "
           + " / ".join(f"{z:.1f}" for z in table[table.preset.isin(rows_bad)].z_first20) + ")."
           if rows_bad else ""),
        (f"- **The earlier 20-dictionary view.** Over the first {FIRST} dictionaries the paper's value lies above "
         f"every one of them in {int(table.paper_above_all_first20.sum())} cells ("
         + "; ".join(f"({r.a},{r.b}) s={r.s}: z = {r.z_first20:.1f}, here p = {r.p_two_sided:.2g}"
                     for r in table[table.paper_above_all_first20].itertuples())
         + f"); with {FIRST} draws a two-sided test cannot go below p = {2 / (FIRST + 1):.3f}, so the larger null "
         f"decides. Against all {int(table.trials.iloc[0])} dictionaries, "
         f"{int(table[table.paper_above_all_first20].reproduces.sum())} of these "
         f"{int(table.paper_above_all_first20.sum())} cells reproduce (p ≥ {ALPHA})." if table.paper_above_all_first20.any() else
         f"- **The earlier 20-dictionary view.** The paper's value lies above all first {FIRST} dictionaries in no cell."),
        f"- **Against the paper's printed ±** (the earlier rule): {inside_pm} of {len(table)} cells lie within it. "
        "That ± is not a spread over dictionaries (next point), so it cannot judge reproduction across seeds.",
        f"- **What the paper's ± is.** Across dictionaries δ̂_s varies little: std/mean = "
        f"{ratio_dicts['min']:.2f}–{ratio_dicts['max']:.2f}, far below the paper's {ratio_paper['min']:.2f}–"
        f"{ratio_paper['max']:.2f}. The std of |r_i − 1| over the N samples *within one dictionary* gives "
        f"std/mean = {ratio_within['min']:.2f}–{ratio_within['max']:.2f} (for a near-Gaussian r, the half-normal gives "
        f"0.60/1.96 = 0.31). The printed ± is a within-sample spread, not a spread over initializations.",
        "- **Trend in s.** The percentile estimate falls as s grows (as in the paper), but δ_s itself is "
        "non-decreasing in s by definition; certified lower bounds rise with s (`rip_bracket`). The fall is a "
        "property of the estimator (a sum of more terms concentrates), not of the dictionary.",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = study_parser(NAME, __doc__.split("\n")[0])
    parser.add_argument("--trials", type=positive_int, default=None,
                        help="dictionaries per preset (default 200; quick 20)")
    parser.add_argument("--jobs", type=positive_int, default=2, help="parallel trials (results do not depend on it)")
    args = parser.parse_args(argv)
    trials = args.trials or (20 if args.quick else 200)
    n_samples = 300 if args.quick else 1000
    with Timer() as timer:
        draws = pd.concat([estimates(name, trials, n_samples, args.seed, args.jobs) for name in PAPER_PRESETS],
                          ignore_index=True)
        table = pd.DataFrame([judge_cell(name, s, draws[(draws.preset == name) & (draws.s == s)])
                              for name in PAPER_PRESETS for s in SPARSITY])
    show = pd.DataFrame({
        "config (a,b)": [f"({a},{b})" for a, b in zip(table.a, table.b)], "ratio": table.compression.map("{}×".format),
        "s": table.s, "paper δ̂_s": [pm(m, s) for m, s in zip(table.paper_mean, table.paper_std)],
        "ours δ̂_s (± over dicts)": [pm(m, s) for m, s in zip(table.est_mean, table.est_std_dicts)],
        "ours min–max": [f"{lo:.3f}–{hi:.3f}" for lo, hi in zip(table.est_min, table.est_max)],
        "z": table.z, "p (two-sided)": table.p_two_sided,
        f"z over first {FIRST}": table.z_first20,
        "verdict": np.where(table.reproduces, "reproduces", "does not reproduce"),
        "std of |r−1| within dict": table.dev_std_within})
    md = f"""# CoSA Table 4 reproduction (appendix B.1–B.2), judged against the spread across dictionaries

Command: `{command_line(NAME, argv)}` — {timer.seconds:.0f} s on this machine.
{trials} independent dictionaries per preset (trial t drawn from SeedSequence({args.seed}, spawn_key=(t, 0))),
m=512, n=256, scale `unit` (Ψ/√(mn)), N={n_samples} random s-sparse vectors (CoSA Algorithm 1), 95th percentile.

**Verdict rule (stated before the numbers).** A cell *reproduces* when the paper's value is a plausible draw of
our estimator on a fresh dictionary: two-sided Monte-Carlo p ≥ {ALPHA} from `ripkit.stats.null_test` against our
{trials} dictionaries (p = 2·min of the one-sided (1 + #draws at least as extreme)/(1 + {trials}), smallest
attainable {2 / (trials + 1):.3f}); it *does not reproduce* when p < {ALPHA}. z = (paper − our mean)/(our std across dictionaries). If the paper averaged K > 1
dictionaries per cell its spread is √K smaller, so this rule is lenient towards the paper. "z over first {FIRST}"
uses the {FIRST} dictionaries of `rip_bracket` and of the earlier 20-dictionary run.

**Read the columns this way.** δ̂_s is the paper's estimator — an *estimate* of the 95th percentile of the
distortion over random supports, not of δ_s (certified brackets of δ_s: `figures/rip_bracket.md`).

{md_table(show)}

## Verdict

{verdict(table)}
"""
    write_outputs(args.out, NAME, table, plot(table, draws), md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
