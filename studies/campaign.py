"""The trained-model campaign of issue 14: every run the trained-model studies read, as exact commands.

    python studies/campaign.py --list                     # every command (MiniLM, then SmolLM2)
    python studies/campaign.py --status --root DIR        # done / in progress / missing / pending
    python studies/campaign.py --root DIR --code SNAPSHOT --workers 2 --log DIR/campaign.log
    python studies/campaign.py --collect --root DIR       # copy logs + metadata, write summaries

Why a fixed list: a verdict over seeds is only as good as the runs behind it, so the runs are
named, ordered and reproducible by the commands below (``python -m ripkit.train``; every run
takes ``--seed``, and identical seeds give identical bits).  Training runs from a frozen snapshot
of the code (``--code``), at ``nice 19`` with one BLAS thread per worker.  The runner is idempotent:
a run whose ``ripkit_adapter.json`` exists is skipped, one with a saved state continues with
``--resume`` (bit-identical, ``tests/test_train.py``), anything else starts from the beginning.

Seeds: 5 for the five main methods and the orthogonal-projection arm (with n seeds the smallest
one-sided sign-test p is 2⁻ⁿ, so 5 is the least that can reach p < 0.05), 3 for CPS-LoRA at
k = 4, 8 (CPS-LoRA Figure 5 trains one model per granularity) and for every other (a, b) cell of
CoSA Figure 2.  Entries with ``requires`` need flags the snapshot's trainer lacks (the trainer
package of issue 13: the ``random`` repartitioner, ``--model smollm2 --task lm``): they are listed
and never run here.
"""
from __future__ import annotations

import fcntl
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ripkit._cli import Parser, positive_int, run_main  # noqa: E402

__all__ = ["Run", "minilm_runs", "smollm2_runs", "RUNS", "run_state", "train_command", "main"]

MAIN_SEEDS, EXTRA_SEEDS = range(5), range(3)
AB_GRID = (32, 64, 128)
MINILM_COMMON = ("--model", "minilm", "--data", "rotten-tomatoes", "--steps", "100", "--eval-every", "50",
                 "--eval-size", "500", "--threads", "1")
# checkpoint-only flags: where resumable states go and no progress bar; they change no number
RUNNER_FLAGS = ("--ckpt-every", "25", "--quiet")
TRAINER_PACKAGE = "the trainer package of issue 13"


@dataclass(frozen=True)
class Run:
    """One training run: ``name`` is its folder, ``args`` its ``python -m ripkit.train`` flags (no --out)."""

    name: str
    model: str
    group: str
    args: tuple[str, ...]
    requires: str | None = None


def _methods(seed: int) -> list[tuple[str, tuple[str, ...]]]:
    """The five main methods (README "Training adapters"): name and flags at ``seed``."""
    return [(f"cosa-a128-b128-s{seed}", ("--method", "cosa", "--a", "128", "--b", "128", "--lr", "5e-4")),
            (f"lora-r8-s{seed}", ("--method", "lora", "--r", "8", "--lr", "5e-3")),
            (f"block-lora-k2-r8-s{seed}", ("--method", "block-lora", "--k", "2", "--r", "8", "--lr", "5e-3")),
            (f"cps-lora-k2-r8-s{seed}", ("--method", "cps-lora", "--k", "2", "--r", "8", "--lr", "5e-3",
                                         "--repartition-every", "50")),
            (f"full-s{seed}", ("--method", "full", "--lr", "1e-4"))]


