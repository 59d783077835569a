"""The run configuration of ``lgagent train``: one flat dataclass, TOML in and out.

:class:`RunConfig` is the one place where a training option is defined: each field
holds its type (the annotation), its default, and in ``opt(...)`` its help text,
valid range or choices, and whether it is a model override, may change on
``--resume``, or is runtime only. Everything else is derived from it: the click
options of ``lgagent train`` (``train/training/run.py``), the TOML loader's type checks,
``lgagent sweep``'s ``--set/--grid`` parser (:func:`parse_text`) and the range
checks of :func:`validate`. A new option is one line here (and its use in the
trainer).

Precedence, lowest to highest: the defaults below, then a ``--config`` TOML file,
then options given on the command line. Fields left ``None`` are filled from the
environment or the preset by :func:`resolve` (the resolved values are what a run
saves in ``config.toml`` and in its checkpoint, so a run is reproducible from
either).

The defaults with only ``env="othello"`` are the OthelloGPT recipe (Li et al.
2023) sized for one GPU: preset ``othello-gpt``, AdamW lr 5e-4, betas
(0.9, 0.95), weight decay 0.1 on matrices only, gradient clipping 1.0, linear
warmup then cosine decay to 10% of the peak learning rate, and batch 512 per
process (OthelloGPT used 4096 over 8 GPUs, i.e. 512 per GPU). The loss defaults
to ``next`` on Othello (OthelloGPT's next-token loss; the noisy-gradient setting
where the research expects EMA to help) and to ``legal`` on set complement
(the research target, the uniform distribution over the absent tokens).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

import tomli_w

from agents.config import LOSSES, NORMS, POSITIONS, PRESETS
from train.data import DEFAULT_VOCAB, EVAL_SEED, EVAL_SIZE
from train.data import TASKS as ENVS

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as the tomli package
    import tomli as tomllib

DEVICES = ("auto", "cpu", "cuda")
DEFAULT_PRESET = {"othello": "othello-gpt", "setcomp": "setcomp-1l"}
DEFAULT_LOSS = {"othello": "next", "setcomp": "legal"}
# Warmup when not given: min(WARMUP_CAP, steps // 10), so short runs still decay.
WARMUP_CAP = 1000
INT64_MAX = 2**63 - 1  # TOML integers are 64-bit signed: the largest seed a config can hold


@dataclass(frozen=True)
class Opt:
    """What a RunConfig field means beyond its type and default (``field.metadata["opt"]``).

    ``unset`` says what None means (shown as the help's default). Ranges: ``ge``/``gt``
    lower, ``le``/``lt`` upper bound (None: unbounded); floats must also be finite.
    """

    help: str
    unset: str | None = None
    choices: tuple | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    model: bool = False  # overrides the preset's GPTConfig field of the same name
    resumable: bool = False  # a --resume may change it
    saved: bool = True  # False: runtime only, not in config.toml / the checkpoint
    toml: bool = True  # False: command line only
    several: bool = False  # a list of values is allowed (command line: comma-separated)
    # the value a saved config that predates this field meant (see upgrade); None: its default
    old: object = None


# BEMA's choices (agents.averaging's CLOCKS, THETA0, ANCHORS: that module imports torch)
BEMA_CLOCKS = ("since-snapshot", "global", "authors")
BEMA_THETA0 = ("burn-in", "initial")
BEMA_ANCHORS = ("tau", "tau+1")


def opt(default, help: str, **meta):
    """A RunConfig field: its default, help and :class:`Opt` metadata in one line."""
    return field(default=default, metadata={"opt": Opt(help, **meta)})


def _for_envs(d: dict) -> str:
    return ", ".join(f"{v} on {k}" for k, v in d.items())


_PRESET = "the preset's"
_RATE = dict(ge=0, lt=1, model=True)  # a dropout rate of the model, in [0, 1)
_PLACE = dict(unset="--dropout", **_RATE)  # one dropout placement (GPTConfig: None = dropout)


@dataclass
class RunConfig:
    """Everything that defines a training run (plain types only: saved as TOML)."""

    env: str | None = opt(None, "Task: othello (legal next moves) or setcomp (set complement). "
                          "Required.", choices=ENVS)
    preset: str | None = opt(None, f"Model preset: {', '.join(PRESETS)}.",
                             unset=_for_envs(DEFAULT_PRESET))
    # model overrides of the preset (None: keep the preset's value)
    n_layer: int | None = opt(None, "Number of layers.", unset=_PRESET, ge=1, le=1024,
                               model=True)
    n_head: int | None = opt(None, "Attention heads per layer.", unset=_PRESET, ge=1, le=1024,
                              model=True)
    n_embd: int | None = opt(None, "Width (embedding size).", unset=_PRESET, ge=1, le=65536,
                              model=True)
    head_dim: int | None = opt(None, "Attention head size: q, k, v are n_head x head_dim wide "
                                "(the value dimension), independent of the width.",
                                unset="n_embd // n_head", ge=1, le=65536, model=True)
    dropout: float | None = opt(None, "Dropout rate of attention, residual and embedding "
                                "dropout (a placement given below wins).", unset=_PRESET, **_RATE)
    attn_dropout: float | None = opt(None, "Dropout on attention probabilities.", **_PLACE)
    resid_dropout: float | None = opt(None, "Dropout on residual branch outputs.", **_PLACE)
    embd_dropout: float | None = opt(None, "Dropout on token (+ position) embeddings.", **_PLACE)
    norm: str | None = opt(None, "LayerNorm placement (post = GPT-1).", unset=_PRESET,
                           choices=NORMS, model=True)
    pos: str | None = opt(None, "Position encoding (alibi: Press et al. 2022; *-random: "
                          "Ruoss et al. 2023).", unset=_PRESET, choices=POSITIONS, model=True)
    pos_range: int | None = opt(None, "learned-random/rope-random: training positions are a "
                                "sorted sample from 0..N-1 (N >= the block size).",
                                unset="the block size", ge=1, le=65536, model=True)
    # data
    vocab_size: int | None = opt(None, "setcomp: number of tokens v; block size v - 1.",
                                 unset=str(DEFAULT_VOCAB), ge=2)
    data: str | None = opt(None, "Othello corpus (.npy or .parquet) from `lgagent datagen`.",
                           unset="fresh random games")
    train_max_len: int | None = opt(None, "Train on the first L tokens of each sequence; "
                                    "positions >= L are evaluated as unseen lengths.",
                                    unset="the block size", ge=1, le=65536)
    loss: str | None = opt(None, "legal: cross-entropy to the uniform legal set; next: "
                           "next-token (OthelloGPT's).", unset=_for_envs(DEFAULT_LOSS),
                           choices=LOSSES)
    # optimisation
    steps: int = opt(50_000, "Optimizer steps.", ge=1, resumable=True)
    batch_size: int = opt(512, "Sequences per step and process (global batch = batch size x "
                          "processes).", ge=1, le=2**24)
    lr: float = opt(5e-4, "Peak learning rate.", gt=0)
    beta1: float = opt(0.9, "AdamW beta1.", ge=0, lt=1)
    beta2: float = opt(0.95, "AdamW beta2.", ge=0, lt=1)
    weight_decay: float = opt(0.1, "AdamW weight decay, on Linear weight matrices only (not "
                              "embeddings, biases, LayerNorms).", ge=0)
    grad_clip: float = opt(1.0, "Gradient norm clip; 0 = off.", ge=0)
    warmup: int | None = opt(None, "Linear warmup steps, then cosine decay to lr x "
                             "min-lr-ratio.", unset=f"min({WARMUP_CAP}, steps // 10)", ge=0,
                             le=10**12)
    min_lr_ratio: float = opt(0.1, "Final learning rate / peak.", ge=0, le=1)
    # weight averaging (agents.averaging; the ranges are those of its formulas)
    ema: bool = opt(False, "Keep an EMA of the weights (evaluated next to the raw weights).")
    ema_decay: float | list[float] = opt(
        0.999, "EMA decay: ema = decay ema + (1 - decay) theta; several (0.99,0.999) keep one EMA "
        "each, evaluated as ema_0.99, ema_0.999.", ge=0, le=1, several=True)
    bema: bool = opt(False, "Keep a bias-corrected EMA (BEMA).")
    bema_ema_power: float = opt(0.5, "BEMA kappa: beta_t = (rho + gamma t)^-kappa.", ge=0)
    bema_bias_power: float = opt(0.2, "BEMA eta: alpha_t = (rho + gamma t)^-eta.", ge=0)
    bema_lag: float = opt(10.0, "BEMA rho (rho + gamma >= 1).", ge=0)
    bema_multiplier: float = opt(1.0, "BEMA gamma (rho + gamma >= 1).", ge=0)
    bema_burn_in: int = opt(0, "BEMA burn-in steps tau.", ge=0, le=10**12)
    bema_update_every: int = opt(1, "BEMA update period phi, in steps (TRL and the authors: "
                                 "400).", ge=1, le=10**12)
    bema_clock: str = opt("since-snapshot", "BEMA clock: since-snapshot (t = updates since the "
                          "snapshot), global (t = the global step, TRL's BEMACallback) or "
                          "authors (s = max(step - tau + rho, 1), beta = (1 + gamma s)^-kappa, "
                          "alpha = (1 + s)^-eta: the BEMA authors' offline code).",
                          choices=BEMA_CLOCKS)
    bema_theta0: str = opt("burn-in", "BEMA theta_0: the weights at the snapshot (end of "
                           "burn-in) or the initial weights.", choices=BEMA_THETA0)
    bema_anchor: str = opt("tau", "BEMA snapshot step: tau (TRL, the authors) or tau+1 "
                           "(lgagent's first protocol, which runs saved before this option "
                           "keep).", choices=BEMA_ANCHORS, old="tau+1")
    bema_floor: float = opt(0.0, "BEMA floor on beta (min_ema_multiplier; the authors' "
                            "configs: 1e-4).", ge=0, le=1)
    snapshot_every: int = opt(0, "Write the raw weights into RUN_DIR/snapshots/ at step 0 and "
                              "every N steps and the last (safetensors, for lgagent average); 0 = "
                              "off. Fixed for a run.", ge=0, le=10**12)
    # evaluation and logging
    eval_every: int = opt(1000, "Evaluate every N steps; 0 = only at the end.", ge=0, le=10**12,
                          resumable=True)
    eval_size: int = opt(EVAL_SIZE, "Held-out sequences for evaluation, fixed for the whole run.",
                         ge=1, le=2**24)
    eval_seed: int = opt(EVAL_SEED, "Seed of the held-out batch (the same across training seeds: "
                         "comparable runs).", ge=0, le=INT64_MAX)
    play_games: int = opt(100, "othello: games against a random player at the end, per "
                          "weights; 0 = none.", ge=0, le=10**7, resumable=True)
    log_every: int = opt(10, "TensorBoard scalars every N steps.", ge=1, le=10**12,
                         resumable=True)
    track: bool = opt(False, "Also log to Weights & Biases (the TensorBoard scalars, config and "
                      "per-length figure; --resume continues the same W&B run): pip install "
                      "\"lgagent[track]\"; WANDB_MODE=offline logs without an account.",
                      resumable=True, saved=False)
    ckpt_every: int = opt(1000, "Checkpoint every N steps; 0 = only at the end / on "
                          "interrupt.", ge=0, le=10**12, resumable=True)
    # machine
    device: str = opt("auto", "auto = CUDA when available.", choices=DEVICES, resumable=True)
    compile: bool = opt(False, "torch.compile the model.", resumable=True)
    prefetch: int = opt(2, "Batches built ahead of the step in a background thread (pinned "
                        "memory on CUDA); the batches are the same. 0 = build each batch in the "
                        "step.", ge=0, le=64, resumable=True)
    num_threads: int | None = opt(None, "CPU threads for torch.", unset="torch's choice", ge=1,
                                  le=1024,
                                  resumable=True)
    seed: int = opt(0, "Seed of the model init, dropout and the data stream.", ge=0,
                    le=INT64_MAX)
    # where and how long this invocation runs (not saved: a saved config is reusable)
    out: str | None = opt(None, "RUN_DIR.", unset="runs/<env>__<preset>__<seed>__<time>",
                          resumable=True, saved=False)
    stop_at: int | None = opt(None, "Stop with a checkpoint at this global step (the schedule "
                              "still runs to --steps); resume later with --resume.", ge=1,
                              le=10**12,
                              resumable=True, saved=False, toml=False)

    def to_dict(self) -> dict:
        """Plain dict of every field."""
        return dataclasses.asdict(self)

    def saved_dict(self) -> dict:
        """The fields saved in config.toml and the checkpoint (no run-local ones)."""
        d = self.to_dict()
        for k in RUNTIME_ONLY:
            d.pop(k)
        return d


FIELDS = {f.name: f for f in fields(RunConfig)}
OPTS: dict[str, Opt] = {name: f.metadata["opt"] for name, f in FIELDS.items()}
# field -> its Python type: int, float, str or bool (the annotation without "| None")
TYPES: dict[str, type] = {
    name: next(t for t in typing.get_args(hint) or (hint,)
               if t is not type(None) and typing.get_origin(t) is not list)
    for name, hint in typing.get_type_hints(RunConfig).items()
}
# RunConfig fields that override the model preset's GPTConfig field of the same name
# (None: keep the preset's value); a resolved run stores the values actually used.
MODEL_FIELDS = tuple(name for name, o in OPTS.items() if o.model)
# Fields that describe where/how long this invocation runs, not the experiment.
RUNTIME_ONLY = tuple(name for name, o in OPTS.items() if not o.saved)
# Fields a --resume may change; every other field must match the checkpoint.
RESUMABLE = frozenset(name for name, o in OPTS.items() if o.resumable)


def upgrade(saved: dict) -> dict:
    """A saved config with the fields it predates filled with what their absence meant
    (``Opt.old``; e.g. ``bema_anchor`` = "tau+1" for runs saved before that option)."""
    return {**{k: o.old for k, o in OPTS.items() if o.old is not None and k not in saved},
            **saved}


def several(value) -> list:
    """A field value that may hold several values (``ema_decay``) as a list."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def model_overrides(cfg: RunConfig) -> dict:
    """``{GPTConfig field: value}`` for the model fields this config sets."""
    return {k: getattr(cfg, k) for k in MODEL_FIELDS if getattr(cfg, k) is not None}


def flag(name: str) -> str:
    """The command-line option of field ``name``: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def default_text(name: str) -> str | None:
    """The default of field ``name`` as the help shows it; None when there is none to show."""
    o, default = OPTS[name], FIELDS[name].default
    if default is None:
        return o.unset
    if isinstance(default, bool):
        return "on" if default else "off"
    return f"{default:g}" if isinstance(default, float) else str(default)


def help_text(name: str) -> str:
    """Field ``name``'s help with its default appended (written once, here)."""
    d, text = default_text(name), OPTS[name].help
    if d is None:
        return text
    return f"{text[:-1]} (default: {d})." if text.endswith(".") else f"{text} (default: {d})"


def toml_types(name: str) -> tuple[type, ...]:
    """The Python types a TOML value of field ``name`` may have (an int is a valid float)."""
    t = TYPES[name]
    return ((int, float) if t is float else (t,)) + ((list,) if OPTS[name].several else ())


def parse_text(name: str, text: str):
    """``text`` (e.g. from ``lgagent sweep --set``) as field ``name``'s type; ValueError
    ``"expected <type>"`` when it does not parse. Ranges are checked by :func:`validate`."""
    t = TYPES[name]
    if OPTS[name].several and "," in text:
        return [parse_text(name, part.strip()) for part in text.split(",")]
    try:
        if t is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        return t(text)
    except ValueError:
        raise ValueError(f"expected {' or '.join(x.__name__ for x in toml_types(name))}") from None


def _num(x) -> str:
    return "2**63-1" if x == INT64_MAX else f"{x:g}" if isinstance(x, float) else str(x)


def range_text(name: str) -> str | None:
    """Field ``name``'s valid range as an error message says it ("be at least 1",
    "lie in [0, 1)", ...); None when it has none."""
    o, is_int = OPTS[name], TYPES[name] is int
    lo = o.ge if o.ge is not None else o.gt
    hi = o.le if o.le is not None else o.lt
    if lo is None and hi is None:
        return None
    if hi is None:
        if is_int:
            return f"be at least {lo if o.ge is not None else lo + 1}"
        return "be a positive number" if o.gt == 0 else f"be {'>=' if o.ge is not None else '>'} {_num(lo)}"
    if lo is None:
        return f"be {'<=' if o.le is not None else '<'} {_num(hi)}"
    if is_int:
        return f"lie in {_num(lo)}..{_num(hi)}"
    return (f"lie in {'[' if o.ge is not None else '('}{_num(lo)}, "
            f"{_num(hi)}{']' if o.le is not None else ')'}")


def in_range(name: str, value) -> bool:
    """Whether ``value`` lies in field ``name``'s range (NaN never does)."""
    o = OPTS[name]
    return ((o.ge is None or value >= o.ge) and (o.gt is None or value > o.gt)
            and (o.le is None or value <= o.le) and (o.lt is None or value < o.lt))


def read_toml(path, what: str = "config file") -> dict:
    """The table of a TOML file; ValueError, one line naming ``what`` and the path, when it
    is missing, unreadable or not TOML."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read {what} {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{what} {path} is not valid TOML: {e}") from None


def load_toml(path) -> dict:
    """Read a config TOML file into ``{field: value}``; ValueError on anything unusable.

    Keys may use dashes or underscores (``batch-size`` = ``batch_size``). Unknown
    keys, wrong types and unreadable files are errors; nested tables are not
    accepted (the config is flat).
    """
    path = Path(path)
    raw = read_toml(path)
    out = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in FIELDS:
            raise ValueError(f"config file {path}: unknown key {key!r}")
        if not OPTS[name].toml:
            raise ValueError(f"config file {path}: {key!r} is a command-line option only")
        types = toml_types(name)
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            want = " or ".join(t.__name__ for t in types)
            raise ValueError(
                f"config file {path}: {key} must be {want}, got {type(value).__name__} {value!r}"
            )
        if isinstance(value, list):
            scalar = toml_types(name)[:-1]
            if not value or not all(isinstance(v, scalar) and not isinstance(v, bool)
                                    for v in value):
                raise ValueError(f"config file {path}: {key} must be a number or a non-empty "
                                 f"list of numbers, got {value!r}")
            value = [float(v) for v in value] if TYPES[name] is float else value
            out[name] = value[0] if len(value) == 1 else value
            continue
        out[name] = float(value) if TYPES[name] is float else value
    return out


def merge(*layers: dict) -> RunConfig:
    """Defaults, then each ``{field: value}`` layer in order (later wins; None values skipped)."""
    values = {}
    for layer in layers:
        for k, v in layer.items():
            if k not in FIELDS:
                raise ValueError(f"unknown config field {k!r}")
            if v is not None:
                values[k] = v
    return RunConfig(**values)


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def validate(cfg: RunConfig) -> None:
    """Check every field (no model or data needed). ValueError, one line.

    Each field's choices and range come from its :class:`Opt`; the checks that
    relate two fields are written out below. Checks that need the task or the
    preset (block size, vocabulary) are done by :func:`train.training.assemble.build` once
    those exist.
    """
    _check(cfg.env is not None, f"--env is required ({' or '.join(ENVS)})")
    for name, o in OPTS.items():
        v = getattr(cfg, name)
        if v is None:
            continue
        if isinstance(v, (list, tuple)):
            _check(o.several, f"{flag(name)} takes one value, got {v!r}")
            _check(len(v) >= 1 and len(set(v)) == len(v),
                   f"{flag(name)}: expected distinct values, got {v!r}")
        for x in (v if isinstance(v, (list, tuple)) else [v]):
            if o.choices is not None:
                _check(x in o.choices,
                       f"unknown {name} {x!r}; choose from {', '.join(o.choices)}")
            rng = range_text(name)
            _check(rng is None or in_range(name, x), f"{flag(name)} must {rng}, got {x}")
            if TYPES[name] is float:
                _check(math.isfinite(x), f"{flag(name)} must be finite, got {x}")
    # across fields
    _check(cfg.warmup is None or cfg.warmup <= cfg.steps,
           f"--warmup must lie in 0..steps ({cfg.steps}), got {cfg.warmup}")
    _check(cfg.stop_at is None or cfg.stop_at <= cfg.steps,
           f"--stop-at must lie in 1..steps ({cfg.steps}), got {cfg.stop_at}")
    if cfg.env == "setcomp":
        _check(cfg.data is None, "--data is an Othello corpus; set complement samples fresh data")
    else:
        _check(cfg.vocab_size is None,
               "--vocab-size applies to setcomp only (Othello's vocabulary is fixed at 61)")
    # BEMA's beta_t and alpha_t are (rho + gamma t)^-power for t >= 1: at most 1 (an average,
    # not an extrapolation) for every t only when rho + gamma >= 1 (agents.averaging agrees).
    _check(cfg.bema_lag + cfg.bema_multiplier >= 1,
           f"--bema-lag + --bema-multiplier must be >= 1, got {cfg.bema_lag} + "
           f"{cfg.bema_multiplier}")


def resolve(cfg: RunConfig) -> RunConfig:
    """Fill the env-dependent defaults (preset, loss, warmup, vocab_size).

    Call after :func:`validate`.
    """
    return dataclasses.replace(
        cfg,
        preset=cfg.preset or DEFAULT_PRESET[cfg.env],
        loss=cfg.loss or DEFAULT_LOSS[cfg.env],
        warmup=cfg.warmup if cfg.warmup is not None else min(WARMUP_CAP, cfg.steps // 10),
        vocab_size=(cfg.vocab_size or DEFAULT_VOCAB) if cfg.env == "setcomp" else None,
    )


def to_toml(d: dict) -> str:
    """TOML text of a config dict (None values omitted: TOML has no null; they mean "default")."""
    return tomli_w.dumps({k: v for k, v in d.items() if v is not None})


def incompatible(saved: dict, cfg: RunConfig, given: set[str]) -> list[str]:
    """Fields the user gave (``given``) that differ from the saved run and may not change.

    Returns ``["name (saved A, given B)", ...]``; empty means the resume is allowed.
    """
    bad = []
    for name in sorted(given):
        if name in RESUMABLE:
            continue
        new, old = getattr(cfg, name), saved.get(name, FIELDS[name].default)
        if new is not None and new != old:
            bad.append(f"{name} (saved {old!r}, given {new!r})")
    return bad
