"""Is a real fine-tuning update sparse in Ψ?  Energy of ΔW inside range(Ψ), and the least-squares core against nulls.

CoSA's premise (section 3.2 and 4.1: ΔW is "the sparse target matrix" synthesised as Ψα with
α = vec(Y)) is testable on updates CoSA did not make: full fine-tuning and LoRA ΔW from the
committed MiniLM runs.  For each layer's ΔW (m×n) and random L (m×a), R (b×n):

1. **Energy inside range(Ψ).**  range(Ψ) = {L·Y·R}; its orthogonal projector is ΔW ↦ P_L·ΔW·P_R
   (``ripkit.conditioning.range_energy``, exact from the factors).  For independent Gaussian L, R the
   column and row spaces are Haar-distributed, so E‖P_L ΔW P_R‖² = (a/m)(b/n)‖ΔW‖² *exactly*, for
   every ΔW: tr(E[P_L] ΔW E[P_R] ΔWᵀ) with E[P_L] = (a/m)I, E[P_R] = (b/n)I.  A random Ψ cannot be
   aligned with an update drawn independently of it; we measure the fraction as ab/mn varies
   (a/m = b/n = ρ) beside the energy the best rank-r approximation keeps with the same number of
   parameters, r = ⌊ab/(m + n)⌋ (Eckart–Young).
2. **Is the least-squares core sparse or low-rank?**  Y* = L⁺·ΔW·R⁺ (``ripkit.conditioning.ls_core``;
   vec(Y*) = Ψ⁺vec(ΔW)) at the runs' (a, b) = (128, 128).  Statistics (both scale-free, smaller =
   more structured): ``k90``, the fraction of Y*'s entries that hold 90 % of its energy; and the
   energy rank at 95 % (CoSA B.3's "effective rank").  Two nulls, 200 draws per layer
   (``ripkit.stats.null_test``, one-sided 'less'):

   * *equal-norm Gaussian ΔW* (the issue's null): with L = Q_L T_L and Rᵀ = Q_R T_R (thin QR),
     Y = T_L⁻¹ (Q_Lᵀ G Q_R) T_R⁻ᵀ, and Q_Lᵀ G Q_R of a Gaussian G is an i.i.d. Gaussian a×b matrix, so
     the null core is T_L⁻¹ Z T_R⁻ᵀ with Z i.i.d. — exact in distribution; the norm is irrelevant to
     scale-free statistics;
   * *same-spectrum ΔW* (controls for ΔW's own low rank): U·diag(σ(ΔW))·Vᵀ with Haar U, V.

**Verdict rule (stated before the numbers).**  Per run and null, the per-layer p-values are combined by
the intersection–union test (``combine_pvalues(..., 'max')``: "in every layer"): *sparser / lower-rank
than the null* if that p < 0.05, *denser / higher-rank* if the opposite one-sided p < 0.05 in every
layer, else *inconclusive*.  One training run per method: this is evidence about these runs, not over
training seeds.

Checkpoints read: ``studies/runs/{full,lora-r8}`` and, when the campaign commits full checkpoints there,
``studies/runs/minilm/{full,lora-r8}-s{S}`` (the md lists which ones were found).

Run:  python studies/cosa_sparsity_premise.py            (≈ 5 min on 2 busy cores)
      python studies/cosa_sparsity_premise.py --quick    (≈ 20 s: 30 null draws, 2 ρ values, 6 LoRA layers)
Writes <out>/cosa_sparsity_premise.{png,csv,md} (figures/ with --update-figures).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

try:
    from studies._common import RUNS
    from studies._cosa_common import (Timer, blas_threads, command_line, md_table, repo_relative, study_parser,
                                      write_outputs)
except ModuleNotFoundError:  # run as a file
    from _common import RUNS
    from _cosa_common import (Timer, blas_threads, command_line, md_table, repo_relative, study_parser,
                              write_outputs)
from ripkit.checkpoints import load_adapter
from ripkit.conditioning import ls_core, range_energy
from ripkit.plot import new_figure, style
from ripkit.projections import layer_seed, projection_pair
from ripkit.spectra import energy_rank
from ripkit.stats import ALPHA, combine_pvalues, null_test

NAME = "cosa_sparsity_premise"
RHOS = (0.125, 0.25, 1 / 3, 0.5, 0.75)
CORE_AB = (128, 128)
ENERGY = 0.9


def checkpoints(runs: Path = RUNS) -> list[tuple[str, Path]]:
    """(label, folder) of every full-FT or LoRA checkpoint with its tensors present."""
    found = []
    for method in ("full", "lora-r8"):
        candidates = [runs / method] + sorted((runs / "minilm").glob(f"{method}-s*"))
        for folder in candidates:
            if (folder / "ripkit_adapter.json").is_file() and (folder / "adapter_model.safetensors").is_file():
                found.append((method if folder.parent == runs else f"{method} {folder.name}", folder))
    return found


def k_fraction(y: np.ndarray, energy: float = ENERGY) -> float:
    """Smallest fraction of entries of y whose squares sum to ``energy`` of ‖y‖² (smaller = sparser)."""
    e = np.sort(np.ravel(y) ** 2)[::-1]
    c = np.cumsum(e)
    return (int(np.searchsorted(c, energy * c[-1] * (1 - 1e-12))) + 1) / e.size


def _factors(m, n, a, b, seed, name):
    left, right = projection_pair(m, n, a, b, layer_seed(seed, f"premise:{name}"), scale="unit")
    q_l, t_l = np.linalg.qr(left)
    q_r, t_r = np.linalg.qr(right.T)
    return left, right, q_l, t_l, q_r, t_r


def _haar(rng, rows, cols):
    """A rows×cols matrix with Haar-distributed orthonormal columns (QR of a Gaussian, signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((rows, cols)))
    return q * np.sign(np.diag(r))


