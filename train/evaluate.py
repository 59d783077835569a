"""Evaluation: how well a model separates legal from illegal next tokens, and how it plays.

Legality metrics (:func:`legality_metrics`, :func:`evaluate_model`) are computed
at every position that has a target (a non-empty legal set), split by length:

* ``seen``: positions ``p < train_max_len`` (lengths the model trained on;
  position p has seen p + 1 tokens),
* ``unseen``: positions ``p >= train_max_len`` (absent when the model trained on
  full-length sequences).

Per position, with z the logits, L the legal set and I the illegal tokens
(PAD excluded from L, from I and from the argmax; PAD is never a move):

* ``top1_err``: argmax_{v != PAD} z_v is not in L. OthelloGPT's metric in its
  strict form (the true legal set; no lenient pass rule). Lower is better.
* ``loss``: the ``legal`` loss, -(1/|L|) sum_{v in L} log softmax(z)_v (softmax
  over the whole vocabulary). Equals KL(target || model) + log |L|.
* ``sep_acc``: min_{v in L} z_v > max_{v in I} z_v, the fraction of positions
  where every legal logit is above every illegal one (the paper's notion of
  precision: one threshold separates valid from invalid). A position with no
  illegal token counts as separated. Higher is better.
* ``margin``: min_{v in L} z_v - max_{v in I} z_v in logit units (positive =
  separated), averaged over positions with at least one illegal token.
* ``illegal_mass``: the probability the model puts outside L (PAD included).
* ``tv``: total variation distance to the uniform target, 0.5 sum_v |p_v - q_v|.

Play (:func:`play_vs_random`): a model policy against a uniformly random player
in ``Othello-v0``, alternating colours; win/draw/loss rates and the rate at
which the model's own first choice was legal.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch.nn import functional as F

METRICS = ("top1_err", "loss", "sep_acc", "margin", "illegal_mass", "tv")
SPLITS = ("seen", "unseen")


def position_metrics(logits: torch.Tensor, legal: torch.Tensor, pad_id: int) -> dict:
    """Per-position metrics of ``logits`` (B, T, V) against ``legal`` (B, T, V) bool.

    Returns ``{metric: (B, T) float32 tensor}`` for every name in :data:`METRICS`,
    plus ``"valid"`` (B, T) bool (the position has a legal target) and
    ``"has_illegal"`` (B, T) bool (``margin`` is defined there). Values at
    invalid positions are meaningless; use :func:`legality_metrics` to average.
    """
    if logits.dim() != 3 or legal.shape != logits.shape:
        raise ValueError(f"logits (B, T, V) and legal of the same shape needed, "
                         f"got {tuple(logits.shape)} and {tuple(legal.shape)}")
    if legal.dtype != torch.bool:
        raise ValueError(f"legal must be a bool tensor, got {legal.dtype}")
    V = logits.shape[-1]
    if not 0 <= pad_id < V:
        raise ValueError(f"pad_id {pad_id} outside the vocabulary 0..{V - 1}")
    z = logits.float()
    is_pad = torch.zeros(V, dtype=torch.bool, device=z.device)
    is_pad[pad_id] = True
    legal = legal & ~is_pad  # PAD is never a move, whatever the mask says
    illegal = ~legal & ~is_pad  # (B, T, V)
    n_legal = legal.sum(-1)  # (B, T)
    valid = n_legal > 0
    has_illegal = illegal.any(-1)

    logp = F.log_softmax(z, dim=-1)  # (B, T, V)
    p = logp.exp()
    top1 = z.masked_fill(is_pad, -math.inf).argmax(-1, keepdim=True)  # (B, T, 1)
    top1_err = (~legal.gather(-1, top1).squeeze(-1)).float()
    loss = -torch.where(legal, logp, 0.0).sum(-1) / n_legal.clamp(min=1)
    min_legal = z.masked_fill(~legal, math.inf).amin(-1)  # (B, T)
    max_illegal = z.masked_fill(~illegal, -math.inf).amax(-1)  # (B, T); -inf if none
    sep_acc = (min_legal > max_illegal).float()
    margin = torch.where(has_illegal & valid, min_legal - max_illegal, 0.0)
    illegal_mass = 1.0 - torch.where(legal, p, 0.0).sum(-1)
    q = legal.float() / n_legal.clamp(min=1).unsqueeze(-1)  # uniform target (B, T, V)
    tv = 0.5 * (p - q).abs().sum(-1)
    return {"top1_err": top1_err, "loss": loss, "sep_acc": sep_acc, "margin": margin,
            "illegal_mass": illegal_mass, "tv": tv, "valid": valid, "has_illegal": has_illegal}


class _Sums:
    """Running float64 sums of per-position metrics over a set of positions."""

    def __init__(self):
        self.sums = {m: 0.0 for m in METRICS}
        self.count = 0
        self.count_margin = 0

    def add(self, pm: dict, where: torch.Tensor) -> None:
        w = where & pm["valid"]
        wm = w & pm["has_illegal"]
        self.count += int(w.sum())
        self.count_margin += int(wm.sum())
        for m in METRICS:
            mask = wm if m == "margin" else w
            self.sums[m] += float(pm[m].double()[mask].sum())

    def result(self) -> dict:
        out = {m: (self.sums[m] / self.count if self.count else math.nan) for m in METRICS}
        out["margin"] = self.sums["margin"] / self.count_margin if self.count_margin else math.nan
        out["positions"] = self.count
        return out


def legality_metrics(logits: torch.Tensor, legal: torch.Tensor, pad_id: int,
                     positions: torch.Tensor | None = None) -> dict:
    """Mean of each metric over positions with a target (and in ``positions`` (B, T) bool if given).

    Returns ``{metric: float, "positions": int}``; metrics are NaN when no position counts.
    """
    pm = position_metrics(logits, legal, pad_id)
    where = pm["valid"] if positions is None else positions.to(pm["valid"].device)
    sums = _Sums()
    sums.add(pm, where)
    return sums.result()


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, batch, *, pad_id: int, train_max_len: int,
                   chunk_size: int = 512, device=None) -> dict:
    """Legality metrics of ``model`` on a held-out ``batch`` (a train.tasks Batch), by split.

    Returns ``{"seen": {...}, "unseen": {...}}`` (see the module docstring);
    ``unseen`` is left out when ``train_max_len`` covers every position of the
    batch. The model is run in eval mode (no dropout) in chunks of
    ``chunk_size`` sequences, under bf16 autocast on CUDA; its train/eval mode
    is restored afterwards. Does not touch any random number generator.
    """
    if train_max_len < 1:
        raise ValueError(f"train_max_len must be at least 1, got {train_max_len}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    T = batch.tokens.shape[1]
    pos = torch.arange(T, device=device)
    split_masks = {"seen": pos < train_max_len, "unseen": pos >= train_max_len}  # (T,) each
    sums = {s: _Sums() for s in SPLITS}
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(batch.tokens), chunk_size):
            tokens = batch.tokens[start:start + chunk_size].to(device)
            legal = batch.legal[start:start + chunk_size].to(device)
            with _autocast(device):
                logits = model(tokens)
            if isinstance(logits, tuple):
                logits = logits[0]
            pm = position_metrics(logits, legal, pad_id)
            for s in SPLITS:
                sums[s].add(pm, split_masks[s].expand_as(pm["valid"]))
    finally:
        model.train(was_training)
    out = {"seen": sums["seen"].result()}
    if train_max_len < T:
        out["unseen"] = sums["unseen"].result()
    return out


def evaluate_weights(models: dict, batch, *, pad_id: int, train_max_len: int,
                     chunk_size: int = 512, device=None) -> dict:
    """:func:`evaluate_model` for each of ``{"raw" | "ema" | "bema": module}``.

    Returns ``{weights: {split: {metric: value}}}``.
    """
    return {name: evaluate_model(m, batch, pad_id=pad_id, train_max_len=train_max_len,
                                 chunk_size=chunk_size, device=device)
            for name, m in models.items()}


def flat_scalars(results: dict, prefix: str = "eval") -> dict:
    """``{weights: {split: {metric: v}}}`` -> ``{"eval/<weights>/<split>/<metric>": v}``.

    The ``positions`` count is left out (it is a property of the batch, not the model).
    """
    return {f"{prefix}/{w}/{s}/{m}": v
            for w, splits in results.items() for s, ms in splits.items()
            for m, v in ms.items() if m != "positions"}


def play_vs_random(model, n_games: int, *, weights: str = "raw", seed: int = 0,
                   greedy: bool = True) -> dict:
    """Play ``n_games`` of ``Othello-v0``: ``model`` against its built-in uniform random player.

    ``model`` is a GPT (or an EMA/BEMA, or a checkpoint path, whose ``weights``
    raw/ema/bema are used), played through ``agents.ModelPolicy`` (greedy over
    the legal moves by default). The model plays black in even games and white
    in odd ones; game ``i`` resets the env with seed ``seed + i``, so results
    are reproducible. A module's train/eval mode is restored afterwards.

    Returns ``{"games", "win", "draw", "loss"`` (rates from the model's side),
    ``"first_choice_legal"`` (the fraction of the model's decisions where its
    own unmasked first choice was legal), ``"decisions"``}.
    """
    if isinstance(n_games, bool) or not isinstance(n_games, int) or n_games < 1:
        raise ValueError(f"n_games must be a positive integer, got {n_games!r}")
    import gymnasium as gym

    from agents import ModelPolicy

    module = model if isinstance(model, torch.nn.Module) else getattr(model, "module", None)
    was_training = module.training if isinstance(module, torch.nn.Module) else None
    device = (next(module.parameters()).device if isinstance(module, torch.nn.Module)
              else torch.device("cpu"))
    try:
        policy = ModelPolicy(model, weights=weights, greedy=greedy, task="othello", device=device,
                             seed=seed)
        envs = {c: gym.make("othello_env:Othello-v0", agent_color=c) for c in ("black", "white")}
        outcome = {"win": 0, "draw": 0, "loss": 0}
        for i in range(n_games):
            env = envs["black" if i % 2 == 0 else "white"]
            obs, info = env.reset(seed=seed + i)
            reward, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, info = env.step(policy(obs, info))
                done = terminated or truncated
            # the final reward is from the agent's side: +1 win, 0 draw, -1 loss
            outcome["win" if reward > 0 else "loss" if reward < 0 else "draw"] += 1
        for env in envs.values():
            env.close()
    finally:
        if was_training is not None:
            module.train(was_training)
    decisions = policy.n_decisions
    return {"games": n_games, **{k: v / n_games for k, v in outcome.items()},
            "first_choice_legal": (1.0 - policy.n_illegal_choices / decisions) if decisions
            else math.nan,
            "decisions": decisions}
