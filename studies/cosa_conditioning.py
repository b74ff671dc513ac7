"""Conditioning of Ψ on all of R^{ab} at every real adapted shape, and a Gaussian-vs-orthonormal training test.

CoSA trains a dense core Y, so what governs optimisation in the paper's own argument (eq. 8,
‖Ψ(α₁ − α₂)‖² ≈ ‖α₁ − α₂‖²) is Ψ = Rᵀ⊗L on every α ∈ R^{ab}, not on s-sparse α.  Per
distinct (out, in) shape of RoBERTa-base, Llama-3.2-1B, Llama-3.1-8B, Qwen2-7B, SmolLM2-135M
and MiniLM, with the (a, b) the paper uses on each (reading in ``studies/_model_shapes.py``),
one ``unit``-scale Gaussian draw of L (m×a), R (b×n) gives, exactly from the factors
(``ripkit.conditioning``, proof of κ(Ψ) = κ(L)·κ(R) there):

* κ(L), κ(R), κ(Ψ) and the range [σ_min², σ_max²] of ‖Ψα‖²/‖α‖² over all α;
* whether Y ↦ L·Y·R is injective (not when a > m or b > n);
* the Marchenko–Pastur prediction of each (edges (1 ± √(a/m))², (1 ± √(b/n))²).

**Training comparison (stated before the runs).**  If κ(Ψ) matters for optimisation, CoSA with
orthonormalised L, R (``--kind orthogonal``: the same Gaussian draw with orthonormal columns/rows,
κ = 1) should train at least as well as with Gaussian L, R (κ(Ψ) ≈ 4–14 on MiniLM) at equal (a, b).
Paired by seed S (same data order, same seed for L, R): d_S = accuracy(orthogonal) − accuracy(Gaussian)
on the fixed 500-example test subset.  Verdict with ``ripkit.stats``: *orthonormal better* if the
one-sided sign test over seeds gives p < 0.05 for d > 0; *Gaussian better* if p < 0.05 for d < 0;
*inconclusive* otherwise (with 5 seeds the smallest attainable one-sided p is 1/32).  The final
training loss (mean of the last 20 steps) is reported beside it, not used for the verdict.  The
Gaussian arm is issue 14's CoSA (128, 128) campaign; both arms are trained by (S = 0…4)::

    COMMON="--model minilm --data rotten-tomatoes --steps 100 --eval-every 50 --eval-size 500 --threads 1 --method cosa --a 128 --b 128 --lr 5e-4"
    python -m ripkit.train $COMMON --seed S --out studies/runs/minilm/cosa-a128-b128-sS
    python -m ripkit.train $COMMON --seed S --kind orthogonal --out studies/runs/minilm/cosa-a128-b128-orth-sS

This study never trains: it reads ``ripkit_adapter.json`` (final accuracy, kind) and ``log.csv``
(loss curve) from those folders and says which runs are missing.

Run:  python studies/cosa_conditioning.py            (≈ 1 min)
      python studies/cosa_conditioning.py --quick    (the encoder and SmolLM2 shapes only)
Writes <out>/cosa_conditioning.{png,csv,md} (figures/ with --update-figures).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

try:
    from studies._common import RUNS
    from studies._cosa_common import (Timer, blas_threads, command_line, md_table, repo_relative, study_parser,
                                      write_outputs)
    from studies._model_shapes import CONFIGS, shape_table
except ModuleNotFoundError:  # run as a file
    from _common import RUNS
    from _cosa_common import (Timer, blas_threads, command_line, md_table, repo_relative, study_parser,
                              write_outputs)
    from _model_shapes import CONFIGS, shape_table
from ripkit.conditioning import kron_conditioning, mp_prediction
from ripkit.kron import KroneckerDictionary
from ripkit.plot import new_figure, style
from ripkit.projections import layer_seed
from ripkit.stats import seed_test, verdict as stated_verdict

NAME = "cosa_conditioning"
SEEDS = tuple(range(5))
MIN_SEEDS = 3
ARMS = {"gaussian": "cosa-a128-b128-s{seed}", "orthogonal": "cosa-a128-b128-orth-s{seed}"}
COMMON = ("--model minilm --data rotten-tomatoes --steps 100 --eval-every 50 --eval-size 500 --threads 1 "
          "--method cosa --a 128 --b 128 --lr 5e-4")
LOSS_TAIL = 20


def shape_conditioning(row, seed: int, kind: str = "gaussian") -> dict:
    """κ, σ² range and injectivity of one draw at one shape, with the Marchenko–Pastur prediction."""
    m, n, a, b = int(row.m), int(row.n), int(row.a), int(row.b)
    d = KroneckerDictionary.from_seed(m, n, a, b, layer_seed(seed, f"{m}x{n}/{a}x{b}"), kind=kind)
    c = kron_conditioning(d)
    return {"model": row.model, "source": row.source, "modules": row.modules, "kind": kind, "m": m, "n": n,
            "a": a, "b": b, "a_over_m": a / m, "b_over_n": b / n, "kappa_left": c.kappa_left,
            "kappa_right": c.kappa_right, "kappa": c.kappa, "ratio_low": c.ratio_low, "ratio_high": c.ratio_high,
            "injective": c.injective, "rank_left": c.rank_left, "rank_right": c.rank_right,
            # the map has rank rank(L)·rank(R) (its singular values are the products), so this is exact
            "kernel_dim": a * b - c.rank_left * c.rank_right,
            **mp_prediction(m, n, a, b)}


def conditioning_table(configs, seed: int) -> pd.DataFrame:
    rows = []
    with blas_threads(1):  # large single SVDs run faster unthreaded on a shared 2-core machine
        for row in shape_table(configs).itertuples():
            rows.append(shape_conditioning(row, seed))
            if row.model == "all-MiniLM-L6-v2":
                rows.append(shape_conditioning(row, seed, kind="orthogonal"))
    return pd.DataFrame(rows)


# ---- training comparison ---------------------------------------------------------------------------
def command(seed: int, arm: str) -> str:
    kind = " --kind orthogonal" if arm == "orthogonal" else ""
    return f"python -m ripkit.train {COMMON} --seed {seed}{kind} --out studies/runs/minilm/{ARMS[arm].format(seed=seed)}"


def read_run(folder: Path, arm: str) -> dict | None:
    """Final accuracy, kind and loss curve of one run folder; None if it is not there (yet)."""
    meta_path, log_path = folder / "ripkit_adapter.json", folder / "log.csv"
    if not meta_path.is_file() or not log_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    kinds = {layer.get("kind", "gaussian") for layer in meta.get("layers", {}).values()}
    kind = meta.get("config", {}).get("kind") or (kinds.pop() if len(kinds) == 1 else None)
    if kind != arm:
        raise ValueError(f"{folder}: projections are {kind!r}, expected {arm!r} for this arm")
    log = pd.read_csv(log_path)
    loss = log.dropna(subset=["loss"])
    return {"arm": arm, "folder": str(folder), "final_accuracy": float(meta["metrics"]["final_accuracy"]),
            "steps": int(meta["metrics"]["steps"]), "seed": int(meta["training"]["seed"]),
            "final_loss": float(loss.loss.tail(LOSS_TAIL).mean()), "curve": loss[["step", "loss"]]}


def read_runs(root: Path, seeds=SEEDS) -> tuple[pd.DataFrame, dict, list[str]]:
    """Paired runs per seed, the loss curves, and the commands of the runs that are missing."""
    rows, curves, missing = [], {}, []
    for seed in seeds:
        runs = {arm: read_run(root / pattern.format(seed=seed), arm) for arm, pattern in ARMS.items()}
        missing += [command(seed, arm) for arm, r in runs.items() if r is None]
        if all(runs.values()):
            g, o = runs["gaussian"], runs["orthogonal"]
            rows.append({"seed": seed, "acc_gaussian": g["final_accuracy"], "acc_orthogonal": o["final_accuracy"],
                         "diff_accuracy": o["final_accuracy"] - g["final_accuracy"],
                         "loss_gaussian": g["final_loss"], "loss_orthogonal": o["final_loss"],
                         "diff_loss": g["final_loss"] - o["final_loss"], "steps": g["steps"]})
            curves[seed] = (g["curve"], o["curve"])
    return pd.DataFrame(rows), curves, missing


def training_verdict(paired: pd.DataFrame) -> dict:
    """The stated rule on the paired accuracy differences (module docstring)."""
    if len(paired) < MIN_SEEDS:
        return {"verdict": "not run", "n_seeds": len(paired)}
    up = seed_test(paired.diff_accuracy, alternative="greater")
    down = seed_test(paired.diff_accuracy, alternative="less")
    word = {"agrees": "orthonormal better", "disagrees": "Gaussian better"}.get(
        stated_verdict(up.p_value, down.p_value), "inconclusive")
    loss = seed_test(paired.diff_loss, alternative="greater")
    return {"verdict": word, "n_seeds": up.n_seeds, "mean_diff": up.mean, "ci_low": up.ci_low, "ci_high": up.ci_high,
            "p_orth_better": up.p_value, "p_gauss_better": down.p_value, "p_wilcoxon_orth_better": up.p_wilcoxon,
            "min_attainable_p": up.min_attainable_p, "n_orth_better": up.n_positive, "n_gauss_better": up.n_negative,
            "mean_loss_diff": loss.mean, "p_loss_orth_lower": loss.p_value}


# ---- outputs -----------------------------------------------------------------------------------------
def plot(table: pd.DataFrame, paired: pd.DataFrame, curves: dict):
    fig, axes = new_figure(3, width=3.3, height=3.0)
    gauss = table[table.kind == "gaussian"]
    with style():
        ax = axes[0]
        inj = gauss[gauss.injective & np.isfinite(gauss.mp_kappa)]
        ax.loglog(inj.mp_kappa, inj.kappa, "o", markersize=4, label="injective shapes")
        lim = [1, max(inj.kappa.max(), inj.mp_kappa.max()) * 1.5]
        ax.plot(lim, lim, "k--", linewidth=0.8, label="measured = MP")
        ax.set(xlabel="Marchenko–Pastur κ(Ψ)", ylabel="measured κ(Ψ) = κ(L)κ(R)",
               title=f"(a) κ(Ψ); {int((~gauss.injective).sum())} shapes not injective (κ = ∞)")
        ax.legend(frameon=False, fontsize=6)

        ax = axes[1]
        x = np.arange(len(gauss))
        low = np.where(gauss.injective, gauss.ratio_low, np.nan)
        ax.vlines(x, np.where(gauss.injective, low, 1e-4), gauss.ratio_high,
                  colors=np.where(gauss.injective, "C0", "C3"), linewidth=3)
        ax.plot(x, gauss.mp_ratio_high, "k_", markersize=6, label="MP edges")
        ax.plot(x, np.where(gauss.mp_ratio_low > 0, gauss.mp_ratio_low, np.nan), "k_", markersize=6)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_yscale("log")
        short = {"RoBERTa-base": "RoBERTa", "Llama-3.2-1B": "L3.2-1B", "Llama-3.1-8B": "L3.1-8B", "Qwen2-7B": "Qwen2",
                 "SmolLM2-135M": "SmolLM2", "all-MiniLM-L6-v2": "MiniLM"}
        ax.set_xticks(x, [f"{short.get(r.model, r.model)} {r.m}×{r.n} ({r.a},{r.b})" for r in gauss.itertuples()],
                      rotation=90, fontsize=4)
        ax.set(ylabel="‖Ψα‖²/‖α‖² over all α (unit scale)", title="(b) range; red: not injective (down to 0)")
        ax.legend(frameon=False, fontsize=6)

        ax = axes[2]
        if len(paired):
            for seed, (g, o) in curves.items():
                ax.plot(g.step, g.loss.rolling(10, min_periods=1).mean(), color="C0", alpha=0.6,
                        label="Gaussian L, R" if seed == min(curves) else None)
                ax.plot(o.step, o.loss.rolling(10, min_periods=1).mean(), color="C2", alpha=0.6,
                        label="orthonormal L, R" if seed == min(curves) else None)
            ax.set(xlabel="step", ylabel="training loss (10-step mean)",
                   title=f"(c) MiniLM CoSA (128,128), {len(paired)} seeds")
            ax.legend(frameon=False, fontsize=6)
        else:
            ax.text(0.5, 0.5, "training runs missing\n(see the md)", ha="center", va="center", transform=ax.transAxes)
            ax.set(title="(c) Gaussian vs orthonormal: not run")
    return fig


def verdict_text(table: pd.DataFrame, tv: dict) -> str:
    g = table[table.kind == "gaussian"]
    inj = g[g.injective]
    non = g[~g.injective]
    dev = (inj.kappa / inj.mp_kappa - 1)[np.isfinite(inj.mp_kappa)]
    best, worst = inj.loc[inj.kappa.idxmin()], inj.loc[inj.kappa.idxmax()]
    edge = inj[(inj.a == inj.m) | (inj.b == inj.n)]
    lines = [
        f"- **Not an isometry on dense cores.** κ(Ψ) = κ(L)·κ(R) = {inj.kappa.min():.3g}–{inj.kappa.max():.3g} over "
        f"the injective shapes: ‖Ψα‖²/‖α‖² ranges over [{best.ratio_low:.3g}, {best.ratio_high:.3g}] at the "
        f"best-conditioned one ({best.model} {best.m}×{best.n}, ({best.a},{best.b})) and [{worst.ratio_low:.3g}, "
        f"{worst.ratio_high:.3g}] at the worst ({worst.model} {worst.m}×{worst.n}, ({worst.a},{worst.b})). "
        f"Eq. 8's ‖Ψ(α₁ − α₂)‖² ≈ ‖α₁ − α₂‖² can hold at best on sparse differences (the RIP, itself "
        f"violated at δ_s > 0.5 on the paper's proxy sizes: `rip_bracket`), and CoSA's trained Y is dense.",
        f"- **Marchenko–Pastur predicts it.** Measured κ(Ψ) is within {100 * dev.abs().max():.0f} % of the "
        f"MP value (1 + √(a/m))(1 + √(b/n))/((1 − √(a/m))(1 − √(b/n))) at every injective shape with a < m, "
        "b < n (finite-size draws sit just inside the edges); κ is fixed by the aspect ratios a/m, b/n, "
        "not by the size.",
        *([f"- **At the hard edge:** "
            + "; ".join(f"{r.model} {r.modules} ({r.m}×{r.n}, (a,b) = ({r.a},{r.b})): κ(L) = {r.kappa_left:.3g}"
                        for r in edge.itertuples())
            + " — a = m (or b = n) is injective, but Marchenko–Pastur puts σ_min at 0 and κ grows with the size."]
          if len(edge) else []),
        f"- **Not injective at {len(non)} of {len(g)} shapes** (a > m or b > n): "
        + "; ".join(f"{r.model} {r.modules} ({r.m}×{r.n}, (a,b) = ({r.a},{r.b}))" for r in non.itertuples())
        + f". There Y ↦ L·Y·R has a kernel of dimension ab − rank(L)·rank(R) ({non.kernel_dim.min():,}–"
        f"{non.kernel_dim.max():,}; every Y = u·vᵀ with L·u = 0 maps to 0), so distinct cores give the same ΔW "
        "and the paper's stability argument cannot hold.",
    ]
    if tv["verdict"] == "not run":
        lines.append(f"- **Gaussian vs orthonormal training: not run** — {tv['n_seeds']} complete seed pair(s) "
                     f"found, {MIN_SEEDS} needed; the missing runs and their commands are listed above.")
    else:
        lines.append(
            f"- **Gaussian vs orthonormal L, R (MiniLM, (128,128), {tv['n_seeds']} seeds): {tv['verdict']}.** "
            f"Accuracy(orthogonal) − accuracy(Gaussian) = {tv['mean_diff']:+.4f} (95 % bootstrap CI "
            f"[{tv['ci_low']:+.4f}, {tv['ci_high']:+.4f}]); orthonormal better in {tv['n_orth_better']}, Gaussian in "
            f"{tv['n_gauss_better']} seeds; one-sided sign test p = {tv['p_orth_better']:.3g} (orthonormal better) / "
            f"{tv['p_gauss_better']:.3g} (Gaussian better), smallest attainable {tv['min_attainable_p']:.3g}. "
            f"Final training loss, Gaussian − orthonormal = {tv['mean_loss_diff']:+.4f} (p = "
            f"{tv['p_loss_orth_lower']:.3g} for a lower orthonormal loss; reported, not used for the verdict).")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = study_parser(NAME, __doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, default=RUNS / "minilm",
                        help="folder holding cosa-a128-b128[-orth]-s{S}/ (default studies/runs/minilm)")
    args = parser.parse_args(argv)
    configs = [c for c in CONFIGS if c[0] in ("RoBERTa-base", "SmolLM2-135M", "all-MiniLM-L6-v2")] \
        if args.quick else CONFIGS
    with Timer() as timer:
        table = conditioning_table(configs, args.seed)
        paired, curves, missing = read_runs(args.runs)
        tv = training_verdict(paired)
    show = table[["model", "modules", "kind", "m", "n", "a", "b", "kappa_left", "kappa_right", "kappa", "mp_kappa",
                  "ratio_low", "mp_ratio_low", "ratio_high", "mp_ratio_high", "injective", "kernel_dim"]]
    out_table = table.assign(**{f"train_{k}": v for k, v in tv.items() if not isinstance(v, str)},
                             train_verdict=tv["verdict"])
    runs_md = md_table(paired, floatfmt=".4f") if len(paired) else "No complete seed pair yet."
    missing_md = ("\n".join(f"    {c}" for c in missing)) if missing else "None."
    md = f"""# cosa_conditioning: Ψ on all of R^(ab), and Gaussian vs orthonormal L, R in training

