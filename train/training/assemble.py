"""Assembling a training run from its config: the task, the model, AdamW and its schedule, EMA/BEMA.

:func:`build` turns a validated config into the task and model config (and
fills in the values actually used); :func:`assemble` makes the parts a step
updates; :func:`restore` puts a checkpoint back into them. Nothing here runs a
step or writes a file (``train.training.trainer`` does both).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from functools import partial

import torch

from agents.averaging import BEMA, EMA
from agents.checkpoint import averaged_states, ema_name, first_line, model_from_checkpoint
from agents.config import preset
from agents.model import GPT, param_groups
from train.data.tasks import make_task
from train.training.config import MODEL_FIELDS, RunConfig, model_overrides, several
from train.training.rng import restore_rng, seed_all


def build(cfg: RunConfig, rank: int = 0):
    """Make the task and model config of a validated, resolved config; ValueError on misfit.

    Returns ``(cfg, task, model_cfg)`` where ``cfg`` has the model fields
    (``n_layer`` ... ``pos``), ``train_max_len`` and ``vocab_size`` filled with
    the values actually used. Nothing is written.
    """
    if cfg.env == "setcomp":
        task = make_task("setcomp", vocab_size=cfg.vocab_size, seed=cfg.seed, rank=rank)
    else:
        task = make_task("othello", data=cfg.data, seed=cfg.seed, rank=rank)
    model_cfg = preset(cfg.preset, vocab_size=task.vocab_size, block_size=task.block_size,
                       **model_overrides(cfg))
    L = task.block_size if cfg.train_max_len is None else cfg.train_max_len
    if L > task.block_size:
        raise ValueError(f"--train-max-len {L} exceeds the block size {task.block_size} "
                         f"of {cfg.env}")
    cfg = dataclasses.replace(
        cfg, train_max_len=L, vocab_size=cfg.vocab_size if cfg.env == "setcomp" else None,
        **{k: getattr(model_cfg, k) for k in MODEL_FIELDS},
    )
    return cfg, task, model_cfg


def lr_factor(step: int, *, warmup: int, steps: int, min_ratio: float) -> float:
    """Learning-rate multiplier for optimizer step ``step`` (0-based).

    Linear warmup over ``warmup`` steps (1/warmup ... 1), then cosine decay
    from 1 to ``min_ratio`` at step ``steps``.
    """
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class Parts:
    """What a training step updates: the model, its optimizer and schedule, the weight averages."""

    model: GPT
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    # weights name -> its average: "ema" (or "ema_<decay>" per decay when there are several),
    # then "bema"; see agents.checkpoint.averaged_states for how they are saved
    averages: dict = field(default_factory=dict)

    def averaged(self) -> dict:
        """``{"raw": model, "ema": ..., "bema": ...}`` for the weights this run keeps."""
        return {"raw": self.model, **{name: avg.module for name, avg in self.averages.items()}}


def assemble(cfg: RunConfig, model_cfg, device: torch.device, rank: int = 0,
             ckpt: dict | None = None) -> Parts:
    """The model (on ``device``, train mode), AdamW, the warmup + cosine schedule, EMA/BEMA.

    Every rank starts from the same init (DDP also broadcasts rank 0's weights);
    then ranks > 0 reseed so that their dropout masks differ. With ``ckpt`` the
    model is built from its raw weights (:func:`agents.checkpoint.model_from_checkpoint`);
    :func:`restore` loads the rest. ValueError when those weights do not fit.
    """
    seed_all(cfg.seed)
    if ckpt is None:
        model = GPT(model_cfg).to(device)
    else:  # prepare() checked that its model config is model_cfg
        try:
            model = model_from_checkpoint(ckpt, "raw", device).train()
        except ValueError as e:
            raise ValueError(f"the checkpoint's model state does not fit this run: {e}") from None
    if rank > 0:
        torch.manual_seed(cfg.seed + 1_000_003 * rank)
    optimizer = torch.optim.AdamW(
        param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
        fused=device.type == "cuda" or None,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(lr_factor, warmup=cfg.warmup, steps=cfg.steps,
                           min_ratio=cfg.min_lr_ratio))
    averages = {}
    if cfg.ema:
        decays = several(cfg.ema_decay)
        for d in decays:
            averages[ema_name(d, len(decays))] = EMA(model, decay=d)
    if cfg.bema:
        averages["bema"] = BEMA(model, ema_power=cfg.bema_ema_power,
                                bias_power=cfg.bema_bias_power, lag=cfg.bema_lag,
                                multiplier=cfg.bema_multiplier, burn_in=cfg.bema_burn_in,
                                update_every=cfg.bema_update_every, clock=cfg.bema_clock,
                                theta0=cfg.bema_theta0, anchor=cfg.bema_anchor,
                                min_ema_multiplier=cfg.bema_floor)
    return Parts(model, optimizer, scheduler, averages)


def restore(parts: Parts, ckpt: dict, task, rank: int = 0) -> int:
    """Load a checkpoint's optimizer, schedule, averages, data stream and RNG; return its step.

    ValueError (one line) when a part does not fit this run (a damaged or
    hand-edited checkpoint). A rank beyond the saved world size keeps its fresh
    per-rank seed (such a resume is not bitwise exact).
    """
    named = [("optimizer", parts.optimizer, ckpt["optimizer"]),
             ("scheduler", parts.scheduler, ckpt["scheduler"])]
    saved = averaged_states(ckpt)
    for name, avg in parts.averages.items():
        if name not in saved:
            raise ValueError(f"the checkpoint has no {name} state")
        named.append((name, avg, saved[name]))
    for name, obj, state in named:
        try:
            obj.load_state_dict(state)
        except (RuntimeError, KeyError, TypeError, AttributeError, IndexError,
                ValueError) as e:  # a corrupted or hand-edited checkpoint
            raise ValueError(f"the checkpoint's {name} state does not fit this run: "
                             f"{first_line(e)}") from None
    task.load_state_dict(ckpt["data"])
    ranks = ckpt.get("rng_ranks") or [ckpt["rng"]]
    if rank < len(ranks):
        restore_rng(ranks[rank])
    return int(ckpt["step"])
