"""Run every study: ``python -m studies [--quick] [--only NAME ...] [--bench] [--out DIR | --update-figures]``.

Each study is a script in this folder with ``main(argv)``, ``--quick``, ``--out`` and
``--update-figures``; each writes ``<out>/<name>.{png,csv,md}``.  Outputs go to the scratch
folder ``runs-tmp/figures/`` unless ``--out`` names another; the committed ``figures/``
change only with ``--update-figures`` (refused with ``--quick``).  Studies run one after
another in fresh processes (so one study's thread or RNG settings cannot leak into the
next); a failure is reported and the rest still run; the exit status is 1 if any failed.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from ripkit._cli import Parser, writable_dir  # noqa: E402
from studies._common import output_dir  # noqa: E402

STUDIES = [
    # CoSA (issue: reproduce CoSA's appendix)
    "rip_bracket", "cosa_table4", "cosa_fig4", "cosa_params_memory", "cosa_trained_core", "cosa_ab_sweep",
    # CoSA theory checks the papers invite (issue 15)
    "cosa_conditioning", "rip_scaling", "cs_phase_transition", "cosa_sparsity_premise", "cosa_training_dictionaries",
    # CPS-LoRA
    "cps_prop2", "cps_reconstruction", "cps_partition_strategies", "cps_spectra", "cps_granularity",
    "cps_heatmaps",
]
BENCHMARKS = ["bench_operator", "bench_rip", "bench_partition", "bench_adapters", "bench_analyze"]


def main(argv=None) -> int:
    ap = Parser(prog="python -m studies", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="each study's few-seconds-to-a-minute version")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these studies")
    ap.add_argument("--bench", action="store_true", help="also run the benchmarks (slow, noisy)")
    ap.add_argument("--list", action="store_true", help="list the studies and exit")
    ap.add_argument("--out", type=writable_dir, help="output folder (default runs-tmp/figures/)")
    ap.add_argument("--update-figures", action="store_true", help="write the committed figures/ (not with --quick)")
    args = ap.parse_args(argv)
    try:
        out = output_dir(args.out, update_figures=args.update_figures, quick=args.quick)
    except ValueError as exc:
        ap.error(str(exc))
    names = STUDIES + (BENCHMARKS if args.bench else [])
    if args.list:
        print("\n".join(STUDIES + BENCHMARKS))
        return 0
    if args.only:
        unknown = sorted(set(args.only) - set(STUDIES + BENCHMARKS))
        if unknown:
            ap.error(f"--only: unknown study {', '.join(unknown)} (see --list)")
        names = args.only
    failed = []
    for name in names:
        cmd = [sys.executable, str(HERE / f"{name}.py")] + (["--quick"] if args.quick else [])
        cmd += ["--update-figures"] if args.update_figures else ["--out", str(out)]
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