def null_cores(dw, q_l, t_l, q_r, t_r, draws, rng) -> dict[str, list[np.ndarray]]:
    """Least-squares cores of the two nulls (module docstring), ``draws`` each."""
    a, b = t_l.shape[0], t_r.shape[0]
    inv_l, inv_r = np.linalg.inv(t_l), np.linalg.inv(t_r)  # T is a×a (b×b), well conditioned (κ(L) ≈ 3.7)
    u, sv, vt = np.linalg.svd(dw, full_matrices=False)
    k = int(np.count_nonzero(sv > sv[0] * max(dw.shape) * np.finfo(float).eps))
    gauss = [inv_l @ rng.standard_normal((a, b)) @ inv_r.T for _ in range(draws)]
    spec = [core_of_factors(_haar(rng, dw.shape[0], k), sv[:k], _haar(rng, dw.shape[1], k), q_l, inv_l, q_r, inv_r)
            for _ in range(draws)]
    return {"equal-norm Gaussian": gauss, "same spectrum": spec}


def core_of_factors(u, sv, v, q_l, inv_l, q_r, inv_r) -> np.ndarray:
    """L⁺·(U diag(σ) Vᵀ)·R⁺ = T_L⁻¹ (Q_Lᵀ U) diag(σ) (Vᵀ Q_R) T_R⁻ᵀ without forming the m×n matrix."""
    return inv_l @ ((q_l.T @ u) * sv) @ (v.T @ q_r) @ inv_r.T


def core_rows(label, layer, seed, draws) -> list[dict]:
    dw = layer.delta_w()
    m, n = dw.shape
    a, b = CORE_AB
    left, right, q_l, t_l, q_r, t_r = _factors(m, n, a, b, seed, layer.name)
    y = ls_core(dw, left, right)
    obs = {"k90": k_fraction(y), "energy_rank": energy_rank(y)}
    rng = np.random.default_rng(layer_seed(seed, f"premise-null:{label}:{layer.name}"))
    rows = []
    for null, cores in null_cores(dw, q_l, t_l, q_r, t_r, draws, rng).items():
        for stat, fn in (("k90", k_fraction), ("energy_rank", energy_rank)):
            vals = np.array([fn(c) for c in cores], dtype=float)
            lo, hi = null_test(obs[stat], vals, alternative="less"), null_test(obs[stat], vals, alternative="greater")
            rows.append({"table": "core", "run": label, "layer": layer.name, "m": m, "n": n, "a": a, "b": b,
                         "null": null, "statistic": stat, "observed": obs[stat], "null_mean": lo.null_mean,
                         "null_low": lo.null_low, "null_high": lo.null_high, "p_less": lo.p_value,
                         "p_greater": hi.p_value, "draws": draws, "dw_energy_rank": energy_rank(dw)})
    return rows


