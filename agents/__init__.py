"""agents: a GPT-1 style decoder that learns the uniform distribution over legal
next tokens, its losses, weight averaging (EMA, BEMA), policies and the checkpoint
reader (``agents.checkpoint``: ``load``, ``model_from_checkpoint``)."""

from agents.averaging import BEMA, EMA, unwrap
from agents.losses import LOSSES, legal_loss, loss, next_token_loss
from agents.model import GPT, PRESETS, GPTConfig, param_groups, preset
from agents.policies import ModelPolicy, RandomPolicy

__all__ = [
    "BEMA",
    "EMA",
    "GPT",
    "LOSSES",
    "PRESETS",
    "GPTConfig",
    "ModelPolicy",
    "RandomPolicy",
    "legal_loss",
    "loss",
    "next_token_loss",
    "param_groups",
    "preset",
    "unwrap",
]
