"""Crash safety of the resumable state: a crash at any point of a state write leaves a complete state
that --resume finds, and the resumed run ends bit-identical to an uninterrupted one."""
import csv
import json

import pytest
import safetensors.torch
import torch
from safetensors.torch import load_file

from ripkit.train import build_parser, run
from ripkit.train import state as st
from _golden import synthetic_data
from _models import tiny_bert


class Crash(BaseException):
    """Stands for a kill: nothing in the trainer catches it."""


def train(out, *extra):
    args = build_parser().parse_args(["--method", "cps-lora", "--r", "4", "--k", "2", "--repartition-every", "3",
                                      "--steps", "8", "--batch-size", "8", "--eval-every", "4", "--ckpt-every", "2",
                                      "--lr", "1e-2", "--quiet", "--threads", "1", "--targets", "query,value",
                                      "--out", str(out), *extra])
    return run(args, model_factory=tiny_bert, data=synthetic_data())


def assert_same_adapter(a, b) -> None:
    want, got = (load_file(str(d / "adapter_model.safetensors")) for d in (a, b))
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)


def crash_at(monkeypatch, crash, out) -> None:
    with monkeypatch.context() as m:
        crash(m)
        with pytest.raises(Crash):
            train(out)


def writing_step_4(path) -> bool:
    return any(part.startswith(".state-00000004") for part in str(path).split("/"))


def crash_in_optimizer_file(monkeypatch):
    real = safetensors.torch.save_file

    def save_file(tensors, filename, metadata=None):
        if writing_step_4(filename) and filename.endswith("optimizer.safetensors"):
            real(tensors, filename, metadata)
            with open(filename, "r+b") as fh:  # half of it reached the disk
                fh.truncate(fh.seek(0, 2) // 2)
            raise Crash
        return real(tensors, filename, metadata)
    monkeypatch.setattr(safetensors.torch, "save_file", save_file)


def crash_before_rename(monkeypatch):
    real = st._fsync_tree

    def fsync_tree(folder):
        real(folder)
        if writing_step_4(folder):
            raise Crash
    monkeypatch.setattr(st, "_fsync_tree", fsync_tree)


def crash_before_old_state_is_removed(monkeypatch):
    real = st.remove_states

    def remove_states(out, keep=None):
        if keep is not None and keep.name == "state-00000004":
            raise Crash
        return real(out, keep)
    monkeypatch.setattr(st, "remove_states", remove_states)


@pytest.mark.parametrize("crash,survivor", [(crash_in_optimizer_file, 2), (crash_before_rename, 2),
                                            (crash_before_old_state_is_removed, 4)])
def test_crash_during_a_state_write_is_resumable(tmp_path, monkeypatch, crash, survivor):
    train(tmp_path / "straight")
    out = tmp_path / "crashed"
    crash_at(monkeypatch, crash, out)
    assert st.find_state(out).name == f"state-{survivor:08d}"
    with open(out / "log.csv") as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == list(range(5))  # complete rows only
    train(out, "--resume")
    assert_same_adapter(tmp_path / "straight", out)
    assert [p.name for p in out.iterdir() if p.name.startswith((".", "state"))] == []  # leftovers swept


def test_a_damaged_newest_state_is_skipped(tmp_path, monkeypatch, capsys):
    train(tmp_path / "straight")
    out = tmp_path / "run"
    crash_at(monkeypatch, crash_before_old_state_is_removed, out)
    data = bytearray((out / "state-00000004" / "optimizer.safetensors").read_bytes())
    data[-1] ^= 0xFF  # a flipped bit in the newest state
    (out / "state-00000004" / "optimizer.safetensors").write_bytes(bytes(data))
    assert st.find_state(out).name == "state-00000002"
    assert "state-00000004 is incomplete or damaged" in capsys.readouterr().err
    train(out, "--resume")
    assert_same_adapter(tmp_path / "straight", out)


def test_state_records_hashes_and_settings(tmp_path):
    train(tmp_path, "--stop-after", "2")
    info = json.loads((tmp_path / "state-00000002" / "state.json").read_text())
    assert set(info["files"]) == {"optimizer.safetensors", "adapter/adapter_model.safetensors",
                                  "adapter/ripkit_adapter.json"}
    assert info["settings"]["lr"] == 1e-2 and "out" not in info["settings"]


def test_legacy_state_folder_is_resumed(tmp_path):
    """A run stopped by the pre-package trainer left OUT/state (no hashes, no settings): still resumable."""
    train(tmp_path / "straight")
    out = tmp_path / "old"
    train(out, "--stop-after", "4")
    legacy = out / "state"
    (out / "state-00000004").rename(legacy)
    info = json.loads((legacy / "state.json").read_text())
    for key in ("files", "settings"):
        info.pop(key)
    (legacy / "state.json").write_text(json.dumps(info))
    assert st.find_state(out) == legacy
    train(out, "--resume")
    assert_same_adapter(tmp_path / "straight", out)
    assert not legacy.exists()
