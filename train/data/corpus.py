"""Othello corpus files for users who train their own models: a reader and a torch ``Dataset``.

:func:`read_corpus` (from the task data layer, where ``lgagent train --data`` uses it)
reads a corpus of ``lgagent datagen`` in either format into the
``.npy`` layout, int8 ``(n, 60)``: squares in play order, -1 after a game ends
(``.npy``: memory-mapped; ``.parquet``: the ``moves`` column, read into memory,
row order kept). Every game is validated (values, then legality by replay) before it
is returned; ValueError, one line, names the problem.

:class:`CorpusDataset` serves one game per item as the trainer sees it: its tokens,
legal-next-token targets and next tokens, made by the task data layer
(:func:`train.data.tasks.othello_batch`), so the encoding lives in one place::

    from torch.utils.data import DataLoader
    from train.data.corpus import CorpusDataset

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

from train.data.tasks import othello_batch, read_corpus, read_parquet  # noqa: F401  (read_*: public here too)


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
    ``train.data.tasks.othello_batch(games, T)``; the default collate stacks them.
    """

    def __init__(self, path, max_len: int | None = None):
        from train.data.tasks import OthelloTask

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
