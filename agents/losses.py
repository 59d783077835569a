"""Training losses: ``legal`` (the noise-free research target) and ``next`` (OthelloGPT's loss).

Both take logits (B, T, V) and return a scalar averaged over the positions that have a
target; positions without one (padding, game over) are ignored. Computed in float32
whatever the logits' dtype. When no position has a target the loss is 0 (still
differentiable, with zero gradient) rather than NaN.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from agents.config import LOSSES


def legal_loss(logits: torch.Tensor, legal: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against the uniform distribution over each position's legal set.

    logits: (B, T, V) float; legal: (B, T, V) bool, True = legal next token.
    At a position with n legal tokens the target puts 1/n on each, so the loss is
    -(1/n) sum_{legal v} log softmax(logits)_v = KL(target || softmax) + H(target),
    with H(target) = log n. Positions whose legal set is empty are ignored; the result
    is the mean over the others.
    """
    if logits.dim() != 3 or legal.shape != logits.shape:
        raise ValueError(
            f"legal_loss needs logits (B, T, V) and a legal mask of the same shape, "
            f"got {tuple(logits.shape)} and {tuple(legal.shape)}"
        )
    if legal.dtype != torch.bool:
        raise ValueError(f"legal mask must be a bool tensor, got {legal.dtype}")
    logp = F.log_softmax(logits.float(), dim=-1)  # (B, T, V)
    n_legal = legal.sum(-1)  # (B, T)
    valid = n_legal > 0  # (B, T)
    # where() rather than multiply: a -inf log-probability on an illegal token stays out
    summed = torch.where(legal, logp, torch.zeros_like(logp)).sum(-1)  # (B, T)
    per_position = -summed / n_legal.clamp(min=1)  # (B, T)
    n_valid = valid.sum()
    return torch.where(valid, per_position, torch.zeros_like(per_position)).sum() / n_valid.clamp(
        min=1
    )


def next_token_loss(logits: torch.Tensor, next: torch.Tensor) -> torch.Tensor:
    """Ordinary next-token cross-entropy; logits (B, T, V), next (B, T) long, -1 = no target.

    The mean over positions with a target (0 when there are none).
    """
    if logits.dim() != 3 or next.shape != logits.shape[:2]:
        raise ValueError(
            f"next_token_loss needs logits (B, T, V) and next tokens (B, T), "
            f"got {tuple(logits.shape)} and {tuple(next.shape)}"
        )
    if next.dtype in (torch.bool,) or next.is_floating_point():
        raise ValueError(f"next tokens must be an integer tensor, got {next.dtype}")
    V = logits.shape[-1]
    flat = next.reshape(-1).long()
    # checked eagerly on the CPU only: on an accelerator the check would force a sync every
    # step, and under torch.compile a graph break
    check = flat.device.type == "cpu" and not torch.compiler.is_compiling()
    if check and bool(((flat < -1) | (flat >= V)).any()):
        raise ValueError(f"next tokens must lie in -1..{V - 1}")
    total = F.cross_entropy(logits.reshape(-1, V).float(), flat, ignore_index=-1, reduction="sum")
    return total / (flat != -1).sum().clamp(min=1)


def loss(name: str, logits: torch.Tensor, batch) -> torch.Tensor:
    """Dispatch on the loss name: ``"legal"`` uses ``batch.legal``, ``"next"`` uses ``batch.next``.

    ``batch`` is a train.data.tasks batch (any object with ``.legal`` (B, T, V) bool and
    ``.next`` (B, T) long attributes).
    """
    if name == "legal":
        return legal_loss(logits, batch.legal)
    if name == "next":
        return next_token_loss(logits, batch.next)
    raise ValueError(f"unknown loss {name!r}; choose from {LOSSES}")
