"""Benchmark: ripkit's RIP machinery, each part against its alternative and against ripkit before issue 16.

Sections (one table each in the md, one ``section`` column in the csv):

estimator   the paper's percentile estimator three ways on the same draws: Gram
            sub-blocks (ripkit; the Gram factors are computed once per dictionary
            and cached, so they are timed separately), per-sample dense L·Y·R, and a
            materialised ``numpy.kron`` Ψ (only where it fits ``--max-kron-gib``);
gram-cache  one percentile trial at (14336, 14336, 4096, 1024): the Gram factors
            computed twice per trial (coherence, then the estimator: ripkit before
            issue 16) against once (cached); full run only;
bracket     ``python -m ripkit.rip --config llm --estimator bracket --trials 1`` as
            a process, ripkit before issue 16 (commit ``BEFORE``, checked out with
            ``git archive``) against now, interleaved, same pinned threads, warm numba
            caches, brackets compared; full run only;
enumeration exact enumeration (``exact_rip``) on a 28-column Gram: supports per
            second now (1 and 2 threads, and the torch path on the CPU) against the
            kernel before issue 16, with the measured DGEMM rate for scale; CUDA when
            present, else the GPU rows say it was not measured;
bounds      certified bracket widths per paper preset with the bounds before issue 16,
            with the ``group`` bound (ripkit.rip.upper), with the ``coupling`` bound
            (ripkit.rip.coupling), and with Λ(t) by branch and bound
            (ripkit.rip.branch_bound) and the over-full rectangle starts
            (ripkit.rip.grids), at the default settings and, for s = 5, with an
            explicit cap of 3·10⁸ supports.

Run:  python studies/bench_rip.py [--quick] [--threads 1]   (full: about 15 min on 2 cores)
Writes <out>/bench_rip.{csv,md} (figures/ with --update-figures).
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ripkit._atomic import atomic_write_text
from ripkit._cli import positive_float, positive_int
from ripkit.coherence import kron_coherence
from ripkit.kron import KroneckerDictionary
from ripkit.rip import PRESETS, isometry_ratios, sample_sparse_vectors
from ripkit.rip import bracket as bracket_module
from ripkit.rip.bracket import rip_bracket
from ripkit.rip.exhaustive import exact_rip
from ripkit.rip.trials import estimate_dictionary, trial_dictionary

try:
    from studies._bench import environment, environment_lines, interleaved_best, pin_threads
    from studies._common import ROOT, command_line, study_parser
except ModuleNotFoundError:  # run as a file
    from _bench import environment, environment_lines, interleaved_best, pin_threads
    from _common import ROOT, command_line, study_parser

NAME = "bench_rip"
BEFORE = "e3a55ab"  # the last commit before issue 16's changes
PAPER = ("extreme", "aggressive", "moderate", "conservative")


# --- estimator ------------------------------------------------------------------------------------
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


def bench_estimator(names, sparsity, args):
    rows = []
    for name in names:
        p = PRESETS[name]
        d = KroneckerDictionary.from_seed(p.m, p.n, p.a, p.b, seed=args.seed)
        t0 = time.perf_counter()
        grams = d.gram_factors()
        t_gram = time.perf_counter() - t0
        for s in sparsity:
            samples = sample_sparse_vectors(d.shape[1], s, args.samples, seed=args.seed + s)
            k = min(args.dense_samples if name != "llm" else 10, args.samples)
            sub = type(samples)(samples.supports[:k], samples.values[:k])
            cands = {"ripkit": lambda: isometry_ratios(*d.gram_factors(), samples),
                     "dense L·Y·R (k draws)": lambda: ratios_dense_lyr(d, sub)}
            best = interleaved_best(cands, 3, keep=("ripkit",))
            r_rip, r_lyr = isometry_ratios(*grams, samples), ratios_dense_lyr(d, sub)
            row = {"section": "estimator", "case": name, "s": s, "ripkit_ms": 1e3 * best["ripkit"],
                   "gram_once_ms": 1e3 * t_gram,
                   "vs_dense_lyr": best["dense L·Y·R (k draws)"] * args.samples / k / best["ripkit"],
                   "max_abs_diff": float(np.abs(r_rip[:k] - r_lyr).max()), "dense_draws_timed": k}
            kron_gib = d.shape[0] * d.shape[1] * 8 / 2**30
            if kron_gib <= args.max_kron_gib:
                t0 = time.perf_counter()
                r_kron = ratios_kron(d.to_dense(max_bytes=2**62), samples)
                row["vs_kron_incl_build"] = (time.perf_counter() - t0) / best["ripkit"]
                row["max_abs_diff"] = max(row["max_abs_diff"], float(np.abs(r_rip - r_kron).max()))
            rows.append(row)
            print(f"estimator {name:>12} s={s:<3} ripkit {row['ripkit_ms']:.2f} ms, ×{row['vs_dense_lyr']:,.0f} "
                  "vs dense L·Y·R", flush=True)
    return rows


# --- gram-cache -----------------------------------------------------------------------------------
def bench_gram_cache(args, shape=(14336, 14336, 4096, 1024)):
    def trial(twice: bool) -> float:
        t0 = time.perf_counter()
        d = trial_dictionary(*shape, args.seed, 0)
        kron_coherence(d)
        if twice:  # before issue 16: the estimator computed the Gram factors again
            d.__dict__.pop("_grams")
        estimate_dictionary(d, seed=args.seed, trial=0, sparsity=(5, 10, 20), n_samples=args.samples,
                            estimators=("percentile",))
        return time.perf_counter() - t0

    best = interleaved_best({"before (Gram twice)": lambda: trial(True), "after (Gram once)": lambda: trial(False)},
                            2, drop_above=np.inf)
    ratio = best["before (Gram twice)"] / best["after (Gram once)"]
    print(f"gram-cache {shape}: {ratio:.2f}x", flush=True)
    return [{"section": "gram-cache", "case": "x".join(map(str, shape)), "before_s": best["before (Gram twice)"],
             "after_s": best["after (Gram once)"], "speedup": ratio}]


# --- bracket (CLI, before vs after) ---------------------------------------------------------------
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def _cli(root: Path, out: Path, threads: int | None, json_out: bool = False) -> float:
    """Wall time of the issue's command (``llm`` bracket, the default table on stdout) from ``root``'s ripkit;
    ``json_out``: the JSON to ``out`` instead (to compare brackets); ``threads=None``: the libraries' defaults."""
    env = {k: v for k, v in os.environ.items() if k not in _THREAD_VARS}
    env.update({} if threads is None else dict.fromkeys(_THREAD_VARS, str(threads)), PYTHONPATH=str(root))
    cmd = [sys.executable, "-m", "ripkit.rip", "--config", "llm", "--estimator", "bracket", "--trials", "1"]
    cmd += ["--format", "json", "--out", str(out)] if json_out else []
    t0 = time.perf_counter()
    # cwd outside the checkout, so that PYTHONPATH alone decides which ripkit runs
    subprocess.run(cmd, check=True, env=env, cwd=out.parent, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def bench_bracket_cli(args, tmp: Path):
    before = tmp / "before"
    before.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BEFORE, "ripkit"], capture_output=True)
    if archive.returncode:
        print(f"bracket: skipped (git archive {BEFORE} failed)", flush=True)
        return []
    subprocess.run(["tar", "-x", "-C", str(before)], input=archive.stdout, check=True)
    runs = {"before": (before, tmp / "before.json"), "after": (ROOT, tmp / "after.json")}
    for root, out in runs.values():  # warm-up: numba compiles (or loads) its kernels once per checkout
        _cli(root, out, args.threads)
    best = interleaved_best({k: (lambda r=r, o=o: _cli(r, o, args.threads)) for k, (r, o) in runs.items()}, 2,
                            drop_above=np.inf)
    # what a user gets without pinning anything (all cores to BLAS and numba): reported, not the target's measure
    unpinned = interleaved_best({"now": lambda: _cli(ROOT, tmp / "unused", None)}, 2, drop_above=np.inf)["now"]
    for root, out in runs.values():  # the brackets (and their own seconds) compared below, warm as the timed runs
        _cli(root, out, args.threads, json_out=True)
    recs = {k: json.loads(o.read_text())["records"] for k, (_, o) in runs.items()}
    rows = []
    for old, new in zip(recs["before"], recs["after"]):
        rows.append({"section": "bracket", "case": "llm", "s": new["s"], "before_s": best["before"],
                     "after_s": best["after"], "speedup": best["before"] / best["after"],
                     "after_default_threads_s": unpinned,
                     "before_bracket_s": old["seconds"], "after_bracket_s": new["seconds"],
                     "same_lower": old["lower"] == new["lower"] and old["lower_support"] == new["lower_support"],
                     "before_upper": old["upper"], "after_upper": new["upper"], "after_upper_by": new["upper_by"]})
    print(f"bracket CLI: before {best['before']:.1f} s, after {best['after']:.1f} s "
          f"(default threads {unpinned:.1f} s)", flush=True)
    return rows


