"""Gymnasium ``Othello-v0``: one agent plays Othello against an opponent policy.

The turn logic is a scalar core of small Numba functions below (``_new_game``,
``_agent_turn``, ``_opponent_turn``) over one game's ``(me, opp, legal, rng)``.
The single env (one row of the state arrays) and the native vector env
(:mod:`othello_env.vector`, ``num_envs`` rows) load rows into that core, so both
run the very same compiled code. All rules come from :mod:`othello_env.engine`.

Per-env state, ``N`` rows (N = 1 here):

* ``st``   uint64 (N, 4): the agent's discs, the opponent's discs, the RNG state, and the
  agent's legal placements (kept up to date whenever the agent is to move, so each step
  computes the agent's move set once)
* ``meta`` int64  (N, 2): the agent's colour (0 black, 1 white), moves played
* ``hist`` int8   (N, 60): the squares played so far, passes omitted

Randomness (the built-in random opponent and ``agent_color="random"``) comes
from a per-env splitmix64 stream kept in ``st[i, 2]``, not from ``np_random``:
that is what lets env ``i`` of the vector env reset with seed ``s`` behave
exactly like this env reset with seed ``s + i`` (SyncVectorEnv's seeding).
"""

from __future__ import annotations

import operator
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from numba import njit

from othello_env.engine import (
    BLACK_START,
    WHITE_START,
    apply_move,
    describe,
    legal_moves,
    lowest_square,
    popcount,
)
from othello_env.games import _M1 as MIX1
from othello_env.games import _M2 as MIX2
from othello_env.games import GOLDEN, _below, _mix64
from othello_env.render import board_ansi, board_rgb

PASS = 64
N_ACTIONS = 65
MAX_MOVES = 60  # squares to fill; passes are not recorded
OBS_SHAPE = (3, 8, 8)

# Columns of st / meta.
AGENT, OPP, RNG, LEGAL = 0, 1, 2, 3
COLOUR, NMOVES = 0, 1

# Kernel outcome codes. Every code except ONGOING and OPPONENT_TO_MOVE ends the episode.
ONGOING, WIN, DRAW, LOSS, ILLEGAL, OPPONENT_TO_MOVE = 0, 1, 2, 3, 4, 5
REWARDS = (0.0, 1.0, 0.0, -1.0, -1.0)  # indexed by code, from the agent's side
COLOURS = {"black": 0, "white": 1, "random": -1}
COLOUR_NAMES = ("black", "white")

U0 = np.uint64(0)
U1 = np.uint64(1)
U8 = np.uint64(8)
BYTE = np.uint64(0xFF)
_M64 = (1 << 64) - 1
FIRST_LEGAL = np.uint64((1 << 19) | (1 << 26) | (1 << 37) | (1 << 44))  # black's moves at the start

# ROW_WORD[b] = the 8 bits of byte b (one board row) as eight int8 0/1 bytes, least significant
# bit first, packed in a little-endian uint64: one store writes a row of an observation plane.
ROW_WORD = (
    ((np.arange(256)[:, None] >> np.arange(8)[None, :]) & 1).astype("<i1").view("<u8").ravel()
)


def seed_state(seed: int) -> np.uint64:
    """Initial RNG state for a seed: splitmix64's output for ``seed`` (mod 2**64), in pure Python."""
    z = (int(seed) * int(GOLDEN) + int(GOLDEN)) & _M64
    z = ((z ^ (z >> 30)) * int(MIX1)) & _M64
    z = ((z ^ (z >> 27)) * int(MIX2)) & _M64
    return np.uint64(z ^ (z >> 31))


# ---------------------------------------------------------------------------
# Scalar core, shared with othello_env.vector. Helpers take and return plain
# uint64/int64 values (no arrays) and are inlined into the per-step loops.
# ---------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _next_random(rng):
    """splitmix64 step: ``(new state, 64 random bits)``."""
    s = rng + GOLDEN
    return s, _mix64(s)


@njit(cache=True, inline="always")
def _random_square(rng, moves):
    """``(new state, a uniformly random set bit of the non-zero board moves)``.

    The draw is :func:`othello_env.games._below` (Lemire's multiply-and-reject on the
    same splitmix64 stream), so the env's random opponent and ``generate_games`` share
    one exactly uniform sampler.
    """
    k, rng = _below(rng, popcount(moves))
    for _ in range(k):
        moves &= moves - U1
    return rng, lowest_square(moves)


