"""The data layer shared by training and evaluation: one interface, two tasks.

    task = make_task("othello" | "setcomp", vocab_size=16, data=None, seed=0, rank=0)
    batch = task.batch(batch_size, max_len=None, min_len=1)   # next batch of the stream
    batch.tokens  # LongTensor (B, T); PAD after a sequence ends; T = max_len or block_size
    batch.legal   # BoolTensor (B, T, V); legal next tokens after position t (t + 1 tokens seen)
    batch.next    # LongTensor (B, T); the token actually played next, -1 where none
    batch.lenient # Othello eval_batch only (else None): legal or legal for the opponent
    batch.pos     # with batch(..., pos_range=R) only (else None): LongTensor (B, T), each
                  # row a sorted sample without replacement from 0..R-1 (randomized positions)

A position has no target (``legal`` all False, ``next`` -1) after the end of a
game, when the game is over, and below ``min_len - 1`` (``min_len`` lets a
caller score only lengths it did not train on). ``max_len`` truncates every
sequence to its first ``max_len`` tokens: training on ``max_len = L`` and
evaluating beyond ``L`` is how unseen lengths are made.

Othello tokens (OthelloGPT, :mod:`othello_env.tokens`)
    Vocabulary 61: token 0 = PAD; tokens 1..60 = the 60 non-centre squares
    (square = row*8 + col, a1 = 0, h8 = 63; centre squares 27, 28, 35, 36 are
    never played) in increasing square order: squares 0..26 -> tokens 1..27,
    squares 29..34 -> tokens 28..33, squares 37..63 -> tokens 34..60. No pass
    token: a pass shows as the same colour moving twice. Block size 59: the
    inputs are a game's first 59 moves; ``legal[b, t]`` is the set of squares
    legal for the side to move after moves ``0..t`` (mapped to tokens; PAD never
    legal) and ``next[b, t]`` the token of move ``t + 1``.

Set complement tokens
    Tokens ``0..v-1`` are themselves, PAD = ``v``, model vocabulary ``v + 1``,
    block size ``v - 1`` (the complement is never empty). A batch row is a
    uniformly random arrangement of ``T`` distinct tokens (no padding);
    ``legal[b, t]`` = the tokens absent from the first ``t + 1``; ``next[b, t]``
    the token at ``t + 1``. The last position's next token is drawn too (one
    more token of the same random arrangement; ``T <= v - 1`` leaves at least
    one), as Othello keeps move ``T`` for ``next[T - 1]``: with ``max_len = L``
    both tasks train the ``next`` loss on every length ``1..L``.

Streams
    Fresh data (the default) is a deterministic, resumable stream: batch ``k``
    of a task depends only on ``(seed, rank, k)`` and the call's arguments
    (``np.random.SeedSequence(seed, spawn_key=(0, rank, k))``).
    ``state_dict()`` = ``{"task", "seed", "rank", "step", ...}``; loading it
    restores the position (``seed``, ``step``) but keeps the task's own
    ``rank``, so every DDP rank can resume from rank 0's checkpoint.
    ``pos_range=R`` (the randomized position schemes, Ruoss et al. 2023) adds
    ``batch.pos``, drawn from a branch of its own (``spawn_key=(3, rank, k)``), so the
    tokens are those of the same batch without it and the positions resume with the stream.
    ``eval_batch`` draws from a separate branch
    (``SeedSequence(seed, spawn_key=(1,))``): independent of every training
    stream and of the task's seed, so runs with different training seeds are
    compared on the same held-out batch.

Othello corpus (``make_task("othello", data="games.npy")``)
    The ``.npy`` file written by ``lgagent datagen`` (int8, shape ``(n, 60)``,
    squares, -1 after the end) is memory-mapped, never loaded whole; a
    ``.parquet`` one (``--format parquet``) is read into that layout in memory. It is
    validated on load: a wrong dtype or shape, an unreadable / truncated file,
    out-of-range values or an illegal game raise a ValueError naming the
    problem. The value-range and the legality check (``othello_env.validate_games``)
    read the whole file before training starts (about 1.4M games/s: 20M games in
    some 15 s), so a bad game never surfaces in the middle of a run. Games
    are served in a seeded
    shuffled order, a new permutation per epoch and per rank; the state adds
    ``offset`` (games consumed) so batches of varying sizes resume exactly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from agents.checkpoint import first_line
from othello_env import tokens as othello_tokens
from setcomp_env.core import check_int, complement_masks, sample_sequences
from train.data import DEFAULT_VOCAB, TASKS

# SeedSequence spawn-key branches: never reuse one for another purpose.
_TRAIN, _EVAL, _SHUFFLE, _POSITIONS = 0, 1, 2, 3

# Othello: token t >= 1 is square _TOKEN_SQUARES[t - 1]; legal squares (64,) -> tokens 1..60
_TOKEN_SQUARES = othello_tokens.TOKEN_TO_SQUARE[1:]
# square -> token with -1 (no move) -> PAD: index with square + 1
_SQUARE_PLUS1_TO_TOKEN = np.concatenate([[othello_tokens.PAD], othello_tokens.SQUARE_TO_TOKEN])


@dataclass
class Batch:
    """One batch: ``tokens`` (B, T) long, ``legal`` (B, T, V) bool, ``next`` (B, T) long.

    ``lenient`` (B, T, V) bool or None: the tokens OthelloGPT's lenient checker
    accepts (``legal`` plus the moves legal for the opponent, as a pass); set
    only by the Othello task's ``eval_batch``, None elsewhere. ``pos`` (B, T) long or None:
    the positions of a randomized scheme (``Task.batch(..., pos_range=R)``).
    """

    tokens: torch.Tensor
    legal: torch.Tensor
    next: torch.Tensor
    lenient: torch.Tensor | None = None
    pos: torch.Tensor | None = None

    def to(self, device, non_blocking: bool = False) -> "Batch":
        """The same batch on ``device``."""
        def move(t):
            return None if t is None else t.to(device, non_blocking=non_blocking)

        return Batch(move(self.tokens), move(self.legal), move(self.next), move(self.lenient),
                     move(self.pos))

    def __len__(self) -> int:
        return self.tokens.shape[0]


def _int_seed(ss: np.random.SeedSequence) -> int:
    """A 63-bit int seed from a SeedSequence (for APIs that take an int seed)."""
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def random_positions(n: int, T: int, pos_range: int, ss: np.random.SeedSequence) -> np.ndarray:
    """(n, T) int64: each row a sorted sample of T distinct positions from 0..pos_range-1,
    uniform over the subsets (Ruoss et al. 2023), drawn from ``ss``."""
    keys = np.random.default_rng(ss).random((n, pos_range))  # (n, R): a random order per row
    return np.sort(np.argsort(keys, axis=1)[:, :T], axis=1)  # (n, T)


def _to_batch(tokens: np.ndarray, legal: np.ndarray, nxt: np.ndarray, min_len: int) -> Batch:
    if min_len > 1:
        legal[:, : min_len - 1] = False
        nxt[:, : min_len - 1] = -1
    return Batch(
        torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.int64)),
        torch.from_numpy(np.ascontiguousarray(legal, dtype=np.bool_)),
        torch.from_numpy(np.ascontiguousarray(nxt, dtype=np.int64)),
    )


class Task:
    """Common part of both tasks: the stream counter, argument checks, state."""

    name: str
    vocab_size: int  # including PAD
    block_size: int
    pad_id: int

    def __init__(self, seed: int = 0, rank: int = 0):
        self.seed = check_int("seed", seed, 0)
        self.rank = check_int("rank", rank, 0)
        self.step = 0  # batches drawn so far

    def _lengths(self, max_len, min_len) -> tuple[int, int]:
        if max_len is None:
            T = self.block_size
        else:
            T = check_int("max_len", max_len, 1, self.block_size)
        min_len = check_int("min_len", min_len, 1, T)
        return T, min_len

    def batch(self, batch_size: int, max_len: int | None = None, min_len: int = 1,
              pos_range: int | None = None) -> Batch:
        """The next batch of the training stream (see the module docstring); with
        ``pos_range`` (>= T) also ``batch.pos``, randomized positions."""
        batch_size = check_int("batch_size", batch_size, 1)
        T, min_len = self._lengths(max_len, min_len)
        if pos_range is not None:
            pos_range = check_int("pos_range", pos_range, T)
        ss = np.random.SeedSequence(self.seed, spawn_key=(_TRAIN, self.rank, self.step))
        out = self._make(batch_size, T, min_len, ss)
        if pos_range is not None:
            ss = np.random.SeedSequence(self.seed, spawn_key=(_POSITIONS, self.rank, self.step))
            out.pos = torch.from_numpy(random_positions(batch_size, T, pos_range, ss))
        self.step += 1
        return out

    def eval_batch(self, n: int, max_len: int | None = None, min_len: int = 1,
                   seed: int = 0) -> Batch:
        """A fixed held-out batch of ``n`` fresh sequences, independent of the training stream.

        Depends only on ``(n, max_len, min_len, seed)``; does not advance the stream.
        """
        n = check_int("n", n, 1)
        seed = check_int("seed", seed, 0)
        T, min_len = self._lengths(max_len, min_len)
        return self._fresh(n, T, min_len, np.random.SeedSequence(seed, spawn_key=(_EVAL,)))

    def _make(self, batch_size, T, min_len, ss) -> Batch:
        return self._fresh(batch_size, T, min_len, ss)

    def _fresh(self, n, T, min_len, ss) -> Batch:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """The stream position as plain types (goes into the checkpoint)."""
        return {"task": self.name, "seed": self.seed, "rank": self.rank, "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        """Restore a position saved by :meth:`state_dict` (the task's own ``rank`` is kept)."""
        if not isinstance(state, dict):
            raise ValueError(f"task state must be a dict, got {type(state).__name__}")
        missing = [k for k in self.state_dict() if k not in state]
        if missing:
            raise ValueError(f"task state lacks {', '.join(missing)}")
        if state["task"] != self.name:
            raise ValueError(f"task state is for {state['task']!r}, this task is {self.name!r}")
        # check everything before assigning anything: a bad state leaves the task as it was
        seed = check_int("seed", state["seed"], 0)
        step = check_int("step", state["step"], 0)
        self._load_extra(state)
        self.seed, self.step = seed, step

    def _load_extra(self, state: dict) -> None:
        """Check, then restore, the subclass's part of ``state`` (ValueError before any change)."""

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(vocab_size={self.vocab_size}, "
                f"block_size={self.block_size}, "
                f"seed={self.seed}, rank={self.rank}, step={self.step})")


class SetComplementTask(Task):
    """Set complement over ``vocab_size`` tokens; PAD = ``vocab_size``."""

    name = "setcomp"

    def __init__(self, vocab_size: int = 16, seed: int = 0, rank: int = 0):
        super().__init__(seed, rank)
        v = check_int("vocab_size", vocab_size, 2)
        self.v = v
        self.vocab_size = v + 1
        self.block_size = v - 1
        self.pad_id = v

    def _fresh(self, n, T, min_len, ss) -> Batch:
        # T + 1 tokens (T <= v - 1): token T is only next[T - 1], the target of the position
        # that has seen T tokens. Rows are prefixes of one seeded permutation each, so the
        # first T tokens do not depend on the extra one.
        seqs = sample_sequences(n, T + 1, self.v, seed=ss)  # (n, T + 1)
        tokens = seqs[:, :T]  # (n, T)
        legal = np.zeros((n, T, self.vocab_size), dtype=np.bool_)
        legal[:, :, : self.v] = complement_masks(tokens, self.v)
        nxt = seqs[:, 1:].copy()  # (n, T)
        return _to_batch(tokens, legal, nxt, min_len)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "vocab_size": self.v}

    def _load_extra(self, state: dict) -> None:
        if state["vocab_size"] != self.v:
            raise ValueError(
                f"task state has vocab_size {state['vocab_size']}, this task has {self.v}")


