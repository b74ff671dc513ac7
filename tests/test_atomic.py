"""ripkit._atomic: a write either completes or leaves the old file; no temporary file is left."""
import os

import pytest

from ripkit._atomic import atomic_path, atomic_write_text


def test_atomic_write_replaces_and_cleans_up(tmp_path):
    target = tmp_path / "log.csv"
    atomic_write_text(target, "old\n")
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n"
    assert os.listdir(tmp_path) == ["log.csv"]


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "adapter.json"
    atomic_write_text(target, "complete")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "complete"
    assert os.listdir(tmp_path) == ["adapter.json"]
