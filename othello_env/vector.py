"""The native vector env of ``Othello-v0``: ``num_envs`` games stepped by one Numba kernel.

``gym.make_vec("Othello-v0", num_envs=N)`` (or ``vectorization_mode="vector_entry_point"``)
returns :class:`OthelloVectorEnv`. Each row runs the same compiled turn kernels as
:class:`othello_env.env.OthelloEnv`, so env ``i`` reset with seed ``s`` plays exactly
like a single ``Othello-v0`` reset with seed ``s + i``; ``SyncVectorEnv`` over the single
env gives identical observations, rewards, terminations and masks step for step. The
opponent is a built-in player by name (run inside the kernel) or a batched policy asked
once per step for every row whose opponent is to move (see :class:`OthelloVectorEnv`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from numba import njit

from othello_env.arguments import parse_colour, parse_illegal, parse_render_mode
from othello_env.engine import U0, U1, describe, legal_moves
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
    as_words,
    is_legal,
    policy_reply,
    reset_row,
    step_row,
    write_row_view,
    write_view,
)
from othello_env.opponents import DEFAULT_DEPTH, OPPONENT_NAMES, POLICY, RANDOM, opponent_kind
from othello_env.render import board_ansi, board_rgb, last_square
from othello_env.rng import seed_state

# Reward of each outcome code (ONGOING, WIN, DRAW, LOSS, ILLEGAL), from the agent's side:
# the single env's table, as an array for the kernel.
_REWARD = np.array(REWARDS, dtype=np.float64)


@njit(cache=True, inline="always")
def _finish_row(code, me, opp, legal, i, words, mask, rewards, terminated, illegal, autoreset):
    """Row i's outputs for outcome ``code``: reward, termination, NEXT_STEP flag and view."""
    rewards[i] = _REWARD[code]  # ONGOING: 0 for a restarted row
    ended = code != ONGOING
    terminated[i] = ended
    illegal[i] = code == ILLEGAL
    autoreset[i] = ended
    write_view(me, opp, legal, code, words, mask, i)
    if ended:
        mask[i, PASS] = 1  # the next step restarts the row and ignores its action: any will do


@njit(cache=True)
def _vector_step(
    st, meta, hist, actions, autoreset, colour_mode, opponent, obs, mask, rewards, terminated,
    illegal, waiting,
):  # fmt: skip
    """Step every row: a row that ended last step restarts (NEXT_STEP autoreset), others play.

    actions int64 (N,); autoreset bool (N,), updated in place; ``opponent`` (kind, depth);
    outputs obs (N, 3, 8, 8), mask (N, 65) int8, rewards float64, terminated / illegal
    bool, all (N,). Rows where a policy opponent (kind POLICY) is to move are left for
    _vector_replies: their indices go to ``waiting`` (int64 (N,)), their count is
    returned. The row functions are the single env's (othello_env.kernels), inlined.
    One thread: on a shared 2-core machine a prange version was several times slower.
    """
    words = as_words(obs)
    n_waiting = 0
    for i in range(actions.shape[0]):
        if autoreset[i]:
            code, me, opp, legal = reset_row(st, meta, hist, i, colour_mode, opponent)
        else:
            code, me, opp, legal = step_row(st, meta, hist, i, actions[i], opponent)
        if code == OPPONENT_TO_MOVE:
            waiting[n_waiting] = i
            n_waiting += 1
            continue
        _finish_row(code, me, opp, legal, i, words, mask, rewards, terminated, illegal, autoreset)
    return n_waiting


@njit(cache=True)
def _vector_reset(st, meta, hist, which, autoreset, colour_mode, opponent, obs, mask, waiting):
    """Restart the rows where ``which`` is True; write every row's view (finished rows: pass only).

    Restarted rows whose policy opponent moves first go to ``waiting`` (their count is
    returned), their views are left to _vector_replies.
    """
    words = as_words(obs)
    n_waiting = 0
    for i in range(which.shape[0]):
        code = ONGOING
        if which[i]:
            code, _, _, _ = reset_row(st, meta, hist, i, colour_mode, opponent)
            if code == OPPONENT_TO_MOVE:
                waiting[n_waiting] = i
                n_waiting += 1
                continue
        elif autoreset[i]:
            code = ILLEGAL  # any finished code: the view shows no legal move
        write_row_view(st, i, code, words, mask)
        if code != ONGOING:
            mask[i, PASS] = 1  # still to be restarted by the next step, as in _vector_step
    return n_waiting


