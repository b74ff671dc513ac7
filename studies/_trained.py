"""The committed trained runs of the campaign (``studies/campaign.py``): find them and read their summaries.

Every trained-model study reads ``studies/runs/<model>/<run>/summary.{json,safetensors}``
(``ripkit.runsummary``), so it runs from the committed files alone.  ``--runs DIR`` points
it at a folder of full checkpoints instead (e.g. ``/work/campaign/runs/minilm``): the
summaries are then recomputed from the checkpoints (cached in ``runs-tmp/summaries/``,
keyed by the checkpoint's sha256), which is how a reader checks the committed ones.

Run names end in ``-s<seed>``; a *group* is the name without it (``cps-lora-k4-r8``).
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ripkit.runsummary import RunSummary, read_summary, summarize_run, write_summary

try:
    from studies._common import ROOT, RUNS
except ModuleNotFoundError:  # run as a file
    from _common import ROOT, RUNS

__all__ = ["COMMITTED", "add_runs_argument", "group_runs", "seed_of", "runs_note", "checkpoint_summary"]

COMMITTED = RUNS / "minilm"
CACHE = ROOT / "runs-tmp" / "summaries"
SUMMARY_DRAWS = 50  # null draws of a recomputed summary (as the committed ones)
_NAME = re.compile(r"^(?P<group>.+)-s(?P<seed>\d+)$")


def add_runs_argument(parser) -> None:
    parser.add_argument("--runs", type=Path, default=None, metavar="DIR",
                        help="folder of full checkpoints: recompute the summaries from them "
                             f"(default: read the committed {COMMITTED.relative_to(ROOT)}/*/summary.json)")


def seed_of(name: str) -> int:
    m = _NAME.match(name)
    if m is None:
        raise ValueError(f"run name {name!r} does not end in -s<seed>")
    return int(m["seed"])


def _from_checkpoint(folder: Path) -> RunSummary:
    weights = folder / "adapter_model.safetensors"
    full_digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    if (folder / "summary.json").exists():  # a summary beside its checkpoint, if it is of this very file
        try:
            beside = read_summary(folder)
            if beside.meta.get("source_sha256") == full_digest:
                return beside
        except ValueError:
            pass
    digest = full_digest[:16]
    cache = CACHE / f"{folder.name}-{digest}-d{SUMMARY_DRAWS}"
    if (cache / "summary.json").exists():
        try:
            return read_summary(cache)
        except ValueError:  # another summary version: recompute
            pass
    summary = summarize_run(folder, null_draws=SUMMARY_DRAWS)
    write_summary(summary, cache)
    return summary


def checkpoint_summary(path) -> RunSummary:
    """The summary of a user's checkpoint folder (ripkit or PEFT), without block statistics."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"checkpoint {str(path)!r} is not a folder")
    return summarize_run(path, blocks=False)


def group_runs(group: str, runs_dir: Path | None = None) -> dict[int, RunSummary]:
    """{seed: summary} of every finished run ``<group>-s<seed>``, seeds ascending.

    From the committed summaries, or recomputed from the checkpoints under ``runs_dir``.
    """
    root = COMMITTED if runs_dir is None else Path(runs_dir)
    out = {}
    for folder in sorted(root.glob(f"{group}-s*")):
        m = _NAME.match(folder.name)
        if m is None or m["group"] != group:
            continue
        if runs_dir is None:
            if (folder / "summary.json").exists():
                out[int(m["seed"])] = read_summary(folder)
        elif (folder / "ripkit_adapter.json").exists() and not (folder / "state").exists():
            out[int(m["seed"])] = _from_checkpoint(folder)
    return dict(sorted(out.items()))


def runs_note(groups: dict[str, dict], runs_dir: Path | None) -> str:
    """One line per group: how many seeds were found and where."""
    where = f"`{runs_dir}` (recomputed from checkpoints)" if runs_dir else f"`{COMMITTED.relative_to(ROOT)}/`"
    lines = [f"- `{g}`: {len(r)} seed(s) {sorted(r)}" for g, r in groups.items()]
    stuck = [f"`{g}-s{s}`" for g, r in groups.items() for s, summ in r.items() if _at_majority(summ)]
    note = (f"\n\nRuns whose final accuracy is the majority-class rate (they never left it in 100 steps; "
            f"kept, as the recipe produced them): {', '.join(stuck)}." if stuck else "")
    return f"Runs read from {where}:\n" + "\n".join(lines) + note


def _at_majority(summary) -> bool:
    m = (summary.meta.get("metrics") or {}) if hasattr(summary, "meta") else {}
    acc, majority = m.get("final_accuracy"), m.get("majority_fraction")
    return acc is not None and majority is not None and acc <= majority + 1e-9