@njit(cache=True, inline="always")
def _outcome(me, opp):
    """WIN / DRAW / LOSS of a finished game for the owner of ``me``."""
    d = popcount(me) - popcount(opp)
    if d > 0:
        return WIN
    if d < 0:
        return LOSS
    return DRAW


@njit(cache=True, inline="always")
def _after_opponent(me, opp):
    """``(code, the agent's move set)`` once the opponent has moved."""
    legal = legal_moves(me, opp)
    if legal == U0 and legal_moves(opp, me) == U0:
        return _outcome(me, opp), legal
    return ONGOING, legal  # the agent moves next, or must pass with action 64


@njit(cache=True, inline="always")
def _opponent_turn(me, opp, rng, random_opponent):
    """The opponent's turn: ``(code, me, opp, legal, rng, its square)``.

    It passes when it must (square -1; the agent moves again). The random opponent
    moves here; a policy opponent is left to the caller (OPPONENT_TO_MOVE).
    """
    ol = legal_moves(opp, me)
    if ol == U0:
        legal = legal_moves(me, opp)
        code = ONGOING if legal != U0 else _outcome(me, opp)
        return code, me, opp, legal, rng, -1
    if not random_opponent:
        return OPPONENT_TO_MOVE, me, opp, U0, rng, -1
    rng, sq = _random_square(rng, ol)
    opp, me = apply_move(opp, me, sq)
    code, legal = _after_opponent(me, opp)
    return code, me, opp, legal, rng, sq


@njit(cache=True, inline="always")
def _agent_turn(me, opp, legal, rng, action, random_opponent):
    """The agent plays ``action`` (0..64), the opponent replies.

    Returns ``(code, me, opp, legal, rng, agent's square, opponent's square)``, squares -1
    for no placement. An illegal action gives ILLEGAL and everything unchanged.
    """
    asq = -1
    if action == PASS:
        if legal != U0:
            return ILLEGAL, me, opp, legal, rng, -1, -1
    else:
        if (legal >> np.uint64(action)) & U1 == U0:
            return ILLEGAL, me, opp, legal, rng, -1, -1
        me, opp = apply_move(me, opp, action)
        asq = action
    code, me, opp, legal, rng, osq = _opponent_turn(me, opp, rng, random_opponent)
    return code, me, opp, legal, rng, asq, osq


@njit(cache=True, inline="always")
def _new_game(colour_mode, rng, random_opponent):
    """A new game (colour_mode -1 draws the colour; black moves first).

    Returns ``(colour, code, me, opp, legal, rng, the opponent's first square or -1)``.
    """
    colour = colour_mode
    if colour < 0:
        rng, z = _next_random(rng)
        colour = np.int64(z >> np.uint64(63))
    if colour == 0:
        return colour, ONGOING, BLACK_START, WHITE_START, FIRST_LEGAL, rng, -1
    code, me, opp, legal, rng, osq = _opponent_turn(WHITE_START, BLACK_START, rng, random_opponent)
    return colour, code, me, opp, legal, rng, osq


# Array level: rows of (st, meta, hist). The per-step loops load a row into scalars,
# run the scalar core and store it back; passing arrays between Numba functions
# costs atomic reference count updates, which dominated the step before.


@njit(cache=True)
def _reset_row(st, meta, hist, i, colour_mode, random_opponent):
    """Start a new game in row i; the outcome code (OPPONENT_TO_MOVE for a policy opponent)."""
    colour, code, me, opp, legal, rng, osq = _new_game(colour_mode, st[i, RNG], random_opponent)
    meta[i, COLOUR] = colour
    meta[i, NMOVES] = 0
    if osq >= 0:
        hist[i, 0] = osq
        meta[i, NMOVES] = 1
    st[i, AGENT] = me
    st[i, OPP] = opp
    st[i, LEGAL] = legal
    st[i, RNG] = rng
    return code


@njit(cache=True)
def _policy_reply(st, meta, hist, i, sq):
    """The policy opponent plays the legal square ``sq`` in row i; the outcome code."""
    opp, me = apply_move(st[i, OPP], st[i, AGENT], sq)
    code, legal = _after_opponent(me, opp)
    st[i, AGENT] = me
    st[i, OPP] = opp
    st[i, LEGAL] = legal
    n = meta[i, NMOVES]
    hist[i, n] = sq
    meta[i, NMOVES] = n + 1
    return code


