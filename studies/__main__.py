"""Regenerate every figure: ``python -m studies [--quick] [--only NAME ...] [--bench]``.

Each study is a script in this folder with ``main(argv)`` and ``--quick``; each writes
``figures/<name>.{png,csv,md}``.  They run one after another in fresh processes (so one
study's thread or RNG settings cannot leak into the next); a failure is reported and the
rest still run; the exit status is 1 if any failed.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

STUDIES = [
    # CoSA (issue: reproduce CoSA's appendix)
    "rip_bracket", "cosa_table4", "cosa_fig4", "cosa_params_memory", "cosa_trained_core", "cosa_ab_sweep",
    # CPS-LoRA
    "cps_prop2", "cps_reconstruction", "cps_partition_strategies", "cps_spectra", "cps_granularity",
    "cps_heatmaps",
]
BENCHMARKS = ["bench_rip", "bench_partition", "bench_adapters"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m studies", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="each study's few-seconds-to-a-minute version")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these studies")
    ap.add_argument("--bench", action="store_true", help="also run the benchmarks (slow, noisy)")
    ap.add_argument("--list", action="store_true", help="list the studies and exit")
    args = ap.parse_args(argv)
    names = STUDIES + (BENCHMARKS if args.bench else [])
    if args.list:
        print("\n".join(STUDIES + BENCHMARKS))
        return 0
    if args.only:
        unknown = sorted(set(args.only) - set(STUDIES + BENCHMARKS))
        if unknown:
            ap.exit(2, f"python -m studies: error: unknown study {', '.join(unknown)} (see --list)\n")
        names = args.only
    failed = []
    for name in names:
        cmd = [sys.executable, str(HERE / f"{name}.py")] + (["--quick"] if args.quick and name in STUDIES else [])
        t0 = time.perf_counter()
        print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
        rc = subprocess.call(cmd, cwd=HERE.parent)
        print(f"== {name}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
