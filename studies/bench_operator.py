"""Benchmark: applying Ψ = Rᵀ⊗L (matvec) and Ψᵀ (rmatvec) against plain GEMMs and PyLops, one run.

For each shape (m, n, a, b) and block size K, on the same data and the same pinned
thread count, times

* ripkit ``KroneckerDictionary.matvec`` on α (ab,) or a row-major block (ab, K), and
  ``rmatvec`` on x (mn,) or (mn, K);
* the two plain-GEMM orders on the cores themselves, each in its best layout:
  (L·Y)·R and L·(Y·R) for Ψα, (Lᵀ·X)·Rᵀ and Lᵀ·(X·Rᵀ) for Ψᵀx, with Y (K, a, b) and
  X (K, m, n) contiguous — the machine's limit for this product: ripkit should be
  within 1.1× of the better order;
* ripkit's own matvec/rmatvec as they were before issue 16 (``before_matvec``), to
  measure before and after in the same run;
* PyLops ``Kronecker(MatrixMult(Rᵀ), MatrixMult(L))`` (the same operator in PyLops'
  row-major vec), when ``pylops`` is installed (it is not a ripkit dependency:
  ``pip install pylops`` to include it).

Every candidate's result is checked against ripkit's (max relative difference).
Best of ``--repeats`` interleaved rounds; ratios are what to read.

Run:  python studies/bench_operator.py [--quick] [--threads 1]
Writes <out>/bench_operator.{csv,md} (figures/ with --update-figures).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ripkit._atomic import atomic_write_text
from ripkit._cli import positive_int
from ripkit import kron
from ripkit.kron import KroneckerDictionary

try:
    from studies._bench import environment, environment_lines, interleaved_best, pin_threads
    from studies._common import command_line, study_parser
except ModuleNotFoundError:  # run as a file
    from _bench import environment, environment_lines, interleaved_best, pin_threads
    from _common import command_line, study_parser

NAME = "bench_operator"
# (label, m, n, a, b, K)
CASES = [
    ("extreme", 512, 256, 32, 8, 1), ("extreme", 512, 256, 32, 8, 16),
    ("moderate", 512, 256, 128, 32, 1), ("moderate", 512, 256, 128, 32, 16),
    ("conservative", 512, 256, 256, 64, 16),
    ("llm q/o_proj", 4096, 4096, 1024, 256, 1), ("llm q/o_proj", 4096, 4096, 1024, 256, 4),
    ("a < b", 4096, 4096, 256, 1024, 1),
    ("llm up_proj", 14336, 4096, 1024, 256, 1), ("llm down_proj", 4096, 14336, 1024, 256, 1),
]
QUICK = [c for c in CASES if c[1] <= 512] + [("mid", 2048, 2048, 512, 128, 1), ("mid a < b", 2048, 2048, 128, 512, 2)]


def before_matvec(d, alpha):
    """ripkit's matvec before issue 16 (kept to measure before/after in one run): transpose-copy at the end."""
    k = 1 if alpha.ndim == 1 else alpha.shape[1]
    cores = alpha.reshape(d.a, d.b, k, order="F").transpose(2, 0, 1)
    out = d.apply(cores)
    flat = out.transpose(1, 2, 0).reshape(d.shape[0], k, order="F")
    return flat[:, 0] if alpha.ndim == 1 else flat


def before_rmatvec(d, x):
    """ripkit's rmatvec before issue 16: always (Lᵀ·X)·Rᵀ, whatever the shape."""
    k = 1 if x.ndim == 1 else x.shape[1]
    mats = x.reshape(d.m, d.n, k, order="F").transpose(2, 0, 1)
    cores = (d.left.T @ mats) @ d.right.T
    flat = cores.transpose(1, 2, 0).reshape(d.shape[1], k, order="F")
    return flat[:, 0] if x.ndim == 1 else flat


