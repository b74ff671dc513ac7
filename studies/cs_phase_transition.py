"""Can Y be recovered from ΔW = L·Y·R when it is sparse?  Phase diagrams, Kronecker vs i.i.d. Gaussian dictionaries.

CoSA's compressed-sensing premise (section 3.2, eq. 3–5; A.1) is that a sparse coefficient
vector is recoverable from its synthesis x = Ψα when Ψ has the RIP.  In the overcomplete
regime (a > m and b > n, so Y ↦ L·Y·R is not injective: ``cosa_conditioning``) only sparsity
can make α = vec(Y) identifiable.  We recover it with two well-kept solvers
(``ripkit.recovery``: OMP from scikit-learn, told the true s; basis pursuit min ‖α‖₁ s.t.
Ψα = x, an LP solved by HiGHS) and compare

* Ψ = Rᵀ⊗L (L: m×a, R: b×n, Gaussian) against an i.i.d. Gaussian Φ with the **same number of
  measurements** mn and unknowns ab (columns of both normalised to unit norm);
* supports **uniform** over the ab entries of Y against **structured** supports, all s entries
  in one column of Y.  A one-column Y makes ΔW = (L·y)·r_lᵀ rank one: the mn measurements carry
  only the m numbers L·y, so the Kronecker dictionary sees an m×a problem, the Gaussian one
  (exchangeable columns, structure invisible to it) still mn×ab.

Grid: a = b = 24 (ab = 576 unknowns), m = n ∈ {6, 9, 12, 16} (mn = 36 … 256 measurements, always
a > m), s from 1 to 128; 10 trials per cell, each with a fresh dictionary (seed
``SeedSequence(seed, spawn_key=(m, trial, dictionary))``) and a fresh N(0, 1) vector on the support.
Success: ‖α̂ − α‖ ≤ 10⁻⁴‖α‖.

**Rules (stated before the numbers).**  s > mn is recorded as 0 successes *by counting* (BP returns a
basic solution with at most mn non-zeros; OMP stops after mn atoms).  Going up in s, once two
consecutive levels have no success the remaining levels are *not run* (blank; phase transitions
are monotone in practice, not by proof).  The summary statistic is s₅₀, the largest s with a
success rate ≥ 50 % among the levels run.  An *estimate* over 10 trials per cell.

Run:  python studies/cs_phase_transition.py            (≈ 14 min on 2 busy cores)
      python studies/cs_phase_transition.py --quick    (≈ 30 s: 3 trials, m = n ∈ {6, 12})
Writes <out>/cs_phase_transition.{png,csv,md} (figures/ with --update-figures).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

try:
    from studies._cosa_common import Timer, blas_threads, command_line, md_table, study_parser, write_outputs
except ModuleNotFoundError:  # run as a file
    from _cosa_common import Timer, blas_threads, command_line, md_table, study_parser, write_outputs
from ripkit._cli import positive_int
from ripkit._parallel import parallel_map
from ripkit.kron import KroneckerDictionary
from ripkit.plot import style
from ripkit.recovery import basis_pursuit, omp, recovered, sparse_vector, unit_columns

NAME = "cs_phase_transition"
A = B = 24
SIDES = (6, 9, 12, 16)
SPARSITY = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
DICTIONARIES = ("kronecker", "gaussian")
SUPPORTS = ("uniform", "one column")
SOLVERS = ("OMP", "BP")
RTOL = 1e-4


def dictionary(kind: str, side: int, seed: int, trial: int) -> np.ndarray:
    """Unit-norm-column dense dictionary (side²×ab) of one trial: Rᵀ⊗L, or i.i.d. Gaussian of the same size."""
    ss = np.random.SeedSequence(seed, spawn_key=(side, trial, DICTIONARIES.index(kind)))
    if kind == "kronecker":
        return KroneckerDictionary.from_seed(side, side, A, B, ss).normalized().to_dense()
    return unit_columns(np.random.default_rng(ss).standard_normal((side * side, A * B)))[0]


def support(kind: str, s: int, rng) -> np.ndarray:
    """Indices j = k + a·l of vec(Y) (column-major): uniform over all ab, or s rows of one column l."""
    if kind == "uniform":
        return rng.choice(A * B, s, replace=False)
    col = rng.integers(B)
    return np.sort(rng.choice(A, s, replace=False)) + A * col


def cell_runs(dict_kind: str, supp: str, solver: str, side: int, trials: int, seed: int) -> list[dict]:
    """Success counts for one (dictionary, support, solver, m) along the s grid (module docstring's rules)."""
    rows, zeros = [], 0
    measurements = side * side
    dicts = [dictionary(dict_kind, side, seed, t) for t in range(trials)]
    for s in SPARSITY:
        base = {"dictionary": dict_kind, "support": supp, "solver": solver, "m": side, "n": side,
                "measurements": measurements, "s": s, "trials": trials}
        if supp == "one column" and s > A:
            rows.append({**base, "successes": np.nan, "rate": np.nan, "status": "n/a (s > a)"})
            continue
        if s > measurements:
            rows.append({**base, "successes": 0, "rate": 0.0, "status": "by counting (s > mn)"})
            zeros += 1
            continue
        if zeros >= 2:
            rows.append({**base, "successes": np.nan, "rate": np.nan, "status": "not run"})
            continue
        ok = 0
        for t, phi in enumerate(dicts):
            rng = np.random.default_rng(np.random.SeedSequence(
                seed, spawn_key=(side, t, DICTIONARIES.index(dict_kind), 1 + SUPPORTS.index(supp), s)))
            alpha = sparse_vector(A * B, support(supp, s, rng), rng)
            x = phi @ alpha
            hat = omp(phi, x, s) if solver == "OMP" else basis_pursuit(phi, x)
            ok += recovered(hat, alpha, rtol=RTOL)
        zeros = zeros + 1 if ok == 0 else 0
        rows.append({**base, "successes": ok, "rate": ok / trials, "status": "run"})
    return rows


def _cell_task(dict_kind, supp, solver, side, trials, seed):
    with blas_threads(1):
        return cell_runs(dict_kind, supp, solver, side, trials, seed)


def transitions(df: pd.DataFrame) -> pd.DataFrame:
    """s₅₀ per (dictionary, support, solver, measurements): the largest s run with rate ≥ 0.5 (0 if none)."""
    rows = []
    for key, g in df.groupby(["dictionary", "support", "solver", "measurements"], sort=False):
        ok = g[(g.rate >= 0.5)]
        rows.append(dict(zip(["dictionary", "support", "solver", "measurements"], key),
                         s50=int(ok.s.max()) if len(ok) else 0))
    wide = pd.DataFrame(rows).pivot_table(index=["support", "solver", "measurements"], columns="dictionary",
                                          values="s50").reset_index()
    wide.columns.name = None
    wide["gaussian / kronecker"] = wide.gaussian / wide.kronecker.replace(0, np.nan)
    return wide


def plot(df: pd.DataFrame):
    with style():
        fig = Figure(figsize=(13, 5.6), layout="constrained")
        FigureCanvasAgg(fig)
        sides = sorted(df.m.unique())
        for i, (supp, solver, dict_kind) in enumerate(
                [(su, so, d) for su in SUPPORTS for so in SOLVERS for d in DICTIONARIES]):
            ax = fig.add_subplot(2, 4, i + 1)
            g = df[(df.support == supp) & (df.solver == solver) & (df.dictionary == dict_kind)]
            grid = g.pivot_table(index="s", columns="m", values="rate", dropna=False).reindex(
                index=list(SPARSITY), columns=sides)
            im = ax.imshow(grid.to_numpy(), origin="lower", aspect="auto", vmin=0, vmax=1, cmap="viridis")
            ax.set_xticks(range(len(sides)), [f"{m * m}" for m in sides])
            ax.set_yticks(range(len(SPARSITY)), SPARSITY, fontsize=6)
            ax.set(xlabel="measurements mn", ylabel="s", title=f"{dict_kind}, {supp}, {solver}")
        fig.colorbar(im, ax=fig.axes, shrink=0.6, label="success rate (blank: not run / n/a)")
    return fig


def verdict(tr: pd.DataFrame) -> str:
    lines = []
    for supp in SUPPORTS:
        for solver in SOLVERS:
            t = tr[(tr.support == supp) & (tr.solver == solver)].sort_values("measurements")
            lines.append(f"- **{supp} supports, {solver}:** s₅₀ Kronecker / Gaussian = "
                         + ", ".join(f"{int(r.kronecker)} / {int(r.gaussian)} at mn = {int(r.measurements)}"
                                     for r in t.itertuples()) + ".")
    col = tr[tr.support == "one column"]
    uni = tr[tr.support == "uniform"]
    lines.append(
        f"- **Reading.** With uniform supports the Kronecker dictionary's s₅₀ is within a factor "
        f"{uni['gaussian / kronecker'].max():.2g} of the Gaussian one's (ratios {uni['gaussian / kronecker'].min():.2g}–"
        f"{uni['gaussian / kronecker'].max():.2g}): on random supports Ψ behaves roughly like a random matrix (the regime "
        f"the paper's sampling estimator probes). With all s entries in one column of Y it collapses to the m×a problem: "
        f"s₅₀ {int(col.kronecker.min())}–{int(col.kronecker.max())} where the Gaussian dictionary, with the same mn "
        f"measurements, reaches {int(col.gaussian.min())}–{int(col.gaussian.max())} (capped by a = {A}; ratios "
        f"{col['gaussian / kronecker'].min():.2g}–{col['gaussian / kronecker'].max():.2g}). Sparsity alone does not make "
        f"a CoSA core recoverable: *where* the non-zeros sit decides — the rectangle supports that also drive the "
        f"certified lower bounds in `rip_bracket`.")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = study_parser(NAME, __doc__.split("\n")[0])
    parser.add_argument("--trials", type=positive_int, default=None, help="trials per cell (default 10; quick 3)")
    parser.add_argument("--jobs", type=positive_int, default=2, help="cells in parallel (results do not depend on it)")
    args = parser.parse_args(argv)
    trials = args.trials or (3 if args.quick else 10)
    sides = (6, 12) if args.quick else SIDES
    tasks = [(d, su, so, m, trials, args.seed) for m in sorted(sides, reverse=True) for so in SOLVERS
             for su in SUPPORTS for d in DICTIONARIES]
    with Timer() as timer:
        df = pd.DataFrame([r for chunk in parallel_map(_cell_task, tasks, n_jobs=args.jobs) for r in chunk])
        df = df.sort_values(["dictionary", "support", "solver", "m", "s"], kind="stable").reset_index(drop=True)
        tr = transitions(df)
    md = f"""# cs_phase_transition: recovering a sparse CoSA core, Kronecker vs Gaussian dictionaries

Command: `{command_line(NAME, argv)}` — {timer.seconds:.0f} s on this machine. a = b = {A} (ab = {A * B} unknowns),
m = n ∈ {{{", ".join(map(str, sides))}}} (mn measurements, a > m: overcomplete), {trials} trials per cell, each with
a fresh dictionary (unit-norm columns) and a fresh N(0, 1) vector; OMP is told s; BP is min ‖α‖₁ s.t. Ψα = x
(HiGHS). Success: ‖α̂ − α‖ ≤ {RTOL:g}·‖α‖. Success rates are *estimates* over {trials} trials.

**Rules (stated before the numbers).** s > mn: 0 successes by counting. Two consecutive levels without success
end a column (higher s *not run*). s₅₀ = the largest s run with success rate ≥ 50 %. One-column supports need s ≤ a.

## s₅₀ per measurement budget

{md_table(tr, floatfmt=".3g")}

## Verdict

{verdict(tr)}

## Success rates

{md_table(df.drop(columns=["n"]), floatfmt=".3g")}
"""
    write_outputs(args.out, NAME, df, plot(df), md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
