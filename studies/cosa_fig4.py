"""CoSA Figure 4 (appendix B.2): the four panels, beside the paper's numbers.

(a) δ̂_s vs compression ratio mn/ab (log axis) with the 0.5 threshold;
(b) theory C·sqrt(s·log(n)/m) vs empirical δ̂_s with the diagonal;
(c) the ratio theory/empirical per configuration;
(d) mutual coherence μ(Ψ) vs compression with 1/√s_max (s_max = 20).

Theory curve: C = 1, m = m·n (the rows of Ψ, the number of measurements of the
mn×ab sensing matrix in the classical statement of A.2) and n = a·b (the paper's
own "n = ab" in A.2).  The paper fixes neither C nor m, so we do not tune C: we
report, for several readings of (m, n), which C the paper's stated ratio ranges
(0.35–1.18 at 8–32×, 0.23–0.91 at 128–512×) would require.

Run:  python -m studies.cosa_fig4            (≈30 s)
      python -m studies.cosa_fig4 --quick
Writes figures/cosa_fig4.{png,csv,md}.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

try:
    from studies._cosa_common import Timer, command_line, md_table, study_parser, write_outputs
except ModuleNotFoundError:  # run as a file
    from _cosa_common import Timer, command_line, md_table, study_parser, write_outputs
from ripkit.bounds import theory_delta
from ripkit.coherence import recovery_condition
from ripkit.plot import new_figure, style
from ripkit.rip import PAPER_TABLE4, PRESETS, rip_trials
from ripkit.rip.presets import PAPER_COHERENCE, PAPER_PRESETS

NAME = "cosa_fig4"
SPARSITY = (5, 10, 20)
C_THEORY = 1.0
#: Readings of (m, n) in δ_s ≤ C·sqrt(s·log(n)/m): name -> (m_measurements, n_ambient) from a preset.
READINGS = {
    "m=mn (rows of Ψ), n=ab": lambda p: (p.m * p.n, p.a * p.b),  # the curve we plot
    "m=m (layer rows), n=ab": lambda p: (p.m, p.a * p.b),
    "m=ab, n=ab": lambda p: (p.a * p.b, p.a * p.b),
    "m=ab, n=mn": lambda p: (p.a * p.b, p.m * p.n),
    "m=m, n=n (layer shape)": lambda p: (p.m, p.n),
}
#: B.2: theory/empirical ratio ranges stated per compression group.
PAPER_RATIO_RANGES = {"8–32×": (("conservative", "moderate"), 0.35, 1.18),
                      "128–512×": (("aggressive", "extreme"), 0.23, 0.91)}


def measure(trials: int, n_samples: int, seed: int) -> pd.DataFrame:
    """Per (preset, s): percentile δ̂_s and sampled-support lower bound over ``trials`` dictionaries, and μ."""
    rows = []
    for name in PAPER_PRESETS:
        p = PRESETS[name]
        res = rip_trials(p.m, p.n, p.a, p.b, sparsity=SPARSITY, n_samples=n_samples, trials=trials, seed=seed,
                         scale="unit", estimators=("percentile", "support"))
        rec, mu = res.records, res.coherence["mu"]
        m_meas, n_amb = READINGS["m=mn (rows of Ψ), n=ab"](p)
        for s in SPARSITY:
            est = rec[(rec.estimator == "percentile") & (rec.s == s)]["delta"]
            sup = rec[(rec.estimator == "support") & (rec.s == s)]["delta"]
            theory = theory_delta(s, n_amb, m_meas, C_THEORY)
            paper = PAPER_TABLE4[name][s][0]
            rows.append({"preset": name, "a": p.a, "b": p.b, "compression": p.m * p.n / (p.a * p.b), "s": s,
                         "trials": len(est), "est_mean": est.mean(), "est_std": est.std(ddof=1),
                         "support_lower_mean": sup.mean(), "paper_delta": paper, "theory_C1": theory,
                         "ratio_ours": theory / est.mean(), "ratio_paper": theory / paper,
                         "mu_mean": mu.mean(), "mu_min": mu.min(), "mu_max": mu.max(),
                         "paper_mu": PAPER_COHERENCE.get(name, np.nan)})
    return pd.DataFrame(rows)


def implied_constants(table: pd.DataFrame) -> pd.DataFrame:
    """For each reading and compression group: the C that matches the paper's min ratio and its max ratio.

    A reading is consistent with the paper's text if the two C agree (one C fits both ends).
    """
    rows = []
    for reading, fn in READINGS.items():
        for group, (names, lo, hi) in PAPER_RATIO_RANGES.items():
            for source, col in (("paper Table 4", "paper_delta"), ("ours", "est_mean")):
                sub = table[table.preset.isin(names)]
                t = np.array([theory_delta(int(r.s), fn(PRESETS[r.preset])[1], fn(PRESETS[r.preset])[0], 1.0)
                              for r in sub.itertuples()])
                rho = t / sub[col].to_numpy()
                rows.append({"reading": reading, "group": group, "empirical": source,
                             "ratio_range_at_C1": f"{rho.min():.3g}–{rho.max():.3g}",
                             "C_for_paper_min": lo / rho.min(), "C_for_paper_max": hi / rho.max(),
                             "one_C_fits": bool(abs(np.log((lo / rho.min()) / (hi / rho.max())) < np.log(1.1)))})
    return pd.DataFrame(rows)


def plot(table: pd.DataFrame):
    fig, axes = new_figure(4, width=2.9, height=2.8)
    colors = {5: "C0", 10: "C1", 20: "C2"}
    with style():
        ax = axes[0]
        for s in SPARSITY:
            t = table[table.s == s].sort_values("compression")
            ax.errorbar(t.compression, t.est_mean, t.est_std, marker="o", color=colors[s], capsize=2,
                        label=f"ours s={s}")
            ax.plot(t.compression, t.paper_delta, "s", mfc="none", color=colors[s])
            ax.plot(t.compression, t.support_lower_mean, ":", color=colors[s])
        ax.axhline(0.5, color="grey", linestyle="--", linewidth=0.8, label="δ = 0.5")
        ax.set(xscale="log", xlabel="compression mn/ab", ylabel=r"$\delta_s$", title="(a) δ̂_s vs compression")
        ax.plot([], [], "s", mfc="none", color="k", label="paper Table 4")
        ax.plot([], [], ":", color="k", label="sampled-support lower bound")
        ax.legend(frameon=False, fontsize=6)

        ax = axes[1]
        for s in SPARSITY:
            t = table[table.s == s]
            ax.plot(t.theory_C1, t.est_mean, "o", color=colors[s], label=f"ours s={s}")
            ax.plot(t.theory_C1, t.paper_delta, "s", mfc="none", color=colors[s])
        hi = max(table.est_mean.max(), table.paper_delta.max(), table.theory_C1.max()) * 1.1
        ax.plot([0, hi], [0, hi], "k--", linewidth=0.8, label="theory = empirical")
        ax.set(xlim=(0, hi), ylim=(0, hi), xlabel="theory C·sqrt(s log(ab)/(mn)), C=1", ylabel="empirical δ̂_s",
               title="(b) theory vs empirical")
        ax.legend(frameon=False, fontsize=6)

        ax = axes[2]
        labels = [f"({r.a},{r.b}) s={r.s}" for r in table.itertuples()]
        x = np.arange(len(table))
        ax.bar(x - 0.2, table.ratio_ours, 0.4, label="ours")
        ax.bar(x + 0.2, table.ratio_paper, 0.4, label="paper δ", color="C3", alpha=0.6)
        ax.axhline(1.0, color="k", linewidth=0.8)
        ax.set_xticks(x, labels, rotation=90, fontsize=6)
        ax.set(ylabel="theory / empirical (C=1)", title="(c) ratio per configuration")
        ax.legend(frameon=False, fontsize=6)

        ax = axes[3]
        t = table[table.s == SPARSITY[0]].sort_values("compression")
        ax.errorbar(t.compression, t.mu_mean, [t.mu_mean - t.mu_min, t.mu_max - t.mu_mean], marker="o",
                    capsize=2, label="ours μ(Ψ) (min–max)")
        ax.plot(t.compression, t.paper_mu, "s", mfc="none", color="C3", label="paper (B.2 text)")
        ax.axhline(1 / np.sqrt(max(SPARSITY)), color="grey", linestyle="--", label="1/√20 = 0.224")
        ax.set(xscale="log", xlabel="compression mn/ab", ylabel="μ(Ψ)", title="(d) coherence")
        ax.legend(frameon=False, fontsize=6)
    return fig


def verdict(table: pd.DataFrame, consts: pd.DataFrame) -> str:
    s_max = max(SPARSITY)
    cond = [recovery_condition(mu, s_max) for mu in table.drop_duplicates("preset").mu_max]
    n_ok = sum(c["holds_sqrt"] for c in cond)
    fit = consts[(consts.empirical == "paper Table 4") & consts.one_C_fits]
    plotted = consts[(consts.reading == next(iter(READINGS))) & (consts.empirical == "paper Table 4")]
    c_star = float(np.exp(np.log(plotted[["C_for_paper_min", "C_for_paper_max"]].to_numpy()).mean()))

    def ours_at(c, group):
        rho = c * table[table.preset.isin(PAPER_RATIO_RANGES[group][0])].ratio_ours
        return f"{rho.min():.2f}–{rho.max():.2f}"

    return "\n".join([
        f"- **(a)** Every δ̂_s is below 0.5 ({table.est_mean.min():.3f}–{table.est_mean.max():.3f}), as in the paper — "
        f"but this is the percentile estimate; the sampled-support lower bounds alone already reach "
        f"{table.support_lower_mean.max():.2f} (mean), and `cosa_table4` brackets δ_s itself. "
        f"δ̂_s hardly depends on the compression ratio (the paper's non-monotone 0.12–0.17 is within its noise).",
        f"- **(b, c)** With C = 1, m = mn, n = ab the theory is {table.theory_C1.min():.3f}–{table.theory_C1.max():.3f}, "
        f"below every empirical value (ratios {table.ratio_ours.min():.2f}–{table.ratio_ours.max():.2f}): the points lie "
        f"*above* the diagonal in (b). The paper's text says both that measurements fall below the diagonal "
        f"(theory > empirical) and that the ratios theory/empirical are 0.23–1.18 (mostly < 1, theory < empirical); "
        f"these two statements contradict each other.",
        f"- **Which C would the paper's ratio ranges need?** With the paper's own Table 4 values, one C fits both ends of a "
        f"stated range only for: {', '.join(f'{r.reading} at {r.group} (C≈{r.C_for_paper_min:.2f})' for r in fit.itertuples()) or 'no reading'}. "
        f"With our δ̂_s and the plotted reading, C = {c_star:.2f} (the geometric mean of the C implied by the paper's "
        f"numbers) gives ratios {ours_at(c_star, '8–32×')} at 8–32× and {ours_at(c_star, '128–512×')} at 128–512× "
        f"(paper: 0.35–1.18 and 0.23–0.91): the paper's ratios are reproduced by m = mn, n = ab and C ≈ {c_star:.1f}, "
        f"a constant the paper does not state. The theory curve is a scaling law with an "
        f"unspecified constant, not a bound, so any agreement here is by choice of C.",
        f"- **(d)** μ(Ψ) = max(μ(L), μ(Rᵀ)) exactly, {table.mu_mean.min():.3f}–{table.mu_mean.max():.3f} (mean); "
        f"{n_ok} of {len(cond)} presets have max μ < 1/√20 = 0.224 over all dictionaries. Paper: 0.163 (extreme), "
        f"0.219 (moderate), all < 0.224. Coherence grows as compression falls (more columns, more pairs). "
        f"Note μ < 1/√s is not a recovery guarantee; the classical sufficient condition μ < 1/(2s−1) = "
        f"{1 / (2 * s_max - 1):.3f} fails for every preset.",
    ])


def main(argv=None) -> int:
    parser = study_parser(NAME, __doc__.split("\n")[0])
    args = parser.parse_args(argv)
    trials, n_samples = (5, 300) if args.quick else (20, 1000)
    with Timer() as timer:
        table = measure(trials, n_samples, args.seed)
        consts = implied_constants(table)
    show = table[["a", "b", "compression", "s", "paper_delta", "est_mean", "est_std", "support_lower_mean",
                  "theory_C1", "ratio_paper", "ratio_ours", "mu_mean", "paper_mu"]]
    md = f"""# CoSA Figure 4 reproduction (appendix B.2)