def energy_rows(label, layer, seed, rhos, draws) -> list[dict]:
    dw = layer.delta_w()
    m, n = dw.shape
    sv2 = np.linalg.svd(dw, compute_uv=False) ** 2
    rows = []
    for rho in rhos:
        a, b = max(1, round(rho * m)), max(1, round(rho * n))
        fr = [range_energy(dw, *projection_pair(m, n, a, b, layer_seed(seed, f"premise:{layer.name}:{a}x{b}:{d}")))
              for d in range(draws)]
        r = (a * b) // (m + n)
        rows.append({"table": "energy", "run": label, "layer": layer.name, "m": m, "n": n, "a": a, "b": b,
                     "ab_over_mn": a * b / (m * n), "energy_mean": float(np.mean(fr)), "energy_std": float(np.std(fr, ddof=1)),
                     "draws": draws, "rank_equal_params": r, "svd_energy_equal_params": float(sv2[:r].sum() / sv2.sum())})
    return rows


def run_verdicts(core: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (run, null, stat), g in core.groupby(["run", "null", "statistic"], sort=False):
        p_less, p_greater = combine_pvalues(g.p_less, "max"), combine_pvalues(g.p_greater, "max")
        word = ("sparser" if stat == "k90" else "lower rank") if p_less < ALPHA else \
            (("denser" if stat == "k90" else "higher rank") if p_greater < ALPHA else "inconclusive")
        rows.append({"run": run, "null": null, "statistic": stat, "layers": len(g),
                     "observed_mean": g.observed.mean(), "null_mean": g.null_mean.mean(),
                     "p_every_layer_less": p_less, "p_every_layer_greater": p_greater,
                     "layers_smaller_p05": int((g.p_less < ALPHA).sum()), "verdict": word})
    return pd.DataFrame(rows)


def plot(energy: pd.DataFrame, core: pd.DataFrame):
    fig, axes = new_figure(3, width=3.3, height=3.0)
    with style():
        ax = axes[0]
        for run, g in energy.groupby("run"):
            agg = g.groupby("ab_over_mn").agg(e=("energy_mean", "mean"), svd=("svd_energy_equal_params", "mean"))
            ax.plot(agg.index, agg.e, "o-", label=f"{run}: inside range(Ψ)")
            ax.plot(agg.index, agg.svd, "s--", alpha=0.7, label=f"{run}: best rank-r, same params")
        xs = np.linspace(0, energy.ab_over_mn.max(), 20)
        ax.plot(xs, xs, "k:", label="ab/mn (exact expectation)")
        ax.set(xlabel="ab/mn", ylabel="fraction of ‖ΔW‖²", title="(a) energy of ΔW inside range(Ψ)")
        ax.legend(frameon=False, fontsize=5)
        for ax, stat, title in ((axes[1], "k90", "(b) k90 of Y* (fraction of entries)"),
                                (axes[2], "energy_rank", "(c) 95 % energy rank of Y*")):
            sub = core[core.statistic == stat]
            labels = list(dict.fromkeys(sub.run))
            for i, run in enumerate(labels):
                for j, (null, color) in enumerate((("equal-norm Gaussian", "C1"), ("same spectrum", "C2"))):
                    g = sub[(sub.run == run) & (sub.null == null)]
                    x = i + 0.25 * (j - 0.5)
                    ax.vlines(np.full(len(g), x), g.null_low, g.null_high, color=color, alpha=0.3,
                              label=f"null: {null} (95 %)" if i == 0 else None)
                ax.plot(np.full(len(sub[(sub.run == run) & (sub.null == "same spectrum")]), i),
                        sub[(sub.run == run) & (sub.null == "same spectrum")].observed, "k.",
                        label="observed Y*" if i == 0 else None)
            ax.set_xticks(range(len(labels)), labels, fontsize=6)
            ax.set(title=title)
            ax.legend(frameon=False, fontsize=5)
    return fig


def verdict_text(energy: pd.DataFrame, verdicts: pd.DataFrame) -> str:
    dev = (energy.energy_mean - energy.ab_over_mn).abs()
    lines = [
        f"- **Energy inside range(Ψ) is ab/mn, as it must be.** Over {len(energy)} (layer, ρ) cells the mean fraction "
        f"differs from ab/mn by at most {dev.max():.3f} (draw-to-draw std ≤ {energy.energy_std.max():.3f}): a random Ψ "
        f"holds a fine-tuning update only in proportion to its size. At ρ = 1/3 (CoSA (128, 128) on the 384-wide "
        f"layers) the best rank-r approximation with the same parameter count keeps (mean over layers) "
        + ", ".join(f"{r.run} {r.svd:.2f} of ‖ΔW‖² where range(Ψ) holds {r.e:.2f}" for r in
                    energy[np.isclose(energy.a / energy.m, 1 / 3, atol=0.01)]
                    .groupby("run").agg(svd=("svd_energy_equal_params", "mean"), e=("energy_mean", "mean"))
                    .reset_index().itertuples())
        + "."]
    for r in verdicts.itertuples():
        lines.append(f"- **{r.run}, {r.statistic} vs {r.null}:** {r.verdict} (observed mean {r.observed_mean:.3g}, "
                     f"null mean {r.null_mean:.3g}; every-layer p = {r.p_every_layer_less:.3g} for smaller, "
                     f"{r.p_every_layer_greater:.3g} for larger; {r.layers_smaller_p05} of {r.layers} layers "
                     f"individually smaller at p < 0.05).")
    lines.append("- **Reading.** The least-squares core inherits ΔW's low rank (Y* has rank ≤ rank ΔW), so beating "
                 "the equal-norm Gaussian null on rank says only that ΔW itself is low-rank; sparsity *in Ψ* is the "
                 "premise, and the same-spectrum null isolates it.")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = study_parser(NAME, __doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, default=RUNS, help="folder holding full/, lora-r8/ and minilm/")
    args = parser.parse_args(argv)
    draws, rhos, energy_draws, max_lora = (30, (0.125, 0.5), 3, 6) if args.quick else (200, RHOS, 10, None)
    found = checkpoints(args.runs)
    if not found:
        parser.error(f"no full-FT or LoRA checkpoint with tensors under {args.runs}")
    energy, core = [], []
    full_names = {ly.name for label, f in found if label.startswith("full") for ly in load_adapter(f)}
    with Timer() as timer, blas_threads(1):
        for label, folder in found:
            layers = load_adapter(folder)
            if max_lora is not None and label.startswith("lora"):
                layers = [ly for ly in layers if ly.name in full_names] + \
                    [ly for ly in layers if ly.name not in full_names][:max_lora]
            for layer in layers:
                core += core_rows(label, layer, args.seed, draws)
                # energy on the full-FT layers and on the LoRA layers of the same names (same shapes)
                if label.startswith("full") or layer.name in full_names:
                    energy += energy_rows(label, layer, args.seed, rhos, energy_draws)
    energy, core = pd.DataFrame(energy), pd.DataFrame(core)
    verdicts = run_verdicts(core)
    md = f"""# cosa_sparsity_premise: is a real fine-tuning update sparse in Ψ?

Command: `{command_line(NAME, argv)}` — {timer.seconds:.0f} s on this machine. Checkpoints used:
{", ".join(f"`{repo_relative(f)}` ({label}, {len(load_adapter(f))} layers)" for label, f in found)}.
All are single 100-step MiniLM runs (rotten tomatoes); full FT saved ΔW for 5 layers. L, R: `unit`-scale Gaussian,
seeded per layer with `layer_seed({args.seed}, …)`. Null draws per layer and statistic: {draws}.

**Verdict rule (stated before the numbers).** Per run and null: combine the layers' one-sided p-values with the
intersection–union test ('max', "in every layer"); *sparser / lower rank* if p < {ALPHA}, *denser / higher rank* if
the opposite p < {ALPHA}, else *inconclusive*. k90 = fraction of Y*'s entries holding 90 % of its energy; energy
rank at 95 % (CoSA B.3). Both are scale-free, so the equal-norm constraint of the Gaussian null does not matter.

## Energy of ΔW inside range(Ψ) (a/m = b/n = ρ; {energy_draws} draws of L, R per cell)

{md_table(energy.drop(columns=["table"]), floatfmt=".3g")}

## Least-squares core Y* = L⁺ΔWR⁺ at (a, b) = {CORE_AB}: verdict per run and null

{md_table(verdicts, floatfmt=".3g")}

## Verdict

{verdict_text(energy, verdicts)}

## Per layer

{md_table(core.drop(columns=["table"]), floatfmt=".3g")}
"""
    write_outputs(args.out, NAME, pd.concat([energy, core], ignore_index=True), plot(energy, core), md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
