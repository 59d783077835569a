"""Othello turn kernels: one agent's game against an opponent, over rows of state arrays.

The single env (:mod:`othello_env.env`, one row) and the native vector env
(:mod:`othello_env.vector`, ``num_envs`` rows) run these very functions, which is
what makes env ``i`` of the vector env play exactly like a single env. All rules
come from :mod:`othello_env.engine`, all randomness from :mod:`othello_env.rng`, the
built-in opponents' moves (random, greedy, alpha-beta) from :mod:`othello_env.opponents`.
An ``opponent`` argument is ``(kind, depth)``: a built-in opponent plays inside the
kernels; kind ``POLICY`` stops at OPPONENT_TO_MOVE and leaves the move to the caller.

Numba's cache (``cache=True``) keys a compiled function on its own file's content only:
the code it compiled in from :mod:`othello_env.engine`, :mod:`othello_env.rng` or
:mod:`othello_env.opponents` is not checked. After editing one of those, clear the cache
(``othello_env/__pycache__/*.nbi``/``*.nbc``, or ``NUMBA_CACHE_DIR``) or these kernels
keep running the old code.

Per-env state, ``N`` rows:

* ``st``   uint64 (N, 4): the agent's discs, the opponent's discs, the RNG state, and the
  agent's legal placements (kept up to date whenever the agent is to move, so each step
  computes the agent's move set once)
* ``meta`` int64  (N, 2): the agent's colour (0 black, 1 white), moves played
* ``hist`` int8   (N, 60): the squares played so far, passes omitted, then -1 (a row of a
  ``games`` array)

Two levels:

* scalar turns (:func:`new_game`, :func:`agent_turn`, :func:`opponent_turn`) take and
  return plain uint64/int64 values: one game's ``(me, opp, legal, rng)``;
* row functions (:func:`reset_row`, :func:`step_row`, :func:`reset_position`,
  :func:`policy_reply`, :func:`write_view`) load row ``i`` of the arrays, run a turn and
  store it back.

Every function is ``inline="always"``: the per-step loops of the envs inline them, since
a real call between Numba functions with array arguments costs atomic reference count
updates, which dominated the step. The few entry points called from Python are the
``*_kernel`` functions at the end.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from othello_env.engine import BLACK_START, U0, U1, WHITE_START, apply_move, legal_moves, popcount
from othello_env.games import replay_game
from othello_env.opponents import POLICY, choose_square
from othello_env.rng import next_random

PASS = 64
N_ACTIONS = 65
OBS_SHAPE = (3, 8, 8)

# Columns of st / meta.
AGENT, OPP, RNG, LEGAL = 0, 1, 2, 3
COLOUR, NMOVES = 0, 1
COLOUR_NAMES = ("black", "white")

# Outcome codes. Every code except ONGOING and OPPONENT_TO_MOVE ends the episode.
ONGOING, WIN, DRAW, LOSS, ILLEGAL, OPPONENT_TO_MOVE = 0, 1, 2, 3, 4, 5
REWARDS = (0.0, 1.0, 0.0, -1.0, -1.0)  # indexed by code, from the agent's side

U8 = np.uint64(8)
BYTE = np.uint64(0xFF)
FIRST_LEGAL = np.uint64((1 << 19) | (1 << 26) | (1 << 37) | (1 << 44))  # black's moves at the start

# ROW_WORD[b] = the 8 bits of byte b (one board row) as eight int8 0/1 bytes, least significant
# bit first, packed in a little-endian uint64: one store writes a row of an observation plane.
ROW_WORD = (
    ((np.arange(256)[:, None] >> np.arange(8)[None, :]) & 1).astype("<i1").view("<u8").ravel()
)

# ---------------------------------------------------------------------------
# Scalar turns: one game's (me, opp, legal, rng) in, the same out.
# ---------------------------------------------------------------------------


@njit(cache=True, inline="always")
def is_legal(legal, action):
    """Whether ``action`` (0..64) is legal given the agent's placements ``legal``."""
    if action == PASS:
        return legal == U0
    return (legal >> np.uint64(action)) & U1 != U0


