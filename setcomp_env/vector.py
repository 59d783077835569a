"""Native vector env for ``SetComplement-v0``: all sub-envs stepped with array operations.

Step for step equal to ``gymnasium.vector.SyncVectorEnv`` over
:class:`~setcomp_env.env.SetComplementEnv` under the same seeds (observations,
rewards, terminations, truncations and infos, including the ``_key`` masks),
which the tests check, except for one thing: the action mask of a sub-env that
just ended allows every action (the next step autoresets it and ignores its
action), where the single env's may be all zero. Each sub-env keeps its own random generator, seeded
``seed + i`` as ``SyncVectorEnv`` does.
"""

from __future__ import annotations

import numpy as np
from gymnasium import logger, spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from setcomp_env.env import check_options, moves_array, render_ansi, render_rgb, reset_start

# the most (env, token) cells of the observation, mask and history arrays (2 GiB of int64 each)
MAX_CELLS = 1 << 28


class SetComplementVectorEnv(VectorEnv):
    """``num_envs`` copies of ``SetComplement-v0`` in arrays, autoreset on the next step.

    Arguments are those of :class:`~setcomp_env.env.SetComplementEnv` plus
    ``num_envs``. Observations ``(num_envs, vocab_size)`` int64 (pad id
    ``vocab_size``), rewards float64, infos batched as ``SyncVectorEnv`` does:
    ``action_mask`` ``(num_envs, vocab_size)`` int8, ``moves``
    ``(num_envs, vocab_size)`` int64 (each row the single env's ``info["moves"]``:
    tokens, then -1; rows of sub-envs not in the info are 0), ``success`` bool
    and, after ``step``, ``illegal_action`` bool (its ``_illegal_action`` mask
    False for the sub-envs that were autoreset), each with its ``_key`` mask. A
    sub-env that ended is reset by
    the following ``step`` (its action ignored, reward 0), as
    ``AutoresetMode.NEXT_STEP`` prescribes; until then its mask (in ``info`` and
    :meth:`action_masks`) allows every action, so that a policy sampling from a
    ``-inf`` masked distribution gets no all-masked row (a NaN). :meth:`action_masks`
    gives the bool ``(num_envs, vocab_size)`` mask.
    """

    metadata = {
        "render_modes": ["ansi", "rgb_array"], "render_fps": 4, "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(self, num_envs: int = 1, vocab_size: int = 16, start_length: int = 0,
                 illegal_action: str = "terminate", render_mode: str | None = None):
        if (isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer))
                or num_envs < 1):
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.vocab_size, self.start_length, self.illegal_action = check_options(
            vocab_size, start_length, illegal_action, render_mode, self.metadata["render_modes"])
        if num_envs * self.vocab_size > MAX_CELLS:
            raise ValueError(f"num_envs x vocab_size must be at most {MAX_CELLS} (its arrays "
                             f"hold that many int64 each), got {num_envs} x {vocab_size}")
        self.render_mode = render_mode
        self.num_envs = int(num_envs)
        v = self.vocab_size
        self.pad_id = v
        self.single_action_space = spaces.Discrete(v)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.single_observation_space = spaces.MultiDiscrete(np.full(v, v + 1), dtype=np.int64)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)

        self._rngs: list[np.random.Generator | None] = [None] * self.num_envs
        self._seqs = np.full((self.num_envs, v), v, dtype=np.int64)  # padded sequences
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._present = np.zeros((self.num_envs, v), dtype=np.bool_)
        self._autoreset = np.zeros(self.num_envs, dtype=np.bool_)
        self._started = False

    def _reset_one(self, i: int, start: int, moves: list[int] | None = None) -> None:
        if self._rngs[i] is None:
            self._rngs[i], _ = seeding.np_random(None)
        if moves is None:  # the same draw as the single env
            prefix = self._rngs[i].permutation(self.vocab_size)[:start]
        else:
            prefix = np.asarray(moves, dtype=np.int64)
        self._seqs[i] = self.pad_id
        self._seqs[i, :start] = prefix
        self._lengths[i] = start
        self._present[i] = False
        self._present[i, prefix] = True

    def _infos(self, ids: np.ndarray, illegal: np.ndarray | None = None,
               stepped: np.ndarray | None = None) -> dict:
        """Infos for the sub-envs ``ids`` (bool mask), laid out like SyncVectorEnv's."""
        infos = {}
        if not ids.any():
            return infos
        infos["action_mask"] = np.where(ids[:, None], self.action_masks(), False).astype(np.int8)
        infos["_action_mask"] = ids.copy()
        # the padded sequences with -1 for the pad id; rows not in ids are 0, as SyncVectorEnv leaves them
        moves = np.where(self._seqs == self.pad_id, -1, self._seqs)
        infos["moves"] = np.where(ids[:, None], moves, 0)
        infos["_moves"] = ids.copy()
        infos["success"] = ids & (self._lengths == self.vocab_size)
        infos["_success"] = ids.copy()
        if stepped is not None and stepped.any():  # only stepped (not autoreset) envs have it
            infos["illegal_action"] = illegal & stepped
            infos["_illegal_action"] = stepped.copy()
        return infos

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        """Reset every sub-env (or those in ``options["reset_mask"]``), seeded as SyncVectorEnv."""
        n = self.num_envs
        if seed is None:
            seeds = [None] * n
        elif isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            seeds = [int(seed) + i for i in range(n)]
        else:
            seeds = list(seed)
            if len(seeds) != n:
                raise ValueError(
                    f"a list of seeds must have num_envs={n} entries, got {len(seeds)}")
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if mask is None:
            mask = np.ones(n, dtype=np.bool_)
        elif not (isinstance(mask, np.ndarray) and mask.dtype == np.bool_ and mask.shape == (n,)):
            raise ValueError(f"options['reset_mask'] must be a bool array of shape ({n},)")
        elif not mask.any():  # as SyncVectorEnv: a reset that resets nothing is a caller bug
            raise ValueError("options['reset_mask'] must hold at least one True")
        elif not self._started and not mask.all():
            raise ValueError("the first reset must reset every sub-env (no reset_mask)")
        moves, start = reset_start(options, self.vocab_size, self.start_length)
        for i in np.flatnonzero(mask):
            if seeds[i] is not None:
                self._rngs[i], _ = seeding.np_random(seeds[i])
            self._reset_one(i, start, moves)
        self._autoreset[mask] = False
        self._started = True
        return self._seqs.copy(), self._infos(mask)

    def step(self, actions):
        if not self._started:
            raise ValueError("step() called before reset()")
        a = np.asarray(actions)
        if a.shape != (self.num_envs,) or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(
                f"actions must be an integer array of shape ({self.num_envs},), got {a!r}")
        if a.min() < 0 or a.max() >= self.vocab_size:
            raise ValueError(f"actions must be tokens in 0..{self.vocab_size - 1}, got {a}")
        a = a.astype(np.int64)
        rows = np.arange(self.num_envs)
        resetting = self._autoreset
        active = ~resetting
        illegal = active & self._present[rows, a]
        if self.illegal_action == "raise" and illegal.any():
            i = int(np.flatnonzero(illegal)[0])
            raise ValueError(
                f"illegal action in sub-env {i}: token {a[i]} is already in the sequence")
        legal = active & ~illegal
        li = np.flatnonzero(legal)
        self._seqs[li, self._lengths[li]] = a[li]
        self._present[li, a[li]] = True
        self._lengths[li] += 1
        for i in np.flatnonzero(resetting):
            self._reset_one(i, self.start_length)  # autoreset uses the constructor's start_length
        rewards = np.where(legal, 1.0, np.where(illegal, -1.0, 0.0))
        terminated = illegal | (legal & (self._lengths == self.vocab_size))
        truncated = np.zeros(self.num_envs, dtype=np.bool_)
        self._autoreset = terminated.copy()
        infos = self._infos(np.ones(self.num_envs, dtype=np.bool_), illegal, active)
        return self._seqs.copy(), rewards, terminated, truncated, infos

    def action_masks(self) -> np.ndarray:
        """Bool ``(num_envs, vocab_size)``: the legal actions of every sub-env; every action for
        a sub-env that just ended (its next action is ignored by the autoreset)."""
        return ~self._present | self._autoreset[:, None]

    def moves(self, i: int) -> np.ndarray:
        """Sub-env ``i``'s sequence so far, in the single env's ``info["moves"]`` form
        (int64 ``(vocab_size,)``, tokens then -1)."""
        if (isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer))
                or not 0 <= i < self.num_envs):
            raise ValueError(f"env index must be an integer in 0..{self.num_envs - 1}, got {i!r}")
        return moves_array(self._seqs[i, : self._lengths[i]], self.vocab_size)

    def render(self):
        if self.render_mode is None:
            logger.warn("render() called without a render_mode; pass render_mode=\"ansi\"")
            return None
        draw = render_rgb if self.render_mode == "rgb_array" else render_ansi
        seqs = [self._seqs[i, : self._lengths[i]].tolist() for i in range(self.num_envs)]
        return tuple(draw(seq, self.vocab_size) for seq in seqs)
