"""Checkpoints: the format, the one reader and the model builder.

``RUN_DIR/checkpoint.pt`` (docs/ARCHITECTURE.md "Checkpoint") is a dict with
``"format": "lgagent-checkpoint"``, ``"version": 1`` and the keys of
:data:`KEYS`. :func:`load` reads it with ``torch.load(weights_only=True)``
(tensors and plain types only: no code runs on load) and checks the marker,
the version, the keys, every field against the schema (:func:`validate`: types,
ranges, shapes) and the weights' :func:`checksum` when the file has one;
:func:`model_from_checkpoint` builds a GPT from it with its raw, EMA or BEMA
weights. ``train`` writes checkpoints
(``train.training.trainer.save_checkpoint``); everything that reads one comes here, so
``agents`` never imports ``train``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from agents.config import GPTConfig
from agents.model import GPT

CHECKPOINT = "checkpoint.pt"  # its file name inside a RUN_DIR
FORMAT = "lgagent-checkpoint"
VERSION = 1
KEYS = ("format", "version", "step", "config", "model_config", "model", "optimizer",
        "scheduler", "ema", "bema", "rng", "data")
WEIGHTS = ("raw", "ema", "bema")  # the names of a run with one EMA decay
# optional key: named weights that ``lgagent average --save NAME`` added,
# {NAME: {"kind": "average", "scheme": spec, "step": int, "module": state dict}}
SAVED = "saved_averages"


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
    out.update(ckpt.get(SAVED) or {})
    return out


def saved_name_problem(name: str, ckpt: dict) -> str | None:
    """Why ``name`` cannot name weights that ``lgagent average --save`` adds to ``ckpt``; None
    when it can (a name saved before is replaced)."""
    import re

    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]{0,63}", name or ""):
        return (f"{name!r} is not a weights name (a letter, then up to 63 letters, digits, "
                "'_', '.' or '-')")
    kept = set(weights_of(ckpt)) - set(ckpt.get(SAVED) or {})
    if name in WEIGHTS or name in kept or name.startswith("ema_"):
        return f"{name!r} names weights the run keeps itself (raw, ema, ema_<decay>, bema)"
    return None


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


def first_line(e: BaseException) -> str:
    """An exception's message cut to its first line (at most 200 characters), or its type's name."""
    msg = str(e).strip()
    return msg.splitlines()[0][:200] if msg else type(e).__name__


def check(ckpt, where: str = "checkpoint") -> dict:
    """``ckpt`` itself when it is a checkpoint dict of this format and version whose every
    field fits the schema (:func:`validate`) and whose weights match their checksum; else
    ValueError, one line. ``where`` names it in the message (a path, usually).
    """
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{where} is not an lgagent checkpoint (no format {FORMAT!r} marker)")
    if ckpt.get("version") != VERSION or isinstance(ckpt.get("version"), bool):
        raise ValueError(f"{where}: checkpoint version {ckpt.get('version')!r} is not supported "
                         f"(this lgagent reads version {VERSION})")
    missing = [k for k in KEYS if k not in ckpt]
    if missing:
        raise ValueError(f"{where}: checkpoint lacks {', '.join(missing)}")
    try:
        validate(ckpt)
    except _Invalid as e:
        raise ValueError(f"{where}: damaged checkpoint: {e}") from None
    if "checksum" in ckpt and ckpt["checksum"] != checksum(ckpt):
        raise ValueError(f"{where}: damaged checkpoint: its weights do not match their checksum "
                         "(a changed or corrupted file)")
    return ckpt


# bounds of a model config a checkpoint may hold (those of lgagent train's options)
MODEL_BOUNDS = {"n_layer": 1024, "n_head": 1024, "n_embd": 65536, "head_dim": 65536,
                "vocab_size": 65537, "block_size": 65536, "mlp_ratio": 64}
MAX_STEP = 10**12
# config fields that readers other than ``lgagent train --resume`` use, and their types
CONFIG_TYPES = {"env": (str,), "eval_size": (int,), "eval_seed": (int,),
                "train_max_len": (int, type(None)), "vocab_size": (int, type(None)),
                "play_games": (int,), "steps": (int,)}
_PLAIN = (type(None), bool, int, float, str)


class _Invalid(Exception):
    """A checkpoint field that does not fit the schema (message: which and why)."""


def _need(ok: bool, msg: str) -> None:
    if not ok:
        raise _Invalid(msg)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _tensors(d, what: str, float_only: bool = True) -> dict:
    _need(isinstance(d, dict) and all(isinstance(k, str) for k in d),
          f"{what} is not a dict of named tensors")
    for k, v in d.items():
        _need(isinstance(v, torch.Tensor), f"{what}[{k!r}] is not a tensor")
        _need(not float_only or v.is_floating_point(), f"{what}[{k!r}] is not a float tensor")
    return d


def _model_shapes(mc: dict) -> dict:
    """The state-dict shapes of the GPT that ``mc`` describes (built on the meta device:
    no memory, no time)."""
    for k, hi in MODEL_BOUNDS.items():
        v = mc.get(k)
        _need(v is None or (_is_int(v) and 1 <= v <= hi),
              f"model_config.{k} = {v!r} is not an integer in 1..{hi}")
    try:
        cfg = GPTConfig(**mc)
    except (TypeError, ValueError) as e:
        raise _Invalid(f"model_config is invalid: {first_line(e)}") from None
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in GPT(cfg).state_dict().items()}


def _same_shapes(state: dict, shapes: dict, what: str) -> None:
    got = {k: tuple(v.shape) for k, v in _strip_prefixes(state).items()}
    for k in sorted(set(shapes) ^ set(got)):
        _need(False, f"{what} weights do not fit its model config: "
              f"{'missing' if k in shapes else 'unexpected'} {k!r}")
    for k, shape in shapes.items():
        _need(got[k] == shape, f"{what} weights do not fit its model config: {k!r} has shape "
              f"{got[k]}, the config says {shape}")


def _averager(state, name: str, shapes: dict) -> None:
    _need(isinstance(state, dict) and isinstance(state.get("module"), dict)
          and state.get("kind") in ("ema", "bema") and _is_int(state.get("n_updates")),
          f"{name} is not an EMA/BEMA state")
    _same_shapes(_tensors(state["module"], f"{name}.module"), shapes, f"{name}.module")
    for part in ("ema", "theta0"):  # BEMA's running average and its anchor
        if part in state:
            _tensors(state[part], f"{name}.{part}")


def _rng(state, what: str) -> None:
    _need(isinstance(state, dict), f"{what} is not a dict of RNG states")
    t = state.get("torch")
    _need(isinstance(t, torch.Tensor) and t.dtype == torch.uint8 and t.dim() == 1,
          f"{what}['torch'] is not a uint8 RNG state")
    _need(isinstance(state.get("cuda", []), (list, tuple)), f"{what}['cuda'] is not a list")
    for c in state.get("cuda", []):
        _need(isinstance(c, torch.Tensor) and c.dtype == torch.uint8,
              f"{what}['cuda'] holds a non-uint8 state")
    n = state.get("numpy")
    _need(isinstance(n, dict) and isinstance(n.get("keys"), torch.Tensor)
          and not n["keys"].is_floating_point() and _is_int(n.get("pos"))
          and _is_int(n.get("has_gauss")) and isinstance(n.get("cached_gaussian"), float),
          f"{what}['numpy'] is not a NumPy RNG state")
    _need(isinstance(state.get("python"), (tuple, list)) and len(state["python"]) == 3,
          f"{what}['python'] is not a Python RNG state")


def resumable(ckpt: dict) -> bool:
    """Whether a checkpoint holds the training state (optimizer, schedule, RNG), not only
    weights."""
    return all(ckpt[k] != {} for k in ("optimizer", "scheduler", "rng"))


def validate(ckpt: dict) -> None:
    """Check every field of a checkpoint against the format (docs/ARCHITECTURE.md
    "Checkpoint") before any of it is used: types, ranges, and the shapes of every
    weight and optimizer moment against the model config. Raises ``_Invalid``."""
    _need(_is_int(ckpt["step"]) and 0 <= ckpt["step"] <= MAX_STEP,
          f"step {ckpt['step']!r} is not an integer in 0..{MAX_STEP}")
    cfg = ckpt["config"]
    _need(isinstance(cfg, dict) and all(isinstance(k, str) for k in cfg), "config is not a dict")
    for k, v in cfg.items():
        _need(isinstance(v, _PLAIN) or (isinstance(v, list) and all(isinstance(x, _PLAIN)
                                                                    for x in v)),
              f"config.{k} is not a plain value")
        types = CONFIG_TYPES.get(k)
        _need(types is None or (isinstance(v, types) and not isinstance(v, bool)),
              f"config.{k} = {v!r} is not {' or '.join(t.__name__ for t in types or ())}")
    mc = ckpt["model_config"]
    _need(isinstance(mc, dict) and all(isinstance(k, str) for k in mc),
          "model_config is not a dict")
    shapes = _model_shapes(mc)
    _same_shapes(_tensors(ckpt["model"], "model"), shapes, "model")
    param_shapes = {s for s in shapes.values()}
    opt = ckpt["optimizer"]
    # {} in optimizer, scheduler and rng: a weights-only checkpoint (evaluated, not resumed;
    # lgagent train --resume refuses it)
    opt = opt if opt != {} else {"state": {}, "param_groups": []}
    _need(isinstance(opt, dict) and isinstance(opt.get("state"), dict)
          and isinstance(opt.get("param_groups"), list), "optimizer is not an optimizer state")
    ids = []
    for g in opt["param_groups"]:
        _need(isinstance(g, dict) and isinstance(g.get("params"), list)
              and all(_is_int(i) for i in g["params"]), "optimizer.param_groups is damaged")
        ids += g["params"]
    _need(len(ids) == len(set(ids)) and set(opt["state"]) <= set(ids),
          "optimizer.state does not match its param_groups")
    for i, st in opt["state"].items():
        _need(isinstance(st, dict), f"optimizer.state[{i}] is not a dict")
        moments = [st[k] for k in ("exp_avg", "exp_avg_sq") if k in st]
        for m in moments:  # AdamW's moments have their parameter's shape
            _need(isinstance(m, torch.Tensor) and m.is_floating_point()
                  and tuple(m.shape) in param_shapes,
                  f"optimizer.state[{i}] holds a moment that fits no parameter")
        _need(len({tuple(m.shape) for m in moments}) <= 1,
              f"optimizer.state[{i}]'s moments differ in shape")
    _need(isinstance(ckpt["scheduler"], dict), "scheduler is not a dict")
    ema = ckpt["ema"]
    if isinstance(ema, dict) and "several" in ema:
        _need(isinstance(ema["several"], dict) and ema["several"]
              and all(isinstance(k, str) and k.startswith("ema") for k in ema["several"]),
              "ema.several is not a dict of EMA states")
        for name, st in ema["several"].items():
            _averager(st, name, shapes)
    elif ema is not None:
        _averager(ema, "ema", shapes)
    if ckpt["bema"] is not None:
        _averager(ckpt["bema"], "bema", shapes)
    saved = ckpt.get(SAVED)
    if saved is not None:
        _need(isinstance(saved, dict) and all(isinstance(k, str) for k in saved),
              f"{SAVED} is not a dict of named weights")
        for name, st in saved.items():
            _need(isinstance(st, dict) and st.get("kind") == "average"
                  and isinstance(st.get("scheme"), str) and _is_int(st.get("step"))
                  and isinstance(st.get("module"), dict), f"{SAVED}[{name!r}] is damaged")
            _same_shapes(_tensors(st["module"], f"{name}.module"), shapes, f"{name}.module")
    if ckpt["rng"] != {}:
        _rng(ckpt["rng"], "rng")
    _need(isinstance(ckpt["data"], dict), "data is not a dict")
    for key, check_one in (("rng_ranks", _rng), ("data_ranks", None)):
        if key in ckpt:
            _need(isinstance(ckpt[key], list) and ckpt[key], f"{key} is not a list")
            for r, st in enumerate(ckpt[key]):
                if check_one:
                    check_one(st, f"{key}[{r}]")
                else:
                    _need(isinstance(st, dict), f"{key}[{r}] is not a dict")
    _need(isinstance(ckpt.get("checksum", ""), str), "checksum is not a string")


def checksum(ckpt: dict) -> str:
    """SHA-256 over the weights a checkpoint holds: its model and every average's module
    (names, dtypes, shapes and bytes, in a fixed order). Stored as ``"checksum"`` at save;
    a checkpoint without one (older) is not checked."""
    import hashlib

    h = hashlib.sha256()
    parts = [("model", ckpt["model"])] + [
        (name, st["module"]) for name, st in averaged_states(ckpt).items()]
    for part, state in parts:
        for k in sorted(state):
            t = state[k].detach().cpu().contiguous()
            h.update(f"{part}/{k}/{t.dtype}/{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def load(path, map_location="cpu") -> dict:
    """Read and :func:`check` a checkpoint file (or the one in a RUN_DIR).

    ValueError, one line, for a missing, unreadable, corrupted or foreign file.
    """
    path = Path(path)
    try:
        if path.is_dir():
            path = path / CHECKPOINT
        found = path.is_file()
    except OSError as e:  # a name over the file system's limit, a loop of links
        raise ValueError(f"no checkpoint at {str(path)[:120]}: {e.strerror or e}") from None
    if not found:
        raise ValueError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():  # a legacy (non-zip) file warns; the checks below speak
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, not a torch file, pickled foreign objects
        raise ValueError(f"{path} is not a readable checkpoint (corrupted or foreign file): "
                         f"{first_line(e)}") from None
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
        raise ValueError(f"checkpoint model_config is invalid: {first_line(e)}") from None
    if weights == "raw":
        state = ckpt["model"]
    else:
        avg = averaged_states(ckpt).get(weights)
        if avg is None:
            several = [w for w in weights_of(ckpt) if w.startswith(f"{weights}_")]
            if several:  # --ema-decay 0.995,0.999 keeps ema_0.995 and ema_0.999, no plain "ema"
                raise ValueError(f"the checkpoint holds several {weights.upper()} weights "
                                 f"({', '.join(several)}): name one")
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
                         f"{first_line(e)}") from None
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