# --- enumeration ----------------------------------------------------------------------------------
def _dgemm_gflops(threads: int) -> float:
    from threadpoolctl import threadpool_limits

    x = np.random.default_rng(0).standard_normal((2048, 2048))
    with threadpool_limits(threads):
        best = interleaved_best({"gemm": lambda: x @ x}, 5)["gemm"]
    return 2 * 2048**3 / best / 1e9


def _before_exact_rip(tmp: Path):
    """``exact_rip`` of the pre-issue-16 checkout in ``tmp/before`` (its numba kernel cached there)."""
    path = tmp / "before" / "ripkit" / "rip" / "exhaustive.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("exhaustive_before_issue16", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.exact_rip


def _rate(fn, repeats=3) -> tuple[float, object]:
    res = [fn() for _ in range(repeats)]
    best = max(res, key=lambda r: r.supports_per_second)
    return best.supports_per_second, best


def bench_enumeration(args, tmp: Path):
    import numba

    d = 28
    phi = np.random.default_rng(args.seed).standard_normal((256, d)) / 16
    gram = phi.T @ phi
    before = _before_exact_rip(tmp)
    peak = {t: _dgemm_gflops(t) for t in (1, 2)}
    rows = []
    for s in ((3, 5, 7) if args.quick else (3, 5, 7, 10, 14)):
        total = math.comb(d, s)
        row = {"section": "enumeration", "case": f"d={d}", "s": s, "supports": total,
               "dgemm_gflops_1": peak[1], "dgemm_gflops_2": peak[2]}
        for threads in (1, 2):
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            rate, res = _rate(lambda: exact_rip(gram, s, max_supports=1e12))
            row[f"now_{threads}t"] = rate
            row["solved"] = res.n_solved
            if before is not None and total <= 2_000_000:
                ref, ref_res = _rate(lambda: before(gram, s, max_supports=1e12), 1)
                row[f"before_{threads}t"] = ref
                row["same"] = (ref_res.lam_max, ref_res.lam_min, ref_res.support_max, ref_res.support_min) == \
                    (res.lam_max, res.lam_min, res.support_max, res.support_min)
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
        if s <= 7:
            row["torch_cpu"], _ = _rate(lambda: exact_rip(gram, s, max_supports=1e12, device="torch-cpu"), 1)
        # certificate work ≈ two forward-substitution rows per support: about 2·s² flops
        row["cert_gflops_2t"] = row["now_2t"] * 2 * s * s / 1e9
        row["pct_of_2t_dgemm"] = 100 * row["cert_gflops_2t"] / peak[2]
        rows.append(row)
        print(f"enumeration s={s}: now {row['now_1t']:.3g}/s (1 thread), {row['now_2t']:.3g}/s (2 threads)"
              + (f"; before {row.get('before_2t', float('nan')):.3g}/s" if "before_2t" in row else ""), flush=True)
    try:
        import torch
        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    if cuda:
        big = np.random.default_rng(args.seed).standard_normal((4096, 1900)) / 64
        t0 = time.perf_counter()
        res = exact_rip(big.T @ big, 3, max_supports=2e9, device="cuda")
        rows.append({"section": "enumeration", "case": "d=1900 (cuda)", "s": 3, "supports": res.n_supports,
                     "cuda": res.supports_per_second, "cuda_seconds": time.perf_counter() - t0})
    return rows


