"""Gymnasium ``SetComplement-v0``: name every token of the vocabulary exactly once."""

from __future__ import annotations

import numbers

import gymnasium as gym
import numpy as np
from gymnasium import spaces

ILLEGAL_ACTION_MODES = ("terminate", "raise")  # as Othello-v0


MAX_VOCAB = 1 << 16  # the largest vocabulary (the train CLI's --vocab-size bound too)


def check_options(vocab_size, start_length, illegal_action, render_mode=None,
                  render_modes=("ansi",)) -> tuple[int, int, str]:
    """Validate the env arguments (shared with the vector env); ValueError on bad input."""
    if render_mode is not None and render_mode not in render_modes:
        raise ValueError(f"render_mode must be None or one of {list(render_modes)}, got {render_mode!r}")
    for name, value in (("vocab_size", vocab_size), ("start_length", start_length)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise ValueError(f"{name} must be an integer, got {value!r}")
    if not 1 <= vocab_size <= MAX_VOCAB:  # observations and masks are vocab_size long
        raise ValueError(f"vocab_size must lie in 1..{MAX_VOCAB}, got {vocab_size}")
    check_start_length(start_length, vocab_size)
    if illegal_action not in ILLEGAL_ACTION_MODES:
        raise ValueError(
            f"illegal_action must be one of {ILLEGAL_ACTION_MODES}, got {illegal_action!r}")
    return int(vocab_size), int(start_length), illegal_action


def check_start_length(start_length, vocab_size) -> int:
    """``0 <= start_length < vocab_size`` (a full start would leave nothing to play)."""
    if isinstance(start_length, (bool, np.bool_)) or not isinstance(start_length, numbers.Integral):
        raise ValueError(f"start_length must be an integer, got {start_length!r}")
    if not 0 <= start_length < vocab_size:
        raise ValueError(f"start_length must lie in 0..{vocab_size - 1}, got {start_length}")
    return int(start_length)


def parse_moves(moves, vocab_size) -> list[int]:
    """Check ``options["moves"]``: distinct tokens in 0..vocab_size-1, fewer than vocab_size."""
    try:
        arr = np.asarray(moves)
    except Exception as e:  # ragged nested lists
        raise ValueError(f"options['moves'] must be a list of tokens: {e}") from None
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"options['moves'] must be a flat list of integer tokens, got {moves!r}")
    out = [int(t) for t in arr]
    for k, t in enumerate(out):
        if not 0 <= t < vocab_size:
            raise ValueError(f"options['moves'][{k}] = {t} is not a token 0..{vocab_size - 1}")
        if t in out[:k]:
            raise ValueError(f"options['moves'][{k}] = {t} repeats an earlier token")
    if len(out) == vocab_size:
        raise ValueError("options['moves'] holds every token; reset needs a token left to play")
    return out


def reset_start(options, vocab_size, start_length) -> tuple[list[int] | None, int]:
    """``(moves, start_length)`` for a reset: given moves (no random draw) or a prefix length."""
    options = options or {}
    unknown = set(options) - {"moves", "start_length"}
    if unknown:
        raise ValueError(f"unknown reset option(s) {sorted(unknown)}; the options are 'moves' "
                         "and 'start_length'")
    if "moves" in options and "start_length" in options:
        raise ValueError("reset options take 'moves' or 'start_length', not both")
    if "moves" in options:
        moves = parse_moves(options["moves"], vocab_size)
        return moves, len(moves)
    if "start_length" in options:
        return None, check_start_length(options["start_length"], vocab_size)
    return None, start_length


def moves_array(moves, vocab_size: int) -> np.ndarray:
    """``info["moves"]``: int64 ``(vocab_size,)``, the tokens in order, then -1."""
    out = np.full(vocab_size, -1, dtype=np.int64)
    out[: len(moves)] = moves
    return out


def render_ansi(moves: list[int], vocab_size: int) -> str:
    """One line: the tokens so far, then the absent ones."""
    absent = sorted(set(range(vocab_size)) - set(moves))
    seen = " ".join(map(str, moves)) or "-"
    missing = " ".join(map(str, absent)) or "-"
    return f"seen ({len(moves)}/{vocab_size}): {seen} | absent: {missing}\n"


