"""``python -m ripkit.rip``: RIP estimates, certified brackets and coherence of Ψ = Rᵀ⊗L.

Examples
--------
python -m ripkit.rip --config extreme
python -m ripkit.rip --config llm --trials 2 --format json --out llm.json
python -m ripkit.rip --m 1024 --n 1024 --a 64 --b 64 --estimator all --budget-seconds 5
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import ripkit
from ripkit._checks import check_memory
from ripkit._cli import (Parser, UsageError, check_device, dumps_json, emit, jobs, positive_float, positive_int,
                         run_main, seed_int, writable_file)
from ripkit._parallel import BACKENDS
from ripkit.bounds import theory_delta
from ripkit.coherence import recovery_condition
from ripkit.rip.presets import PAPER_COHERENCE, PAPER_TABLE4, PRESETS
from ripkit.rip.torch_path import resolve_device
from ripkit.rip.trials import rip_trials

__all__ = ["main", "build_parser", "run"]

ESTIMATOR_CHOICES = ("percentile", "support", "bracket", "all")


def _device(text: str) -> str:
    """``check_device`` without importing torch (seconds) for the default 'cpu', which runs numba."""
    return text if text == "cpu" else check_device(text)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m ripkit.rip", description=__doc__.split("\n")[0])
    p.add_argument("--config", choices=sorted(PRESETS), help="named (m, n, a, b); see README")
    for dim, what in (("m", "rows of L and ΔW (out)"), ("n", "columns of R and ΔW (in)"),
                      ("a", "columns of L (core rows)"), ("b", "rows of R (core columns)")):
        p.add_argument(f"--{dim}", type=positive_int, help=f"{what}; overrides --config")
    p.add_argument("--sparsity", type=positive_int, nargs="+", default=[5, 10, 20], metavar="S")
    p.add_argument("--samples", type=positive_int, default=1000, help="random s-sparse vectors per (trial, s)")
    p.add_argument("--trials", type=positive_int, default=10, help="independent dictionaries")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--scale", choices=("unit", "cosa"), default="unit")
    p.add_argument("--kind", choices=("gaussian", "rademacher"), default="gaussian")
    p.add_argument("--estimator", choices=ESTIMATOR_CHOICES, default="percentile")
    p.add_argument("--budget-seconds", type=positive_float, default=None,
                   help="bracket: adversarial-search budget per (trial, s); default scales with size")
    p.add_argument("--device", type=_device, default="cpu",
                   help="bracket: where exact enumeration and the search's scoring run (cpu: numba; auto or "
                        "cuda[:N]: torch on a CUDA GPU); same results everywhere for the same --max-supports")
    p.add_argument("--max-supports", type=positive_int, default=None,
                   help="bracket: enumerate exactly up to this many supports per side "
                        "(default 2000000 on the CPU, 1000000000 on CUDA, and up to 300000000 more per "
                        "factor for the coupling bound; a given value is the cap everywhere)")
    p.add_argument("--theory-c", type=positive_float, default=1.0, help="C in C*sqrt(s ln(ab)/(mn))")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--out", type=writable_file, help="write the output to this file instead of stdout")
    p.add_argument("--jobs", type=jobs, default=1,
                   help="trials in parallel (-1: all cores); same results for any N")
    p.add_argument("--backend", choices=BACKENDS, default="loky",
                   help="joblib backend for --jobs (dask: DASK_SCHEDULER_ADDRESS picks a cluster)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _resolve_dims(args) -> tuple[int, int, int, int, str]:
    dims = {}
    if args.config:
        dims = PRESETS[args.config].to_dict()
    for k in "mnab":
        if getattr(args, k) is not None:
            dims[k] = getattr(args, k)
    missing = [k for k in "mnab" if k not in dims]
    if missing:
        raise UsageError(f"give --config or all of --m --n --a --b (missing: {', '.join('--' + k for k in missing)})")
    name = args.config if args.config and all(getattr(args, k) is None for k in "mnab") else "custom"
    bad = [s for s in args.sparsity if s > dims["a"] * dims["b"]]
    if bad:
        raise UsageError(f"--sparsity {max(bad)} must be <= a*b = {dims['a'] * dims['b']}")
    m, n, a, b = dims["m"], dims["n"], dims["a"], dims["b"]
    # L, R and their Grams in float64, per worker: refused up front rather than swapping or OOM-killed.
    check_memory(8 * (m * a + b * n + a * a + b * b) * max(1, min(args.jobs, args.trials)),
                 f"--m {m} --n {n} --a {a} --b {b} (L, R and their Gram matrices)")
    return m, n, a, b, name


def run(args, *, frame_records: bool = True) -> dict:
    """Run the estimators for parsed ``args``; returns the JSON-ready result (schema in README).

    ``frame_records=False`` keeps ``records`` and ``dictionaries`` as the rows the trials
    returned (the table needs no more) instead of passing them through pandas, whose import
    alone is ~0.2 s of a 2 s run; ``True`` gives the JSON schema's typed, filled rows.
    """
    m, n, a, b, name = _resolve_dims(args)
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        raise UsageError(f"--device {args.device}: {exc}") from None
    estimators = ("percentile", "support", "bracket") if args.estimator == "all" else (args.estimator,)
    t0 = time.perf_counter()
    res = rip_trials(m, n, a, b, sparsity=args.sparsity, n_samples=args.samples, trials=args.trials,
                     seed=args.seed, scale=args.scale, kind=args.kind, estimators=estimators,
                     n_jobs=args.jobs, backend=args.backend, progress=not args.no_progress and sys.stderr.isatty(),
                     budget_seconds=args.budget_seconds, device=device, max_supports=args.max_supports)
    elapsed = time.perf_counter() - t0
    summary = res.summary_rows()
    mu = np.array([c["mu"] for c in res.coherence_rows])
    s_max = max(args.sparsity)
    per_s = []
    for s in sorted(set(args.sparsity)):
        entry = {"s": s, "theory": theory_delta(s, a * b, m * n, args.theory_c),
                 "paper_table4": _paper(name, s), "estimators": {}}
        for row in summary:
            if row["s"] == s:
                entry["estimators"][row["estimator"]] = {k: row[k] for k in ("mean", "std", "min", "max")}
        per_s.append(entry)
    return {
        "ripkit_version": ripkit.__version__,
        "config": name, "m": m, "n": n, "a": a, "b": b,
        "psi_shape": [m * n, a * b], "compression_ratio": m * n / (a * b),
        "scale": args.scale, "kind": args.kind,
        "isometry_scale": float(res.coherence_rows[0]["isometry_scale"]),
        "seed": args.seed, "samples": args.samples, "trials": args.trials, "percentile": 95.0,
        "estimators": list(estimators), "budget_seconds": args.budget_seconds,
        "device": device or "cpu", "max_supports": args.max_supports,
        "theory": {"formula": "C*sqrt(s*ln(n)/m)", "C": args.theory_c, "n": a * b, "m": m * n,
                   "meaning": "n = ab coefficients (paper A.2), m = mn rows of Psi (measurements)"},
        "coherence": {"mean": float(mu.mean()), "std": float(mu.std(ddof=1)) if len(mu) > 1 else 0.0,
                      "values": mu.tolist(), "paper": PAPER_COHERENCE.get(name),
                      "condition": recovery_condition(float(mu.max()), s_max)},
        "results": per_s,
        "records": res.records.to_dict("records") if frame_records else res.rows,
        "dictionaries": (res.coherence.drop(columns=["mu"]).to_dict("records") if frame_records else
                         [{k: v for k, v in c.items() if k != "mu"} for c in res.coherence_rows]),
        "elapsed_seconds": elapsed,
    }


def _paper(name, s):
    row = PAPER_TABLE4.get(name, {}).get(s)
    return None if row is None else {"mean": row[0], "std": row[1]}


def _fmt_pm(d):
    return f"{d['mean']:.4f} ± {d['std']:.4f}"


def format_table(out: dict) -> str:
    """The readable default output."""
    lines = [
        f"ripkit.rip  config={out['config']}  m={out['m']} n={out['n']} a={out['a']} b={out['b']}  "
        f"Ψ: {out['psi_shape'][0]}×{out['psi_shape'][1]}  compression mn/ab = {out['compression_ratio']:g}×",
        f"scale={out['scale']} ({out['kind']}; δ measured for Ψ/√c, c={out['isometry_scale']:g})  "
        f"samples={out['samples']}  trials={out['trials']}  seed={out['seed']}  "
        f"time={out['elapsed_seconds']:.1f}s",
        "",
        f"{'s':>4}  {'estimator':<11} {'δ_s mean ± std over trials':<28} {'paper Table 4':<16} theory",
    ]
    labels = {"percentile": "percentile", "support": "support≥", "bracket": "bracket"}
    for entry in out["results"]:
        first = True
        for est, stats in entry["estimators"].items():
            if est == "bracket":
                continue
            paper = _fmt_pm(entry["paper_table4"]) if (est == "percentile" and entry["paper_table4"]) else ""
            theory = f"{entry['theory']:.4f}" if first else ""
            lines.append(f"{entry['s']:>4}  {labels[est]:<11} {_fmt_pm(stats):<28} {paper:<16} {theory}")
            first = False
    lines += _bracket_lines(out)
    c = out["coherence"]
    cond = c["condition"]
    paper_mu = f" (paper {c['paper']:.3f})" if c["paper"] else ""
    lines += [
        "",
        "percentile = paper's estimator (95th pct of |r-1|, an estimate); "
        "support≥ = max exact δ over the sampled supports (a lower bound on δ_s)",
        f"theory = C·sqrt(s·ln(n)/m) with C={out['theory']['C']:g}, n=ab={out['theory']['n']}, "
        f"m=mn={out['theory']['m']} (a scaling law, not a bound)",
        f"coherence μ = {_fmt_pm(c)}{paper_mu};  max μ = {max(c['values']):.4f} "
        f"{'<' if cond['holds_sqrt'] else '>='} 1/√s_max = {cond['threshold_sqrt']:.4f}",
    ]
    return "\n".join(lines)


def _bracket_lines(out):
    recs = [r for r in out["records"] if r["estimator"] == "bracket"]
    if not recs:
        return []
    lines = ["", "certified bracket per dictionary: lower ≤ δ_s ≤ upper (each side names the bound that gave it)",
             f"{'s':>4} {'trial':>5}  {'percentile':>10}  {'lower':>8} {'by':<14} {'upper':>8} by"]
    pct = {(r["trial"], r["s"]): r["delta"] for r in out["records"] if r["estimator"] == "percentile"}
    for r in sorted(recs, key=lambda r: (r["s"], r["trial"])):
        p = pct.get((r["trial"], r["s"]))
        ptxt = f"{p:10.4f}" if p is not None else f"{'-':>10}"
        lines.append(f"{r['s']:>4} {r['trial']:>5}  {ptxt}  {r['lower']:8.4f} {r['lower_by']:<14} "
                     f"{r['upper']:8.4f} {r['upper_by']}")
    return lines


def format_csv(out: dict) -> str:
    import pandas as pd

    df = pd.DataFrame(out["records"])
    for k in ("config", "m", "n", "a", "b", "scale", "seed"):
        df.insert(0, k, out[k])
    return df.to_csv(index=False)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def body():
        out = run(args, frame_records=args.format != "table")
        if args.format == "json":
            text = dumps_json(out)
        elif args.format == "csv":
            text = format_csv(out)
        else:
            text = format_table(out)
        emit(text, args.out)

    return run_main(parser.prog, body)