# --- bounds ---------------------------------------------------------------------------------------
def bench_bounds(args):
    rows = []
    trials = 1 if args.quick else 5
    for name in PAPER:
        p = PRESETS[name]
        for t in range(trials):
            d = trial_dictionary(p.m, p.n, p.a, p.b, args.seed, t)
            d_prev = trial_dictionary(p.m, p.n, p.a, p.b, args.seed, t)  # its own memo, the same history
            for s in (5, 10, 20):
                caps = [None] + ([args.exact_cap] if (s == 5 and t == 0 and not args.quick) else [])
                for cap in caps:
                    key = (t, 2, s)  # a fresh SeedSequence per call: spawning children advances one
                    br = rip_bracket(d, s, seed=np.random.SeedSequence(args.seed, spawn_key=key), max_supports=cap)
                    old = _upper_without(br, {"group", "coupling"})  # the bounds before issue 16
                    mid = _upper_without(br, {"coupling"})  # … with the group bound
                    with _without_branch_bound_and_grids():
                        prev = rip_bracket(d_prev, s, seed=np.random.SeedSequence(args.seed, spawn_key=key),
                                           max_supports=cap)
                    rows.append({"section": "bounds", "case": name, "trial": t, "s": s,
                                 "cap": cap or 2_000_000, "lower": br.lower, "upper_without_group": old,
                                 "upper_without_coupling": mid, "lower_without_bb": prev.lower,
                                 "upper_without_bb": prev.upper, "upper": br.upper, "upper_by": br.upper_by,
                                 "width_without_group_pct": 100 * (old - br.lower) / br.lower,
                                 "width_without_coupling_pct": 100 * (mid - br.lower) / br.lower,
                                 "width_without_bb_pct": 100 * (prev.upper - prev.lower) / prev.lower,
                                 "width_pct": 100 * (br.upper - br.lower) / br.lower, "seconds": br.seconds,
                                 "seconds_without_bb": prev.seconds})
        print(f"bounds {name}: done", flush=True)
    return rows