Command: `{command_line(NAME, argv)}` — {timer.seconds:.0f} s on this machine. One `unit`-scale draw per distinct
(out, in, a, b), seed `layer_seed({args.seed}, "m x n / a x b")`; κ and ranges exact from the factors' SVDs
(`ripkit.conditioning.kron_conditioning`), never forming Ψ. `ratio_low`/`ratio_high` = σ_min(Ψ)², σ_max(Ψ)²:
the exact range of ‖Ψα‖²/‖α‖² over all α (the `cosa` scale multiplies both by c = mn/(ab); κ is scale-free).
`mp_*` are the Marchenko–Pastur edges (asymptotic predictions, not bounds). (a, b) per model: see
`studies/_model_shapes.py` ({"; ".join(f"{m} ({a},{b}): {s}" for m, (a, b), s in configs)}).

**Verdict rule for the training comparison (stated before the runs).** d_S = accuracy(orthogonal) −
accuracy(Gaussian) paired by seed; *orthonormal better* if the one-sided sign test gives p < 0.05 for d > 0,
*Gaussian better* if p < 0.05 for d < 0, else *inconclusive*; at least {MIN_SEEDS} seed pairs, else *not run*.

## Conditioning per shape

{md_table(show, floatfmt=".3g")}

## Training comparison (MiniLM, CoSA (128, 128), rotten tomatoes, 100 steps)

Runs read from `{repo_relative(args.runs)}`:

{runs_md}

Missing runs (commands that produce them):

{missing_md}

## Verdict

{verdict_text(table, tv)}
"""
    write_outputs(args.out, NAME, out_table, plot(table, paired, curves), md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
