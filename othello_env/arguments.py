"""Argument checks shared by the Othello envs (single, vector, PettingZoo): one-line ValueErrors."""

from __future__ import annotations

import operator

import numpy as np

from othello_env.engine import describe
from othello_env.games import ERR_AFTER_END, ERR_ILLEGAL
from othello_env.kernels import PASS, replay_position

COLOURS = {"black": 0, "white": 1, "random": -1}


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


def parse_render_mode(render_mode, render_modes) -> None:
    """ValueError unless ``render_mode`` is None or one of ``render_modes``."""
    if render_mode is not None and render_mode not in render_modes:
        raise ValueError(
            f"render_mode must be one of {list(render_modes)} or None, got {render_mode!r}"
        )


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


def _index(value) -> int:
    """``operator.index`` that refuses booleans (True would be square 1; NumPy < 2 takes np.bool_)."""
    if isinstance(value, (bool, np.bool_)) or getattr(value, "dtype", None) == np.bool_:
        raise TypeError("a boolean is not an action")
    return operator.index(value)


def parse_action(action) -> int:
    """An integer action in 0..64 (NumPy integers and 0-d arrays welcome); ValueError otherwise."""
    try:
        a = _index(action)
    except TypeError:
        raise ValueError(f"action must be an integer in 0..64, got {describe(action)}") from None
    if not 0 <= a <= PASS:
        raise ValueError(f"action must be an integer in 0..64, got {a}")
    return a


def replay_moves(moves) -> tuple[np.uint64, np.uint64, bool, np.ndarray]:
    """Validate a move list (squares 0..63, passes omitted) and replay it.

    Returns ``(black, white, black_to_move, moves)``, ``moves`` as int8 (L,), the position
    after the list with forced passes resolved; ValueError with the offending index on a
    bad list or one that ends the game.
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
    arr = arr.astype(np.int8)
    k, kind, black, white, black_to_move, ended = replay_position(arr[None, :])
    if kind == ERR_ILLEGAL:
        raise ValueError(f"options['moves'][{k}] = {arr[k]} is not a legal move in that position")
    if kind == ERR_AFTER_END:
        raise ValueError(f"options['moves'][{k}]: the game is already over before this move")
    if ended:
        raise ValueError(
            "options['moves'] ends the game; reset needs a position with a move to play"
        )
    return np.uint64(black), np.uint64(white), bool(black_to_move), arr


def call_policy(act, obs, mask, moves) -> int:
    """Ask a policy for a move and check it against ``mask``; ValueError on an illegal answer."""
    a = act(obs, {"action_mask": mask, "moves": moves})
    try:
        a = _index(a)
    except TypeError:
        raise ValueError(
            f"the opponent policy returned {describe(a)}, not an integer action"
        ) from None
    if not 0 <= a <= PASS or not mask[a]:
        raise ValueError(
            f"the opponent policy returned illegal action {a}; legal: {np.flatnonzero(mask).tolist()}"
        )
    return a
