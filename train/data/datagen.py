"""``lgagent datagen``: write a corpus of random Othello games as one .npy or .parquet file.

The .npy file (``--format npy``, the default) holds int8 of shape (N, 60),
exactly ``othello_env.generate_games(N, seed)``: squares in play order, passes
implicit, -1 after a game ends. It is generated in chunks straight into a
memory-mapped temporary file next to the target, then renamed onto it, so memory
stays at one chunk's worth and a killed run leaves no partial file. Ctrl-C and
SIGTERM remove the temporary file (exit 130/143); one left by a SIGKILL is
removed by the next run. The file's blocks are reserved before the map is
written (a disk that fills meanwhile is one line, not a bus error). 20 million
games (1.2 GB) take well under a minute of compute on 2 cores.

``--format parquet`` writes the same games one row per game (what data tools
read; pyarrow, imported only then), one row group per chunk, through the same
temporary-then-rename path. Columns (:data:`PARQUET_COLUMNS`): ``game`` (int64,
the index ``i`` of ``generate_games``), ``moves`` (list<int8>, the squares, no
padding), ``length`` (int8), ``black_discs`` and ``white_discs`` (int8, the final
count) and ``winner`` (string: black, white or draw). :func:`train.data.corpus.read_corpus`
reads either file back into the .npy array.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import time
from pathlib import Path

import click
import numpy as np

from train.atomic import (
    atomic_path,
    human_bytes,
    nearest_existing,
    path_problem,
    remove_stale_temps,
    short_path,
    stale_temps,
)
from train.errors import BadInput
from train.signals import handling

ENVS = ("othello",)
PARQUET_COLUMNS = ("game", "moves", "length", "black_discs", "white_discs", "winner")
PARQUET_META = b"lgagent"  # schema metadata key: JSON {"format", "version", "seed", "games"}
CORPUS_FORMAT = "lgagent-othello-corpus"
CHUNK_GAMES = 1 << 20  # games per chunk: 60 MiB of int8
BYTES_PER_GAME = 60


def _check_out(out: Path, force: bool, n_games: int, fmt: str = "npy") -> None:
    problem = path_problem(out)  # long names, /proc, read-only mounts (checked before exists())
    if problem:
        raise BadInput(f"--out {short_path(out)}: {problem}")
    if out.is_dir():
        raise BadInput(f"--out {out} is a directory; give a file name such as games.{fmt}")
    other = {"npy": ".parquet", "parquet": ".npy"}[fmt]
    if out.suffix.lower() == other:
        raise BadInput(f"--out {out.name} ends in {other} but --format is {fmt}; "
                       f"pass --format {other[1:]} or rename the file")
    if out.exists() and not force:
        raise BadInput(f"{out} already exists; pass --force to overwrite it")
    base = nearest_existing(out.parent)
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


def parquet_table(games: np.ndarray, first: int = 0):
    """A pyarrow Table of ``games`` (int8 (n, 60), -1 after the end), one row per game.

    Columns :data:`PARQUET_COLUMNS`; ``game`` counts from ``first``. The final disc
    counts come from a replay of each game (``othello_env.games.replay_game``);
    ValueError names the first game that is not a legal, finished one.
    """
    import pyarrow as pa

    games = np.asarray(games)
    n = games.shape[0]
    lengths = (games >= 0).sum(axis=1).astype(np.int8)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    values = games[games >= 0].astype(np.int8)  # row-major: each game's moves in order
    black = np.empty(n, dtype=np.int8)
    white = np.empty(n, dtype=np.int8)
    bad = _final_discs(np.ascontiguousarray(games, dtype=np.int8), black, white)
    if bad >= 0:
        raise ValueError(f"game {first + bad} is not a legal, finished game")
    winner = np.where(black > white, "black", np.where(white > black, "white", "draw"))
    return pa.table({
        "game": pa.array(np.arange(first, first + n, dtype=np.int64)),
        "moves": pa.ListArray.from_arrays(pa.array(offsets), pa.array(values)),
        "length": pa.array(lengths),
        "black_discs": pa.array(black),
        "white_discs": pa.array(white),
        "winner": pa.array(winner).dictionary_encode(),
    })


def _final_discs(games, black, white) -> int:
    """Fill ``black``/``white`` (n,) with each game's final disc counts; the index of the
    first game that is not a legal finished one, or -1. Compiled on first use."""
    global _final_discs_jit
    if _final_discs_jit is None:
        _final_discs_jit = _compile_final_discs()
    return int(_final_discs_jit(games, black, white))


_final_discs_jit = None


def _compile_final_discs():
    from numba import njit, prange

    from othello_env.engine import popcount
    from othello_env.games import replay_game

    @njit(cache=True, parallel=True)
    def final_discs(games, black, white):
        n = games.shape[0]
        bad = np.zeros(n, np.bool_)
        for i in prange(n):
            masks = np.empty((1, 1, 64), np.bool_)  # not filled: want_masks / want_boards False
            boards = np.empty((1, 1, 64), np.int8)
            ply, _, me, opp, black_to_move, ended = replay_game(games, i, masks, boards, False, False)
            bad[i] = ply >= 0 or not ended
            b, w = (me, opp) if black_to_move else (opp, me)
            black[i] = popcount(b)
            white[i] = popcount(w)
        for i in range(n):
            if bad[i]:
                return i
        return -1

    return final_discs


class _LazyBar:
    """A progress bar opened at its first update: an error while the file is set up (no
    space to reserve, say) prints one line, no empty bar before it."""

    def __init__(self, make):
        self._make, self._bar = make, None

    def update(self, n: int) -> None:
        if self._bar is None:
            self._bar = self._make()
        self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _write_npy(tmp: Path, n_games: int, seed: int, bar) -> None:
    from othello_env.games import MAX_MOVES, generate_into

    # open_memmap writes a proper .npy header and maps the exact path given
    # (np.save would append ".npy" to the temporary name).
    mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int8, shape=(n_games, MAX_MOVES))
    _reserve(tmp, mm.offset + mm.nbytes)
    for a in range(0, n_games, CHUNK_GAMES):
        b = min(a + CHUNK_GAMES, n_games)
        generate_into(np.asarray(mm[a:b]), seed=seed, offset=a)
        bar.update(b - a)
    mm.flush()
    del mm


def _write_parquet(tmp: Path, n_games: int, seed: int, bar) -> None:
    import json

    import pyarrow.parquet as pq

    from othello_env.games import MAX_MOVES, generate_into

    meta = {PARQUET_META: json.dumps({"format": CORPUS_FORMAT, "version": 1, "seed": seed,
                                      "games": n_games}).encode()}
    writer = None
    try:
        for a in range(0, n_games, CHUNK_GAMES):
            b = min(a + CHUNK_GAMES, n_games)
            chunk = np.empty((b - a, MAX_MOVES), dtype=np.int8)
            generate_into(chunk, seed=seed, offset=a)
            table = parquet_table(chunk, first=a)
            if writer is None:
                table = table.replace_schema_metadata(meta)
                writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
            writer.write_table(table.replace_schema_metadata(meta), row_group_size=b - a)
            bar.update(b - a)
    finally:
        if writer is not None:
            writer.close()


def write_corpus(out: Path, n_games: int, seed: int = 0, fmt: str = "npy", force: bool = False,
                 env_name: str = "othello") -> None:
    """``lgagent datagen``: write ``n_games`` random games (game i depends only on (seed, i))
    to ``out`` as .npy or .parquet, atomically; prints the size and speed.

    BadInput (nothing written) for an unusable argument, a full disk or an unwritable path
    (the ranges of ``n_games`` >= 1 and ``seed`` in 0..2**64-1 are the command's click types).
    """
    if env_name not in ENVS:
        raise BadInput(f"unknown --env {env_name!r}; datagen supports: {', '.join(ENVS)}")
    _check_out(out, force, n_games, fmt)
    if fmt == "parquet":
        try:
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            raise BadInput("--format parquet needs pyarrow: pip install pyarrow") from None

    # Imported here so that argument errors come back without compiling anything.
    from othello_env.games import MAX_MOVES
    from train.progress import progress_bar

    write = _write_parquet if fmt == "parquet" else _write_npy
    start = time.perf_counter()
    remove_stale_temps(out)  # what a killed earlier run left (only dead writers' files)
    try:
        with handling(_raise_terminated, (signal.SIGTERM,)), atomic_path(out, overwrite=force) as tmp:
            # a terminal's bar, or plain lines (every 10%, >= 10 s apart) in a pipe or a log
            bar = _LazyBar(lambda: progress_bar(total=n_games, unit="game", unit_scale=True,
                                                desc="datagen", mininterval=0.5))
            try:
                write(tmp, n_games, seed, bar)
            finally:
                bar.close()
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
    seconds = time.perf_counter() - start
    size = out.stat().st_size
    click.echo(f"wrote {n_games} games to {out} ({size / 1e6:.1f} MB, "
               f"{seconds:.1f} s, {n_games / max(seconds, 1e-9):,.0f} games/s)")