def _pylops(d):
    try:
        import pylops
    except ImportError:
        return None, None
    op = pylops.Kronecker(pylops.MatrixMult(np.ascontiguousarray(d.right.T)), pylops.MatrixMult(d.left))
    return op, pylops.__version__


def _last_gemm(d, k):
    """Which code does Ψα's last product here: ripkit's own kernel or numpy (``ripkit.kron._vec_product``)."""
    inner = d.b if d._left_first() else d.a
    return "ripkit kernel" if kron._uses_thin_gemm(d.n, inner, d.m, k) else "numpy"


def _rel(x, ref):
    return float(np.max(np.abs(np.asarray(x).reshape(ref.shape) - ref)) / np.max(np.abs(ref)))


def bench_case(label, m, n, a, b, k, repeats, seed):
    d = KroneckerDictionary.from_seed(m, n, a, b, seed=seed)
    L, R = d.left, d.right
    rng = np.random.default_rng(seed)
    alpha = rng.standard_normal((a * b, k)) if k > 1 else rng.standard_normal(a * b)
    x = rng.standard_normal((m * n, k)) if k > 1 else rng.standard_normal(m * n)
    # Plain GEMMs get the cores contiguous, in the layout each product likes best.
    cores = np.ascontiguousarray(alpha.reshape(a, b, k, order="F").transpose(2, 0, 1))  # (K, a, b)
    mats = np.ascontiguousarray(x.reshape(m, n, k, order="F").transpose(2, 0, 1))      # (K, m, n)
    # The same cheaper-order GEMMs written in the vec layout (X_tᵀ row-major), on prepared inputs:
    # ripkit minus its own overhead.  BLAS kernels are not symmetric in M and N, so for tiny inner
    # sizes this layout alone can cost more than the plain product's row-major one.
    cores_t, mats_t = np.ascontiguousarray(cores.transpose(0, 2, 1)), np.ascontiguousarray(mats.transpose(0, 2, 1))
    op, pylops_version = _pylops(d)
    rows = []
    for direction in ("matvec", "rmatvec"):
        if direction == "matvec":
            cands = {"ripkit": lambda: d.matvec(alpha), "ripkit before": lambda: before_matvec(d, alpha),
                     "gemm (L·Y)·R": lambda: (L @ cores) @ R,
                     "gemm L·(Y·R)": lambda: L @ (cores @ R),
                     "vec-layout GEMMs": (lambda: R.T @ (cores_t @ L.T)) if d._left_first()
                     else (lambda: (R.T @ cores_t) @ L.T)}
            if op is not None:
                cands["pylops"] = (lambda: op.matvec(alpha)) if k == 1 else (lambda: op.matmat(alpha))
            ref = d.matvec(alpha).reshape(m * n, k)
            as_vec = {"vec-layout GEMMs": lambda y: y.reshape(k, m * n).T,
                      "gemm (L·Y)·R": lambda y: y.transpose(1, 2, 0).reshape(m * n, k, order="F"),
                      "gemm L·(Y·R)": lambda y: y.transpose(1, 2, 0).reshape(m * n, k, order="F")}
        else:
            cands = {"ripkit": lambda: d.rmatvec(x), "ripkit before": lambda: before_rmatvec(d, x),
                     "gemm (Lᵀ·X)·Rᵀ": lambda: (L.T @ mats) @ R.T,
                     "gemm Lᵀ·(X·Rᵀ)": lambda: L.T @ (mats @ R.T),
                     "vec-layout GEMMs": (lambda: (R @ mats_t) @ L) if d._adjoint_right_first()
                     else (lambda: R @ (mats_t @ L))}
            if op is not None:
                cands["pylops"] = (lambda: op.rmatvec(x)) if k == 1 else (lambda: op.rmatmat(x))
            ref = d.rmatvec(x).reshape(a * b, k)
            as_vec = {"vec-layout GEMMs": lambda y: y.reshape(k, a * b).T,
                      "gemm (Lᵀ·X)·Rᵀ": lambda y: y.transpose(1, 2, 0).reshape(a * b, k, order="F"),
                      "gemm Lᵀ·(X·Rᵀ)": lambda y: y.transpose(1, 2, 0).reshape(a * b, k, order="F")}
        diffs = {name: _rel(as_vec.get(name, lambda y: y)(fn()), ref) for name, fn in cands.items()}
        best = interleaved_best(cands, repeats, keep=("ripkit",))
        gemm = min(v for key, v in best.items() if key.startswith("gemm"))
        order = "left-first" if (d._left_first() if direction == "matvec" else not d._adjoint_right_first()) \
            else "right-first"
        last = "numpy" if direction == "rmatvec" else _last_gemm(d, k)
        for name, sec in best.items():
            rows.append({"shape": label, "m": m, "n": n, "a": a, "b": b, "K": k, "direction": direction,
                         "candidate": name, "seconds": sec, "vs_best_gemm": sec / gemm,
                         "max_rel_diff": diffs[name], "ripkit_order": order, "last_gemm": last,
                         "pylops": pylops_version})
        print(f"{label:>14} K={k:<3} {direction:<8} ripkit/best GEMM {best['ripkit'] / gemm:5.2f}"
              + (f"  pylops/ripkit {best['pylops'] / best['ripkit']:5.2f}" if op is not None else ""), flush=True)
    return rows


