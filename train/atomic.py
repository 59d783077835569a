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


# the longest suffix atomic_path adds to a name: "." + name + "." + 8 random + ".tmp"
TEMP_EXTRA = 14


def short_path(path) -> str:
    """A path for a one-line message: very long ones are cut in the middle."""
    text = str(path)
    return text if len(text) <= 120 else f"{text[:60]}...{text[-50:]}"


def human_bytes(n: int) -> str:
    """``n`` bytes with three significant digits in the largest unit that keeps it >= 1
    (two different sizes never print the same unless they agree to 3 digits)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} B"


def nearest_existing(path) -> Path:
    """``path`` made absolute if it exists, else its nearest ancestor that does. It may be a
    file: a caller that wants to create ``path`` checks ``is_dir()``."""
    base = Path(path).absolute()
    while not base.exists():
        base = base.parent
    return base


def path_problem(path, *, inside: bool = False, room: int = 64) -> str | None:
    """Why new files cannot be written at ``path``, in a few words; None when they can.

    ``inside=False``: ``path`` is a file written by :func:`atomic_path` (its
    temporary name must fit too); ``inside=True``: ``path`` is a directory that
    will receive files with names of up to ``room`` bytes. Checks, without
    leaving anything behind: an empty path, a name or path over the file
    system's limits, an ancestor that is a file, and a directory that refuses
    new entries (probed by creating and removing an empty directory: ``/proc``
    or a read-only mount refuse even root).
    """
    text = str(path)
    if not text.strip():
        return "the path is empty"
    path = Path(path).absolute()
    # lengths first: exists() itself raises on a name over the limit
    name_max = _pathconf("/", "PC_NAME_MAX", 255)
    for part in path.parts[1:]:
        if len(os.fsencode(part)) > name_max:
            return f"a name is longer than {name_max} bytes ({part[:24]}...)"
    if not inside and len(os.fsencode(path.name)) + TEMP_EXTRA > name_max:
        return f"the file name is longer than {name_max - TEMP_EXTRA} bytes"
    path_max = _pathconf("/", "PC_PATH_MAX", 4096)
    if len(os.fsencode(str(path))) + (room if inside else TEMP_EXTRA) >= path_max:
        return f"the path is longer than the file system allows ({path_max} bytes)"
    base = nearest_existing(path if inside and path.is_dir() else path.parent)
    if not base.is_dir():
        return f"{base} is not a directory"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".lgagent-probe-", dir=base))
    except OSError as e:
        return f"cannot create files in {base} ({e.strerror or e})"
    return None


def _pathconf(path, name: str, default: int) -> int:
    try:
        return os.pathconf(path, name)
    except (OSError, ValueError):
        return default


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