@njit(cache=True, inline="always")
def outcome(me, opp):
    """WIN / DRAW / LOSS of a finished game for the owner of ``me``."""
    d = popcount(me) - popcount(opp)
    if d > 0:
        return WIN
    if d < 0:
        return LOSS
    return DRAW


@njit(cache=True, inline="always")
def after_opponent(me, opp):
    """``(code, the agent's move set)`` once the opponent has moved."""
    legal = legal_moves(me, opp)
    if legal == U0 and legal_moves(opp, me) == U0:
        return outcome(me, opp), legal
    return ONGOING, legal  # the agent moves next, or must pass with action 64


@njit(cache=True, inline="always")
def opponent_turn(me, opp, rng, opponent):
    """The opponent's turn: ``(code, me, opp, legal, rng, its square)``.

    ``opponent`` is ``(kind, depth)``, kind an :mod:`othello_env.opponents` code. It passes
    when it must (square -1; the agent moves again). A built-in opponent (random, greedy,
    alphabeta) moves here, drawing from the row's stream ``rng``; a policy opponent
    (POLICY) is left to the caller (OPPONENT_TO_MOVE).
    """
    ol = legal_moves(opp, me)
    if ol == U0:
        legal = legal_moves(me, opp)
        code = ONGOING if legal != U0 else outcome(me, opp)
        return code, me, opp, legal, rng, -1
    kind, depth = opponent
    if kind == POLICY:
        return OPPONENT_TO_MOVE, me, opp, U0, rng, -1
    sq, rng = choose_square(kind, depth, opp, me, ol, rng)
    opp, me = apply_move(opp, me, sq)
    code, legal = after_opponent(me, opp)
    return code, me, opp, legal, rng, sq


@njit(cache=True, inline="always")
def agent_turn(me, opp, legal, rng, action, opponent):
    """The agent plays ``action`` (0..64), the opponent replies.

    Returns ``(code, me, opp, legal, rng, agent's square, opponent's square)``, squares -1
    for no placement. An illegal action gives ILLEGAL and everything unchanged.
    """
    if not is_legal(legal, action):
        return ILLEGAL, me, opp, legal, rng, -1, -1
    asq = -1
    if action != PASS:
        me, opp = apply_move(me, opp, action)
        asq = action
    code, me, opp, legal, rng, osq = opponent_turn(me, opp, rng, opponent)
    return code, me, opp, legal, rng, asq, osq


@njit(cache=True, inline="always")
def draw_colour(colour_mode, rng):
    """``(colour, rng)``: ``colour_mode`` (0 black, 1 white), or a coin flip for -1."""
    if colour_mode >= 0:
        return colour_mode, rng
    rng, z = next_random(rng)
    return np.int64(z >> np.uint64(63)), rng


@njit(cache=True, inline="always")
def new_game(colour_mode, rng, opponent):
    """A new game (colour_mode -1 draws the colour; black moves first).

    Returns ``(colour, code, me, opp, legal, rng, the opponent's first square or -1)``.
    """
    colour, rng = draw_colour(colour_mode, rng)
    if colour == 0:
        return colour, ONGOING, BLACK_START, WHITE_START, FIRST_LEGAL, rng, -1
    code, me, opp, legal, rng, osq = opponent_turn(WHITE_START, BLACK_START, rng, opponent)
    return colour, code, me, opp, legal, rng, osq


# ---------------------------------------------------------------------------
# Row functions: row i of (st, meta, hist).
# ---------------------------------------------------------------------------


@njit(cache=True, inline="always")
def store_row(st, i, me, opp, legal, rng):
    """Write one game's scalars back into row i of ``st``."""
    st[i, AGENT] = me
    st[i, OPP] = opp
    st[i, LEGAL] = legal
    st[i, RNG] = rng