def _games_api():
    # Imported lazily: the Othello engine compiles Numba code on first use.
    from othello_env import games

    return games


def othello_batch(games: np.ndarray, T: int, min_len: int = 1, lenient: bool = False) -> Batch:
    """Turn games (n, 60) int8 squares (-1 after the end) into a Batch of length ``T`` (<= 59).

    ``lenient=True`` also fills ``Batch.lenient``: ``legal`` or legal for the opponent
    (:func:`othello_env.games.opponent_legal_masks`), False where ``legal`` has no target.
    """
    api = _games_api()
    games = np.asarray(games)
    if games.ndim != 2 or games.shape[1] != 60 or not np.issubdtype(games.dtype, np.integer):
        raise ValueError(f"games must be an integer array (n, 60), got {games.dtype} {games.shape}")
    T = check_int("T", T, 1, 59)  # 60 would leave no next move for the last position
    min_len = check_int("min_len", min_len, 1, T)
    n = games.shape[0]
    sq = games[:, : T + 1].astype(np.int64)  # moves 0..T (move T only feeds next[T-1])
    tokens = _SQUARE_PLUS1_TO_TOKEN[sq[:, :T] + 1]
    # (n, T, 64): legal squares after moves 0..t
    masks = api.legal_move_masks(np.ascontiguousarray(games[:, :T]))
    legal = np.zeros((n, T, othello_tokens.VOCAB_SIZE), dtype=np.bool_)
    legal[:, :, 1:] = masks[:, :, _TOKEN_SQUARES]
    nxt = _SQUARE_PLUS1_TO_TOKEN[sq[:, 1 : T + 1] + 1]
    nxt[nxt == othello_tokens.PAD] = -1
    batch = _to_batch(tokens, legal, nxt, min_len)
    if lenient:
        opp = api.opponent_legal_masks(np.ascontiguousarray(games[:, :T]))  # (n, T, 64)
        wide = batch.legal.clone()
        wide[:, :, 1:] |= torch.from_numpy(np.ascontiguousarray(opp[:, :, _TOKEN_SQUARES]))
        wide &= batch.legal.any(-1, keepdim=True)  # only where the strict metric has a target
        batch.lenient = wide
    return batch


