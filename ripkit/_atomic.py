"""Crash-safe writes: a file is either its old complete self or its new complete self, never half.

Every writer here writes into a temporary file *in the same folder* (so the final
``os.replace`` is a rename within one file system, which POSIX makes atomic),
flushes and fsyncs it, renames it over the target, and fsyncs the folder so the
rename itself survives a power cut.  A crash at any point leaves either the old
file or the new one, plus at worst a stray ``.<name>.tmp-*`` file that later
writes ignore.

Used by checkpoint writers, the trainer's state, logs and every CLI's ``--out``.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_path", "fsync_dir", "TMP_MARK"]

#: Temporary files are named ``.<target name>.tmp-<random>``; readers skip names containing it.
TMP_MARK = ".tmp-"


def _read_umask() -> int:
    # os.umask can only be read by setting it; done once, at import, before any thread exists.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: New files get the permissions ``open()`` would give them (0666 & ~umask), not mkstemp's 0600.
_NEW_FILE_MODE = 0o666 & ~_read_umask()


def fsync_dir(folder) -> None:
    """fsync a folder so that renames inside it are durable (a no-op where folders can't be opened)."""
    try:
        fd = os.open(str(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it is fsynced and renamed onto ``path``.

    For writers that insist on a file name (``safetensors.torch.save_file``,
    ``matplotlib.savefig``).  On an exception the temporary file is removed and
    ``path`` is untouched.

    Examples
    --------
    >>> with atomic_path(folder / "adapter_model.safetensors") as tmp:   # doctest: +SKIP
    ...     save_file(tensors, str(tmp))
    """
    path = Path(path)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TMP_MARK}", dir=folder)
    try:  # keep an existing file's permissions, else what open() would have given
        os.fchmod(fd, path.stat().st_mode & 0o7777 if path.exists() else _NEW_FILE_MODE)
    finally:
        os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(folder)


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename, fsync of the folder)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return path


def atomic_write_text(path, text: str, encoding: str = "utf-8") -> Path:
    """``atomic_write_bytes`` for text."""
    return atomic_write_bytes(path, text.encode(encoding))