Command: `{command_line(NAME, argv)}` — {timer.seconds:.0f} s on this machine.
{trials} dictionaries per preset (same seeds, hence the same dictionaries and samples, as `cosa_table4`),
m=512, n=256, scale `unit`, N={n_samples}, 95th percentile. "est" is the paper's percentile *estimate*;
"support_lower_mean" is the mean over dictionaries of max_S δ_S over the sampled supports, a *lower bound*
on each dictionary's δ_s. μ is exact (Kronecker identity μ(Rᵀ⊗L) = max(μ(L), μ(Rᵀ))).

**Theory curve.** δ_s ≈ C·sqrt(s·log(n)/m) with **C = {C_THEORY:g}, m = m·n = 131072** (the rows of Ψ: the
number of measurements when Ψ (mn×ab) is read as the sensing matrix of A.2) and **n = a·b** (A.2: "n = ab =
ambient dimension"). We take C = 1 because the paper gives no value and tuning it would make agreement
automatic. This is a scaling law, not a certified bound on any matrix.

{md_table(show)}

## Constant C implied by the paper's stated ratio ranges

For each reading of (m, n): the C at which the smallest ratio equals the paper's lower end, and the C at which
the largest equals its upper end. One reading "fits" a group if both C agree within 10 %.

{md_table(consts, floatfmt=".3g")}

## Verdict

{verdict(table, consts)}
"""
    write_outputs(args.out, NAME, table, plot(table), md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