def aliasing_probe(repeats: int) -> dict:
    """GFLOP/s of C (M×256, column-major, as the vec layout writes it) = A (M×8)·B (8×256) at M = 496 and 512."""
    rng = np.random.default_rng(0)
    rates = {}
    for rows in (496, 512):
        a_t, b_t = rng.standard_normal((8, rows)), rng.standard_normal((256, 8))  # Aᵀ, Bᵀ row-major
        sec = interleaved_best({"gemm": lambda: b_t @ a_t}, 20 * repeats)["gemm"]  # (256, M) row-major = C
        rates[rows] = 2 * rows * 256 * 8 / sec / 1e9
    return rates


def write_markdown(df, env_start, env_end, args, path, probe):
    wide = df.pivot_table(index=["shape", "m", "n", "a", "b", "K", "direction", "ripkit_order", "last_gemm"],
                          columns="candidate", values="seconds", sort=False).reset_index()
    gemm_cols = [c for c in wide.columns if isinstance(c, str) and c.startswith("gemm")]
    table = pd.DataFrame({
        "shape": wide["shape"], "(m, n, a, b)": [f"({r.m}, {r.n}, {r.a}, {r.b})" for r in wide.itertuples()],
        "K": wide["K"], "direction": wide["direction"], "ripkit order": wide["ripkit_order"],
        "last GEMM": wide["last_gemm"],
        "ripkit ms": (1e3 * wide["ripkit"]).round(2),
        "best GEMM ms": (1e3 * wide[gemm_cols].min(axis=1)).round(2),
        "other GEMM order / best": (wide[gemm_cols].max(axis=1) / wide[gemm_cols].min(axis=1)).round(2),
        "ripkit / best GEMM": (wide["ripkit"] / wide[gemm_cols].min(axis=1)).round(2),
        "before / best GEMM": (wide["ripkit before"] / wide[gemm_cols].min(axis=1)).round(2),
        "ripkit / vec-layout GEMMs": (wide["ripkit"] / wide["vec-layout GEMMs"]).round(2),
    })
    has_pylops = "pylops" in wide.columns
    if has_pylops:
        table["PyLops / ripkit"] = (wide["pylops"] / wide["ripkit"]).round(2)
    worst = table["ripkit / best GEMM"].max()
    worst_vec = table["ripkit / vec-layout GEMMs"].max()
    agree = df["max_rel_diff"].max()
    lines = [f"# {NAME}: Ψ = Rᵀ⊗L applied by ripkit, by the two plain-GEMM orders and by PyLops", "",
             f"Command: `{command_line(NAME, args.argv)}`. Best of {args.repeats} interleaved rounds per "
             "candidate (a candidate over 1.5× the fastest after two rounds is not re-timed), same data, "
             "same threads. The GEMM columns time the products on contiguous "
             "cores Y (K, a, b) or X (K, m, n) in both orders, writing each X_t (Y_t) row-major: *not* the "
             "column-major vec layout that Ψα and Ψᵀx are, so they do less than ripkit; they are the limit "
             "ripkit is held to. 'vec-layout GEMMs' are ripkit's cheaper-order products through numpy "
             "(OpenBLAS) writing the vec layout, on inputs already in the layout they read (ripkit minus "
             "its own kernel, reshapes and checks). ripkit's times include everything matvec/rmatvec do.",
             "",
             "Why the vec layout can cost more: X_t column-major has a column stride of m·8 bytes, 4 KiB at "
             "m = 512, and OpenBLAS's dgemm then runs at about half speed when the inner size is small "
             "(cache-set aliasing of the output columns: C (M×256) = A (M×8)·B (8×256), column-major, ran "
             f"at {probe[496]:.1f} GFLOP/s at M = 496 and {probe[512]:.1f} GFLOP/s at M = 512 in this run). "
             "The row-major plain GEMMs write rows of n·8 = 2 KiB and escape most of it, so on the paper's "
             "512×256 shapes no vec-layout product through OpenBLAS reaches them (`out=` buffers, F-ordered "
             "factor copies and blocking the output were measured and do not avoid it: the stride is the "
             "layout's). ripkit's matvec therefore does its last product, when its inner dimension is "
             "≤ 128, in its own kernel (`ripkit/_thin_gemm.py`, column 'last GEMM'): 4×8 register tiles "
             "over packed 8-column panels, so only four output rows are live at once, with the same "
             "arithmetic as OpenBLAS's kernel (one FMA chain per entry, inner index ascending).",
             *environment_lines(env_start, env_end), "",
             table.to_markdown(index=False), "",
             f"**Verdict.** Worst ripkit / best-GEMM ratio: {worst:.2f} (target ≤ 1.1: "
             f"{'met' if worst <= 1.1 else 'not met'}); worst ripkit / vec-layout GEMMs: {worst_vec:.2f}. "
             f"Largest relative difference between any candidate and ripkit: {agree:.1e}."]
    if has_pylops:
        pl = table["PyLops / ripkit"]
        lines.append(f"PyLops {df['pylops'].dropna().iloc[0]} `Kronecker` is {pl.min():.2f}–{pl.max():.2f}× "
                     "ripkit's time over these cases.")
    else:
        lines.append("PyLops was not installed, so it was not timed (`pip install pylops` to include it; it is "
                     "not a ripkit dependency).")
    atomic_write_text(path, "\n".join(lines) + "\n")


def main(argv=None):
    ap = study_parser(NAME, __doc__.split("\n")[0])
    ap.add_argument("--threads", type=positive_int, default=1, help="BLAS threads (pinned for every candidate)")
    ap.add_argument("--repeats", type=positive_int, default=7, help="interleaved rounds (best kept)")
    args = ap.parse_args(argv)
    args.argv = argv
    if args.quick:
        args.repeats = min(args.repeats, 3)
    pin_threads(args.threads)
    env_start = environment(args.threads)
    rows = []
    for case in (QUICK if args.quick else CASES):
        rows += bench_case(*case, repeats=args.repeats, seed=args.seed)
    df = pd.DataFrame(rows)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / f"{NAME}.csv", df.to_csv(index=False))
    probe = aliasing_probe(args.repeats)
    print(f"vec-layout aliasing probe: {probe[496]:.1f} GFLOP/s at M = 496, {probe[512]:.1f} at M = 512", flush=True)
    write_markdown(df, env_start, environment(args.threads), args, out / f"{NAME}.md", probe)
    print(f"wrote {out / (NAME + '.md')}")


if __name__ == "__main__":
    main()
