"""Benchmark: the paper's RIP estimator computed three ways on the same draws.

1. ripkit — ‖Ψα‖² from s×s sub-blocks of the Gram factors (``ripkit.rip``);
2. dense L·Y·R — per sample, scatter α into Y (a×b), form ΔW = L·Y·R, take ‖ΔW‖²_F;
3. materialized Ψ = numpy.kron(Rᵀ, L) (mn×ab), then ‖Ψ[:, S]·v‖² — only where Ψ fits
   under ``--max-kron-gib``.

Same dictionary, same supports, same values: the three ratio vectors must agree
to 1e-9.  Reports wall-time ratios (machines here are noisy: read ratios, not
absolute times) and peak traced memory (tracemalloc, which sees NumPy buffers).

Run:  python studies/bench_rip.py           (≈1–2 min on 2 cores)
Writes figures/bench_rip.csv and figures/bench_rip.md.
"""
from __future__ import annotations

import argparse
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from ripkit.kron import KroneckerDictionary
from ripkit.rip import PRESETS, isometry_ratios, sample_sparse_vectors
from ripkit.rip.estimators import quadratic_forms_numpy

FIGURES = Path(__file__).resolve().parent.parent / "figures"


def ratios_dense_lyr(d: KroneckerDictionary, samples) -> np.ndarray:
    out = np.empty(samples.n_samples)
    for i, (sup, val) in enumerate(zip(samples.supports, samples.values)):
        core = np.zeros(d.a * d.b)
        core[sup] = val
        delta_w = d.left @ core.reshape(d.a, d.b, order="F") @ d.right
        out[i] = np.sum(delta_w * delta_w) / np.sum(val * val)
    return out


def ratios_kron(psi: np.ndarray, samples) -> np.ndarray:
    out = np.empty(samples.n_samples)
    for i, (sup, val) in enumerate(zip(samples.supports, samples.values)):
        x = psi[:, sup] @ val
        out[i] = (x @ x) / (val @ val)
    return out


def _measure(fn):
    tracemalloc.start()
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, seconds, peak / 2**20


def _best_time(fn, repeats=5):
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_preset(name, sparsity, n_samples, dense_samples, max_kron_gib, seed):
    p = PRESETS[name]
    d = KroneckerDictionary.from_seed(p.m, p.n, p.a, p.b, seed=seed)
    rows = []
    for s in sparsity:
        samples = sample_sparse_vectors(d.shape[1], s, n_samples, seed=seed + s)
        run_rip = lambda: isometry_ratios(*d.gram_factors(), samples)  # noqa: E731
        (r_rip, _, mem_rip) = _measure(run_rip)
        t_rip = _best_time(run_rip)  # best of 5, outside tracemalloc (it slows allocation)
        # ripkit's own numpy reference (gather the (N, s, s) sub-blocks) vs its numba loop
        t_gather = _best_time(lambda: quadratic_forms_numpy(*d.gram_factors(), samples.supports, samples.values))
        # Dense per-sample path on the first `dense_samples` draws (all of them for the paper presets).
        k = min(dense_samples, n_samples)
        sub = type(samples)(samples.supports[:k], samples.values[:k])
        (r_lyr, t_lyr, mem_lyr) = _measure(lambda: ratios_dense_lyr(d, sub))
        t_lyr_full = t_lyr * n_samples / k
        kron_gib = d.shape[0] * d.shape[1] * 8 / 2**30
        row = {"preset": name, "m": p.m, "n": p.n, "a": p.a, "b": p.b, "s": s, "samples": n_samples,
               "dense_samples_timed": k,
               "ripkit_s": t_rip, "numba_vs_numpy_gather": t_gather / t_rip,
               "dense_lyr_s": t_lyr_full, "speedup_vs_dense_lyr": t_lyr_full / t_rip,
               "ripkit_peak_mib": mem_rip, "dense_lyr_peak_mib": mem_lyr,
               "max_abs_diff_lyr": float(np.abs(r_rip[:k] - r_lyr).max()),
               "kron_gib": kron_gib}
        if kron_gib <= max_kron_gib:
            (r_kron, t_kron, mem_kron) = _measure(lambda: ratios_kron(d.to_dense(max_bytes=2**62), samples))
            row.update(kron_s=t_kron, speedup_vs_kron=t_kron / t_rip, kron_peak_mib=mem_kron,
                       max_abs_diff_kron=float(np.abs(r_rip - r_kron).max()))
        else:
            row.update(kron_s=np.nan, speedup_vs_kron=np.nan, kron_peak_mib=np.nan, max_abs_diff_kron=np.nan)
        rows.append(row)
        print(f"{name:>12} s={s:<3} ripkit {t_rip * 1e3:8.2f} ms  dense LYR ×{row['speedup_vs_dense_lyr']:9.1f}  "
              f"kron ×{row['speedup_vs_kron']:8.1f}  max|Δ| {max(row['max_abs_diff_lyr'], np.nan_to_num(row['max_abs_diff_kron'])):.1e}",
              flush=True)
    return rows