@njit(cache=True)
def _replay(moves):
    """Play a move list (passes omitted) from the start.

    Returns ``(black, white, black_to_move, k, why)``: ``why`` 0 = fine, 1 = move k is not
    legal, 2 = the game is over before move k, 3 = the game is over after the list.
    After the list, a side with no legal move has already passed.
    """
    me = BLACK_START
    opp = WHITE_START
    black = True
    for k in range(moves.shape[0]):
        legal = legal_moves(me, opp)
        if legal == U0:
            if legal_moves(opp, me) == U0:
                return U0, U0, black, k, 2
            me, opp = opp, me  # forced pass
            black = not black
            legal = legal_moves(me, opp)
        sq = moves[k]
        if (legal >> np.uint64(sq)) & U1 == U0:
            return U0, U0, black, k, 1
        me, opp = apply_move(me, opp, sq)
        me, opp = opp, me
        black = not black
    if legal_moves(me, opp) == U0:
        if legal_moves(opp, me) == U0:
            return U0, U0, black, moves.shape[0], 3
        me, opp = opp, me
        black = not black
    if black:
        return me, opp, black, -1, 0
    return opp, me, black, -1, 0


@njit(cache=True)
def _reset_position(
    st, meta, hist, i, colour_mode, moves, black, white, black_to_move, random_opponent
):
    """Start row i from a replayed position (see _replay); the opponent replies if it is to move."""
    colour = colour_mode
    rng = st[i, RNG]
    if colour < 0:
        rng, z = _next_random(rng)
        colour = np.int64(z >> np.uint64(63))
    meta[i, COLOUR] = colour
    n = moves.shape[0]
    hist[i, :n] = moves
    me, opp = (black, white) if colour == 0 else (white, black)
    if black_to_move == (colour == 0):
        code, legal = ONGOING, legal_moves(me, opp)  # _replay: the side to move has a placement
    else:
        code, me, opp, legal, rng, osq = _opponent_turn(me, opp, rng, random_opponent)
        if osq >= 0:
            hist[i, n] = osq
            n += 1
    meta[i, NMOVES] = n
    st[i, AGENT] = me
    st[i, OPP] = opp
    st[i, LEGAL] = legal
    st[i, RNG] = rng
    return code


@njit(cache=True, inline="always")
def as_words(obs):
    """View int8 observations (N, 3, 8, 8) as uint64 (N, 24): one word per board row."""
    return obs.reshape(obs.shape[0], 192).view(np.uint64)


@njit(cache=True, inline="always")
def _write_planes(me, opp, legal, pass_ok, words, mask, i):
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
def _write_view(st, i, code, words, mask):
    """The agent's observation and action mask for row i (legal moves all 0 once finished)."""
    legal = st[i, LEGAL] if code == ONGOING else U0
    pass_ok = 1 if code == ONGOING and legal == U0 else 0
    _write_planes(st[i, AGENT], st[i, OPP], legal, pass_ok, words, mask, i)


@njit(cache=True)
def _write_opponent_view(st, i, obs, mask):
    """The opponent's observation and mask for row i, when it is to move with a placement."""
    me = st[i, OPP]
    opp = st[i, AGENT]
    _write_planes(me, opp, legal_moves(me, opp), 0, as_words(obs), mask, i)


@njit("void(uint64, uint64, uint64, int64, int8[:, :, :, ::1], int8[:, ::1])", cache=True)
def write_planes(me, opp, legal, pass_ok, obs, mask):
    """obs (1, 3, 8, 8) int8 = planes [me, opp, legal]; mask (1, 65) int8 = legal + [pass_ok]."""
    _write_planes(me, opp, legal, pass_ok, as_words(obs), mask, 0)


@njit(cache=True)
def _view(st, i, code, obs, mask):
    """_write_view on int8 observations (N, 3, 8, 8)."""
    _write_view(st, i, code, as_words(obs), mask)


@njit(cache=True)
def _env_step(st, meta, hist, action, random_opponent, obs, mask):
    """OthelloEnv.step's fused kernel: the agent's move, the opponent's reply, the new view."""
    code, me, opp, legal, rng, asq, osq = _agent_turn(
        st[0, AGENT], st[0, OPP], st[0, LEGAL], st[0, RNG], action, random_opponent
    )
    n = meta[0, NMOVES]
    if asq >= 0:
        hist[0, n] = asq
        n += 1
    if osq >= 0:
        hist[0, n] = osq
        n += 1
    meta[0, NMOVES] = n
    st[0, AGENT] = me
    st[0, OPP] = opp
    st[0, LEGAL] = legal
    st[0, RNG] = rng
    if code != OPPONENT_TO_MOVE:
        _write_view(st, 0, code, as_words(obs), mask)
    return code