@njit(cache=True)
def _opponent_masks(st, rows, omask):
    """omask bool (k, 65): the opponent's legal placements in each of ``rows`` (pass never)."""
    for k in range(rows.shape[0]):
        i = rows[k]
        legal = legal_moves(st[i, OPP], st[i, AGENT])
        for s in range(64):
            omask[k, s] = (legal >> np.uint64(s)) & U1 != U0
        omask[k, PASS] = False


@njit(cache=True)
def _vector_replies(
    st, meta, hist, rows, squares, autoreset, obs, mask, rewards, terminated, illegal
):  # fmt: skip
    """The policy opponent plays ``squares[k]`` in row ``rows[k]``; outputs as _vector_step.

    Returns -1, or the first k whose square is not legal (then nothing is played).
    """
    for k in range(rows.shape[0]):
        i = rows[k]
        sq = squares[k]
        if sq < 0 or sq > 63 or not (legal_moves(st[i, OPP], st[i, AGENT]) >> np.uint64(sq)) & U1:
            return k
    words = as_words(obs)
    for k in range(rows.shape[0]):
        i = rows[k]
        code = policy_reply(st, meta, hist, i, squares[k])
        _finish_row(
            code, st[i, AGENT], st[i, OPP], st[i, LEGAL], i, words, mask, rewards, terminated,
            illegal, autoreset,
        )  # fmt: skip
    return -1


@njit(cache=True)
def _first_illegal(st, actions, autoreset):
    """Index of the first stepping row whose action is illegal, -1 if none."""
    for i in range(actions.shape[0]):
        if not autoreset[i] and not is_legal(st[i, LEGAL], actions[i]):
            return i
    return -1


# the most games one vector env steps (its state, view and mask arrays: about 1.2 GB)
MAX_NUM_ENVS = 1 << 22


def _parse_opponent(opponent):
    """``((kind, depth), batched policy or None)`` of the vector env's ``opponent=``; ValueError otherwise."""
    if opponent is None:
        return (RANDOM, DEFAULT_DEPTH), None
    if isinstance(opponent, str):
        return (opponent_kind(opponent), DEFAULT_DEPTH), None
    if callable(getattr(opponent, "act_batch", None)):
        return (POLICY, 0), opponent
    raise ValueError(
        f"OthelloVectorEnv's opponent must be None, one of {', '.join(map(repr, OPPONENT_NAMES))} or a "
        f"batched policy with act_batch(masks, histories, rngs), got {type(opponent).__name__}; for a "
        "per-game policy use gym.make_vec('Othello-v0', vectorization_mode='sync', opponent=...)"
    )


