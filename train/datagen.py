"""``lgagent datagen``: write a corpus of random Othello games as one .npy file.

The file holds int8 of shape (N, 60), exactly ``othello_env.generate_games(N,
seed)``: squares in play order, passes implicit, -1 after a game ends. It is
generated in chunks straight into a memory-mapped temporary file next to the
target, then renamed onto it, so memory stays at one chunk's worth and a
killed run leaves no partial file. Ctrl-C and SIGTERM remove the temporary file
(exit 130/143); one left by a SIGKILL is removed by the next run. The file's
blocks are reserved before the map is written (a disk that fills meanwhile is
one line, not a bus error). 20 million games (1.2 GB) take well under
a minute of compute on 2 cores.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import click
import numpy as np

from train.atomic import atomic_path, path_problem, remove_stale_temps, stale_temps
from train.cli import BadInput

ENVS = ("othello",)
CHUNK_GAMES = 1 << 20  # games per chunk: 60 MiB of int8
BYTES_PER_GAME = 60


def _nearest_existing_dir(path: Path) -> Path:
    p = path.parent.absolute()
    while not p.exists():
        p = p.parent
    return p


def _short(path) -> str:
    """A path for a one-line message: very long ones are cut in the middle."""
    text = str(path)
    return text if len(text) <= 120 else f"{text[:60]}...{text[-50:]}"


def _check_out(out: Path, force: bool, n_games: int) -> None:
    problem = path_problem(out)  # long names, /proc, read-only mounts (checked before exists())
    if problem:
        raise BadInput(f"--out {_short(out)}: {problem}")
    if out.is_dir():
        raise BadInput(f"--out {out} is a directory; give a file name such as games.npy")
    if out.exists() and not force:
        raise BadInput(f"{out} already exists; pass --force to overwrite it")
    base = _nearest_existing_dir(out)
    if not base.is_dir():
        raise BadInput(f"cannot create {out}: {base} is not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise BadInput(f"cannot write to {base}: permission denied")
    need = n_games * BYTES_PER_GAME + 4096
    # a stale temporary of an earlier killed run is removed before writing: its space counts
    free = shutil.disk_usage(base).free + sum(
        p.stat().st_size for p in stale_temps(out) if p.parent == base)
    if need > free:
        raise BadInput(f"not enough disk space in {base}: need {human_bytes(need)}, "
                       f"{human_bytes(free)} free")


def human_bytes(n: int) -> str:
    """``n`` bytes with three significant digits in the largest unit that keeps it >= 1
    (two different sizes never print the same unless they agree to 3 digits)."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} B"


class _Terminated(BaseException):
    """SIGTERM turned into an exception, so that the temporary file is removed on the way out."""


def _raise_terminated(signum, frame):
    raise _Terminated


def _reserve(path: Path, size: int) -> None:
    """Allocate ``size`` bytes of ``path`` on disk now: writing through a memory map into
    a sparse file on a full disk kills the process with SIGBUS, an allocation fails here
    with ENOSPC instead."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system without it
            raise
    finally:
        os.close(fd)


@click.command("datagen")
@click.option("--env", "env_name", default="othello", show_default=True,
              help="Which corpus to generate (only 'othello' for now).")
@click.option("--games", "n_games", type=int, required=True, help="Number of games N (> 0).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed (0..2**64-1); game i depends only on (seed, i).")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Output .npy file: int8 (N, 60), square per move, -1 after the end.")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def datagen(env_name: str, n_games: int, seed: int, out: Path, force: bool) -> None:
    """Generate N random Othello games (uniformly random legal moves) as .npy."""
    if env_name not in ENVS:
        raise BadInput(f"unknown --env {env_name!r}; datagen supports: {', '.join(ENVS)}")
    if n_games <= 0:
        raise BadInput(f"--games must be positive, got {n_games}")
    if not 0 <= seed < 2**64:
        raise BadInput(f"--seed must lie in 0..2**64-1, got {seed}")
    _check_out(out, force, n_games)

    # Imported here so that argument errors come back without compiling anything.
    from tqdm import tqdm

    from othello_env.games import MAX_MOVES, generate_into

    start = time.perf_counter()
    remove_stale_temps(out)  # what a killed earlier run left (only dead writers' files)
    main_thread = threading.current_thread() is threading.main_thread()
    old_term = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None
    try:
        with atomic_path(out, overwrite=force) as tmp:
            # open_memmap writes a proper .npy header and maps the exact path given
            # (np.save would append ".npy" to the temporary name).
            mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int8,
                                           shape=(n_games, MAX_MOVES))
            _reserve(tmp, mm.offset + mm.nbytes)
            with tqdm(total=n_games, unit="game", unit_scale=True, desc="datagen",
                      mininterval=0.5) as bar:
                for a in range(0, n_games, CHUNK_GAMES):
                    b = min(a + CHUNK_GAMES, n_games)
                    generate_into(np.asarray(mm[a:b]), seed=seed, offset=a)
                    bar.update(b - a)
            mm.flush()
            del mm
    except FileExistsError:
        raise BadInput(f"{out} already exists; pass --force to overwrite it") from None
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise BadInput(f"no space left on device writing {out} "
                           f"({human_bytes(n_games * MAX_MOVES)}); nothing was written") from None
        raise BadInput(f"cannot write {out}: {e.strerror or e}") from None
    except _Terminated:
        click.echo(f"datagen stopped by SIGTERM; {out} was not written", err=True)
        raise click.exceptions.Exit(143) from None
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    seconds = time.perf_counter() - start
    click.echo(f"wrote {n_games} games to {out} ({n_games * MAX_MOVES / 1e6:.1f} MB, "
               f"{seconds:.1f} s, {n_games / max(seconds, 1e-9):,.0f} games/s)")