class OthelloTask(Task):
    """Othello legal-move prediction; fresh random games or a validated corpus file."""

    name = "othello"
    vocab_size = othello_tokens.VOCAB_SIZE
    block_size = 59
    pad_id = othello_tokens.PAD

    def __init__(self, data=None, seed: int = 0, rank: int = 0):
        super().__init__(seed, rank)
        self.path = None if data is None else os.fspath(data)
        self.games = None if data is None else read_corpus(self.path)
        self.offset = 0  # corpus games consumed by this rank's stream
        self._perm_epoch = None  # (epoch, permutation) cache
        self._perm = None

    def _fresh(self, n, T, min_len, ss, lenient: bool = False) -> Batch:
        games = _games_api().generate_games(n, seed=_int_seed(ss))
        return othello_batch(games, T, min_len, lenient=lenient)

    def eval_batch(self, n: int, max_len: int | None = None, min_len: int = 1,
                   seed: int = 0) -> Batch:
        """As :meth:`Task.eval_batch`, with ``Batch.lenient`` (OthelloGPT's lenient legal set)."""
        n = check_int("n", n, 1)
        seed = check_int("seed", seed, 0)
        T, min_len = self._lengths(max_len, min_len)
        return self._fresh(n, T, min_len, np.random.SeedSequence(seed, spawn_key=(_EVAL,)),
                           lenient=True)

    def _make(self, batch_size, T, min_len, ss) -> Batch:
        if self.games is None:
            return self._fresh(batch_size, T, min_len, ss)
        idx = self._corpus_indices(self.offset, batch_size)
        self.offset += batch_size
        # sorted reads are kinder to the page cache; then restore the shuffled order
        order = np.argsort(idx, kind="stable")
        rows = np.empty((batch_size, 60), dtype=np.int8)
        rows[order] = self.games[idx[order]]
        try:
            return othello_batch(rows, T, min_len)  # replays (so checks) every game it serves
        except ValueError as e:
            raise ValueError(f"corpus {self.path}: {_shift_game_index(str(e), idx)}") from None

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._perm_epoch != epoch:
            ss = np.random.SeedSequence(self.seed, spawn_key=(_SHUFFLE, self.rank, epoch))
            n = self.games.shape[0]
            dtype = np.int32 if n < 2**31 else np.int64
            self._perm = np.random.default_rng(ss).permutation(n).astype(dtype)
            self._perm_epoch = epoch
        return self._perm

    def _corpus_indices(self, start: int, count: int) -> np.ndarray:
        n = self.games.shape[0]
        out = np.empty(count, dtype=np.int64)
        done = 0
        while done < count:
            epoch, pos = divmod(start + done, n)
            take = min(count - done, n - pos)
            out[done : done + take] = self._permutation(epoch)[pos : pos + take]
            done += take
        return out

    def state_dict(self) -> dict:
        d = super().state_dict()
        if self.games is not None:
            d["offset"] = self.offset
            d["corpus_games"] = int(self.games.shape[0])
        return d

    def _load_extra(self, state: dict) -> None:
        if self.games is None:
            if "corpus_games" in state:  # resuming a corpus stream on fresh games would switch data
                raise ValueError(f"task state is for a corpus of {state['corpus_games']} games, "
                                 "this task draws fresh games (no data file)")
            return
        if state["corpus_games"] != self.games.shape[0]:
            raise ValueError(f"task state is for a corpus of {state['corpus_games']} games, "
                             f"{self.path} holds {self.games.shape[0]}")
        self.offset = check_int("offset", state["offset"], 0)


