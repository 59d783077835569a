"""agents: a GPT-1 style decoder that learns the uniform distribution over legal
next tokens, its losses, weight averaging (EMA, BEMA), policies and the checkpoint
reader (``agents.checkpoint``: ``load``, ``model_from_checkpoint``).

The names below are imported on first use (PEP 562), so ``import agents.config``
(GPTConfig, presets, switch names) does not import torch.
"""

import importlib

_HOMES = {
    "BEMA": "agents.averaging",
    "EMA": "agents.averaging",
    "unwrap": "agents.averaging",
    "PRESETS": "agents.config",
    "GPTConfig": "agents.config",
    "preset": "agents.config",
    "LOSSES": "agents.config",
    "legal_loss": "agents.losses",
    "loss": "agents.losses",
    "next_token_loss": "agents.losses",
    "GPT": "agents.model",
    "KVCache": "agents.model",
    "param_groups": "agents.model",
    "ModelPolicy": "agents.policies",
    "RandomPolicy": "agents.policies",
}

__all__ = sorted(_HOMES)


def __getattr__(name):
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'agents' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_HOMES))
