"""Othello corpus files for users who train their own models: a reader and a torch ``Dataset``.

:func:`read_corpus` reads a corpus of ``lgagent datagen`` in either format into the
``.npy`` layout, int8 ``(n, 60)``: squares in play order, -1 after a game ends
(``.npy``: memory-mapped; ``.parquet``: the ``moves`` column, read into memory,
row order kept). Every game is validated (values, then legality by replay) before it
is returned; ValueError, one line, names the problem.

:class:`CorpusDataset` serves one game per item as the trainer sees it: its tokens,
legal-next-token targets and next tokens, made by the task data layer
(:func:`train.tasks.othello_batch`), so the encoding lives in one place::

    from torch.utils.data import DataLoader
    from train.corpus import CorpusDataset

    data = CorpusDataset("games.parquet")          # or games.npy
    for batch in DataLoader(data, batch_size=64, shuffle=True):
        batch["tokens"]  # (64, 59) long, PAD = 0 after a game ends
        batch["legal"]   # (64, 59, 61) bool: legal next tokens after position t
        batch["next"]    # (64, 59) long: the token played next, -1 where none
"""

from __future__ import annotations

import json
import os

import numpy as np
import torch
from torch.utils.data import Dataset

from train.tasks import corpus_file, load_corpus, othello_batch

MAX_MOVES = 60
SUFFIXES = (".npy", ".parquet")


def read_corpus(path) -> np.ndarray:
    """A validated Othello corpus as int8 ``(n, 60)`` from a ``.npy`` or ``.parquet`` file.

    The ``.npy`` file is memory-mapped (:func:`train.tasks.load_corpus`); the
    ``.parquet`` one (``lgagent datagen --format parquet``) is read into memory from
    its ``moves`` column. ValueError (one line) for a missing, unreadable or invalid
    file, or another suffix.
    """
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"corpus {path}: expected a .npy or .parquet file, got {suffix or 'no suffix'!r}")
    if suffix == ".npy":
        return load_corpus(path)
    return read_parquet(path)


def read_parquet(path) -> np.ndarray:
    """The ``moves`` column of a parquet corpus as the ``.npy`` array, validated (see :func:`read_corpus`)."""
    path = corpus_file(path)
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError("reading a .parquet corpus needs pyarrow: pip install pyarrow") from None
    try:
        table = pq.read_table(path, columns=["moves"])
    except Exception as e:  # not parquet, truncated, no moves column
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ValueError(f"corpus {path}: not a readable parquet corpus with a moves column: "
                         f"{first}") from None
    col = table.column("moves")
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type)) or not (
            pa.types.is_integer(col.type.value_type)):
        raise ValueError(f"corpus {path}: moves must be a list of integers, got {col.type}")
    if col.null_count:
        raise ValueError(f"corpus {path}: moves has {col.null_count} null rows")
    n = len(col)
    if n == 0:
        raise ValueError(f"corpus {path}: holds no games")
    games = np.full((n, MAX_MOVES), -1, dtype=np.int8)
    row0 = 0
    for chunk in col.chunks:
        offsets = np.asarray(chunk.offsets, dtype=np.int64)
        values = np.asarray(chunk.flatten(), dtype=np.int64)  # respects slicing of the chunk
        lengths = np.diff(offsets)
        if lengths.size and lengths.max() > MAX_MOVES:
            k = int(np.argmax(lengths))
            raise ValueError(f"corpus {path}: game {row0 + k} has {lengths[k]} moves, "
                             f"at most {MAX_MOVES}")
        if values.size and (values.min() < 0 or values.max() > 63):
            raise ValueError(f"corpus {path}: squares must lie in 0..63, got "
                             f"{values.min()}..{values.max()}")
        rows = np.repeat(np.arange(len(chunk)), lengths)
        cols = np.arange(values.size) - np.repeat(offsets[:-1] - offsets[0], lengths)
        games[row0 + rows, cols] = values
        row0 += len(chunk)
    from othello_env.games import validate_games

    try:
        validate_games(games)
    except ValueError as e:
        raise ValueError(f"corpus {path}: {str(e).splitlines()[0]}") from None
    return games


def corpus_metadata(path) -> dict | None:
    """The ``lgagent`` metadata of a parquet corpus (``format``, ``version``, ``seed``,
    ``games``), or None when the file has none."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(os.fspath(path)).metadata or {}
    raw = meta.get(b"lgagent")
    return None if raw is None else json.loads(raw)


class CorpusDataset(Dataset):
    """A torch ``Dataset`` over a corpus file: item ``i`` is game ``i`` as training sees it.

    ``path``: a ``.npy`` or ``.parquet`` corpus (:func:`read_corpus`; validated on
    construction). ``max_len``: the positions served (1..59, default 59 = the block
    size), as ``lgagent train --train-max-len``. Item: ``{"tokens": long (T,),
    "legal": bool (T, 61), "next": long (T,)}``, row ``i`` of
    ``train.tasks.othello_batch(games, T)``; the default collate stacks them.
    """

    def __init__(self, path, max_len: int | None = None):
        from train.tasks import OthelloTask

        self.path = os.fspath(path)
        self.games = read_corpus(self.path)
        block = OthelloTask.block_size
        if max_len is None:
            max_len = block
        if isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer)) or not (
                1 <= max_len <= block):
            raise ValueError(f"max_len must be an integer in 1..{block}, got {max_len!r}")
        self.max_len = int(max_len)

    def __len__(self) -> int:
        return int(self.games.shape[0])

    def __getitem__(self, i) -> dict[str, torch.Tensor]:
        n = len(self)
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"CorpusDataset index must be an integer, got {type(i).__name__}")
        if not -n <= i < n:
            raise IndexError(f"game {i} out of range for a corpus of {n} games")
        row = np.asarray(self.games[int(i) % n])[None]  # (1, 60)
        b = othello_batch(row, self.max_len)
        return {"tokens": b.tokens[0], "legal": b.legal[0], "next": b.next[0]}

    def __repr__(self) -> str:
        return f"CorpusDataset({self.path!r}, games={len(self)}, max_len={self.max_len})"