def corpus_file(path) -> str:
    """``path`` as a string when it names an existing regular file; ValueError, one line, if not."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"corpus {path}: no such file")
    if not os.path.isfile(path):
        raise ValueError(f"corpus {path}: not a regular file (a directory?)")
    return path


CORPUS_SUFFIXES = (".npy", ".parquet")
MAX_MOVES = 60  # moves per corpus row (othello_env.games.MAX_MOVES)


def read_corpus(path) -> np.ndarray:
    """A validated Othello corpus as int8 ``(n, 60)`` from a ``.npy`` or ``.parquet`` file.

    The ``.npy`` file is memory-mapped (:func:`load_corpus`); the ``.parquet`` one
    (``lgagent datagen --format parquet``) is read into memory from its ``moves``
    column (:func:`read_parquet`). ValueError (one line) for a missing, unreadable or
    invalid file, or another suffix.
    """
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in CORPUS_SUFFIXES:
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
        raise ValueError(f"corpus {path}: not a readable parquet corpus with a moves column: "
                         f"{first_line(e)}") from None
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
    _validate_rows(games, path)
    return games


def load_corpus(path) -> np.ndarray:
    """Memory-map and validate an Othello corpus (.npy, int8 (n, 60)); ValueError names the problem.

    Every game is checked (values, then legality by replay) before it is returned.
    """
    path = corpus_file(path)
    try:
        games = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # truncated header, bad magic, short data, pickled object arrays
        raise ValueError(  # numpy's message may span lines (a huge header): its first line
            f"corpus {path}: not a readable .npy file (truncated or corrupt?): "
            f"{first_line(e)}") from None
    if not isinstance(games, np.ndarray):
        raise ValueError(f"corpus {path}: expected one .npy array, got {type(games).__name__}")
    if games.dtype != np.int8:
        raise ValueError(f"corpus {path}: dtype must be int8, got {games.dtype}")
    if games.ndim != 2 or games.shape[1] != 60:
        raise ValueError(f"corpus {path}: shape must be (n, 60), got {games.shape}")
    n = games.shape[0]
    if n == 0:
        raise ValueError(f"corpus {path}: holds no games")
    chunk = 1 << 20
    for start in range(0, n, chunk):  # value range over the whole file, chunked (memory-mapped)
        part = np.asarray(games[start : start + chunk])
        lo, hi = int(part.min()), int(part.max())
        if lo < -1 or hi > 63:
            raise ValueError(f"corpus {path}: square values must lie in -1..63, got {lo}..{hi} "
                             f"in games {start}..{start + len(part) - 1}")
    _validate_rows(games, path)
    return games


def _validate_rows(games, path) -> None:
    """Replay every game of the file in chunks (memory-mapped); ValueError names the first
    illegal one by its index in the file."""
    api = _games_api()
    chunk = 1 << 16
    for start in range(0, games.shape[0], chunk):
        rows = np.arange(start, min(start + chunk, games.shape[0]))
        try:
            api.validate_games(np.asarray(games[start : start + len(rows)]))
        except ValueError as e:
            raise ValueError(f"corpus {path}: {_shift_game_index(str(e), rows)}") from None


def _shift_game_index(message: str, rows: np.ndarray) -> str:
    """Rewrite 'game i' in the engine's message to the index within the file."""
    import re

    m = re.search(r"game (\d+)", message)
    if m and int(m.group(1)) < len(rows):
        return message[: m.start(1)] + str(int(rows[int(m.group(1))])) + message[m.end(1):]
    return message


def make_task(name: str, *, vocab_size: int = DEFAULT_VOCAB, data=None, seed: int = 0, rank: int = 0) -> Task:
    """Build a task by name: ``"othello"`` or ``"setcomp"`` (see the module docstring).

    ``vocab_size`` is the set complement's token count (PAD excluded; ignored by
    Othello, whose vocabulary is fixed at 61). ``data`` is an Othello corpus
    (.npy); ``None`` draws fresh games. ``rank`` selects this DDP rank's stream.
    """
    if name == "othello":
        return OthelloTask(data=data, seed=seed, rank=rank)
    if name == "setcomp":
        if data is not None:
            raise ValueError("the setcomp task draws fresh sequences; it takes no data file")
        return SetComplementTask(vocab_size=vocab_size, seed=seed, rank=rank)
    raise ValueError(f"unknown task {name!r}; choose from {', '.join(TASKS)}")
