"""Gymnasium ``Othello-v0``: one agent plays Othello against an opponent policy.

The class below is a thin adapter: the game runs in the turn kernels of
:mod:`othello_env.kernels` on one row of state arrays (the native vector env,
:mod:`othello_env.vector`, runs the same kernels on ``num_envs`` rows), argument
checks live in :mod:`othello_env.arguments`, pictures in :mod:`othello_env.render`.

Randomness (the built-in random opponent and ``agent_color="random"``) comes
from a per-env splitmix64 stream (:mod:`othello_env.rng`), not from ``np_random``:
that is what lets env ``i`` of the vector env reset with seed ``s`` behave
exactly like this env reset with seed ``s + i`` (SyncVectorEnv's seeding).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from othello_env.arguments import (
    call_policy,
    parse_action,
    parse_colour,
    parse_illegal,
    parse_render_mode,
    replay_moves,
    resolve_policy,
)
from othello_env.engine import popcount
from othello_env.games import MAX_MOVES
from othello_env.kernels import (
    AGENT,
    COLOUR,
    COLOUR_NAMES,
    ILLEGAL,
    LEGAL,
    N_ACTIONS,
    OBS_SHAPE,
    ONGOING,
    OPP,
    OPPONENT_TO_MOVE,
    PASS,
    REWARDS,
    RNG,
    opponent_view_kernel,
    policy_reply_kernel,
    position_kernel,
    reset_kernel,
    step_kernel,
)
from othello_env.opponents import DEFAULT_DEPTH, OPPONENT_NAMES, POLICY, RANDOM, opponent_kind
from othello_env.render import board_ansi, board_rgb, last_square
from othello_env.rng import seed_state


def parse_opponent(opponent) -> tuple[tuple[int, int], Any]:
    """``((kind, depth), act)`` of an ``opponent=`` argument: a built-in name or None, or a policy.

    None and the names of :data:`othello_env.opponents.OPPONENT_NAMES` run in the turn
    kernels (``act`` None); a callable or an object with ``act`` is asked from Python
    (kind POLICY). ValueError (one line) otherwise.
    """
    if opponent is None:
        return (RANDOM, DEFAULT_DEPTH), None
    if isinstance(opponent, str):
        return (opponent_kind(opponent), DEFAULT_DEPTH), None
    try:
        return (POLICY, 0), resolve_policy(opponent)
    except ValueError:
        raise ValueError(
            f"opponent must be None, one of {', '.join(map(repr, OPPONENT_NAMES))}, a callable "
            f"policy(observation, info) or an object with act(observation, info), got {type(opponent).__name__}"
        ) from None


class OthelloEnv(gym.Env):
    """Othello (Reversi) against an opponent policy: ``Othello-v0``.

    ## Description

    Two players place discs on an 8x8 board; a disc must flank a straight run of
    the other side's discs, which flip. A player with no legal placement passes;
    the game ends when neither can move, and the side with more discs wins. The
    agent plays one colour (``agent_color``); the opponent's moves happen inside
    ``reset``/``step``, so each ``step`` is one agent move plus the opponent's
    reply. By default the opponent plays uniformly random legal moves; greedy and
    alpha-beta players are built in too.

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

    ``reset`` and ``step`` return ``{"action_mask": int8 (65,), "moves": int8 (60,)}``,
    ``moves`` being the squares played so far by both sides in play order, passes
    omitted (the OthelloGPT sequence), then ``-1`` up to length 60: a row of a
    :func:`othello_env.generate_games` array. Fixed size and dtype, so replay
    buffers that stack infos (Tianshou) can store it; the history itself is
    ``moves[moves >= 0]``. ``step`` adds ``"illegal_action"`` (bool).

    ## Arguments

    * ``agent_color``: ``"black"`` (default), ``"white"`` or ``"random"`` (drawn
      at every reset from the env's RNG stream).
    * ``opponent``: ``None`` or ``"random"`` for the built-in uniform random player,
      ``"greedy"`` (most discs flipped, ties drawn at random) or ``"alphabeta"``
      (a 3-ply alpha-beta search over a square-weight table plus mobility), see
      :mod:`othello_env.opponents`; the built-in players run inside the Numba turn
      kernel and draw from the env's RNG stream. Or a policy: a callable
      ``policy(observation, info) -> action`` or an object with
      ``act(observation, info)`` (e.g. :func:`othello_env.opponents.make_policy`,
      ``agents.ModelPolicy``). It sees the board from its own side in the same
      layout and ``info`` with ``"action_mask"`` and ``"moves"`` (as above); it is asked only
      when it has a legal placement, and an illegal answer raises ValueError.
    * ``illegal_action``: ``"terminate"`` (default) or ``"raise"`` (ValueError,
      state unchanged).
    * ``render_mode``: ``"ansi"`` (text board, legal moves marked ``*``),
      ``"rgb_array"`` (uint8 296x296x3 picture: coordinates, last move marked) or ``"human"`` (prints the text
      board at every reset and step).

    ``reset(seed=..., options={"moves": [...]})`` starts from the position after
    a move list (squares, passes omitted); a bad list raises ValueError naming
    the offending move. If the opponent is to move there, it replies first.

    Seeding: the built-in opponents (random moves, greedy's tie-breaks) and the random
    colour draw from a splitmix64 stream seeded by ``reset(seed=s)`` (``np_random`` only seeds it when no seed
    was ever given), which the native vector env reproduces per env.

    ## Version History

    * v0: Initial version; ``opponent="greedy"`` and ``"alphabeta"`` added later
      (the random opponent's games are unchanged).
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
        parse_render_mode(render_mode, self.metadata["render_modes"])
        self.agent_color = agent_color
        self.illegal_action = illegal_action
        self.render_mode = render_mode
        self.opponent = opponent
        self._opponent, self._act = parse_opponent(opponent)

        self.action_space = spaces.Discrete(N_ACTIONS)
        self.observation_space = spaces.Box(0, 1, OBS_SHAPE, np.int8)

        self._st = np.zeros((1, 4), np.uint64)
        self._meta = np.zeros((1, 2), np.int64)
        self._hist = np.full((1, MAX_MOVES), -1, np.int8)
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

        obs = np.empty((1,) + OBS_SHAPE, np.int8)
        mask = np.empty((1, N_ACTIONS), np.int8)
        state = (self._st, self._meta, self._hist, 0, self._colour_mode)
        if position is None:
            code = reset_kernel(*state, self._opponent, obs, mask)
        else:
            black, white, black_to_move, arr = position
            code = position_kernel(
                *state, arr, black, white, black_to_move, self._opponent, obs, mask
            )
        if code == OPPONENT_TO_MOVE:
            code = self._opponent_reply(obs, mask)
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
        return obs[0], {"action_mask": mask[0], "moves": self._hist[0].copy()}

    def step(self, action):
        """Play ``action`` (0..64) and the opponent's reply; returns the Gymnasium 5-tuple."""
        if self._done:
            raise ValueError(
                "step() called on a finished or never reset episode; call reset() first"
            )
        a = parse_action(action)
        obs = np.empty((1,) + OBS_SHAPE, np.int8)
        mask = np.empty((1, N_ACTIONS), np.int8)
        code = step_kernel(
            self._st, self._meta, self._hist, 0, a, self._opponent, obs, mask
        )
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
            "moves": self._hist[0].copy(),
            "illegal_action": code == ILLEGAL,
        }
        if self.render_mode == "human":
            self.render()
        return obs[0], REWARDS[code], terminated, False, info

    def action_masks(self) -> np.ndarray:
        """Legal actions of the current position as bool (65,) (sb3-contrib MaskablePPO's hook)."""
        return self._mask.astype(bool)

    def render(self):
        """ansi: str; rgb_array: uint8 (296, 296, 3); human: prints the text board, returns None."""
        if self.render_mode is None:
            gym.logger.warn(
                "You are calling render method without specifying any render mode. "
                'Set render_mode at initialization, e.g. gym.make("Othello-v0", render_mode="rgb_array")'
            )
            return None
        black, white = self.boards()
        legal = 0 if self._done else self._st[0, LEGAL]
        if self.render_mode == "rgb_array":
            return board_rgb(black, white, legal, last_square(self._hist[0]))
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
        opponent_view_kernel(self._st, 0, oobs, omask)
        self._done = True  # until the reply is known to be legal
        a = call_policy(self._act, oobs[0], omask[0], self._hist[0].copy())
        return policy_reply_kernel(self._st, self._meta, self._hist, 0, a, obs, mask)
