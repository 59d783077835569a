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


def autocast(device: torch.device):
    """bf16 autocast on CUDA; a no-op context on the CPU."""
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
            with autocast(device):
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


def format_results(results: dict | None, play: dict | None = None) -> list[str]:
    """Human-readable lines: one per (weights, split) with the main metrics, one per play result."""
    lines = []
    if results:
        lines.append(f"{'weights':8} {'split':7} {'top1_err':>9} {'sep_acc':>8} {'margin':>8} "
                     f"{'loss':>8} {'illegal_mass':>12} {'tv':>7}")
        for w, splits in results.items():
            for s, m in splits.items():
                margin = "nan" if math.isnan(m["margin"]) else f"{m['margin']:.3f}"
                lines.append(f"{w:8} {s:7} {m['top1_err']:9.4f} {m['sep_acc']:8.4f} {margin:>8} "
                             f"{m['loss']:8.4f} {m['illegal_mass']:12.4f} {m['tv']:7.4f}")
    for w, r in (play or {}).items():
        lines.append(f"play {w} vs random ({r['games']} games): win {r['win']:.2f} draw "
                     f"{r['draw']:.2f} loss {r['loss']:.2f}, first choice legal "
                     f"{r['first_choice_legal']:.4f}")
    return lines


def evaluate_checkpoint(path, *, weights=None, eval_size: int | None = None,
                        eval_seed: int | None = None, train_max_len: int | None = None,
                        play_games: int = 0, device="cpu") -> dict:
    """Evaluate a saved run standalone: its checkpoint's weights on a fresh held-out batch.

    ``path`` is a checkpoint file or a RUN_DIR holding ``checkpoint.pt``.
    ``weights``: names among raw/ema/bema (default: every one the checkpoint holds).
    ``eval_size``, ``eval_seed``, ``train_max_len`` default to the run's own
    (so the numbers match the run's last evaluation). ``play_games`` > 0 plays
    Othello against a random player. Returns ``{"step", "env", "eval", "play"}``.
    ValueError for an unusable checkpoint or argument.
    """
    from pathlib import Path

    from agents.checkpoint import CHECKPOINT, load, model_from_checkpoint
    from train import config as C
    from train.tasks import make_task

    def default(name):
        return C.FIELDS[name].default

    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    ckpt = load(path)
    cfg = ckpt["config"]
    available = ["raw"] + [w for w in ("ema", "bema") if ckpt[w] is not None]
    weights = list(weights) if weights else available
    for w in weights:
        if w not in ("raw", "ema", "bema"):
            raise ValueError(f"unknown weights {w!r}; choose from raw, ema, bema")
        if w not in available:
            raise ValueError(f"{path} holds no {w} weights (trained without --{w})")
    env = cfg.get("env")
    if env == "setcomp":
        task = make_task("setcomp", vocab_size=cfg.get("vocab_size") or C.DEFAULT_VOCAB)
    elif env == "othello":
        task = make_task("othello")
    else:
        raise ValueError(f"{path}: unknown env {env!r} in the checkpoint config")
    L = train_max_len if train_max_len is not None else cfg.get("train_max_len") or task.block_size
    if not 1 <= L <= task.block_size:
        raise ValueError(f"train_max_len must lie in 1..{task.block_size}, got {L}")
    if play_games < 0:
        raise ValueError(f"play_games must be >= 0, got {play_games}")
    if play_games and env != "othello":
        raise ValueError("play_games: only Othello models play games")
    # a run's own values, else the training defaults (a config may predate a field)
    n = eval_size if eval_size is not None else cfg.get("eval_size", default("eval_size"))
    seed = eval_seed if eval_seed is not None else cfg.get("eval_seed", default("eval_seed"))
    batch = task.eval_batch(n, seed=seed)
    device = torch.device(device)
    models = {w: model_from_checkpoint(ckpt, w).to(device) for w in weights}
    results = evaluate_weights(models, batch, pad_id=task.pad_id, train_max_len=L,
                               chunk_size=cfg.get("batch_size", default("batch_size")),
                               device=device)
    play = ({w: play_vs_random(m, play_games, seed=seed) for w, m in models.items()}
            if play_games else None)
    return {"step": ckpt["step"], "env": env, "train_max_len": L, "eval": results, "play": play}