def minilm_runs() -> list[Run]:
    """MiniLM on rotten tomatoes, in the order they run: seeds of the main methods first."""
    runs = []

    def add(name, group, flags, seed, requires=None):
        runs.append(Run(name, "minilm", group, (*MINILM_COMMON, *flags, "--seed", str(seed)), requires))

    for s in MAIN_SEEDS:  # seed-major: a cut-off campaign still has every method at the same seeds
        for name, flags in _methods(s):
            add(name, "main", flags, s)
    for s in MAIN_SEEDS:  # the conditioning study's Gaussian-vs-orthonormal comparison (issue 15)
        add(f"cosa-a128-b128-orth-s{s}", "orthogonal",
            ("--method", "cosa", "--a", "128", "--b", "128", "--lr", "5e-4", "--kind", "orthogonal"), s)
    for k in (4, 8):
        for s in EXTRA_SEEDS:
            add(f"cps-lora-k{k}-r8-s{s}", "granularity", ("--method", "cps-lora", "--k", str(k), "--r", "8",
                                                          "--lr", "5e-3", "--repartition-every", "50"), s)
    for a in AB_GRID:
        for b in AB_GRID:
            if (a, b) == (128, 128):
                continue  # the main CoSA run is that cell
            for s in EXTRA_SEEDS:
                add(f"cosa-a{a}-b{b}-s{s}", "ab-grid",
                    ("--method", "cosa", "--a", str(a), "--b", str(b), "--lr", "5e-4"), s)
    for s in MAIN_SEEDS:  # CPS-LoRA's own EBER control: random permutations with the same merging
        add(f"cps-lora-random-k2-r8-s{s}", "control", ("--method", "cps-lora", "--k", "2", "--r", "8", "--lr",
                                                       "5e-3", "--repartition-every", "50", "--partitioner",
                                                       "random"), s, requires=TRAINER_PACKAGE)
    return runs


# SmolLM2-135M on the causal-LM task (issue 14 item 4): GPU only, bf16, long enough to converge.
# The learning rates are the MiniLM ones scaled for a decoder; a pilot (one seed, loss curve) should
# confirm them before the seeds are spent.
SMOLLM2_COMMON = ("--model", "smollm2", "--task", "lm", "--data", "rotten-tomatoes", "--steps", "600",
                  "--eval-every", "100", "--eval-size", "500", "--batch-size", "16", "--device", "cuda",
                  "--dtype", "bfloat16")


def smollm2_runs() -> list[Run]:
    runs = []
    gpu = f"{TRAINER_PACKAGE} (--model smollm2 --task lm --dtype) and a CUDA GPU"
    for s in MAIN_SEEDS:
        for name, flags in _methods(s):
            flags = tuple("2e-4" if f == "5e-3" else "5e-5" if f == "1e-4" else f for f in flags)
            runs.append(Run(name, "smollm2", "main", (*SMOLLM2_COMMON, *flags, "--seed", str(s)), gpu))
    for s in MAIN_SEEDS:
        runs.append(Run(f"cps-lora-random-k2-r8-s{s}", "smollm2", "control",
                        (*SMOLLM2_COMMON, "--method", "cps-lora", "--k", "2", "--r", "8", "--lr", "2e-4",
                         "--repartition-every", "100", "--partitioner", "random", "--seed", str(s)), gpu))
    for k in (4, 8):
        for s in EXTRA_SEEDS:
            runs.append(Run(f"cps-lora-k{k}-r8-s{s}", "smollm2", "granularity",
                            (*SMOLLM2_COMMON, "--method", "cps-lora", "--k", str(k), "--r", "8", "--lr", "2e-4",
                             "--repartition-every", "100", "--seed", str(s)), gpu))
    return runs


RUNS = {"minilm": minilm_runs(), "smollm2": smollm2_runs()}


def train_command(run: Run, out: Path, *, resume: bool = False) -> list[str]:
    """The exact ``python -m ripkit.train`` argv of ``run`` writing to ``out``."""
    return [sys.executable, "-m", "ripkit.train", *run.args, *RUNNER_FLAGS, "--out", str(out),
            *(["--resume"] if resume else [])]


def run_state(folder: Path) -> str:
    """'done' (final metadata written), 'resumable' (a saved state), 'partial' or 'missing'."""
    if (folder / "ripkit_adapter.json").exists() and not (folder / "state").exists():
        return "done"
    if (folder / "state" / "state.json").exists():
        return "resumable"
    return "partial" if folder.exists() else "missing"


def _log(log: Path | None, message: str) -> None:
    line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
    print(line, flush=True)
    if log is not None:
        with open(log, "a") as fh:
            fh.write(line + "\n")


