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
    legal_after_edit,
    legal_moves,
)
from othello_env.rng import game_state, random_square

MAX_MOVES = 60  # 64 squares minus the 4 centre discs

@njit(cache=True, parallel=True)
def _generate_into(out, seed, offset):
    """Fill ``out`` (int8, (n, 60)) with games ``offset .. offset + n - 1`` of stream ``seed``."""
    for i in prange(out.shape[0]):
        state = game_state(seed, np.uint64(offset + i))  # the game's own stream
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
            sq, state = random_square(state, ml)
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


# Error kinds reported by replay_game: (ply, kind) of the first bad ply.
ERR_EARLY_END = 1  # -1 while the game is not over
ERR_AFTER_END = 2  # a move after the game is over (or after -1 padding)
ERR_ILLEGAL = 3  # a square not legal for the player to move


@njit(cache=True, inline="always")
def replay_game(games, i, masks, boards, want_masks, want_boards):
    """Replay game ``i`` of int8 ``games`` (n, L); fill its masks / boards (n, L, 64) if wanted.

    The one replay of a move list: the batch functions below run it over every game,
    the envs (``kernels.replay_position``) over one list to start from its position.
    Returns ``(err_ply, err_kind, me, opp, black_to_move, ended)``: the first bad ply
    (-1 if none) and its kind, then the position after the list (forced passes
    resolved: ``me`` is the side to move) and whether the game is over.
    """
    me = BLACK_START
    opp = WHITE_START
    black_to_move = True
    ml = legal_moves(me, opp)
    ended = False
    for t in range(games.shape[1]):
        sq = games[i, t]
        if ended:
            if sq >= 0:
                return t, ERR_AFTER_END, me, opp, black_to_move, ended
        else:
            if sq < 0:
                return t, ERR_EARLY_END, me, opp, black_to_move, ended
            mv = U1 << np.uint64(sq)
            if (ml & mv) == U0:
                return t, ERR_ILLEGAL, me, opp, black_to_move, ended
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
    return -1, 0, me, opp, black_to_move, ended


@njit(cache=True, parallel=True)
def _replay_all(games, masks, boards, want_masks, want_boards, err_ply, err_kind):
    """replay_game over every game of int8 ``games`` (n, L), in parallel."""
    for i in prange(games.shape[0]):
        ply, kind, _, _, _, _ = replay_game(games, i, masks, boards, want_masks, want_boards)
        err_ply[i] = ply
        err_kind[i] = kind


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
    _replay_all(g, masks, boards, want_masks, want_boards, err_ply, err_kind)
    bad = np.flatnonzero(err_ply >= 0)
    if bad.size:
        i = int(bad[0])
        t = int(err_ply[i])
        sq = int(g[i, t])
        kind = err_kind[i]
        if kind == ERR_ILLEGAL:
            raise ValueError(f"game {i}, ply {t}: square {sq} is not a legal move")
        if kind == ERR_AFTER_END:
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


@njit(cache=True, parallel=True)
def _opponent_from_boards(boards, masks, out):
    """Fill ``out`` (n, L, 64): the squares legal for the side *not* to move at each ply.

    The side to move is the colour whose legal set equals ``masks[i, t]``; when both
    colours have the same set the answer is that set either way.
    """
    for i in prange(boards.shape[0]):
        for t in range(boards.shape[1]):
            black = U0
            white = U0
            mover = U0
            for s in range(64):
                bit = U1 << np.uint64(s)
                if boards[i, t, s] == 1:
                    black |= bit
                elif boards[i, t, s] == -1:
                    white |= bit
                if masks[i, t, s]:
                    mover |= bit
            lb = legal_moves(black, white)
            lw = legal_moves(white, black)
            opp = lw if mover == lb else lb
            for s in range(64):
                out[i, t, s] = ((opp >> np.uint64(s)) & U1) != U0


def opponent_legal_masks(games: np.ndarray) -> np.ndarray:
    """Squares legal for the *opponent* of the player to move after every move: bool (n, L, 64).

    ``[i, t, s]`` is True iff square ``s`` would be legal for the side that is
    not to move after moves ``0..t`` of game ``i`` (forced passes resolved as in
    :func:`legal_move_masks`, so after a pass it is the passing side's set, which
    is empty). OthelloGPT's lenient checker also accepts these moves (as if the
    player to move had passed). All False once the game is over. Validates the
    games first (ValueError as :func:`validate_games`).
    """
    masks, boards = _replay_checked(games, True, True)
    out = np.empty(masks.shape, dtype=np.bool_)
    _opponent_from_boards(boards, masks, out)
    return out


def board_states(games: np.ndarray) -> np.ndarray:
    """The board after every move: int8 (n, L, 64), colour-absolute.

    ``[i, t, s]`` is 1 for a black disc, -1 for a white disc, 0 for empty on
    square ``s`` after moves ``0..t`` of game ``i``. On the -1 padding after
    a game ends the final board is repeated. Validates the games first
    (ValueError as :func:`validate_games`).
    """
    return _replay_checked(games, False, True)[1]


@njit(cache=True, parallel=True)
def _legal_after_edits(boards, squares, states, out):
    for i in prange(boards.shape[0]):
        me = U0
        opp = U0
        for s in range(64):
            if boards[i, s] == 1:
                me |= U1 << np.uint64(s)
            elif boards[i, s] == -1:
                opp |= U1 << np.uint64(s)
        m = legal_after_edit(me, opp, squares[i], states[i])
        for s in range(64):
            out[i, s] = (m >> np.uint64(s)) & U1 == U1


def legal_after_edits(boards: np.ndarray, squares, states) -> np.ndarray:
    """Legal moves of the mover on boards with one square changed each: bool (N, 64).

    ``boards``: int (N, 64), relative to the player to move (1 mine, -1 theirs, 0 empty;
    ``board_states(games) * mover``); ``squares`` (N,) in 0..63 and ``states`` (N,) in
    0 (empty), 1 (mine), 2 (theirs): row i's square ``squares[i]`` is set to ``states[i]``
    (no flips, :func:`othello_env.engine.edit_square`), then the mover's legal moves are
    listed (no pass resolution: an empty row means the mover must pass). Setting a square
    to its own state gives the board's own legal moves. ValueError for bad shapes or values.
    """
    b = np.asarray(boards)
    if b.ndim != 2 or b.shape[1] != 64 or not np.issubdtype(b.dtype, np.integer):
        raise ValueError(f"boards must be an integer array of shape (N, 64), got {describe(b)}")
    if b.size and (b.min() < -1 or b.max() > 1):
        raise ValueError("boards must hold 1 (mine), -1 (theirs) or 0 (empty)")
    sq = np.asarray(squares)
    st = np.asarray(states)
    for name, a, hi in (("squares", sq, 63), ("states", st, 2)):
        if a.shape != (b.shape[0],) or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name} must be an integer array of shape ({b.shape[0]},), got "
                             f"{describe(a)}")
        if a.size and (a.min() < 0 or a.max() > hi):
            raise ValueError(f"{name} must lie in 0..{hi}")
    out = np.empty((b.shape[0], 64), dtype=np.bool_)
    _legal_after_edits(np.ascontiguousarray(b, dtype=np.int8), sq.astype(np.int64),
                       st.astype(np.int64), out)
    return out