@contextlib.contextmanager
def _without_branch_bound_and_grids():
    """``rip_bracket`` as it was with the coupling bound alone: no Λ(t) by branch and bound
    (``ripkit.rip.branch_bound``) and no over-full rectangle starts (``ripkit.rip.grids``)."""
    saved = bracket_module.BRANCH_BOUND_SUPPORTS, bracket_module.grid_starts
    bracket_module.BRANCH_BOUND_SUPPORTS = 0
    bracket_module.grid_starts = lambda *args, **kwargs: {"max": [], "min": []}
    try:
        yield
    finally:
        bracket_module.BRANCH_BOUND_SUPPORTS, bracket_module.grid_starts = saved


def _upper_without(br, names) -> float:
    """The bracket's upper bound had the candidates ``names`` not been computed."""
    plus, minus = br.upper_candidates["plus"], br.upper_candidates["minus"]
    return max(min(v for k, v in plus.items() if k not in names), min(v for k, v in minus.items() if k not in names))


# --- report ---------------------------------------------------------------------------------------
def _table(df, cols, fmt):
    out = df[cols].copy()
    for c, f in fmt.items():
        if c in out:
            out[c] = out[c].map(lambda v, f=f: "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f(v))
    return out.to_markdown(index=False)


def write_markdown(df, env_start, env_end, args, path):
    sec = {k: g.dropna(axis=1, how="all") for k, g in df.groupby("section", sort=False)}
    lines = [f"# {NAME}: ripkit's RIP machinery, now and before issue 16", "",
             f"Command: `{command_line(NAME, args.argv)}`.", *environment_lines(env_start, env_end), ""]
    if "estimator" in sec:
        e = sec["estimator"]
        lines += ["## Paper estimator (percentile, N = {}) three ways".format(args.samples), "",
                  "ripkit: best of 3 interleaved runs, Gram factors cached (their one-off cost is `gram_once_ms`); "
                  "dense L·Y·R timed on `dense_draws_timed` draws and scaled to N; kron includes building Ψ.", "",
                  _table(e, [c for c in ("case", "s", "ripkit_ms", "gram_once_ms", "vs_dense_lyr", "vs_kron_incl_build",
                                         "max_abs_diff") if c in e],
                         {"ripkit_ms": "{:.2f}".format, "gram_once_ms": "{:.1f}".format,
                          "vs_dense_lyr": "{:,.0f}×".format, "vs_kron_incl_build": "{:,.0f}×".format,
                          "max_abs_diff": "{:.1e}".format}), ""]
    if "gram-cache" in sec:
        g = sec["gram-cache"].iloc[0]
        lines += ["## Gram factors once per dictionary (percentile trial, s = 5, 10, 20)", "",
                  f"{g['case']}: before (computed for the coherence and again for the estimator) {g['before_s']:.1f} s, "
                  f"after (cached) {g['after_s']:.1f} s: **{g['speedup']:.2f}×** (target ≥ 1.5×; the trial includes "
                  "drawing L and R). Best of 2 interleaved runs.", ""]
    if "bracket" in sec:
        b = sec["bracket"]
        now_s = b["after_s"].iloc[0]
        lines += [f"## `python -m ripkit.rip --config llm --estimator bracket --trials 1`, before ({BEFORE}) and now",
                  "", "The command exactly as written (its table to stdout; the brackets compared come from one "
                  "more run with `--format json`). Whole process (imports, numba cache loads, all three s), best of 2 "
                  f"interleaved runs after a warm-up, {args.threads} BLAS/numba thread(s) (now: numba's import and "
                  "one-off start-up run on a second Python thread while the first dictionary is drawn, `ripkit._numba.start_warm_up`): before "
                  f"**{b['before_s'].iloc[0]:.1f} s**, now **{now_s:.1f} s** ({b['speedup'].iloc[0]:.1f}×; target "
                  f"≤ 2 s: {'met' if now_s <= 2 else 'not met'} in this run). Without pinned threads (BLAS and numba "
                  "on every core, what a plain `python -m ripkit.rip` gets): "
                  f"{b['after_default_threads_s'].iloc[0]:.2f} s. "
                  "`import ripkit.rip.cli` does not import numba (the warm-up thread does), and `python -m ripkit.rip` "
                  "skips the interpreter's teardown after its output and `atexit` handlers (`ripkit._cli.exit_now`). "
                  "Per s, the bracket's own `seconds`:",
                  "",
                  _table(b, ["s", "before_bracket_s", "after_bracket_s", "same_lower", "before_upper", "after_upper",
                             "after_upper_by"],
                         {"before_bracket_s": "{:.2f}".format, "after_bracket_s": "{:.2f}".format,
                          "before_upper": "{:.6f}".format, "after_upper": "{:.6f}".format}), ""]
    if "enumeration" in sec:
        n = sec["enumeration"]
        lines += ["## Exact enumeration: supports per second", "",
                  "A 28-column Gram (Φ Gaussian 256×28 / 16); best of 3. `before`: the kernel before issue 16 (a "
                  "full eigensolve per support), only up to 2·10⁶ supports. `solved`: supports whose block was "
                  "eigensolved, the rest certified by Cholesky (results bit-identical: `same`). `cert_gflops_2t`: "
                  "the certificate's ≈ 2s² flops per support at the 2-thread rate, against the measured 2-thread "
                  "DGEMM rate — a rough measure, the work is small-loop bound.", "",
                  _table(n, [c for c in ("case", "s", "supports", "now_1t", "now_2t", "before_1t", "before_2t",
                                         "torch_cpu", "solved", "same", "cert_gflops_2t", "pct_of_2t_dgemm",
                                         "dgemm_gflops_2", "cuda", "cuda_seconds") if c in n],
                         {**{c: "{:.3g}".format for c in ("now_1t", "now_2t", "before_1t", "before_2t", "torch_cpu",
                                                          "cuda")},
                          "cert_gflops_2t": "{:.2f}".format, "pct_of_2t_dgemm": "{:.1f} %".format,
                          "dgemm_gflops_2": "{:.1f}".format, "cuda_seconds": "{:.1f}".format}), ""]
        verdicts = []
        for s_, target in ((5, 2e7), (10, 2e6)):
            row = n[n.s == s_]
            if len(row):
                r = row.iloc[0]
                best_t = "1 thread" if r["now_1t"] >= r["now_2t"] else "2 threads"
                rate = max(r["now_1t"], r["now_2t"])
                verdicts.append(f"s = {s_}: {rate:.3g} supports/s ({best_t}), target ≥ {target:.0e}: "
                                f"{'met' if rate >= target else 'not met'}")
        if verdicts:
            lines += ["Targets (per machine, either thread count): " + "; ".join(verdicts) + ".", ""]
        if "cuda" not in n:
            lines += ["GPU (torch/CUDA path, target ≥ 10⁹ supports per side within a minute on an H100-class GPU): "
                      "**not measured: no GPU was available.** The path is tested on CPU torch against the numba "
                      "path (identical results).", ""]
    if "bounds" in sec:
        u = sec["bounds"]
        cols = ["lower", "upper_without_group", "upper_without_coupling", "lower_without_bb", "upper_without_bb",
                "upper"]
        widths = ["width_without_group_pct", "width_without_coupling_pct", "width_without_bb_pct", "width_pct"]
        agg = {c: (c, "mean") for c in cols + widths} | {"upper_by": ("upper_by", lambda x: x.mode()[0]),
                                                         "max_width_pct": ("width_pct", "max"),
                                                         "max_width_without_bb_pct": ("width_without_bb_pct", "max"),
                                                         "seconds": ("seconds", "mean"),
                                                         "seconds_without_bb": ("seconds_without_bb", "mean"),
                                                         "dictionaries": ("trial", "count")}
        default = u[u.cap == u.cap.min()].groupby(["case", "s"], sort=False).agg(**agg).reset_index()
        fmt = ({c: "{:.3f}".format for c in cols}
               | {c: "{:.1f} %".format for c in widths + ["max_width_pct", "max_width_without_bb_pct"]}
               | {"cap": "{:.0e}".format, "seconds": "{:.1f}".format, "seconds_without_bb": "{:.1f}".format})
        lines += ["## Certified brackets: the group and coupling bounds, branch and bound, over-full rectangles", "",
                  "Mean over dictionaries of the certified bracket with the default settings (enumeration cap "
                  "2·10⁶ supports; where the coupling bound is tried, up to 3·10⁸ more per factor and Λ(t) of "
                  "larger sizes by branch and bound when it leaves ≤ 10⁹ supports); "
                  "`width` = (upper − lower) / lower; `upper_without_group`: the best of the bounds ripkit had "
                  "before issue 16 (spectral, Gershgorin, Kronecker product); `upper_without_coupling`: with the "
                  "group bound too; `*_without_bb`: the bracket (both sides) with the coupling bound but without "
                  "Λ(t) by branch and bound (`ripkit.rip.branch_bound`) and without the over-full rectangle starts "
                  "of the search on Ψ (`ripkit.rip.grids`), run on a second copy of the dictionary; `upper`, "
                  "`lower`: with everything; `max_width`: the widest bracket over the dictionaries; `seconds`: "
                  "per bracket.", "",
                  _table(default, list(default.columns), fmt), ""]
        five = default[default.s == 5]
        if len(five):
            ok = five[five.max_width_pct <= 10].case.tolist()
            lines += [f"Aim (bracket width ≤ 10 % of the lower bound at s = 5 on every paper preset): met on "
                      f"{', '.join(ok) or 'none'}; " + ("not met on " + ", ".join(c for c in five.case if c not in ok)
                                                        if len(ok) < len(five) else "met on all") + ".", ""]
        big = u[(u.s == 5) & (u.trial == 0)]
        if big.cap.nunique() > 1:
            lines += ["The same at s = 5 for dictionary 0 with an explicit cap (every factor size up to it "
                      "enumerated; exact factor constants also sharpen the rectangle lower bounds):", "",
                      _table(big, ["case", "cap"] + cols + widths + ["upper_by"], fmt), ""]
    atomic_write_text(path, "\n".join(lines) + "\n")


def main(argv=None):
    ap = study_parser(NAME, __doc__.split("\n")[0])
    ap.add_argument("--threads", type=positive_int, default=1, help="BLAS/numba/torch threads (pinned)")
    ap.add_argument("--samples", type=positive_int, default=1000)
    ap.add_argument("--max-kron-gib", type=positive_float, default=1.0)
    ap.add_argument("--dense-samples", type=positive_int, default=200,
                    help="time per-sample dense L·Y·R on this many draws and scale to N")
    ap.add_argument("--exact-cap", type=positive_int, default=300_000_000,
                    help="bounds: enumeration cap for the exact factor constants at s = 5")
    args = ap.parse_args(argv)
    args.argv = argv
    pin_threads(args.threads)
    env_start = environment(args.threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_rip_") as tmp:
        tmp = Path(tmp)
        if args.quick:
            rows += bench_estimator(("extreme", "moderate"), (5, 20), args)
            (tmp / "before").mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", BEFORE, "ripkit"], capture_output=True)
            if not archive.returncode:
                subprocess.run(["tar", "-x", "-C", str(tmp / "before")], input=archive.stdout, check=True)
        else:
            rows += bench_estimator(PAPER + ("llm",), (5, 10, 20), args)
            rows += bench_gram_cache(args)
            rows += bench_bracket_cli(args, tmp)
        rows += bench_enumeration(args, tmp)
    rows += bench_bounds(args)
    df = pd.DataFrame(rows)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / f"{NAME}.csv", df.to_csv(index=False))
    write_markdown(df, env_start, environment(args.threads), args, out / f"{NAME}.md")
    print(f"wrote {out / (NAME + '.md')}")


if __name__ == "__main__":
    main()