def _launch(run: Run, root: Path, code: Path, log: Path | None) -> subprocess.Popen:
    out = root / run.name
    state = run_state(out)
    cmd = ["nice", "-n", "19", *train_command(run, out, resume=state == "resumable")]
    env = {**os.environ, "PYTHONPATH": str(code), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    out.mkdir(parents=True, exist_ok=True)
    _log(log, f"start {run.name} ({state}): {shlex.join(cmd)}")
    stderr = open(out / "train.stderr", "a")
    return subprocess.Popen(cmd, cwd=code, env=env, stdout=stderr, stderr=stderr)


def run_campaign(runs: list[Run], root: Path, code: Path, workers: int, log: Path | None) -> int:
    """Train every runnable, unfinished run of ``runs``, ``workers`` at a time; returns the failures."""
    todo = [r for r in runs if r.requires is None and run_state(root / r.name) != "done"]
    skipped = [r.name for r in runs if r.requires is not None]
    _log(log, f"campaign: {len(todo)} to run, {len(runs) - len(todo) - len(skipped)} done, "
              f"{len(skipped)} pending ({TRAINER_PACKAGE}); code {code}; {workers} workers")
    active: dict[str, tuple[subprocess.Popen, float]] = {}
    failures = 0
    while todo or active:
        while todo and len(active) < workers:
            run = todo.pop(0)
            active[run.name] = (_launch(run, root, code, log), time.time())
        time.sleep(5)
        for name, (proc, t0) in list(active.items()):
            if proc.poll() is None:
                continue
            del active[name]
            ok = proc.returncode == 0 and run_state(root / name) == "done"
            failures += not ok
            _log(log, f"{'done' if ok else 'FAILED'} {name} rc={proc.returncode} in {time.time() - t0:.0f} s")
    _log(log, f"campaign finished: {failures} failed")
    return failures


def collect(runs: list[Run], root: Path, dest: Path, log: Path | None) -> int:
    """Copy each finished run's metadata and log to ``dest/<name>/`` and write its compact summary."""
    from ripkit.runsummary import summarize_run, write_summary

    n = 0
    for run in runs:
        src = root / run.name
        if run_state(src) != "done":
            continue
        out = dest / run.name
        out.mkdir(parents=True, exist_ok=True)
        for f in ("ripkit_adapter.json", "log.csv"):
            shutil.copyfile(src / f, out / f)
        if not (out / "summary.json").exists():
            write_summary(summarize_run(src), out)
            _log(log, f"summarized {run.name}")
        n += 1
    return n


def main(argv=None) -> int:
    p = Parser(prog="python studies/campaign.py", description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=sorted(RUNS), default="minilm", help="which campaign")
    p.add_argument("--list", action="store_true", help="print every command and exit")
    p.add_argument("--status", action="store_true", help="print each run's state and exit")
    p.add_argument("--collect", action="store_true", help="copy finished runs' logs and summaries to --dest")
    p.add_argument("--root", type=Path, default=Path("runs-tmp/campaign"), help="full outputs (not in git)")
    p.add_argument("--dest", type=Path, default=Path(__file__).resolve().parent / "runs",
                   help="--collect: committed folder (a <model>/ subfolder is added)")
    p.add_argument("--code", type=Path, default=Path(__file__).resolve().parent.parent,
                   help="repository snapshot whose ripkit trains (keep it frozen while a campaign runs)")
    p.add_argument("--workers", type=positive_int, default=2)
    p.add_argument("--log", type=Path, default=None, help="append progress lines to this file")
    args = p.parse_args(argv)
    runs = RUNS[args.model]
    root = args.root / args.model if args.root.name != args.model else args.root

    def body():
        if args.list:
            for r in runs:
                note = f"   # requires {r.requires}" if r.requires else ""
                print(f"PYTHONPATH=. nice -n 19 python -m ripkit.train {shlex.join(r.args)} "
                      f"{shlex.join(RUNNER_FLAGS)} --out {root / r.name}{note}")
            return 0
        if args.status:
            for r in runs:
                print(f"{r.name:32s} {r.group:12s} {'pending' if r.requires else run_state(root / r.name)}")
            return 0
        if args.collect:
            n = collect(runs, root, args.dest / args.model, args.log)
            print(f"collected {n} runs into {args.dest / args.model}")
            return 0
        if any(r.requires for r in runs if r.model == args.model) and all(r.requires for r in runs):
            raise ValueError(f"--model {args.model}: every run requires {runs[0].requires}")
        root.mkdir(parents=True, exist_ok=True)
        with open(root / ".campaign.lock", "w") as lock:
            try:  # one runner per folder: a second one would train the same run twice
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ValueError(f"--root {root}: another campaign runner is using it") from None
            return 1 if run_campaign(runs, root, args.code.resolve(), args.workers, args.log) else 0

    return run_main("python studies/campaign.py", body)


if __name__ == "__main__":
    sys.exit(main())
