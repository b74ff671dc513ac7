"""Resumable training state: written atomically, found again after a crash at any moment.

A state is a folder ``OUT/state-<step>`` (eight digits) holding everything a resumed run
needs to continue bit for bit (nanoGPT's checkpoint dict, in safetensors + JSON, never
pickle): the adapter (``adapter/``, a ripkit checkpoint) or, for ``--method full``, every
weight (``model.safetensors``); the optimizer state and the torch RNG states
(``optimizer.safetensors``); and ``state.json`` (step, metrics so far, the optimizer's
param groups, the command's recorded settings and a SHA-256 of every file).

Crash safety: a state is written into a temporary folder beside it, every file and the
folder are fsynced, and only then is the folder renamed to its final name (a rename
within one folder is atomic) and the parent fsynced.  Older states are deleted only
after that, so at every instant a complete state exists; ``find_state`` picks the
newest folder whose files match their recorded hashes, so a half-written or damaged
one is skipped.  States written by the pre-package trainer (``OUT/state``, no hashes,
no settings) are still found.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from ripkit._atomic import TMP_MARK, fsync_dir

__all__ = ["SETTINGS_EXEMPT", "settings", "settings_diff", "save_state", "find_state", "load_state",
           "state_step", "remove_states"]

STATE_JSON = "state.json"
_NAME = re.compile(r"^state-(\d{8})$")
LEGACY = "state"  # the pre-package trainer's single state folder
#: flags that may differ on --resume: where and how fast it runs, not what it computes
SETTINGS_EXEMPT = ("out", "resume", "stop_after", "keep_state", "quiet", "threads", "device", "ckpt_every")


def settings(args) -> dict:
    """The command's settings a resumed run must share (everything but ``SETTINGS_EXEMPT``)."""
    return {k: v for k, v in sorted(vars(args).items()) if k not in SETTINGS_EXEMPT}


def settings_diff(recorded: dict, current: dict) -> list[str]:
    """``--flag`` names whose values differ between a recorded run and this command."""
    keys = sorted(set(recorded) | set(current))
    return [f"--{k.replace('_', '-')}" for k in keys if recorded.get(k) != current.get(k)]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != STATE_JSON)


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):  # files, then folders bottom-up
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
        else:
            fsync_dir(path)
    fsync_dir(folder)


def save_state(out: Path, step: int, model, optimizer, method: str, info: dict) -> Path:
    """Write the state after ``step`` as ``OUT/state-<step>``, then delete the older ones."""
    from safetensors.torch import save_file

    from ripkit.adapters.io import save_adapter

    # No clean-up on error, on purpose: an exception leaves the disk as a kill would, and
    # ``remove_states`` sweeps leftover temporary folders after the next complete save.
    out = Path(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".state-{step:08d}{TMP_MARK}", dir=out))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would hide the state from the run's other readers
    if method == "full":
        save_file({k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()},
                  str(tmp / "model.safetensors"))
    else:
        save_adapter(model, tmp / "adapter")
    sd = optimizer.state_dict()
    tensors = {f"state.{i}.{k}": v.detach().cpu().contiguous() for i, s in sd["state"].items() for k, v in s.items()}
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.stack(torch.cuda.get_rng_state_all())
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    hashes = {str(p.relative_to(tmp)): _sha256(p) for p in _files(tmp)}
    (tmp / STATE_JSON).write_text(json.dumps({**info, "param_groups": sd["param_groups"], "files": hashes},
                                             indent=1))
    _fsync_tree(tmp)
    final = out / f"state-{step:08d}"
    if final.exists():  # the same step saved again (a resumed run): move the old copy aside first
        os.rename(final, tempfile.mkdtemp(prefix=f".old-state{TMP_MARK}", dir=out))
    os.rename(tmp, final)  # the commit point: atomic within one folder
    fsync_dir(out)
    remove_states(out, keep=final)
    return final


def remove_states(out: Path, keep: Path | None = None) -> None:
    """Delete every state folder (and leftover temporary ones) in ``out`` except ``keep``."""
    out = Path(out)
    if not out.is_dir():
        return
    for path in sorted(out.iterdir()):
        stale = _NAME.match(path.name) or path.name == LEGACY or (path.name.startswith((".state-", ".old-state"))
                                                                  and TMP_MARK in path.name)
        if stale and path.is_dir() and (keep is None or path != keep):
            shutil.rmtree(path, ignore_errors=True)
    fsync_dir(out)


def _complete(folder: Path) -> dict | None:
    """The state.json of ``folder`` if the state is complete and its files match their hashes."""
    try:
        info = json.loads((folder / STATE_JSON).read_text())
        step = int(info["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if folder.name != LEGACY and _NAME.match(folder.name) and int(folder.name[6:]) != step:
        return None
    if "files" in info:
        for rel, digest in info["files"].items():
            path = folder / rel
            if not path.is_file() or _sha256(path) != digest:
                return None
    elif not (folder / "optimizer.safetensors").is_file():
        return None
    return info


def state_step(folder: Path) -> int:
    return int(json.loads((Path(folder) / STATE_JSON).read_text())["step"])


def find_state(out: Path) -> Path | None:
    """The newest complete state in ``out`` (``None`` if there is none); damaged ones are skipped."""
    out = Path(out)
    if not out.is_dir():
        return None
    candidates = sorted((p for p in out.iterdir() if p.is_dir() and _NAME.match(p.name)), reverse=True)
    if (out / LEGACY).is_dir():
        candidates.append(out / LEGACY)
    for folder in candidates:
        if _complete(folder) is not None:
            if folder != candidates[0]:
                print(f"ripkit.train: {candidates[0].name} is incomplete or damaged; resuming from {folder.name}",
                      file=sys.stderr)
            return folder
    return None


def load_state(folder: Path, model, optimizer, method: str) -> dict:
    """Restore the optimizer, RNG states (and for ``full`` every weight) from ``folder``; returns its info.

    Adapters are put back by the caller (``apply_adapter(model, folder / 'adapter')``) before
    the optimizer is built.
    """
    from safetensors.torch import load_file

    info = json.loads((folder / STATE_JSON).read_text())
    if method == "full":
        model.load_state_dict(load_file(str(folder / "model.safetensors")))
    tensors = load_file(str(folder / "optimizer.safetensors"))
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(tensors["rng.cuda"]))
    return info