def write_markdown(df: pd.DataFrame, path: Path, args) -> None:
    cols = ["preset", "s", "dense_samples_timed", "ripkit_s", "numba_vs_numpy_gather", "speedup_vs_dense_lyr",
            "speedup_vs_kron",
            "ripkit_peak_mib", "dense_lyr_peak_mib", "kron_peak_mib", "max_abs_diff_lyr", "max_abs_diff_kron"]
    fmt = df[cols].copy()
    for c in ("ripkit_s",):
        fmt[c] = fmt[c].map(lambda v: f"{v * 1e3:.2f} ms")
    fmt["numba_vs_numpy_gather"] = fmt["numba_vs_numpy_gather"].map(lambda v: f"{v:.1f}×")
    for c in ("speedup_vs_dense_lyr", "speedup_vs_kron"):
        fmt[c] = fmt[c].map(lambda v: "n/a (Ψ too large)" if np.isnan(v) else f"{v:,.0f}×")
    for c in ("ripkit_peak_mib", "dense_lyr_peak_mib", "kron_peak_mib"):
        fmt[c] = fmt[c].map(lambda v: "–" if np.isnan(v) else f"{v:,.1f}")
    for c in ("max_abs_diff_lyr", "max_abs_diff_kron"):
        fmt[c] = fmt[c].map(lambda v: "–" if np.isnan(v) else f"{v:.1e}")
    paper = df[df.preset.isin(["extreme", "aggressive", "moderate", "conservative"])]
    worst = paper.speedup_vs_dense_lyr.min()
    agree = np.nanmax(df[["max_abs_diff_lyr", "max_abs_diff_kron"]].to_numpy())
    lines = [
        "# bench_rip: the paper's RIP estimator three ways",
        "",
        f"Command: `python studies/bench_rip.py` (N={args.samples} samples per s, seed {args.seed}; "
        f"materialized Ψ only up to {args.max_kron_gib} GiB). Times include building the Gram factors "
        "(ripkit, best of 5) or Ψ (kron, one run); the dense L·Y·R time is measured on "
        "`dense_samples_timed` draws and extrapolated linearly to N (it is linear in N); agreement is "
        "checked on those draws. Peak memory is tracemalloc's peak (MiB) during "
        "each way. `numba_vs_numpy_gather`: ripkit's numba quadratic-form loop against its own numpy "
        "reference path (gathering the (N, s, s) Gram sub-blocks), same draws. Ratios are what to read: "
        "this 2-core machine is shared and noisy; the numba kernel is compiled (or loaded from its cache) "
        "before timing.",
        "",
        fmt.to_markdown(index=False),
        "",
        f"**Verdict.** Slowest paper-preset speed-up of ripkit over per-sample dense L·Y·R: "
        f"{worst:,.0f}× (acceptance: ≥ 100×). Largest disagreement between the three ways on the same "
        f"draws: {agree:.1e} (acceptance: ≤ 1e-9). ripkit's memory scales with a² + b² + N·s², never with mn·ab.",
    ]
    path.write_text("\n".join(lines) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-kron-gib", type=float, default=1.0)
    ap.add_argument("--dense-samples", type=int, default=200,
                    help="time per-sample dense L·Y·R on this many draws and extrapolate to N")
    ap.add_argument("--llm-dense-samples", type=int, default=10)
    args = ap.parse_args(argv)
    rows = []
    for name in ("extreme", "aggressive", "moderate", "conservative"):
        rows += bench_preset(name, (5, 10, 20), args.samples, args.dense_samples, args.max_kron_gib, args.seed)
    rows += bench_preset("llm", (5, 20), args.samples, args.llm_dense_samples, args.max_kron_gib, args.seed)
    df = pd.DataFrame(rows)
    FIGURES.mkdir(exist_ok=True)
    df.to_csv(FIGURES / "bench_rip.csv", index=False)
    write_markdown(df, FIGURES / "bench_rip.md", args)
    print(f"wrote {FIGURES / 'bench_rip.csv'} and {FIGURES / 'bench_rip.md'}")


if __name__ == "__main__":
    main()