# ---------------------------------------------------------------------------
# Python helpers shared by the environments.
# ---------------------------------------------------------------------------


def parse_colour(agent_color) -> int:
    """'black' -> 0, 'white' -> 1, 'random' -> -1; ValueError otherwise."""
    if not isinstance(agent_color, str) or agent_color not in COLOURS:
        raise ValueError(
            f"agent_color must be 'black', 'white' or 'random', got {describe(agent_color)}"
        )
    return COLOURS[agent_color]


def parse_illegal(illegal_action) -> bool:
    """True for 'raise', False for 'terminate'; ValueError otherwise."""
    if not isinstance(illegal_action, str) or illegal_action not in ("terminate", "raise"):
        raise ValueError(
            f"illegal_action must be 'terminate' or 'raise', got {describe(illegal_action)}"
        )
    return illegal_action == "raise"


def resolve_policy(policy):
    """A policy object's ``act`` or a plain callable ``policy(observation, info) -> action``."""
    act = getattr(policy, "act", None)
    if callable(act):
        return act
    if callable(policy):
        return policy
    raise ValueError(
        f"opponent must be None, a callable policy(observation, info) or an object with "
        f"act(observation, info), got {type(policy).__name__}"
    )


def parse_action(action) -> int:
    """An integer action in 0..64 (NumPy integers and 0-d arrays welcome); ValueError otherwise."""
    try:
        a = operator.index(action)
    except TypeError:
        raise ValueError(f"action must be an integer in 0..64, got {describe(action)}") from None
    if not 0 <= a <= PASS:
        raise ValueError(f"action must be an integer in 0..64, got {a}")
    return a


def replay_moves(moves) -> tuple[np.uint64, np.uint64, bool, np.ndarray]:
    """Validate a move list (squares 0..63, passes omitted) and replay it.

    Returns ``(black, white, black_to_move, moves_array)``; ValueError with the offending
    index on a bad list or one that ends the game.
    """
    try:
        arr = np.asarray(moves)
    except Exception as e:  # ragged nesting and the like
        raise ValueError(f"options['moves'] must be a list of squares 0..63: {e}") from None
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(
            f"options['moves'] must be a flat list of integer squares 0..63, got {describe(moves)}"
        )
    arr = arr.astype(np.int64)
    bad = np.flatnonzero((arr < 0) | (arr > 63))
    if bad.size:
        k = int(bad[0])
        raise ValueError(f"options['moves'][{k}] = {arr[k]} is not a square 0..63")
    black, white, black_to_move, k, why = _replay(arr)
    if why == 1:
        raise ValueError(f"options['moves'][{k}] = {arr[k]} is not a legal move in that position")
    if why == 2:
        raise ValueError(f"options['moves'][{k}]: the game is already over before this move")
    if why == 3:
        raise ValueError(
            "options['moves'] ends the game; reset needs a position with a move to play"
        )
    return black, white, bool(black_to_move), arr


def call_policy(act, obs, mask, moves) -> int:
    """Ask a policy for a move and check it against ``mask``; ValueError on an illegal answer."""
    a = act(obs, {"action_mask": mask, "moves": moves})
    try:
        a = operator.index(a)
    except TypeError:
        raise ValueError(
            f"the opponent policy returned {describe(a)}, not an integer action"
        ) from None
    if not 0 <= a <= PASS or not mask[a]:
        raise ValueError(
            f"the opponent policy returned illegal action {a}; legal: {np.flatnonzero(mask).tolist()}"
        )
    return a


