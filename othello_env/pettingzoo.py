"""PettingZoo AEC Othello: ``othello_env.pettingzoo.env()`` (wrapped) and ``raw_env``.

Registered as ``"othello_env/Othello-v0"`` in PettingZoo's AEC registry when
:mod:`othello_env` is imported: ``pettingzoo.make("aec", "othello_env/Othello-v0")``.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv
from pettingzoo.utils import AgentSelector, wrappers

from othello_env.arguments import parse_action, parse_render_mode, replay_moves
from othello_env.engine import BLACK_START, WHITE_START, apply_move, legal_moves, popcount
from othello_env.games import MAX_MOVES
from othello_env.kernels import N_ACTIONS, OBS_SHAPE, PASS, write_planes
from othello_env.render import board_ansi, board_rgb, last_square


def env(render_mode: str | None = None) -> AECEnv:
    """Othello wrapped like PettingZoo's classic envs: an illegal move ends the game, -1 to the offender."""
    e = raw_env(render_mode=render_mode)
    e = wrappers.TerminateIllegalWrapper(e, illegal_reward=-1)
    e = wrappers.AssertOutOfBoundsWrapper(e)
    e = wrappers.OrderEnforcingWrapper(e)
    return e


class raw_env(AECEnv):
    """Two-player Othello as a PettingZoo AEC env.

    ## Description

    ``player_0`` plays black and moves first, ``player_1`` plays white. Squares
    are ``row*8 + col`` (a1 = 0, h8 = 63), black starts on 28 and 35, white on
    27 and 36. The rules are :mod:`othello_env.engine`'s.

    ## Action Space

    ``Discrete(65)`` per agent: square 0..63, or 64 = pass, legal only when the
    agent has no legal placement (a pass is an explicit turn, as in PettingZoo's
    Go). ``env()`` ends the game on an illegal action (-1 to the offender, 0 to
    the other); ``raw_env`` raises ValueError instead.

    ## Observation Space

    ``Dict(observation=Box(0, 1, (3, 8, 8), int8), action_mask=Box(0, 1, (65,), int8))``,
    from the observing agent's side: plane 0 its discs, plane 1 the other's,
    plane 2 its legal placements. The mask (and plane 2) are all zeros except
    for the agent to move, and all zeros once the game is over.

    ## Rewards

    At the end, +1 to the side with more discs and -1 to the other, 0 each for
    a draw; 0 before.

    ## Episode End

    Both agents terminate when neither can move (or on an illegal move under
    ``env()``). No truncation: a game has at most 60 placements.

    ## Info

    ``infos[agent]["moves"]``: the squares played so far by both sides, passes
    omitted (the OthelloGPT sequence), then -1 up to length 60: int8 (60,), the
    same for both agents (as ``Othello-v0``'s ``info["moves"]``: fixed size, so
    replay buffers can store it).

    ## Arguments

    * ``render_mode``: ``"human"`` (prints the text board after every move),
      ``"ansi"`` (text board, legal moves ``*``) or ``"rgb_array"`` (uint8
      296x296x3 picture: coordinates, last move marked).

    ``reset(options={"moves": [...]})`` starts from the position after a move
    list; a bad list raises ValueError (other option keys are ignored). The game has no randomness; ``seed`` is
    accepted and has no effect.

    ## Version History

    * v0: Initial version.
    """

    metadata = {
        "render_modes": ["human", "ansi", "rgb_array"],
        "name": "othello_env/Othello-v0",  # the id it is registered under
        "is_parallelizable": False,
        "render_fps": 4,
    }

    def __init__(self, render_mode: str | None = None):
        super().__init__()
        parse_render_mode(render_mode, self.metadata["render_modes"])
        self.render_mode = render_mode
        self.possible_agents = ["player_0", "player_1"]
        self.agents = self.possible_agents[:]
        obs_space = spaces.Dict(
            {
                "observation": spaces.Box(0, 1, OBS_SHAPE, np.int8),
                "action_mask": spaces.Box(0, 1, (N_ACTIONS,), np.int8),
            }
        )
        self.observation_spaces = {a: obs_space for a in self.possible_agents}
        self.action_spaces = {a: spaces.Discrete(N_ACTIONS) for a in self.possible_agents}
        self._agent_selector = AgentSelector(self.agents)
        # State (set by reset): self._discs, the np.uint64 boards of player_0 (black) and
        # player_1 (white); self._moves, int8 (60,) history padded with -1; self._n, its
        # length; self._legal, the placements of the agent to move; self._over.
        self.reset()

    def observation_space(self, agent):
        return self.observation_spaces[agent]

    def action_space(self, agent):
        return self.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        """Start a game, or the position after ``options["moves"]`` (squares, passes omitted)."""
        black, white, black_to_move = BLACK_START, WHITE_START, True
        self._moves = np.full(MAX_MOVES, -1, np.int8)
        self._n = 0
        if options and options.get("moves") is not None:  # other keys are ignored (api_test passes some)
            black, white, black_to_move, arr = replay_moves(options["moves"])
            self._n = arr.size
            self._moves[: self._n] = arr
        self._discs = [black, white]
        self._over = False
        self.agents = self.possible_agents[:]
        self._agent_selector.reinit(self.agents)
        self.agent_selection = self._agent_selector.reset()
        if not black_to_move:
            self.agent_selection = self._agent_selector.next()
        self._legal = self._legal_for(self.agent_selection)
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.infos = {a: {"moves": self._moves.copy()} for a in self.agents}
        if self.render_mode == "human":
            self.render()

    def _legal_for(self, agent) -> np.uint64:
        p = self.possible_agents.index(agent)
        return np.uint64(legal_moves(self._discs[p], self._discs[1 - p]))

    def observe(self, agent):
        """``{"observation": int8 (3, 8, 8), "action_mask": int8 (65,)}`` from ``agent``'s side."""
        p = self.possible_agents.index(agent)
        to_move = agent == self.agent_selection and not self._over
        legal = self._legal if to_move else np.uint64(0)
        pass_ok = int(to_move and legal == 0)
        obs = np.empty((1,) + OBS_SHAPE, np.int8)
        mask = np.empty((1, N_ACTIONS), np.int8)
        write_planes(self._discs[p], self._discs[1 - p], legal, pass_ok, obs, mask)
        return {"observation": obs[0], "action_mask": mask[0]}

    def step(self, action) -> None:
        """The agent to move plays ``action`` (0..63, or 64 to pass when it has no placement)."""
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            return self._was_dead_step(action)
        a = parse_action(action)
        p = self.possible_agents.index(agent)
        legal = int(self._legal)
        if (a == PASS and legal != 0) or (a != PASS and not (legal >> a) & 1):
            raise ValueError(
                f"illegal action {a} for {agent}; legal actions: {self._legal_actions()}"
            )
        self._cumulative_rewards[agent] = 0.0
        if a != PASS:
            me, opp = apply_move(self._discs[p], self._discs[1 - p], a)
            self._discs[p], self._discs[1 - p] = np.uint64(me), np.uint64(opp)
            self._moves[self._n] = a
            self._n += 1
        for info in self.infos.values():
            info["moves"] = self._moves.copy()
        self.agent_selection = self._agent_selector.next()
        self._legal = self._legal_for(self.agent_selection)  # the other side's placements
        if self._legal == 0 and legal_moves(self._discs[p], self._discs[1 - p]) == 0:
            self._over = True
            b, w = popcount(self._discs[0]), popcount(self._discs[1])
            sign = (b > w) - (b < w)
            self.rewards = {"player_0": float(sign), "player_1": float(-sign)}
            self.terminations = {a_: True for a_ in self.agents}
        self._accumulate_rewards()
        if self.render_mode == "human":
            self.render()

    def _legal_actions(self) -> list[int]:
        legal = int(self._legal)
        return [s for s in range(64) if (legal >> s) & 1] or [PASS]

    def render(self):
        """human: print the text board (returns None); ansi: str; rgb_array: uint8 (296, 296, 3)."""
        if self.render_mode is None:
            gymnasium.logger.warn(
                "You are calling render method without specifying any render mode."
            )
            return None
        legal = 0 if self._over else int(self._legal)
        if self.render_mode == "rgb_array":
            return board_rgb(self._discs[0], self._discs[1], legal, last_square(self._moves[: self._n]))
        if self._over:
            b, w = popcount(self._discs[0]), popcount(self._discs[1])
            status = "game over: " + ("draw" if b == w else "black wins" if b > w else "white wins")
        else:
            colour = "black" if self.agent_selection == "player_0" else "white"
            status = f"{self.agent_selection} ({colour}) to move" + (
                ", must pass" if legal == 0 else ""
            )
        text = board_ansi(self._discs[0], self._discs[1], legal, status)
        if self.render_mode == "ansi":
            return text
        print(text)
        return None

    def close(self):
        pass
