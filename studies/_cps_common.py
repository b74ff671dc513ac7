"""Helpers shared by the CPS-LoRA studies (``studies/cps_*.py``).

Command line, output writing (``figures/<name>.{png,csv,md}``) and planted block
matrices.  The trained runs and their summaries are read by ``studies/_trained.py``.
"""
from __future__ import annotations

import argparse
import contextlib
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ripkit._atomic import atomic_write_text
from ripkit.partition import Partition, balanced_cuts
from ripkit.plot import save_figure

try:
    from studies._common import FIGURES, ROOT, study_parser
except ModuleNotFoundError:  # run as a file
    from _common import FIGURES, ROOT, study_parser
SEED = 0

# ------------------------------------------------------------------ command line / output
def limit_threads(n: int = 1):
    """Context manager capping BLAS threads: on a shared 2-core machine two OpenBLAS threads
    made a 256×256 SVD ~80× slower (1.4 s vs 0.017 s) than one.  A no-op without threadpoolctl
    (installed with scikit-learn, not a core dependency)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=n)


def parse_args(argv, description: str, extra=None, name: str = "study") -> argparse.Namespace:
    """``--quick``, ``--seed``, ``--out`` and ``--update-figures`` (``studies/_common.py``) for every CPS study."""
    parser = study_parser(name, description)
    if extra is not None:
        extra(parser)
    return parser.parse_args(argv)


def command(name: str, args: argparse.Namespace) -> str:
    """The exact command that regenerates the outputs, for the .md."""
    flags = " --quick" if args.quick else ""
    flags += f" --seed {args.seed}" if args.seed != SEED else ""
    flags += "".join(f" --checkpoint '{c}'" for c in getattr(args, "checkpoint", []))
    flags += f" --runs {args.runs}" if getattr(args, "runs", None) else ""
    flags += f" --null-draws {args.null_draws}" if getattr(args, "null_draws", None) else ""
    flags += " --update-figures" if getattr(args, "update_figures", False) else ""
    return f"python studies/{name}.py{flags}"


def md_table(df: pd.DataFrame, floatfmt: str = ".3g") -> str:
    return df.to_markdown(index=False, floatfmt=floatfmt)


def write_outputs(name: str, args, title: str, df: pd.DataFrame, md_body: str, fig, t0: float) -> Path:
    """Write ``<out>/<name>.csv``, ``.png`` and ``.md`` (title + command + body + environment)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / f"{name}.csv", df.to_csv(index=False, float_format="%.6g"))
    save_figure(fig, out / f"{name}.png")
    env = (f"Run: {time.perf_counter() - t0:.1f} s on {platform.machine()} "
           f"(Python {sys.version.split()[0]}, NumPy {np.__version__}); seed {args.seed}"
           f"{'; --quick sizes' if args.quick else ''}.")
    text = f"# {title}\n\nCommand: `{command(name, args)}`\n\n{md_body.strip()}\n\n{env}\n"
    atomic_write_text(out / f"{name}.md", text)
    return out / f"{name}.md"


def verdict(ok: bool, partly: bool = False) -> str:
    return "agree" if ok else ("partly" if partly else "disagree")


# ------------------------------------------------------------------------ planted data
def orthonormal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """A (rows, cols) matrix with orthonormal columns (QR of a Gaussian)."""
    q, r = np.linalg.qr(rng.standard_normal((rows, cols)))
    return q * np.sign(np.diag(r))


def hide(w: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, Partition]:
    """Shuffle rows and columns of a k×k contiguous-block matrix; return it and the planted partition.

    ``truth.apply(hidden) == w``: the planted blocks are ``truth.blocks()``.
    """
    m, n = w.shape
    truth = Partition(rng.permutation(m), rng.permutation(n), balanced_cuts(m, k), balanced_cuts(n, k))
    return truth.unapply(w), truth


def orthogonal_blocks(n: int, k: int, rank: int, rng: np.random.Generator, *,
                      spectrum: str = "gaussian") -> np.ndarray:
    """k×k blocks A_ij B_ij of rank ``rank`` with mutually orthogonal bases (Prop. 2's condition).

    Blocks of one block row get orthogonal column bases, blocks of one block column
    orthogonal row bases (needs k·rank <= n/k).  ``spectrum``: 'gaussian' core
    coefficients (every block its own spectrum) or 'equal' (every block singular
    values 1, 2^-1/4, ... — the same decaying profile).
    """
    s = n // k
    if k * rank > s:
        raise ValueError(f"k*rank={k * rank} must be <= n/k={s}")
    left = [orthonormal(rng, s, k * rank) for _ in range(k)]    # per block row
    right = [orthonormal(rng, s, k * rank) for _ in range(k)]   # per block column
    w = np.zeros((n, n))
    for i in range(k):
        for j in range(k):
            u = left[i][:, j * rank:(j + 1) * rank]
            v = right[j][:, i * rank:(i + 1) * rank]
            core = (rng.standard_normal((rank, rank)) if spectrum == "gaussian"
                    else np.diag(2.0 ** (-np.arange(rank) / 4)))
            w[i * s:(i + 1) * s, j * s:(j + 1) * s] = u @ core @ v.T
    return w
