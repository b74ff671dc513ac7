"""Helpers shared by the CPS-LoRA studies (``studies/cps_*.py``).

Command line, output writing (``figures/<name>.{png,csv,md}``), planted block
matrices, the committed trained runs under ``studies/runs/`` and the
angular-distance definition every angle table states.
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
    from studies._common import FIGURES, ROOT, RUNS, study_parser
except ModuleNotFoundError:  # run as a file
    from _common import FIGURES, ROOT, RUNS, study_parser
SEED = 0

#: The trained runs of issue #8: label -> folder under studies/runs (first existing one wins).
RUN_DIRS = {
    "LoRA r=8": ("lora-r8",),
    "GraLoRA (contiguous block-LoRA k=2, r=8)": ("block-lora-k2-r8",),
    "CPS-LoRA k=2, r=8": ("cps-lora-k2-r8", "cps-lora-k2-r8/state/adapter"),
    "full fine-tune": ("full-ft", "full", "full-finetune", "full-ft-short"),
}
ATTENTION = ("attention.self.query", "attention.self.key", "attention.self.value",
             "attention.output.dense")

ANGLE_DEFINITION = (
    "Angular distance (ripkit's stand-in for the paper's missing appendix L, "
    "`ripkit.subspaces.block_angles`, defaults): for every block, the dominant left and right "
    "singular subspaces holding 90% of the block's energy; for every pair of blocks in the same "
    "block row, the principal angles between their column (left) subspaces; for every pair in the "
    "same block column, between their row (right) subspaces; each pair scores the mean principal "
    "angle in degrees; the reported number is the mean over all pairs. 90° = mutually orthogonal "
    "(Prop. 2's condition), 0° = a shared direction.")


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


# ------------------------------------------------------------------------ trained runs
def find_run(label: str) -> Path | None:
    for sub in RUN_DIRS[label]:
        path = RUNS / sub
        if (path / "ripkit_adapter.json").exists() or (path / "adapter_config.json").exists():
            return path
    return None


def load_layers(path, *, attention_only: bool = True, max_layers: int | None = None):
    """AdapterLayers of a checkpoint, BERT Q/K/V/O only by default (the paper's targets).

    A checkpoint with no BERT attention names (e.g. a user's PEFT LLaMA adapter) keeps all layers.
    """
    from ripkit.checkpoints import load_adapter  # import lazily: torch is slow to import

    layers = load_adapter(path)
    attention = [l for l in layers if any(l.name.endswith(t) for t in ATTENTION)]
    if attention_only and attention:
        layers = attention
    return layers[:max_layers] if max_layers else layers


def factors(layer):
    """(A, B) with A @ B = ΔW for LoRA layers (factorized analysis), else the dense ΔW."""
    if layer.method in ("lora", "peft-lora"):
        return (layer.scaling * layer.factors["lora_B"], layer.factors["lora_A"])
    return layer.delta_w()


def available_runs(labels=None) -> dict[str, Path]:
    labels = labels or list(RUN_DIRS)
    return {lab: p for lab in labels if (p := find_run(lab)) is not None}


def missing_runs_note(found: dict, wanted) -> str:
    missing = [lab for lab in wanted if lab not in found]
    if not missing:
        return ""
    return ("Not run (checkpoint not found under studies/runs/ when this was generated): "
            + ", ".join(missing) + ".")
