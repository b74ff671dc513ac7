"""``python -m ripkit.analyze PATH_OR_HUB_ID``: the per-layer table of an adapter, then a summary per module type.

Examples
--------
python -m ripkit.analyze studies/runs/lora-r8
python -m ripkit.analyze my-dora-adapter --base path/to/base-model --format json > dora.json
python -m ripkit.analyze cosa-run --hash-seed 0 --hash-algorithm siphash13 --base path/to/base --out report/
python -m ripkit.analyze org/adapter --layers 'layers\\.(0|31)\\.' --format csv
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import warnings

from ripkit._cli import Parser, UsageError, emit, int_at_least, jobs, one_line, positive_float, run_main, writable_dir
from ripkit._parallel import BACKENDS

__all__ = ["main", "build_parser", "run"]

HASH_ALGORITHMS = ("siphash24", "siphash13")   # ripkit.formats._pyhash.ALGORITHMS, without importing it
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


# ---- flag types: each error names the flag (argparse prefixes it) -----------------------------------
def _target(text: str) -> str:
    if os.path.lexists(text) or _HUB_ID.fullmatch(text):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} does not exist (and is not a hub id org/name)")


def _existing(text: str) -> str:
    if not os.path.lexists(text):
        raise argparse.ArgumentTypeError(f"{text!r} does not exist")
    return text


def _regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid regular expression ({exc})") from None
    return text


def _adapter_name(text: str) -> str:
    if not text or "/" in text or "\\" in text or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"{text!r} must be the name of an adapter (a subfolder name)")
    return text


def _energy(text: str) -> float:
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m ripkit.analyze", description=__doc__.split("\n")[0],
               epilog="Columns and the JSON schema: README, 'Analyse any adapter'.")
    p.add_argument("path", type=_target, metavar="PATH_OR_HUB_ID",
                   help="a ripkit or peft checkpoint folder (or a file in it), or a hub id org/name")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--out", type=writable_dir, help="also write layers.csv, modules.csv, analysis.json, "
                                                    "spectra.csv and spectra/heatmap plots into this folder")
    p.add_argument("--layers", type=_regex, metavar="REGEX", help="only layers whose name matches (re.search)")
    p.add_argument("--base", type=_existing, metavar="FOLDER_OR_FILE",
                   help="base model weights (Hugging Face folder or .safetensors): needed by DoRA, PiSSA/OLoRA "
                        "saved without conversion, modules_to_save, and for VeRA / CoSA-reference shapes")
    p.add_argument("--hash-seed", type=int_at_least(0, 4294967295), metavar="N",
                   help="PYTHONHASHSEED of a CoSA reference run (its L, R seeds use Python's hash)")
    p.add_argument("--hash-algorithm", choices=HASH_ALGORITHMS, default="siphash24",
                   help="that run's string hash: siphash24 (Python <= 3.10), siphash13 (>= 3.11)")
    p.add_argument("--adapter-name", type=_adapter_name, metavar="NAME",
                   help="which adapter of a folder holding several (peft saves them in subfolders)")
    p.add_argument("--energy", type=_energy, default=0.95, help="energy of the energy rank")
    p.add_argument("--threshold", type=positive_float, default=1e-4, help="count |ΔW_ij| < this")
    p.add_argument("--rel-threshold", type=positive_float, default=1e-3, help="count |ΔW_ij| < this × RMS(ΔW)")
    p.add_argument("--no-entries", action="store_true",
                   help="skip the O(m·n) entry statistics (fractions below thresholds, max |ΔW_ij|)")
    # all cores in threads by default: the layers share the loaded adapter, and the entry kernel's own
    # threads shrink to cores // jobs (run.py), so nothing is oversubscribed
    p.add_argument("--jobs", type=jobs, default=-1, help="layers in parallel (-1: all cores); same numbers for any N")
    p.add_argument("--backend", choices=BACKENDS, default="threading",
                   help="joblib backend for --jobs (dask: DASK_SCHEDULER_ADDRESS picks a cluster)")
    p.add_argument("--no-verify", action="store_true", help="skip ripkit checkpoints' tensor SHA-256 checks")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar (shown on a terminal after 2 s)")
    return p


def _check_base(path: str) -> None:
    """Open the base's headers now, so a bad --base is reported before any work and names the flag."""
    from ripkit.formats import CheckpointError, as_base

    try:
        as_base(path)
    except CheckpointError as exc:
        raise UsageError(f"argument --base: {exc}") from None


def run(args):
    """Analyse for parsed ``args``; returns the ``Analysis``."""
    from ripkit.analyze.layer import Settings
    from ripkit.analyze.run import run_analysis

    if args.base is not None:
        _check_base(args.base)
    settings = Settings(energy=args.energy, threshold=args.threshold, rel_threshold=args.rel_threshold,
                        entries=not args.no_entries)
    return run_analysis(args.path, base=args.base, adapter_name=args.adapter_name, hash_seed=args.hash_seed,
                        hash_algorithm=args.hash_algorithm, layers=args.layers, verify=not args.no_verify,
                        settings=settings, n_jobs=args.jobs, backend=args.backend, progress=not args.no_progress)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def body():
        from ripkit.analyze import report

        with warnings.catch_warnings(record=True) as caught:  # one line each, not Python's two-line format
            warnings.simplefilter("always")
            analysis = run(args)
        for w in caught:
            print(f"{parser.prog}: warning: {one_line(w.message)}", file=sys.stderr)
        for hint in analysis.hints:
            print(f"{parser.prog}: note: {hint}", file=sys.stderr)
        if args.out is not None:
            report.write_outputs(args.out, analysis, dict(
                path_or_hub_id=args.path, base=args.base, adapter_name=args.adapter_name, hash_seed=args.hash_seed,
                hash_algorithm=args.hash_algorithm, verify=not args.no_verify))
        formats = {"json": report.format_json, "csv": report.format_csv, "table": report.format_table}
        emit(formats[args.format](analysis))

    return run_main(parser.prog, body)