class OthelloEnv(gym.Env):
    """Othello (Reversi) against an opponent policy: ``Othello-v0``.

    ## Description

    Two players place discs on an 8x8 board; a disc must flank a straight run of
    the other side's discs, which flip. A player with no legal placement passes;
    the game ends when neither can move, and the side with more discs wins. The
    agent plays one colour (``agent_color``); the opponent's moves happen inside
    ``reset``/``step``, so each ``step`` is one agent move plus the opponent's
    reply. By default the opponent plays uniformly random legal moves.

    Squares are numbered ``row*8 + col`` (a1 = 0, h8 = 63), as in OthelloGPT,
    pgx and OpenSpiel. Black starts on 28 and 35, white on 27 and 36; black moves
    first.

    ## Action Space

    ``Discrete(65)``: action ``s < 64`` places a disc on square ``s``; action
    ``64`` passes and is legal only when the agent has no legal placement (the
    game not being over). ``info["action_mask"]`` (int8, shape (65,)) marks the
    legal actions on every ``reset`` and ``step``; :meth:`action_masks` returns
    the same as bool, for sb3-contrib's MaskablePPO. When the opponent has to
    pass, the env passes for it and the agent moves again.

    ## Observation Space

    ``Box(0, 1, (3, 8, 8), int8)``, from the agent's side, planes indexed
    ``[plane, row, col]``:

    * plane 0: the agent's discs
    * plane 1: the opponent's discs
    * plane 2: the agent's legal placements (all 0 once the episode ended)

    ## Rewards

    0 on every step until the game ends; then +1 if the agent has more discs,
    -1 if fewer, 0 for a draw. An illegal action gives -1 (see below).

    ## Episode End

    Termination: the game is over (neither side can move), or the agent played
    an illegal action with ``illegal_action="terminate"`` (the default: reward
    -1, ``info["illegal_action"] = True``, board unchanged). An Othello game
    lasts at most 60 placements, so there is no truncation.

    ## Info

    ``reset`` and ``step`` return ``{"action_mask": int8 (65,), "moves": list}``,
    ``moves`` being the squares played so far by both sides, passes omitted (the
    OthelloGPT sequence). ``step`` adds ``"illegal_action"`` (bool).

    ## Arguments

    * ``agent_color``: ``"black"`` (default), ``"white"`` or ``"random"`` (drawn
      at every reset from the env's RNG stream).
    * ``opponent``: ``None`` for the built-in uniform random player, or a policy:
      a callable ``policy(observation, info) -> action`` or an object with
      ``act(observation, info)``. It sees the board from its own side in the same
      layout and ``info`` with ``"action_mask"`` and ``"moves"``; it is asked only
      when it has a legal placement, and an illegal answer raises ValueError.
    * ``illegal_action``: ``"terminate"`` (default) or ``"raise"`` (ValueError,
      state unchanged).
    * ``render_mode``: ``"ansi"`` (text board, legal moves marked ``*``),
      ``"rgb_array"`` (uint8 264x264x3 picture) or ``"human"`` (prints the text
      board at every reset and step).

    ``reset(seed=..., options={"moves": [...]})`` starts from the position after
    a move list (squares, passes omitted); a bad list raises ValueError naming
    the offending move. If the opponent is to move there, it replies first.

    Seeding: the random opponent and the random colour draw from a splitmix64
    stream seeded by ``reset(seed=s)`` (``np_random`` only seeds it when no seed
    was ever given), which the native vector env reproduces per env.

    ## Version History

    * v0: Initial version.
    """

    metadata = {"render_modes": ["ansi", "rgb_array", "human"], "render_fps": 4}

    def __init__(
        self,
        agent_color: str = "black",
        opponent=None,
        illegal_action: str = "terminate",
        render_mode: str | None = None,
    ):
        self._colour_mode = parse_colour(agent_color)
        self._raise_illegal = parse_illegal(illegal_action)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}"
            )
        self.agent_color = agent_color
        self.illegal_action = illegal_action
        self.render_mode = render_mode
        self.opponent = opponent
        self._random_opponent = opponent is None
        self._act = None if opponent is None else resolve_policy(opponent)

        self.action_space = spaces.Discrete(N_ACTIONS)
        self.observation_space = spaces.Box(0, 1, OBS_SHAPE, np.int8)

        self._st = np.zeros((1, 4), np.uint64)
        self._meta = np.zeros((1, 2), np.int64)
        self._hist = np.zeros((1, MAX_MOVES), np.int8)
        self._rng_seeded = False
        self._mask = np.zeros(N_ACTIONS, np.int8)
        self._done = True
        self._started = False

    # -- Gymnasium API -----------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start a game (or the position after ``options["moves"]``); returns ``(obs, info)``."""
        moves = None
        if options:
            unknown = set(options) - {"moves"}
            if unknown:
                raise ValueError(
                    f"unknown reset option(s) {sorted(unknown)}; the only option is 'moves'"
                )
            moves = options.get("moves")
        position = None if moves is None else replay_moves(moves)  # validate before touching state
        super().reset(seed=seed)
        if seed is not None:
            self._st[0, RNG] = seed_state(seed)
        elif not self._rng_seeded:
            self._st[0, RNG] = self.np_random.integers(0, 2**64, dtype=np.uint64)
        self._rng_seeded = True

        st, meta, hist = self._st, self._meta, self._hist
        if position is None:
            code = _reset_row(st, meta, hist, 0, self._colour_mode, self._random_opponent)
        else:
            black, white, black_to_move, arr = position
            code = _reset_position(
                st,
                meta,
                hist,
                0,
                self._colour_mode,
                arr,
                black,
                white,
                black_to_move,
                self._random_opponent,
            )
        obs = np.empty((1,) + OBS_SHAPE, np.int8)
        mask = np.empty((1, N_ACTIONS), np.int8)
        if code == OPPONENT_TO_MOVE:
            code = self._opponent_reply(obs, mask)
        else:
            _view(st, 0, code, obs, mask)
        self._started = True
        if code != ONGOING:
            self._done = True
            raise ValueError(
                "the opponent's reply to options['moves'] ended the game; no move is left to play"
            )
        self._done = False
        self._mask = mask[0]
        if self.render_mode == "human":
            self.render()
        return obs[0], {"action_mask": mask[0], "moves": hist[0, : meta[0, NMOVES]].tolist()}

    def step(self, action):
        """Play ``action`` (0..64) and the opponent's reply; returns the Gymnasium 5-tuple."""
        if self._done:
            raise ValueError(
                "step() called on a finished or never reset episode; call reset() first"
            )
        a = parse_action(action)
        obs = np.empty((1,) + OBS_SHAPE, np.int8)
        mask = np.empty((1, N_ACTIONS), np.int8)
        code = _env_step(self._st, self._meta, self._hist, a, self._random_opponent, obs, mask)
        if code == OPPONENT_TO_MOVE:
            code = self._opponent_reply(obs, mask)
        if code == ILLEGAL and self._raise_illegal:
            raise ValueError(
                f"illegal action {a}; legal actions: {np.flatnonzero(self._mask).tolist()}"
            )
        terminated = code != ONGOING
        self._done = terminated
        self._mask = mask[0]
        info = {
            "action_mask": mask[0],
            "moves": self._hist[0, : self._meta[0, NMOVES]].tolist(),
            "illegal_action": code == ILLEGAL,
        }
        if self.render_mode == "human":
            self.render()
        return obs[0], REWARDS[code], terminated, False, info

    def action_masks(self) -> np.ndarray:
        """Legal actions of the current position as bool (65,) (sb3-contrib MaskablePPO's hook)."""
        return self._mask.astype(bool)

    def render(self):
        """ansi: str; rgb_array: uint8 (264, 264, 3); human: prints the text board, returns None."""
        if self.render_mode is None:
            gym.logger.warn(
                "You are calling render method without specifying any render mode. "
                'Set render_mode at initialization, e.g. gym.make("Othello-v0", render_mode="rgb_array")'
            )
            return None
        black, white = self.boards()
        legal = 0 if self._done else self._st[0, LEGAL]
        if self.render_mode == "rgb_array":
            return board_rgb(black, white, legal)
        text = board_ansi(black, white, legal, self._status())
        if self.render_mode == "ansi":
            return text
        print(text)
        return None

    # -- extras ------------------------------------------------------------

    @property
    def color(self) -> str:
        """The agent's colour in the current episode: 'black' or 'white'."""
        return COLOUR_NAMES[int(self._meta[0, COLOUR])]

    def boards(self) -> tuple[int, int]:
        """The current ``(black, white)`` bitboards as Python ints."""
        me, opp = int(self._st[0, AGENT]), int(self._st[0, OPP])
        return (me, opp) if self._meta[0, COLOUR] == 0 else (opp, me)

    def _status(self) -> str:
        if not self._started:
            return "not started"
        if self._done:
            black, white = self.boards()
            b, w = popcount(np.uint64(black)), popcount(np.uint64(white))
            result = "draw" if b == w else ("black wins" if b > w else "white wins")
            return f"game over: {result} (agent {self.color})"
        return f"agent ({self.color}) to move" + (", must pass" if self._mask[PASS] else "")

    def _opponent_reply(self, obs, mask) -> int:
        """Ask the policy opponent for its move (it has a placement), play it, write the agent's view."""
        oobs = np.empty((1,) + OBS_SHAPE, np.int8)
        omask = np.empty((1, N_ACTIONS), np.int8)
        _write_opponent_view(self._st, 0, oobs, omask)
        moves = self._hist[0, : self._meta[0, NMOVES]].tolist()
        self._done = True  # until the reply is known to be legal
        a = call_policy(self._act, oobs[0], omask[0], moves)
        code = _policy_reply(self._st, self._meta, self._hist, 0, a)
        _view(self._st, 0, code, obs, mask)
        return code