@njit(cache=True, inline="always")
def record(meta, hist, i, a, b):
    """Append squares ``a`` then ``b`` to row i's history, each unless it is -1 (no placement)."""
    n = meta[i, NMOVES]
    if a >= 0:
        hist[i, n] = a
        n += 1
    if b >= 0:
        hist[i, n] = b
        n += 1
    meta[i, NMOVES] = n


@njit(cache=True, inline="always")
def reset_row(st, meta, hist, i, colour_mode, opponent):
    """Start a new game in row i: ``(code, me, opp, legal)`` (code OPPONENT_TO_MOVE for a policy opponent)."""
    colour, code, me, opp, legal, rng, osq = new_game(colour_mode, st[i, RNG], opponent)
    meta[i, COLOUR] = colour
    for k in range(meta[i, NMOVES]):  # the rest of the row is -1 already
        hist[i, k] = -1
    meta[i, NMOVES] = 0
    record(meta, hist, i, osq, -1)
    store_row(st, i, me, opp, legal, rng)
    return code, me, opp, legal


@njit(cache=True, inline="always")
def step_row(st, meta, hist, i, action, opponent):
    """Row i's agent plays ``action`` and the opponent replies: ``(code, me, opp, legal)``."""
    code, me, opp, legal, rng, asq, osq = agent_turn(
        st[i, AGENT], st[i, OPP], st[i, LEGAL], st[i, RNG], action, opponent
    )
    record(meta, hist, i, asq, osq)
    store_row(st, i, me, opp, legal, rng)
    return code, me, opp, legal


@njit(cache=True, inline="always")
def policy_reply(st, meta, hist, i, sq):
    """The policy opponent plays the legal square ``sq`` in row i; the outcome code."""
    opp, me = apply_move(st[i, OPP], st[i, AGENT], sq)
    code, legal = after_opponent(me, opp)
    record(meta, hist, i, sq, -1)
    store_row(st, i, me, opp, legal, st[i, RNG])
    return code


@njit(cache=True, inline="always")
def reset_position(st, meta, hist, i, colour_mode, moves, black, white, black_to_move, opponent):
    """Start row i from a replayed position (see replay_position); the outcome code.

    ``moves`` (int8 (L,)) led to ``(black, white)`` with ``black_to_move``; the opponent
    replies first if it is to move there.
    """
    colour, rng = draw_colour(colour_mode, st[i, RNG])
    meta[i, COLOUR] = colour
    n = moves.shape[0]
    hist[i, :] = -1
    hist[i, :n] = moves
    meta[i, NMOVES] = n
    me, opp = (black, white) if colour == 0 else (white, black)
    if black_to_move == (colour == 0):  # the agent is to move: replay_position made sure it can
        code, legal = ONGOING, legal_moves(me, opp)
    else:
        code, me, opp, legal, rng, osq = opponent_turn(me, opp, rng, opponent)
        record(meta, hist, i, osq, -1)
    store_row(st, i, me, opp, legal, rng)
    return code


@njit(cache=True, inline="always")
def as_words(obs):
    """View int8 observations (N, 3, 8, 8) as uint64 (N, 24): one word per board row."""
    return obs.reshape(obs.shape[0], 192).view(np.uint64)


@njit(cache=True, inline="always")
def write_planes_row(me, opp, legal, pass_ok, words, mask, i):
    """Row i's observation [me, opp, legal] as 24 words of ``words`` (see as_words); its (65,) mask."""
    for r in range(8):
        sh = U8 * np.uint64(r)
        words[i, r] = ROW_WORD[np.int64((me >> sh) & BYTE)]
        words[i, 8 + r] = ROW_WORD[np.int64((opp >> sh) & BYTE)]
        words[i, 16 + r] = ROW_WORD[np.int64((legal >> sh) & BYTE)]
    for s in range(64):
        mask[i, s] = np.int8((legal >> np.uint64(s)) & U1)
    mask[i, PASS] = pass_ok


