"""Small helpers shared by the CoSA study scripts (``studies/cosa_*.py``) only.

Each study writes ``<out>/<name>.{png,csv,md}`` (``studies/_common.py`` decides ``out``);
``--quick`` runs a small version in about a minute, ``--seed`` fixes every draw.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from ripkit._atomic import atomic_write_text
from ripkit.plot import save_figure

try:
    from studies._common import FIGURES, ROOT, command_line, study_parser
except ModuleNotFoundError:  # run as a file
    from _common import FIGURES, ROOT, command_line, study_parser




def md_table(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """Markdown table; integer and boolean columns are printed as they are, floats with ``floatfmt``."""
    df = df.copy()
    for col in df.columns:
        if pd.api.types.is_integer_dtype(df[col]) or pd.api.types.is_bool_dtype(df[col]):
            df[col] = df[col].astype(str)
    return df.to_markdown(index=False, floatfmt=floatfmt)


def repo_relative(path) -> str:
    """``path`` relative to the repository when it lies inside it (an md must not name this machine)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def pm(mean: float, std: float, digits: int = 3) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def write_outputs(out: Path, name: str, table: pd.DataFrame, fig, markdown: str) -> list[Path]:
    """Write name.csv (``table``), name.png (``fig``, skipped if None) and name.md into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.csv", out / f"{name}.md"]
    atomic_write_text(paths[0], table.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(paths[1], markdown.rstrip() + "\n")
    if fig is not None:
        paths.append(save_figure(fig, out / f"{name}.png"))
    for p in paths:
        print(f"wrote {p}", file=sys.stderr)
    return paths


class Timer:
    """``with Timer() as t: ...; t.seconds``."""

    def __enter__(self):
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._t0
        return False


@contextmanager
def blas_threads(n: int = 1):
    """Limit BLAS threads (threadpoolctl, if installed): many small SVDs on a busy 2-core machine
    run many times faster single-threaded than with oversubscribed BLAS threads."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(n):
        yield
