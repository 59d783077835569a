"""Policies: ``policy(observation, info) -> action`` (or ``policy.act(observation, info)``).

The interface of docs/ARCHITECTURE.md "Policies": ``info["action_mask"]`` (int8) holds
the legal actions (for PettingZoo dict observations, ``observation["action_mask"]``),
``info["moves"]`` the move history (Othello: squares played, passes omitted; set
complement: the tokens so far). Othello action 64 = pass. Both policies always return
a legal action, as a Python int.
"""

from __future__ import annotations

import copy
import os

import numpy as np
import torch
import torch.nn as nn

from agents import checkpoint
from agents.averaging import BEMA, EMA, unwrap
from agents.model import GPT, KVCache
from othello_env.opponents import action_mask

TASKS = ("othello", "setcomp")
WEIGHTS = ("ema", "bema", "raw")
OTHELLO_PASS = 64


class RandomPolicy:
    """Uniformly random legal action, from its own ``np.random.default_rng(seed)``."""

    def __init__(self, seed: int | None = None):
        self.rng = np.random.default_rng(seed)

    def act(self, observation, info) -> int:
        legal = np.flatnonzero(action_mask(observation, info))
        if legal.size == 0:
            raise ValueError("no legal action: the action mask is all zero")
        return int(legal[self.rng.integers(legal.size)])

    __call__ = act


