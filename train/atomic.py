"""Atomic file writes: a temporary file in the target's directory, then a rename.

A process killed at any moment leaves either the previous file or the new one,
never a partial file. What a SIGKILL does leave is the temporary file itself
(``.{name}.*.tmp``): :func:`remove_stale_temps` removes those of a target
before the next write. A live writer holds an advisory lock on its temporary
file (released by the OS when the process dies), so only dead writers' files
are removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path, *, overwrite: bool = True):
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    The temporary file is removed if the body raises (including KeyboardInterrupt).
    With ``overwrite=False`` an existing ``path`` raises FileExistsError before
    anything is written.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # held until the rename: tells remove_stale_temps of another process that this one lives
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the result should look like open()'s
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        try:
            if tmp.exists():
                tmp.unlink()
        finally:
            os.close(fd)


def stale_temps(path) -> list[Path]:
    """The temporary files :func:`atomic_path` left next to ``path`` (``.{name}.*.tmp``)
    whose writer is dead (no process holds their lock)."""
    path = Path(path)
    out = []
    if not path.parent.is_dir():
        return out
    for p in sorted(path.parent.glob(f".{glob.escape(path.name)}.*.tmp")):
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:  # removed meanwhile, or not ours to read
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a live writer holds it
            continue
        finally:
            os.close(fd)
        if p.is_file():
            out.append(p)
    return out


def remove_stale_temps(path) -> list[Path]:
    """Remove :func:`stale_temps` of ``path`` (left by a killed writer); return them."""
    gone = stale_temps(path)
    for p in gone:
        p.unlink(missing_ok=True)
    return gone


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))
