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
from agents.model import GPT

TASKS = ("othello", "setcomp")
WEIGHTS = ("ema", "bema", "raw")
OTHELLO_PASS = 64


def action_mask(observation, info) -> np.ndarray:
    """The legal-action mask as a bool array, from info or a PettingZoo dict observation."""
    mask = None
    if isinstance(info, dict) and "action_mask" in info:
        mask = info["action_mask"]
    elif isinstance(observation, dict) and "action_mask" in observation:
        mask = observation["action_mask"]
    if mask is None:
        raise ValueError(
            'no action mask: expected info["action_mask"] or observation["action_mask"]'
        )
    mask = np.asarray(mask)
    if mask.ndim != 1:
        raise ValueError(f"action mask must be 1-D, got shape {mask.shape}")
    return mask.astype(bool)


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
        self.reset_stats()

    def reset_stats(self):
        """Zero ``n_decisions`` and ``n_illegal_choices``; ``last_choice_legal`` = None."""
        self.n_decisions = 0
        self.n_illegal_choices = 0
        self.last_choice_legal: bool | None = None

    def _setcomp_tokens(self, moves) -> np.ndarray:
        tok = np.asarray(moves, dtype=np.int64)
        if tok.size and (tok.min() < 0 or tok.max() >= self.n_actions):
            raise ValueError(f"set complement moves must lie in 0..{self.n_actions - 1}")
        return tok

    def _random(self, legal: np.ndarray) -> int:
        i = torch.randint(len(legal), (1,), generator=self.generator).item()
        return int(legal[i])

    @torch.no_grad()
    def last_logits(self, moves) -> torch.Tensor | None:
        """The model's logits at the last position after ``moves``: float32 ``(V,)`` on the CPU.

        ``moves``: the history (a list, or the envs' array padded with -1; entries < 0 are
        dropped), its last ``block_size`` tokens read. None for an empty history (the
        model never saw an empty prefix). The model runs in eval mode; the caller's mode
        is restored.
        """
        moves = np.asarray(moves).ravel()
        tokens = self._encode(moves[moves >= 0].tolist())
        if tokens.size == 0:
            return None
        tokens = tokens[-self.model.config.block_size :]
        x = torch.as_tensor(tokens, dtype=torch.long, device=self.device)[None]  # (1, T)
        was_training = self.model.training
        self.model.eval()
        try:
            return self.model(x)[0, -1].float().cpu()  # (V,)
        finally:
            self.model.train(was_training)

    @torch.no_grad()
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
        has_token = self._action_token >= 0
        actions = np.flatnonzero(has_token)  # actions that are moves
        action_logits = logits[torch.as_tensor(self._action_token[actions])]  # (n_moves,)
        first = int(actions[int(torch.argmax(action_logits))])
        self.last_choice_legal = bool(mask[first])
        self.n_decisions += 1
        self.n_illegal_choices += int(not self.last_choice_legal)

        legal_moves = legal[has_token[legal]]  # legal actions the model can name
        if legal_moves.size == 0:  # e.g. only a centre square: no env gives such a mask
            raise ValueError(f"the action mask allows no move of {self.task}: "
                             f"{legal.tolist()}")
        scores = logits[torch.as_tensor(self._action_token[legal_moves])]  # (n_legal,)
        if self.greedy:
            return int(legal_moves[int(torch.argmax(scores))])
        probs = torch.softmax(scores / self.temperature, dim=0)
        return int(legal_moves[int(torch.multinomial(probs, 1, generator=self.generator))])

    __call__ = act


class BatchedModelPolicy(ModelPolicy):
    """:class:`ModelPolicy` (Othello, greedy) deciding for many games with one forward pass.

    Same arguments, codec and single-game ``act`` as :class:`ModelPolicy` (of which it
    is a subclass); :meth:`act_batch` takes the positions of several games at once. The
    histories are right-padded with PAD and the logits read at each row's last real
    position: attention is causal, so the padding after it changes nothing and each
    row's decision equals the one-game forward pass (up to float rounding).
    """

    def __init__(self, model_or_checkpoint, weights: str = "ema", task: str | None = None,
                 device=None, seed: int | None = None):
        super().__init__(model_or_checkpoint, weights=weights, greedy=True, task=task,
                         device=device, seed=seed)
        if self.task != "othello":
            raise ValueError(f"BatchedModelPolicy plays Othello; this model is a {self.task} "
                             "model")

    @torch.no_grad()
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
        T = self.model.config.block_size
        rows, seqs = [], []
        for i in range(n):
            legal = np.flatnonzero(masks[i])
            if legal.tolist() == [OTHELLO_PASS]:
                continue  # forced pass: nothing to decide
            moves = np.asarray(histories[i]).ravel()
            tokens = self._encode(moves[moves >= 0].tolist())
            if tokens.size == 0:  # the model never saw an empty prefix
                if rngs is None:
                    out[i] = self._random(legal)
                else:
                    out[i] = int(legal[rngs[i].integers(legal.size)])
                continue
            rows.append(i)
            seqs.append(tokens[-T:])
        if not rows:
            return out
        lengths = np.array([len(s) for s in seqs])
        x = np.zeros((len(rows), lengths.max()), dtype=np.int64)  # PAD = 0 after each history
        for r, s in enumerate(seqs):
            x[r, : len(s)] = s
        was_training = self.model.training
        self.model.eval()
        try:
            logits = self.model(torch.as_tensor(x, device=self.device))  # (B, T, V)
        finally:
            self.model.train(was_training)
        last = torch.as_tensor(lengths - 1, device=logits.device)
        logits = logits[torch.arange(len(rows), device=logits.device), last].float().cpu()  # (B, V)

        # action -> logit, -inf for actions without a token (centre squares, pass)
        has_token = self._action_token >= 0
        action_logits = torch.full((len(rows), self.n_actions), -torch.inf)
        action_logits[:, torch.as_tensor(np.flatnonzero(has_token))] = \
            logits[:, torch.as_tensor(self._action_token[has_token])]
        sub = torch.as_tensor(masks[rows])  # (B, 65)
        first = action_logits.argmax(dim=1)  # the model's own choice, unmasked
        first_legal = sub[torch.arange(len(rows)), first]
        self.n_decisions += len(rows)
        self.n_illegal_choices += int((~first_legal).sum())
        self.last_choice_legal = bool(first_legal[-1])
        scores = action_logits.masked_fill(~(sub & torch.as_tensor(has_token)), -torch.inf)
        if torch.isinf(scores).all(dim=1).any():  # e.g. only a centre square: no env gives it
            raise ValueError("an action mask allows no move the model can name")
        out[rows] = scores.argmax(dim=1).numpy()
        return out