class _LastLogits:
    """A model's logits at the last position of many token histories: float32 (n, V), CPU.

    With ``use_cache`` each history is read once: a :class:`agents.model.KVCache` row per
    game holds the keys and values of the tokens the model has seen, found again by
    their content (a dict from a row's tokens to the row), so a history that continues
    a cached one costs only its new tokens, and one asked again (the same position)
    costs nothing. A history that continues no cached one (a new game, another game's
    position) starts a fresh row. Rows of games that have not come back for ``IDLE``
    calls are reused (a game that ended); the cache grows when there are too few.
    Histories longer than ``block_size`` are read as without the cache: the last
    ``block_size`` tokens, one full forward pass. Cached keys and values belong to the
    weights they came from: a change of the model's parameters (an optimiser step,
    ``load_state_dict``: PyTorch counts in-place writes in ``Tensor._version``) empties
    the cache.
    """

    IDLE = 4  # calls a cache row may go unused before its game counts as over

    def __init__(self, model: GPT, device, use_cache: bool):
        self.model, self.device, self.use_cache = model, device, bool(use_cache)
        self.params = list(model.parameters())
        self.clear()

    def clear(self):
        """Forget every cached game (frees the cache's memory)."""
        self.cache = None  # KVCache, built on first use
        self.row_of: dict[bytes, int] = {}  # a row's tokens -> the row
        self.key: list[bytes | None] = []  # row -> its tokens (None: empty)
        self.logits = torch.empty(0, self.model.config.vocab_size)  # (rows, V) at the last token
        self.used = np.zeros(0, dtype=np.int64)  # row -> the call that last used it
        self.calls = 0
        self.weights = self._weights()  # what the cached keys and values were computed with

    def _weights(self) -> list[int]:
        return [p._version for p in self.params]

    def __call__(self, seqs: list[np.ndarray]) -> torch.Tensor:
        """``seqs``: n non-empty int64 token arrays -> their last-position logits (n, V)."""
        was_training = self.model.training
        if was_training:  # train()/eval() walk every module: not on each move
            self.model.eval()
        try:
            with torch.inference_mode():  # no autograd or version bookkeeping, either path
                return self._logits(seqs)
        finally:
            if was_training:
                self.model.train()

    def _logits(self, seqs: list[np.ndarray]) -> torch.Tensor:
        T = self.model.config.block_size
        short = [i for i, s in enumerate(seqs) if len(s) <= T] if self.use_cache else []
        if short and self._weights() != self.weights:  # new weights: the cache is stale
            self.clear()
        if len(short) == len(seqs):
            return self._cached(seqs)
        if not short:  # the last block_size tokens, no cache
            return self._full([s[-T:] for s in seqs])
        out = torch.empty(len(seqs), self.model.config.vocab_size)
        long = sorted(set(range(len(seqs))) - set(short))
        out[long] = self._full([seqs[i][-T:] for i in long])
        out[short] = self._cached([seqs[i] for i in short])
        return out

    def _full(self, seqs) -> torch.Tensor:
        """One forward pass over the right-padded histories: attention is causal, so the
        padding after a history changes nothing at its last position."""
        lengths = np.array([len(s) for s in seqs])
        x = np.zeros((len(seqs), lengths.max()), dtype=np.int64)  # (n, T): token 0 after each
        for r, s in enumerate(seqs):
            x[r, : len(s)] = s
        logits = self.model(torch.from_numpy(x).to(self.device))  # (n, T, V)
        return _last(logits, lengths)

    def _cached(self, seqs) -> torch.Tensor:
        self.calls += 1
        groups: dict[bytes, list[int]] = {}  # equal histories are read once
        for i, s in enumerate(seqs):
            groups.setdefault(s.tobytes(), []).append(i)
        row_of_seq = [0] * len(seqs)  # each history's row, once known
        jobs = []  # [history, key, cached prefix length, row it continues or None, indices]
        kept = set()  # rows asked again: their logits are read after this call's forward pass
        for key, idx in groups.items():
            s = seqs[idx[0]]
            row = self.row_of.get(key)
            if row is not None:  # the same position again: its logits are kept
                kept.add(row)
                for i in idx:
                    row_of_seq[i] = row
            else:
                # a cached prefix: two moves back first (a player's previous decision in a
                # two-player game), then the longest (k = 0: none)
                for k in (len(s) - 2, *range(len(s) - 1, -1, -1)):
                    row = self.row_of.get(s[:k].tobytes()) if k > 0 else None
                    if row is not None:
                        break
                jobs.append([s, key, k, row, idx])
            if row is not None:
                self.used[row] = self.calls  # not reused for another game in this call
        if jobs:
            self._extend(jobs, kept)
            for job in jobs:
                for i in job[4]:
                    row_of_seq[i] = job[3]
        if len(seqs) == 1:
            return self.logits[row_of_seq[0]][None].clone()  # (1, V)
        return self.logits.index_select(0, torch.as_tensor(row_of_seq))  # (n, V)

    def _extend(self, jobs, kept):
        """Read each job's new tokens into its cache row (one forward pass); its row is the
        one it continues (in place: the first job continuing it, unless its logits are
        ``kept`` for this call), a copy of that (the others) or a fresh one."""
        claimed, fresh = set(kept), []
        for job in jobs:
            if job[3] is None or job[3] in claimed:
                fresh.append(job)
            else:
                claimed.add(job[3])
        if fresh:
            new_rows = self._free_rows(len(fresh))
            copies = [(job[3], r) for job, r in zip(fresh, new_rows) if job[3] is not None]
            if copies:
                self.cache.copy_rows(*zip(*copies))
            self.cache.reset([r for job, r in zip(fresh, new_rows) if job[3] is None])
            for job, r in zip(fresh, new_rows):
                job[3] = r
        rows = [job[3] for job in jobs]
        for r in rows:  # their content changes
            if self.key[r] is not None and self.row_of.get(self.key[r]) == r:
                del self.row_of[self.key[r]]
        n_new = np.array([len(job[0]) - job[2] for job in jobs])
        x = np.zeros((len(jobs), n_new.max()), dtype=np.int64)  # (b, T): the new tokens
        for r, job in enumerate(jobs):
            x[r, : n_new[r]] = job[0][job[2]:]
        logits = self.model(torch.from_numpy(x).to(self.device), cache=self.cache, rows=rows,
                            n_new=n_new)  # (b, T, V)
        self.logits[rows] = _last(logits, n_new)
        for job, r in zip(jobs, rows):
            self.key[r] = job[1]
            self.row_of[job[1]] = r
        self.used[rows] = self.calls

    def _free_rows(self, n: int) -> list[int]:
        """``n`` cache rows to (re)use: empty or idle ones, oldest first; grows the cache."""
        if self.cache is None:
            self.cache = KVCache(self.model, 0)
        idle = np.flatnonzero(self.used <= self.calls - self.IDLE)
        idle = idle[np.argsort(self.used[idle], kind="stable")][:n].tolist()
        if len(idle) < n:
            grow = max(n - len(idle), len(self.cache) // 4)
            first = len(self.cache)
            self.cache.grow(grow)
            self.key += [None] * grow
            self.logits = torch.cat([self.logits, self.logits.new_zeros(grow, self.logits.shape[1])])
            self.used = np.concatenate([self.used, np.full(grow, -self.IDLE, dtype=np.int64)])
            idle += list(range(first, first + n - len(idle)))
        for r in idle:  # the game it held is over
            if self.key[r] is not None and self.row_of.get(self.key[r]) == r:
                del self.row_of[self.key[r]]
            self.key[r] = None
            self.used[r] = self.calls
        return idle


def _last(logits: torch.Tensor, lengths: np.ndarray) -> torch.Tensor:
    """Each row's logits at position ``lengths - 1``: (n, T, V) -> float32 (n, V) on the CPU."""
    if (lengths == logits.shape[1]).all():
        return logits[:, -1].float().cpu()
    last = torch.from_numpy(lengths - 1).to(logits.device)
    return logits[torch.arange(len(lengths), device=logits.device), last].float().cpu()


class ModelPolicy:
    """Play the model's prediction for the next move, masked to the legal actions.

    ``model_or_checkpoint``: a GPT (possibly torch.compile'd or DDP-wrapped), an EMA or
    BEMA (its ``.module`` is used), or a checkpoint path (docs/ARCHITECTURE.md
    "Checkpoint"). ``weights`` ("ema", "bema" or "raw") selects a checkpoint's weight set;
    a module given directly is used as it is. ``task`` ("othello" | "setcomp") selects
    the token codec for a module (default "othello"); a checkpoint's own
    ``config["env"]`` decides for a path (a conflicting ``task`` is an error).
    ``device``: where the model runs; None means a module's own device (a module
    given with another device is copied there, never moved) and the CPU for a
    checkpoint. The model runs in eval mode; a module's train/eval mode is restored
    after each decision.

    Codec: Othello squares -> ``othello_env.tokens`` (vocabulary 61, PAD = 0; action a
    is square a, 64 = pass); set complement tokens are themselves (action = token,
    PAD = vocab_size - 1 of the model, never an action). The model reads the last
    ``block_size`` moves of ``info["moves"]`` and its logits at the last position give
    the next move.

    Cache: with ``use_cache=True`` (default) the policy keeps the keys and values of the
    games it plays (:class:`agents.model.KVCache`, a row per game, found again by the
    history it holds), so each move costs the model only the moves played since its last
    decision in that game, not the whole history; a history that extends no cached one
    (a new game after ``reset``, a position set up by hand) starts a fresh row, and rows
    of finished games are reused. Past ``block_size`` moves it reads the last
    ``block_size`` moves without the cache, as ``use_cache=False`` always does. The
    decisions are the same either way (the logits agree up to float rounding, about 1e-6
    in float32). Memory: a row holds n_layer * 2 * block_size * n_embd floats
    (othello-gpt: 1.9 MB, 2 GB for 1024 games at once); ``clear_cache()`` frees it.

    Decisions: ``greedy=True`` takes the most probable legal action; ``greedy=False``
    samples from the model's distribution restricted to the legal actions (softmax of
    logits / ``temperature``) with its own ``torch.Generator`` seeded by ``seed``.
    Cases without a model decision (the policy's counters and ``last_choice_legal`` =
    None): an empty history (the model never sees an empty prefix in training: the
    first move is uniformly random among the legal ones, drawn from the policy's
    generator; in Othello the four openings are equivalent by symmetry) and, in
    Othello, a forced pass (only action 64 legal: returns 64).

    Reporting: ``last_choice_legal`` is whether the model's own first choice (argmax
    over all move tokens, unmasked) was legal at the last decision; ``n_decisions`` and
    ``n_illegal_choices`` count decisions and illegal first choices (``reset_stats()``
    zeroes them).
    """

    def __init__(
        self,
        model_or_checkpoint,
        weights: str = "ema",
        greedy: bool = True,
        task: str | None = None,
        device=None,
        seed: int | None = None,
        temperature: float = 1.0,
        use_cache: bool = True,
    ):
        if weights not in WEIGHTS and not str(weights).startswith("ema_"):  # ema_<decay>: several
            raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
        if task is not None and task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        if isinstance(model_or_checkpoint, (str, os.PathLike)):
            self.device = torch.device(device or "cpu")
            ckpt = checkpoint.load(model_or_checkpoint, map_location=self.device)
            ckpt_task = checkpoint.task_of(ckpt)
            if task is not None and task != ckpt_task:
                raise ValueError(f"task={task!r} but the checkpoint was trained on {ckpt_task!r}")
            task = ckpt_task
            model = checkpoint.model_from_checkpoint(ckpt, weights, self.device)
        else:
            if isinstance(model_or_checkpoint, (EMA, BEMA)):
                model = model_or_checkpoint.module
            elif isinstance(model_or_checkpoint, nn.Module):
                model = unwrap(model_or_checkpoint)
            else:
                raise ValueError("ModelPolicy needs a GPT, an EMA/BEMA or a checkpoint path, "
                                 f"got {type(model_or_checkpoint).__name__}")
            if not isinstance(model, GPT):
                raise ValueError(f"ModelPolicy needs an agents.GPT, got {type(model).__name__}")
            own = next(model.parameters()).device
            self.device = torch.device(device) if device is not None else own
            if self.device != own:  # never move the caller's (training) model
                model = copy.deepcopy(model).to(self.device)
        self.model = model
        self.use_cache = bool(use_cache)
        self._last_logits = _LastLogits(model, self.device, self.use_cache)
        self.task = task or "othello"
        self.greedy = bool(greedy)
        self.temperature = float(temperature)
        self.generator = torch.Generator()  # CPU: sampling happens on CPU copies of logits
        if seed is None:
            self.generator.seed()  # fresh entropy
        else:
            self.generator.manual_seed(int(seed))
        V = model.config.vocab_size
        if self.task == "othello":
            from othello_env.tokens import SQUARE_TO_TOKEN, VOCAB_SIZE, squares_to_tokens

            if V != VOCAB_SIZE:
                raise ValueError(f"an Othello model needs vocab_size {VOCAB_SIZE}, got {V}")
            self._encode = squares_to_tokens
            self.n_actions = 65  # 64 squares + pass
            # action -> token; centre squares and pass have none (-1)
            self._action_token = np.append(SQUARE_TO_TOKEN, -1)
        else:
            if V < 2:
                raise ValueError(f"a set complement model needs vocab_size >= 2, got {V}")
            v = V - 1  # tokens 0..v-1, PAD = v
            self._encode = self._setcomp_tokens
            self.n_actions = v
            self._action_token = np.arange(v)
        self._has_token = self._action_token >= 0
        self._move_actions = np.flatnonzero(self._has_token)  # actions that are moves
        self._move_tokens = self._action_token[self._move_actions]  # and their tokens
        self.reset_stats()

    def reset_stats(self):
        """Zero ``n_decisions`` and ``n_illegal_choices``; ``last_choice_legal`` = None."""
        self.n_decisions = 0
        self.n_illegal_choices = 0
        self.last_choice_legal: bool | None = None

    def clear_cache(self):
        """Forget the cached games (the next decision of each reads its whole history)."""
        self._last_logits.clear()

    def _setcomp_tokens(self, moves) -> np.ndarray:
        tok = np.asarray(moves, dtype=np.int64)
        if tok.size and (tok.min() < 0 or tok.max() >= self.n_actions):
            raise ValueError(f"set complement moves must lie in 0..{self.n_actions - 1}")
        return tok

    def _random(self, legal: np.ndarray) -> int:
        i = torch.randint(len(legal), (1,), generator=self.generator).item()
        return int(legal[i])

    @torch.inference_mode()
    def last_logits(self, moves) -> torch.Tensor | None:
        """The model's logits at the last position after ``moves``: float32 ``(V,)`` on the CPU.

        ``moves``: the history (a list, or the envs' array padded with -1; entries < 0 are
        dropped), its last ``block_size`` tokens read (with the cache: only the tokens
        since the cached part of it). None for an empty history (the model never saw an
        empty prefix). The model runs in eval mode; the caller's mode is restored.
        """
        moves = np.asarray(moves).ravel()
        tokens = self._encode(moves[moves >= 0])
        if tokens.size == 0:
            return None
        return self._last_logits([tokens])[0]  # (V,)

    @torch.inference_mode()
    def act(self, observation, info) -> int:
        mask = action_mask(observation, info)
        if mask.shape[0] != self.n_actions:
            raise ValueError(
                f"action mask has {mask.shape[0]} actions; "
                f"this {self.task} policy expects {self.n_actions}"
            )
        legal = np.flatnonzero(mask)
        if legal.size == 0:
            raise ValueError("no legal action: the action mask is all zero")
        self.last_choice_legal = None
        if self.task == "othello" and legal.tolist() == [OTHELLO_PASS]:
            return OTHELLO_PASS  # forced pass: nothing to decide
        if not isinstance(info, dict) or "moves" not in info:
            raise ValueError('ModelPolicy needs the move history in info["moves"]')
        logits = self.last_logits(info["moves"])  # (V,)
        if logits is None:
            return self._random(legal)  # the model never saw an empty prefix

        # the model's own first choice: argmax over move tokens (PAD excluded), unmasked
        lg = logits.numpy()  # (V,) float32 on the CPU: NumPy indexing costs less per move
        first = int(self._move_actions[int(lg[self._move_tokens].argmax())])
        self.last_choice_legal = bool(mask[first])
        self.n_decisions += 1
        self.n_illegal_choices += int(not self.last_choice_legal)

        legal_moves = legal[self._has_token[legal]]  # legal actions the model can name
        if legal_moves.size == 0:  # e.g. only a centre square: no env gives such a mask
            raise ValueError(f"the action mask allows no move of {self.task}: "
                             f"{legal.tolist()}")
        if self.greedy:
            return int(legal_moves[int(lg[self._action_token[legal_moves]].argmax())])
        scores = logits[torch.as_tensor(self._action_token[legal_moves])]  # (n_legal,)
        probs = torch.softmax(scores / self.temperature, dim=0)
        return int(legal_moves[int(torch.multinomial(probs, 1, generator=self.generator))])

    __call__ = act


class BatchedModelPolicy(ModelPolicy):
    """:class:`ModelPolicy` (Othello, greedy) deciding for many games with one forward pass.

    Same arguments, codec and single-game ``act`` as :class:`ModelPolicy` (of which it
    is a subclass); :meth:`act_batch` takes the positions of several games at once. With
    ``use_cache`` (default) each game has its own cache row, found again by its
    history: rows are at different lengths, a game whose history does not continue its
    row's (an autoreset, another game in that slot) gets a fresh one, and one forward
    pass reads every game's new moves. Without it, the histories are right-padded with
    PAD and the logits read at each row's last real position: attention is causal, so
    the padding after it changes nothing. Either way each row's decision equals the
    one-game forward pass (up to float rounding).
    """

    def __init__(self, model_or_checkpoint, weights: str = "ema", task: str | None = None,
                 device=None, seed: int | None = None, use_cache: bool = True):
        super().__init__(model_or_checkpoint, weights=weights, greedy=True, task=task,
                         device=device, seed=seed, use_cache=use_cache)
        if self.task != "othello":
            raise ValueError(f"BatchedModelPolicy plays Othello; this model is a {self.task} "
                             "model")

    @torch.inference_mode()
    def act_batch(self, masks, histories, rngs=None) -> np.ndarray:
        """Greedy legal actions for ``n`` games: int64 ``(n,)``.

        ``masks``: bool/int8 ``(n, 65)`` legal actions; ``histories``: ``n`` sequences of
        the squares played so far (passes omitted; -1 entries are dropped, so the envs'
        padded ``info["moves"]`` works). ``rngs``: optional ``n`` ``np.random.Generator``,
        one per game, used for the cases without a model decision that need a draw (an
        empty history: a uniformly random legal move, as :meth:`act`); without them the
        policy's own generator draws. Forced passes return 64 and, like empty
        histories, do not count as decisions; every other row updates ``n_decisions``
        and ``n_illegal_choices`` (the unmasked first choice, as :meth:`act`).
        """
        masks = np.asarray(masks).astype(bool)
        n = masks.shape[0]
        if masks.ndim != 2 or masks.shape[1] != self.n_actions or len(histories) != n:
            raise ValueError(f"need masks of shape (n, {self.n_actions}) and n histories, got "
                             f"{masks.shape} and {len(histories)}")
        if n and not masks.any(axis=1).all():
            raise ValueError("no legal action: an action mask row is all zero")
        out = np.full(n, OTHELLO_PASS, dtype=np.int64)
        forced = masks[:, OTHELLO_PASS] & (masks.sum(axis=1) == 1)  # nothing to decide
        decide = np.flatnonzero(~forced)
        tokens = self._encode_rows(histories[decide] if isinstance(histories, np.ndarray)
                                   else [histories[i] for i in decide])
        rows, seqs = [], []
        for i, tok in zip(decide.tolist(), tokens):
            if tok.size == 0:  # the model never saw an empty prefix
                legal = np.flatnonzero(masks[i])
                if rngs is None:
                    out[i] = self._random(legal)
                else:
                    out[i] = int(legal[rngs[i].integers(legal.size)])
                continue
            rows.append(i)
            seqs.append(tok)  # the last block_size read (_LastLogits)
        if not rows:
            return out
        logits = self._last_logits(seqs)  # (B, V)

        # action -> logit, -inf for actions without a token (centre squares, pass); NumPy
        lg = logits.numpy()  # (B, V) float32 on the CPU
        action_logits = np.full((len(rows), self.n_actions), -np.inf, dtype=lg.dtype)
        action_logits[:, self._move_actions] = lg[:, self._move_tokens]
        rows = np.asarray(rows)
        sub = masks[rows]  # (B, 65) bool
        first = action_logits.argmax(axis=1)  # the model's own choice, unmasked
        first_legal = sub[np.arange(len(rows)), first]
        self.n_decisions += len(rows)
        self.n_illegal_choices += int((~first_legal).sum())
        self.last_choice_legal = bool(first_legal[-1])
        scores = np.where(sub & self._has_token, action_logits, -np.inf)
        if np.isinf(scores).all(axis=1).any():  # e.g. only a centre square: no env gives it
            raise ValueError("an action mask allows no move the model can name")
        out[rows] = scores.argmax(axis=1)
        return out

    def _encode_rows(self, histories) -> list[np.ndarray]:
        """The token arrays of ``histories`` (entries < 0 dropped), encoded at once when
        they come as one array (the vector env's int8 (k, 60)) or stack into one."""
        if not isinstance(histories, np.ndarray):
            shapes = {np.shape(h) for h in histories}
            if len(shapes) != 1 or len(next(iter(shapes))) != 1:  # ragged: row by row
                return [self._encode(np.asarray(h).ravel()[np.asarray(h).ravel() >= 0])
                        for h in histories]
            histories = np.stack(histories)
        sq = histories.reshape(len(histories), -1)  # (k, L)
        if sq.dtype == np.bool_:
            raise ValueError("square indices must be integers, got dtype bool")
        tok = self._encode(np.maximum(sq, -1) if sq.size else sq)  # (k, L), PAD where no move
        played = sq >= 0
        n = played.sum(axis=1)
        if (played == (np.arange(sq.shape[1]) < n[:, None])).all():  # -1 only after the moves
            return [t[:k] for t, k in zip(tok, n.tolist())]
        return [t[p] for t, p in zip(tok, played)]
