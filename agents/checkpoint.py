"""Checkpoints: the format, the one reader and the model builder.

``RUN_DIR/checkpoint.pt`` (docs/ARCHITECTURE.md "Checkpoint") is a dict with
``"format": "lgagent-checkpoint"``, ``"version": 1`` and the keys of
:data:`KEYS`. :func:`load` reads it with ``torch.load(weights_only=True)``
(tensors and plain types only: no code runs on load) and checks the marker,
the version and the keys; :func:`model_from_checkpoint` builds a GPT from it
with its raw, EMA or BEMA weights. ``train`` writes checkpoints
(``train.trainer.save_checkpoint``); everything that reads one comes here, so
``agents`` never imports ``train``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from agents.model import GPT, GPTConfig

CHECKPOINT = "checkpoint.pt"  # its file name inside a RUN_DIR
FORMAT = "lgagent-checkpoint"
VERSION = 1
KEYS = ("format", "version", "step", "config", "model_config", "model", "optimizer",
        "scheduler", "ema", "bema", "rng", "data")
WEIGHTS = ("raw", "ema", "bema")  # the names of a run with one EMA decay


def ema_name(decay: float, count: int = 1) -> str:
    """The weights name of an EMA: ``"ema"`` when a run keeps one, ``"ema_<decay>"`` each when
    it keeps several (``--ema-decay 0.99,0.999``: ``ema_0.99``, ``ema_0.999``)."""
    return "ema" if count == 1 else f"ema_{decay:g}"


def averaged_states(ckpt: dict) -> dict:
    """``{weights name: averager state}`` of a checkpoint, in the order the run keeps them.

    ``ckpt["ema"]`` is one :class:`agents.averaging.EMA` state, or, for a run with several
    decays, ``{"several": {name: state, ...}}``; ``ckpt["bema"]`` is a BEMA state or None.
    """
    out = {}
    ema = ckpt.get("ema")
    if isinstance(ema, dict) and "several" in ema:
        out.update(ema["several"])
    elif ema is not None:
        out["ema"] = ema
    if ckpt.get("bema") is not None:
        out["bema"] = ckpt["bema"]
    return out


def averages_to_save(averages: dict) -> dict:
    """The ``"ema"`` and ``"bema"`` checkpoint entries of ``{name: averager}`` (see above)."""
    emas = {k: v.state_dict() for k, v in averages.items() if k != "bema"}
    bema = averages.get("bema")
    ema = (None if not emas else emas["ema"] if list(emas) == ["ema"]
           else {"several": emas})
    return {"ema": ema, "bema": bema.state_dict() if bema is not None else None}


def weights_of(ckpt: dict) -> list[str]:
    """Every weights name a checkpoint holds: ``"raw"``, then its averages."""
    return ["raw", *averaged_states(ckpt)]


def _first_line(e: BaseException) -> str:
    msg = str(e).strip()
    return msg.splitlines()[0][:200] if msg else type(e).__name__


def check(ckpt, where: str = "checkpoint") -> dict:
    """``ckpt`` itself when it is a checkpoint dict of this format and version; else ValueError.

    ``where`` names it in the message (a path, usually).
    """
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{where} is not an lgagent checkpoint (no format {FORMAT!r} marker)")
    if ckpt.get("version") != VERSION:
        raise ValueError(f"{where}: checkpoint version {ckpt.get('version')!r} is not supported "
                         f"(this lgagent reads version {VERSION})")
    missing = [k for k in KEYS if k not in ckpt]
    if missing:
        raise ValueError(f"{where}: checkpoint lacks {', '.join(missing)}")
    return ckpt


def load(path, map_location="cpu") -> dict:
    """Read and :func:`check` a checkpoint file (or the one in a RUN_DIR).

    ValueError, one line, for a missing, unreadable, corrupted or foreign file.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise ValueError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, not a torch file, pickled foreign objects
        raise ValueError(f"{path} is not a readable checkpoint (corrupted or foreign file): "
                         f"{_first_line(e)}") from None
    return check(ckpt, str(path))


def _strip_prefixes(state: dict) -> dict:
    """Drop torch.compile / DDP key prefixes ("_orig_mod.", "module.") from a state dict."""
    out = {}
    for key, value in state.items():
        while key.startswith(("_orig_mod.", "module.")):
            key = key.split(".", 1)[1]
        out[key] = value
    return out


def model_from_checkpoint(ckpt, weights: str = "raw", device="cpu") -> GPT:
    """A GPT in eval mode on ``device`` holding a checkpoint's ``raw``, ``ema`` or ``bema`` weights.

    ``ckpt`` is a path (read with :func:`load`) or a checkpoint dict (checked
    with :func:`check`). Raw weights are ``ckpt["model"]``; averaged ones the
    module kept in ``ckpt[weights]["module"]``. ValueError, one line, when the
    requested weights are absent, the model config is invalid, or the weights
    do not fit it (a corrupted or hand-edited file).
    """
    if isinstance(ckpt, (str, os.PathLike)):
        ckpt = load(ckpt, map_location=device)
    else:
        check(ckpt)
    if weights not in WEIGHTS and weights not in weights_of(ckpt):
        raise ValueError(f"weights must be one of {', '.join(weights_of(ckpt))}, got {weights!r}")
    try:
        cfg = GPTConfig(**ckpt["model_config"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"checkpoint model_config is invalid: {_first_line(e)}") from None
    if weights == "raw":
        state = ckpt["model"]
    else:
        avg = averaged_states(ckpt).get(weights)
        if avg is None:
            raise ValueError(f"the checkpoint has no {weights.upper()} weights "
                             f"(trained without --{weights})")
        if not isinstance(avg, dict) or not isinstance(avg.get("module"), dict):
            raise ValueError(f"the checkpoint's {weights} state holds no weights (corrupted)")
        state = avg["module"]
    model = GPT(cfg)
    try:
        model.load_state_dict(_strip_prefixes(dict(state)))
    except (RuntimeError, AttributeError, TypeError, KeyError, ValueError) as e:  # keys, shapes
        raise ValueError(f"checkpoint {weights} weights do not fit its model config: "
                         f"{_first_line(e)}") from None
    return model.to(device).eval()


def task_of(ckpt: dict) -> str:
    """The token codec of a checkpoint: ``"othello"`` or ``"setcomp"`` (from ``config["env"]``)."""
    env = (ckpt.get("config") or {}).get("env", "othello")
    name = str(env).lower()
    if name.startswith("othello"):
        return "othello"
    if name.startswith(("setcomp", "setcomplement")):
        return "setcomp"
    raise ValueError(f"checkpoint config has an unknown env {env!r}; expected othello or setcomp")