@njit(cache=True, inline="always")
def write_view(me, opp, legal, code, words, mask, i):
    """The agent's observation and action mask in row i (legal moves all 0 once finished)."""
    shown = legal if code == ONGOING else U0
    pass_ok = 1 if code == ONGOING and legal == U0 else 0
    write_planes_row(me, opp, shown, pass_ok, words, mask, i)


@njit(cache=True, inline="always")
def write_row_view(st, i, code, words, mask):
    """write_view of row i of ``st``."""
    write_view(st[i, AGENT], st[i, OPP], st[i, LEGAL], code, words, mask, i)


# ---------------------------------------------------------------------------
# Entry points called from Python (one row; the vector env has its own loops).
# ---------------------------------------------------------------------------


@njit("void(uint64, uint64, uint64, int64, int8[:, :, :, ::1], int8[:, ::1])", cache=True)
def write_planes(me, opp, legal, pass_ok, obs, mask):
    """obs (1, 3, 8, 8) int8 = planes [me, opp, legal]; mask (1, 65) int8 = legal + [pass_ok]."""
    write_planes_row(me, opp, legal, pass_ok, as_words(obs), mask, 0)


@njit(cache=True)
def replay_position(moves):
    """Replay one move list, int8 (1, L), with games.replay_game.

    Returns ``(err_ply, err_kind, black, white, black_to_move, ended)``: the first bad
    ply (-1 if none) and its kind, the position after the list (forced passes resolved)
    and whether the game is over there.
    """
    masks = np.empty((1, 1, 64), np.bool_)  # not filled: want_masks / want_boards are False
    boards = np.empty((1, 1, 64), np.int8)
    ply, kind, me, opp, black_to_move, ended = replay_game(moves, 0, masks, boards, False, False)
    if black_to_move:
        return ply, kind, me, opp, black_to_move, ended
    return ply, kind, opp, me, black_to_move, ended


@njit(cache=True)
def reset_kernel(st, meta, hist, i, colour_mode, opponent, obs, mask):
    """Row i: a new game and its view (unless OPPONENT_TO_MOVE); the outcome code."""
    code, me, opp, legal = reset_row(st, meta, hist, i, colour_mode, opponent)
    if code != OPPONENT_TO_MOVE:
        write_view(me, opp, legal, code, as_words(obs), mask, i)
    return code


@njit(cache=True)
def position_kernel(
    st, meta, hist, i, colour_mode, moves, black, white, black_to_move, opponent, obs, mask
):
    """Row i: the position after ``moves`` (see reset_position) and its view, as reset_kernel."""
    code = reset_position(
        st, meta, hist, i, colour_mode, moves, black, white, black_to_move, opponent
    )
    if code != OPPONENT_TO_MOVE:
        write_row_view(st, i, code, as_words(obs), mask)
    return code


@njit(cache=True)
def step_kernel(st, meta, hist, i, action, opponent, obs, mask):
    """Row i: the agent's move, the opponent's reply, the new view (unless OPPONENT_TO_MOVE)."""
    code, me, opp, legal = step_row(st, meta, hist, i, action, opponent)
    if code != OPPONENT_TO_MOVE:
        write_view(me, opp, legal, code, as_words(obs), mask, i)
    return code


@njit(cache=True)
def policy_reply_kernel(st, meta, hist, i, sq, obs, mask):
    """Row i: the policy opponent plays ``sq``; the agent's new view; the outcome code."""
    code = policy_reply(st, meta, hist, i, sq)
    write_row_view(st, i, code, as_words(obs), mask)
    return code


@njit(cache=True)
def opponent_view_kernel(st, i, obs, mask):
    """The opponent's observation and mask for row i, when it is to move with a placement."""
    me = st[i, OPP]
    opp = st[i, AGENT]
    write_planes_row(me, opp, legal_moves(me, opp), 0, as_words(obs), mask, i)