RGB_CELL = 16  # pixels per token in rgb_array pictures
RGB_COLUMNS = 16  # tokens per picture row
_ABSENT = np.array([235, 235, 235], dtype=np.uint8)
_PRESENT = np.array([40, 70, 160], dtype=np.uint8)
_LAST = np.array([240, 150, 0], dtype=np.uint8)
_GRID = np.array([90, 90, 90], dtype=np.uint8)


def render_rgb(moves: list[int], vocab_size: int) -> np.ndarray:
    """uint8 picture (H, W, 3): token ``t`` is cell ``t`` of a grid 16 cells wide (16x16 pixels),
    light when absent, blue when present, orange for the last token named."""
    cols = min(vocab_size, RGB_COLUMNS)
    rows = -(-vocab_size // RGB_COLUMNS)
    colour = np.tile(_ABSENT, (rows * RGB_COLUMNS, 1))
    colour[vocab_size:] = _GRID  # cells past the vocabulary
    colour[list(moves)] = _PRESENT
    if moves:
        colour[moves[-1]] = _LAST
    cells = colour.reshape(rows, RGB_COLUMNS, 3)[:, :cols]
    img = np.repeat(np.repeat(cells, RGB_CELL, axis=0), RGB_CELL, axis=1)
    img[::RGB_CELL, :] = _GRID  # one-pixel grid lines between cells
    img[:, ::RGB_CELL] = _GRID
    return np.ascontiguousarray(img)


class SetComplementEnv(gym.Env):
    """
    ## Description

    The set complement task as a game. The vocabulary is the tokens
    ``0..vocab_size-1``. An episode starts from a sequence of ``start_length``
    distinct tokens in uniformly random order (empty by default); at each step
    the agent names a token. A token not yet in the sequence is appended; naming
    one already present ends the episode. The episode succeeds once every token
    is present. A policy that plays uniformly over ``info["action_mask"]`` is
    exactly the target distribution of the set complement prediction task
    (uniform over the absent tokens).

    ## Action Space

    ``Discrete(vocab_size)``: the token to name.

    ## Observation Space

    ``MultiDiscrete([vocab_size + 1] * vocab_size)``, int64: the sequence so far
    in order, padded at the end with the pad id ``vocab_size``. For example with
    ``vocab_size=4`` the sequence (2, 0) is observed as ``[2, 0, 4, 4]``.

    ## Rewards

    +1 for naming an absent token (including the last one), -1 for naming a
    present token (an illegal action). The return of a perfect episode is
    ``vocab_size - start_length``.

    ## Starting State

    A sequence of ``start_length`` distinct tokens in uniformly random order
    (drawn from the env's ``np_random``; empty by default). Reset options
    override it for one episode: ``reset(options={"start_length": k})`` draws a
    random prefix of length ``k``; ``reset(options={"moves": [...]})`` starts
    from the given distinct tokens (no random draw). A bad value raises
    ValueError.

    ## Episode End

    Termination: all tokens are present (``info["success"]`` is True), or an
    illegal action with ``illegal_action="terminate"`` (the default: reward -1,
    ``info["illegal_action"]`` True, the sequence unchanged). There is no
    truncation: an episode lasts at most ``vocab_size - start_length`` steps.

    ## Info

    ``action_mask``: int8 ``(vocab_size,)``, 1 for the absent tokens (the legal
    actions; all 0 once the episode succeeded). ``moves``: the sequence so far as
    int64 ``(vocab_size,)``, the tokens in order then ``-1`` (fixed size and dtype,
    so replay buffers that stack infos, such as Tianshou's, can store it;
    ``moves[moves >= 0]`` is the sequence), as ``Othello-v0``'s ``info["moves"]``.
    ``success``: whether every token is present. ``step`` adds ``illegal_action``
    (bool; True only on the step that ended the episode with an illegal action).
    :meth:`action_masks` returns the mask as bool (the sb3-contrib MaskablePPO
    convention).

    ## Arguments

    ```python
    import gymnasium as gym
    env = gym.make("setcomp_env:SetComplement-v0", vocab_size=16, start_length=0,
                   illegal_action="terminate", render_mode=None)
    ```

    * ``vocab_size`` (int, default 16, >= 1): number of tokens.
    * ``start_length`` (int, default 0, ``0 <= start_length < vocab_size``): length
      of the random prefix each episode starts from.
    * ``illegal_action`` (``"terminate"`` or ``"raise"``, default ``"terminate"``, as
      in ``Othello-v0``): ``"terminate"`` ends the episode with -1; ``"raise"`` raises
      ValueError instead, state unchanged (for agents that should never play
      illegally).
    * ``render_mode``: ``None``, ``"ansi"`` (a one-line text view) or ``"rgb_array"``
      (uint8 picture, one 16x16 cell per token in rows of 16: blue present, orange
      the last one named, light absent; SB3's ``make_vec_env`` asks for this mode).

    The native vector env :class:`setcomp_env.vector.SetComplementVectorEnv` is
    registered as this id's ``vector_entry_point``:

    ```python
    envs = gym.make_vec("setcomp_env:SetComplement-v0", num_envs=8,
                        vectorization_mode="vector_entry_point")
    ```

    ## Version History

    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(self, vocab_size: int = 16, start_length: int = 0,
                 illegal_action: str = "terminate",
                 render_mode: str | None = None):
        self.vocab_size, self.start_length, self.illegal_action = check_options(
            vocab_size, start_length, illegal_action, render_mode, self.metadata["render_modes"])
        self.render_mode = render_mode
        v = self.vocab_size
        self.action_space = spaces.Discrete(v)
        self.observation_space = spaces.MultiDiscrete(np.full(v, v + 1), dtype=np.int64)
        self.pad_id = v
        self._moves: list[int] = []
        self._present = np.zeros(v, dtype=np.bool_)
        self._done = True

    def _obs(self) -> np.ndarray:
        obs = np.full(self.vocab_size, self.pad_id, dtype=np.int64)
        obs[: len(self._moves)] = self._moves
        return obs

    def action_masks(self) -> np.ndarray:
        """Bool ``(vocab_size,)``: the legal actions (absent tokens)."""
        return ~self._present

    def _info(self) -> dict:
        return {"action_mask": (~self._present).astype(np.int8),
                "moves": moves_array(self._moves, self.vocab_size),
                "success": len(self._moves) == self.vocab_size}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        moves, start = reset_start(options, self.vocab_size, self.start_length)
        if moves is None:
            moves = [int(t) for t in self.np_random.permutation(self.vocab_size)[:start]]
        self._moves = moves
        self._present = np.zeros(self.vocab_size, dtype=np.bool_)
        self._present[self._moves] = True
        self._done = False
        return self._obs(), self._info()

    def step(self, action):
        if self._done:
            raise ValueError(
                "step() called on a finished or never reset episode; call reset() first")
        if isinstance(action, (bool, np.bool_)) or not self.action_space.contains(action):
            raise ValueError(f"action must be a token in 0..{self.vocab_size - 1}, got {action!r}")
        action = int(action)
        if self._present[action]:
            if self.illegal_action == "raise":
                raise ValueError(f"illegal action: token {action} is already in the sequence")
            self._done = True
            info = self._info()
            info["illegal_action"] = True
            return self._obs(), -1.0, True, False, info
        self._moves.append(action)
        self._present[action] = True
        self._done = len(self._moves) == self.vocab_size
        info = self._info()
        info["illegal_action"] = False
        return self._obs(), 1.0, self._done, False, info

    def render(self):
        if self.render_mode is None:
            gym.logger.warn('render() called without a render_mode; pass render_mode="ansi" '
                            'to gym.make("setcomp_env:SetComplement-v0", ...)')
            return None
        if self.render_mode == "rgb_array":
            return render_rgb(self._moves, self.vocab_size)
        return render_ansi(self._moves, self.vocab_size)
