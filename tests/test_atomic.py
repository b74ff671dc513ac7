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


def test_new_files_get_open_permissions_and_keep_existing_ones(tmp_path):
    import stat

    mask = os.umask(0o022)
    os.umask(mask)
    fresh = atomic_write_text(tmp_path / "a.json", "{}")
    with open(tmp_path / "b.json", "w") as fh:
        fh.write("{}")
    assert stat.S_IMODE(fresh.stat().st_mode) == stat.S_IMODE((tmp_path / "b.json").stat().st_mode)
    os.chmod(fresh, 0o640)
    atomic_write_text(fresh, "[]")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o640