class OthelloVectorEnv(VectorEnv):
    """``num_envs`` Othello games against one opponent, batched in Numba.

    ## Description

    The game, spaces, rewards and arguments of :class:`othello_env.env.OthelloEnv`
    (see its docstring), for ``num_envs`` games at once: one ``step`` plays every
    row's agent move and its opponent's reply in one Numba loop over the single
    env's turn kernels (:mod:`othello_env.kernels`), so env ``i`` reset with seed
    ``s`` plays exactly like a single ``Othello-v0`` with the same opponent reset
    with seed ``s + i`` (``SyncVectorEnv``'s seeding). ``gym.make_vec("Othello-v0",
    num_envs=N, opponent=...)`` returns this class.

    ## Action Space

    ``MultiDiscrete([65] * num_envs)``: any integer array of shape ``(num_envs,)``,
    action 64 = pass (legal only when the row's agent has no placement).

    ## Observation Space

    int8 ``(num_envs, 3, 8, 8)``: each row the single env's planes (agent's discs,
    opponent's discs, agent's legal placements).

    ## Rewards

    float64 ``(num_envs,)``: +1 / 0 / -1 when a row's game ends (win / draw / loss),
    -1 for an illegal action, else 0.

    ## Episode End

    terminations bool ``(num_envs,)`` as the single env; truncations always False.
    Autoreset: ``AutoresetMode.NEXT_STEP`` (like ``CartPoleVectorEnv``): the step after
    a row ends returns that row's new first observation with reward 0 and ignores its
    action. A row that just ended gets the mask "pass only" (action 64), not all
    zeros: a policy samples an action for every row, and an all ``-inf`` row of masked
    logits gives NaN probabilities. Its observation's legal plane stays empty. This is
    the one difference from ``SyncVectorEnv`` over ``Othello-v0``, whose final
    ``action_mask`` is all zeros.

    ## Info

    ``info["action_mask"]``: int8 ``(num_envs, 65)``; ``info["illegal_action"]``: bool
    ``(num_envs,)`` on ``step``; each with its Gymnasium ``"_key"`` mask, as
    ``SyncVectorEnv`` would give. :meth:`action_masks` returns the current mask as bool
    ``(num_envs, 65)`` (sb3-contrib's MaskablePPO hook). Move histories are not put in
    ``info`` (a copy per step would cost more than the step): :meth:`moves` returns
    env ``i``'s, in the single env's ``info["moves"]`` form (int8 (60,), -1 padded).

    ## Arguments

    * ``num_envs``: number of games, 1..2**22.
    * ``agent_color``, ``illegal_action``, ``render_mode``: as the single env
      (``render_mode`` "ansi" or "rgb_array": :meth:`render` gives one frame per row).
    * ``opponent``: one opponent for every row.

      - ``None`` or ``"random"``, ``"greedy"``, ``"alphabeta"``: the built-in players of
        :mod:`othello_env.opponents`, run inside the Numba step loop (vector speed),
        drawing from each row's RNG stream exactly as the single env does.
      - a batched policy: any object with ``act_batch(masks, histories, rngs)`` (e.g.
        ``agents.policies.BatchedModelPolicy`` on CPU or GPU, or
        :func:`othello_env.opponents.make_policy`). Each ``reset``/``step`` calls it once
        for all rows whose opponent is to move with a placement: ``masks`` bool ``(k, 65)``
        (the opponent's legal placements; forced passes are played by the env),
        ``histories`` int8 ``(k, 60)`` (the rows' moves, -1 padded), ``rngs`` the rows'
        own ``np.random.Generator`` (row ``i``'s is ``np.random.default_rng(s + i)``
        after ``reset(seed=s)``, kept across its episodes). It must return ``k``
        legal squares; an illegal answer raises ValueError and the env must be reset.

      Any other opponent (a per-game callable or ``act`` object) raises ValueError:
      use ``gym.make_vec("Othello-v0", vectorization_mode="sync", opponent=...)``.

    ``reset(options=...)`` accepts only ``{"reset_mask": bool array (num_envs,)}``.

    Seeding: ``reset(seed=s)`` seeds row ``i`` with ``s + i`` (a list gives one seed
    per row); without a seed, rows never seeded draw theirs from ``np_random``.
    A batched policy's draws come from the rows' generators above: the one random
    choice of ``BatchedModelPolicy``, the first move of a game it opens (empty
    history), is ``legal[rngs[i].integers(4)]``, while a single env's ``ModelPolicy``
    draws it from its own torch generator; everything after the opening is the same.

    ## Version History

    * v0: Initial version (random opponent only); built-in greedy / alpha-beta
      opponents and batched policy opponents added later.
    """

    metadata = {
        "render_modes": ["ansi", "rgb_array"],
        "render_fps": 4,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        num_envs: int = 1,
        agent_color: str = "black",
        opponent=None,
        illegal_action: str = "terminate",
        render_mode: str | None = None,
    ):
        if (
            isinstance(num_envs, bool)
            or not isinstance(num_envs, (int, np.integer))
            or num_envs < 1
        ):
            raise ValueError(f"num_envs must be a positive integer, got {describe(num_envs)}")
        if num_envs > MAX_NUM_ENVS:  # its arrays take about 300 bytes per game
            raise ValueError(f"num_envs must be at most {MAX_NUM_ENVS}, got {num_envs}")
        self._opponent, self._policy = _parse_opponent(opponent)
        parse_render_mode(render_mode, self.metadata["render_modes"])
        self.num_envs = int(num_envs)
        self._colour_mode = parse_colour(agent_color)
        self._raise_illegal = parse_illegal(illegal_action)
        self.agent_color = agent_color
        self.illegal_action = illegal_action
        self.render_mode = render_mode

        self.single_action_space = spaces.Discrete(N_ACTIONS)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.single_observation_space = spaces.Box(0, 1, OBS_SHAPE, np.int8)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)

        n = self.num_envs
        self._st = np.zeros((n, 4), np.uint64)
        self._meta = np.zeros((n, 2), np.int64)
        self._hist = np.full((n, MAX_MOVES), -1, np.int8)
        self._seeded = np.zeros(n, bool)
        self._autoreset = np.zeros(n, bool)
        self._mask = np.zeros((n, N_ACTIONS), np.int8)
        self._started = False
        self.opponent = opponent
        # a batched policy's per-row generators (see the docstring's Seeding)
        self._policy_rngs = [None] * n if self._policy is not None else None

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ):
        """Restart every row (or those in ``options["reset_mask"]``); returns ``(obs, info)``."""
        n = self.num_envs
        which = np.ones(n, bool)
        if options:
            unknown = set(options) - {"reset_mask"}
            if unknown:
                raise ValueError(
                    f"unknown reset option(s) {sorted(unknown)}; the only option is 'reset_mask'"
                )
            which = np.asarray(options["reset_mask"])
            if which.shape != (n,) or which.dtype != np.bool_ or not which.any():
                raise ValueError(
                    f"options['reset_mask'] must be a bool array of shape ({n},) with a True entry"
                )
            if not self._started and not which.all():
                raise ValueError("the first reset must restart every env (no reset_mask)")
        if seed is None:
            seeds = [None] * n
        elif isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            if seed < 0:
                raise ValueError(f"seed must be a non-negative integer, got {seed}")
            seeds = [int(seed) + i for i in range(n)]
        else:
            if isinstance(seed, (str, bytes)) or not hasattr(seed, "__len__"):
                raise ValueError(
                    f"seed must be None, an integer or a list of num_envs={n} seeds, got {describe(seed)}"
                )
            seeds = list(seed)
            if len(seeds) != n:
                raise ValueError(
                    f"a list of seeds must have num_envs={n} entries, got {len(seeds)}"
                )
            for i, s in enumerate(seeds):
                # as the single env (np_random) would: no negative, float or string seed
                if s is not None and (
                    isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)) or s < 0
                ):
                    raise ValueError(
                        f"seed[{i}] must be None or a non-negative integer, got {describe(s)}"
                    )
            seeds = [None if s is None else int(s) for s in seeds]
        first = next((s for s in seeds if s is not None), None)
        super().reset(seed=first)
        for i, s in enumerate(seeds):
            if not which[i]:
                continue
            if s is not None:
                self._st[i, RNG] = seed_state(s)
                self._seeded[i] = True
                if self._policy is not None:
                    self._policy_rngs[i] = np.random.default_rng(s)
        unseeded = which & ~self._seeded
        if unseeded.any():
            self._st[unseeded, RNG] = self.np_random.integers(
                0, 2**64, size=int(unseeded.sum()), dtype=np.uint64
            )
            self._seeded[unseeded] = True
            if self._policy is not None:
                for i in np.flatnonzero(unseeded):
                    self._policy_rngs[i] = np.random.default_rng(self.np_random.integers(0, 2**63))

        obs = np.empty((n,) + OBS_SHAPE, np.int8)
        mask = np.empty((n, N_ACTIONS), np.int8)
        waiting = np.empty(n, np.int64)
        self._started = False  # until a policy opponent's replies are in
        k = _vector_reset(
            self._st, self._meta, self._hist, which, self._autoreset, self._colour_mode,
            self._opponent, obs, mask, waiting,
        )  # fmt: skip
        self._autoreset[which] = False
        if k:
            scratch = np.empty(n, np.float64), np.empty(n, bool), np.empty(n, bool)
            self._replies(waiting[:k], obs, mask, *scratch)
        self._mask = mask
        self._started = True
        return obs, {"action_mask": mask, "_action_mask": which.copy()}

    def step(self, actions):
        """Step every row; returns batched ``(obs, rewards, terminations, truncations, info)``."""
        if not self._started:
            raise ValueError("step() before reset(); call reset() first")
        n = self.num_envs
        a = np.asarray(actions)
        if a.shape != (n,) or (a.dtype.kind not in "iu"):
            raise ValueError(
                f"actions must be an integer array of shape ({n},), got {a.dtype} {a.shape}"
            )
        a = a.astype(np.int64, copy=False)
        if n and (a.min() < 0 or a.max() > PASS):
            raise ValueError(f"actions must lie in 0..64, got values {a.min()}..{a.max()}")
        if self._raise_illegal:
            k = _first_illegal(self._st, a, self._autoreset)
            if k >= 0:
                legal = np.flatnonzero(self._mask[k]).tolist()
                raise ValueError(f"illegal action {a[k]} in env {k}; legal actions: {legal}")
        stepped = ~self._autoreset
        obs = np.empty((n,) + OBS_SHAPE, np.int8)
        mask = np.empty((n, N_ACTIONS), np.int8)
        rewards = np.empty(n, np.float64)
        terminated = np.empty(n, bool)
        illegal = np.empty(n, bool)
        waiting = np.empty(n, np.int64)
        k = _vector_step(
            self._st, self._meta, self._hist, a, self._autoreset, self._colour_mode, self._opponent,
            obs, mask, rewards, terminated, illegal, waiting,
        )  # fmt: skip
        if k:
            self._started = False  # until the policy opponent's replies are in
            self._replies(waiting[:k], obs, mask, rewards, terminated, illegal)
            self._started = True
        self._mask = mask
        info = {
            "action_mask": mask,
            "_action_mask": np.ones(n, bool),
            "illegal_action": illegal,
            "_illegal_action": stepped,
        }
        return obs, rewards, terminated, np.zeros(n, bool), info

    def _replies(self, rows, obs, mask, rewards, terminated, illegal) -> None:
        """Ask the batched policy opponent once for all ``rows`` and play its replies."""
        omask = np.empty((rows.size, N_ACTIONS), bool)
        _opponent_masks(self._st, rows, omask)
        answer = self._policy.act_batch(omask, self._hist[rows], [self._policy_rngs[i] for i in rows])
        squares = np.asarray(answer)
        if squares.shape != rows.shape or squares.dtype.kind not in "iu":
            raise ValueError(
                f"the opponent's act_batch must return {rows.size} integer actions, got {describe(answer)}; "
                "reset() the env"
            )
        squares = squares.astype(np.int64, copy=False)
        bad = _vector_replies(
            self._st, self._meta, self._hist, rows, squares, self._autoreset, obs, mask,
            rewards, terminated, illegal,
        )  # fmt: skip
        if bad >= 0:
            i = int(rows[bad])
            raise ValueError(
                f"the opponent policy returned illegal action {squares[bad]} in env {i}; "
                f"legal: {np.flatnonzero(omask[bad]).tolist()}; reset() the env"
            )

    def action_masks(self) -> np.ndarray:
        """Bool ``(num_envs, 65)``: every row's mask of the last reset/step, as in ``info``."""
        return self._mask.astype(bool)

    def moves(self, i: int) -> np.ndarray:
        """Env ``i``'s history: int8 (60,), squares in play order (passes omitted), then -1."""
        if (
            isinstance(i, (bool, np.bool_))
            or not isinstance(i, (int, np.integer))
            or not 0 <= i < self.num_envs
        ):
            raise ValueError(
                f"env index must be an integer in 0..{self.num_envs - 1}, got {describe(i)}"
            )
        return self._hist[i].copy()

    def colors(self) -> list[str]:
        """Each env's agent colour in its current game: 'black' or 'white'."""
        return [COLOUR_NAMES[c] for c in self._meta[:, COLOUR]]

    def render(self):
        """A tuple with one frame per env: str boards ("ansi") or uint8 (296, 296, 3) images."""
        if self.render_mode is None:
            gym.logger.warn("You are calling render method without specifying any render mode.")
            return None
        frames = []
        for i in range(self.num_envs):
            me, opp = int(self._st[i, AGENT]), int(self._st[i, OPP])
            colour = int(self._meta[i, COLOUR])
            black, white = (me, opp) if colour == 0 else (opp, me)
            legal = 0 if self._autoreset[i] else legal_moves(me, opp)
            if self.render_mode == "rgb_array":
                frames.append(board_rgb(black, white, legal, last_square(self._hist[i])))
            else:
                status = (
                    "game over" if self._autoreset[i] else f"agent ({COLOUR_NAMES[colour]}) to move"
                )
                frames.append(board_ansi(black, white, legal, status))
        return tuple(frames)
