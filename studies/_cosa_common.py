"""Small helpers shared by the CoSA study scripts (``studies/cosa_*.py``) only.

Each study writes ``<out>/<name>.{png,csv,md}`` (``out`` defaults to ``figures/``);
``--quick`` runs a small version in about a minute, ``--seed`` fixes every draw.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from ripkit.plot import save_figure

FIGURES = Path(__file__).resolve().parent.parent / "figures"


def study_parser(name: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m studies.{name}", description=description)
    p.add_argument("--quick", action="store_true", help="small version (about a minute)")
    p.add_argument("--seed", type=int, default=0, help="base seed of every random draw (default 0)")
    p.add_argument("--out", type=Path, default=FIGURES, help="output folder (default figures/)")
    return p


def command_line(name: str, argv) -> str:
    """The exact command that reproduces this run."""
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join(["python -m studies." + name, *map(shlex.quote, (str(a) for a in args))])


def md_table(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """Markdown table; integer and boolean columns are printed as they are, floats with ``floatfmt``."""
    df = df.copy()
    for col in df.columns:
        if pd.api.types.is_integer_dtype(df[col]) or pd.api.types.is_bool_dtype(df[col]):
            df[col] = df[col].astype(str)
    return df.to_markdown(index=False, floatfmt=floatfmt)


def pm(mean: float, std: float, digits: int = 3) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def write_outputs(out: Path, name: str, table: pd.DataFrame, fig, markdown: str) -> list[Path]:
    """Write name.csv (``table``), name.png (``fig``, skipped if None) and name.md into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.csv", out / f"{name}.md"]
    table.to_csv(paths[0], index=False, float_format="%.6g")
    paths[1].write_text(markdown.rstrip() + "\n")
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
