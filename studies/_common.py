"""What every study script shares: its command line and where its outputs go.

Output policy (no accidents): the committed ``figures/`` folder changes only when a
study is run with ``--update-figures`` (and never with ``--quick``).  Otherwise the
outputs go to ``--out DIR``, by default the scratch folder ``runs-tmp/figures/``
(ignored by git).  ``--out figures`` without ``--update-figures`` is refused.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ripkit._cli import Parser, seed_int, writable_dir

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "figures"
RUNS = ROOT / "studies" / "runs"
SCRATCH = ROOT / "runs-tmp" / "figures"

__all__ = ["ROOT", "FIGURES", "RUNS", "SCRATCH", "StudyParser", "study_parser", "output_dir", "command_line"]


def output_dir(out: Path | None, *, update_figures: bool, quick: bool) -> Path:
    """Where a study writes: ``figures/`` only with ``update_figures``, else ``out`` or the scratch folder.

    Raises ``ValueError`` naming the flag for ``--quick --update-figures`` and for
    ``--out figures`` without ``--update-figures``.
    """
    if update_figures:
        if quick:
            raise ValueError("--update-figures cannot be combined with --quick (quick outputs are not the "
                             "committed figures)")
        if out is not None and Path(out).resolve() != FIGURES:
            raise ValueError("--update-figures writes figures/; do not combine it with another --out")
        return FIGURES
    if out is None:
        return SCRATCH
    if Path(out).resolve() == FIGURES:
        raise ValueError("--out figures/ is the committed folder: pass --update-figures to replace it")
    return Path(out)


class StudyParser(Parser):
    """A ``Parser`` whose ``parse_args`` resolves ``args.out`` with :func:`output_dir`."""

    def parse_args(self, args=None, namespace=None):
        ns = super().parse_args(args, namespace)
        try:
            ns.out = output_dir(ns.out, update_figures=ns.update_figures, quick=getattr(ns, "quick", False))
        except ValueError as exc:
            self.error(str(exc))
        return ns


def study_parser(name: str, description: str, *, quick: bool = True) -> StudyParser:
    """``--quick``, ``--seed``, ``--out`` and ``--update-figures`` (and ``--version``) for study ``name``."""
    p = StudyParser(prog=f"python studies/{name}.py", description=description,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    if quick:
        p.add_argument("--quick", action="store_true", help="small version (about a minute)")
    p.add_argument("--seed", type=seed_int, default=0, help="base seed of every random draw (default 0)")
    p.add_argument("--out", type=writable_dir, default=None,
                   help=f"output folder (default: {SCRATCH.relative_to(ROOT)}/; figures/ needs --update-figures)")
    p.add_argument("--update-figures", action="store_true",
                   help="write the committed figures/ (full runs only)")
    return p


def command_line(name: str, argv) -> str:
    """The exact command that regenerated these outputs (``--out`` dropped: it says nothing of the numbers)."""
    args = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    kept, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "--out":
            skip = True
            continue
        if a.startswith("--out="):
            continue
        kept.append(a)
    return " ".join([f"python studies/{name}.py", *map(shlex.quote, kept)])
