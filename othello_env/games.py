"""Batch API over whole games: random corpora, legal-move targets, validation, boards.

A batch of games is an integer array of shape ``(n, L)`` (``L = 60`` for full
games; shorter prefixes are accepted by the functions that read games): the
square ``row*8 + col`` of each move in play order, passes implicit (a pass
shows as the same colour moving twice, as in OthelloGPT), and ``-1`` on every
ply after the game has ended. Every function is parallel over games (Numba
``prange``) and its result does not depend on the number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from othello_env.engine import (
    BLACK_START,
    U0,
    U1,
    WHITE_START,
    describe,
    flips_bit,
    legal_moves,
    lowest_square,
    popcount,
)

MAX_MOVES = 60  # 64 squares minus the 4 centre discs

# splitmix64 (Steele, Lea & Flood 2014): the per-game random stream is a pure
# function of (seed, game index), never of the thread that plays the game.
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S27 = np.uint64(27)
_S30 = np.uint64(30)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
_TWO32 = np.uint64(1 << 32)


@njit(cache=True, inline="always")
def _mix64(z):
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, inline="always")
def _below(state, k):
    """Uniform integer in [0, k), k >= 1, by Lemire's multiply-and-reject: (value, new state)."""
    ku = np.uint64(k)
    state += GOLDEN
    m = (_mix64(state) >> _S32) * ku
    low = m & _LOW32
    if low < ku:
        threshold = (_TWO32 - ku) % ku  # 2**32 mod k
        while low < threshold:
            state += GOLDEN
            m = (_mix64(state) >> _S32) * ku
            low = m & _LOW32
    return np.int64(m >> _S32), state


@njit(cache=True, parallel=True)
def _generate_into(out, seed, offset):
    """Fill ``out`` (int8, (n, 60)) with games ``offset .. offset + n - 1`` of stream ``seed``."""
    key = _mix64(seed + GOLDEN)
    for i in prange(out.shape[0]):
        state = _mix64(key ^ _mix64(np.uint64(offset + i) + GOLDEN))
        me = BLACK_START
        opp = WHITE_START
        t = 0
        while t < MAX_MOVES:
            ml = legal_moves(me, opp)
            if ml == U0:
                ml = legal_moves(opp, me)
                if ml == U0:
                    break  # neither side can move: game over
                me, opp = opp, me  # forced pass
            k, state = _below(state, popcount(ml))
            for _ in range(k):
                ml &= ml - U1  # drop the k lowest legal squares
            sq = lowest_square(ml)
            mv = U1 << np.uint64(sq)
            f = flips_bit(me, opp, mv)
            me, opp = opp & ~f, me | f | mv
            out[i, t] = sq
            t += 1
        for u in range(t, MAX_MOVES):
            out[i, u] = -1


def _check_seed(seed) -> np.uint64:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {describe(seed)}")
    if not 0 <= int(seed) < 2**64:
        raise ValueError(f"seed must lie in 0..2**64-1, got {seed}")
    return np.uint64(int(seed))


def generate_into(out: np.ndarray, seed: int = 0, offset: int = 0) -> None:
    """Write games ``offset .. offset + len(out) - 1`` of ``generate_games(., seed)`` into ``out``.

    ``out`` must be a C-contiguous int8 array of shape (m, 60) (a slice of a
    memory-mapped file works via ``np.asarray``). Lets a large corpus be
    made in chunks that equal one ``generate_games`` call.
    """
    if not (isinstance(out, np.ndarray) and out.dtype == np.int8 and out.ndim == 2
            and out.shape[1] == MAX_MOVES and out.flags.c_contiguous):
        raise ValueError("out must be a C-contiguous int8 array of shape (m, 60)")
    if (isinstance(offset, (bool, np.bool_)) or not isinstance(offset, (int, np.integer))
            or offset < 0):
        raise ValueError(f"offset must be a non-negative integer, got {describe(offset)}")
    _generate_into(out, _check_seed(seed), np.int64(offset))


def generate_games(n: int, seed: int = 0) -> np.ndarray:
    """Play ``n`` games choosing a uniformly random legal move at every turn.

    Returns int8 of shape (n, 60): the square of each move in play order,
    passes implicit, -1 after the game ends. Game ``i`` depends only on
    ``(seed, i)`` (its own splitmix64 stream), so the result is the same
    whatever the thread count, and the first ``m`` games of
    ``generate_games(n, seed)`` are ``generate_games(m, seed)``.

    Raises ValueError if ``n`` is negative or not an integer, or ``seed`` is
    outside 0..2**64-1.
    """
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {describe(n)}")
    out = np.empty((int(n), MAX_MOVES), dtype=np.int8)
    _generate_into(out, _check_seed(seed), np.int64(0))
    return out


# Error kinds reported by _replay, per game: (ply, kind) of the first bad ply.
_ERR_EARLY_END = 1  # -1 while the game is not over
_ERR_AFTER_END = 2  # a move after the game is over (or after -1 padding)
_ERR_ILLEGAL = 3  # a square not legal for the player to move


@njit(cache=True, parallel=True)
def _replay(games, masks, boards, want_masks, want_boards, err_ply, err_kind):
    """Replay int8 games (n, L); fill masks (n, L, 64) / boards (n, L, 64) if wanted.

    err_ply[i] = first bad ply of game i (-1 if none), err_kind[i] its kind.
    """
    n, length = games.shape
    for i in prange(n):
        err_ply[i] = -1
        me = BLACK_START
        opp = WHITE_START
        black_to_move = True
        ml = legal_moves(me, opp)
        ended = False
        for t in range(length):
            sq = games[i, t]
            if ended:
                if sq >= 0:
                    err_ply[i] = t
                    err_kind[i] = _ERR_AFTER_END
                    break
            else:
                if sq < 0:
                    err_ply[i] = t
                    err_kind[i] = _ERR_EARLY_END
                    break
                mv = U1 << np.uint64(sq)
                if (ml & mv) == U0:
                    err_ply[i] = t
                    err_kind[i] = _ERR_ILLEGAL
                    break
                f = flips_bit(me, opp, mv)
                me, opp = opp & ~f, me | f | mv
                black_to_move = not black_to_move
                ml = legal_moves(me, opp)
                if ml == U0:
                    ml = legal_moves(opp, me)
                    if ml == U0:
                        ended = True
                    else:
                        me, opp = opp, me  # forced pass
                        black_to_move = not black_to_move
            if want_masks:
                # Whole rows, branch-free: cheaper than zero-filling and scattering.
                m = U0 if ended else ml
                for s in range(64):
                    masks[i, t, s] = ((m >> np.uint64(s)) & U1) != U0
            if want_boards:
                black = me if black_to_move else opp
                white = opp if black_to_move else me
                for s in range(64):
                    sh = np.uint64(s)
                    boards[i, t, s] = np.int64((black >> sh) & U1) - np.int64((white >> sh) & U1)


def _as_games(games) -> np.ndarray:
    """Check shape, dtype and values; return a C-contiguous int8 copy/view for the kernels."""
    if not isinstance(games, np.ndarray):
        raise ValueError(f"games must be a numpy array, got {type(games).__name__}")
    if games.ndim != 2 or not 1 <= games.shape[1] <= MAX_MOVES:
        raise ValueError(f"games must have shape (n, L) with 1 <= L <= 60, got {games.shape}")
    if games.dtype == np.bool_ or not np.issubdtype(games.dtype, np.integer):
        raise ValueError(f"games must have an integer dtype (int8 for a corpus), got {games.dtype}")
    # min/max first: no (n, L) temporaries on a large (memory-mapped) corpus
    if games.size and (games.min() < -1 or games.max() > 63):
        i, t = np.argwhere((games < -1) | (games > 63))[0]
        raise ValueError(f"game {i}, ply {t}: value {games[i, t]} is not a square (-1..63)")
    return np.ascontiguousarray(games, dtype=np.int8)


def _replay_checked(games, want_masks: bool, want_boards: bool):
    g = _as_games(games)
    n, length = g.shape
    masks = np.empty((n, length, 64) if want_masks else (1, 1, 64), dtype=np.bool_)
    boards = np.empty((n, length, 64) if want_boards else (1, 1, 64), dtype=np.int8)
    err_ply = np.empty(n, dtype=np.int64)
    err_kind = np.zeros(n, dtype=np.int64)
    _replay(g, masks, boards, want_masks, want_boards, err_ply, err_kind)
    bad = np.flatnonzero(err_ply >= 0)
    if bad.size:
        i = int(bad[0])
        t = int(err_ply[i])
        sq = int(g[i, t])
        kind = err_kind[i]
        if kind == _ERR_ILLEGAL:
            raise ValueError(f"game {i}, ply {t}: square {sq} is not a legal move")
        if kind == _ERR_AFTER_END:
            raise ValueError(f"game {i}, ply {t}: square {sq} is played after the game ended")
        raise ValueError(f"game {i}, ply {t}: -1 (end of game) but the game is not over")
    return masks, boards


def validate_games(games: np.ndarray) -> None:
    """Check that every game is a legal Othello game, padded with -1 exactly after its end.

    ``games``: integer array (n, L), 1 <= L <= 60 (a prefix of length L < 60
    need not be finished). Returns None; raises ValueError naming the first
    bad game, ply and square (the lowest game index, then its first bad ply),
    or the wrong type, shape, dtype or value.
    """
    _replay_checked(games, False, False)


def legal_move_masks(games: np.ndarray) -> np.ndarray:
    """Legal squares after every move: bool (n, L, 64).

    ``[i, t, s]`` is True iff square ``s`` is legal for the player to move
    after moves ``0..t`` of game ``i`` (forced passes resolved: after a pass
    it is the set of the player who moves again). All False from the ply that
    ends the game on, including the -1 padding. Validates the games first
    (ValueError as :func:`validate_games`).
    """
    return _replay_checked(games, True, False)[0]


def board_states(games: np.ndarray) -> np.ndarray:
    """The board after every move: int8 (n, L, 64), colour-absolute.

    ``[i, t, s]`` is 1 for a black disc, -1 for a white disc, 0 for empty on
    square ``s`` after moves ``0..t`` of game ``i``. On the -1 padding after
    a game ends the final board is repeated. Validates the games first
    (ValueError as :func:`validate_games`).
    """
    return _replay_checked(games, False, True)[1]
