"""The run configuration of ``lgagent train``: one flat dataclass, TOML in and out.

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
from dataclasses import dataclass, fields
from pathlib import Path

import tomli_w

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as the tomli package
    import tomli as tomllib

ENVS = ("othello", "setcomp")
LOSSES = ("legal", "next")
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_PRESET = {"othello": "othello-gpt", "setcomp": "setcomp-1l"}
DEFAULT_LOSS = {"othello": "next", "setcomp": "legal"}
DEFAULT_VOCAB = 16  # set complement tokens when --vocab-size is not given
# Warmup when not given: min(WARMUP_CAP, steps // 10), so short runs still decay.
WARMUP_CAP = 1000


@dataclass
class RunConfig:
    """Everything that defines a training run (plain types only: saved as TOML)."""

    env: str | None = None  # "othello" | "setcomp" (required)
    preset: str | None = None  # agents preset; None: othello-gpt / setcomp-1l
    # model overrides of the preset (None: keep the preset's value)
    n_layer: int | None = None
    n_head: int | None = None
    n_embd: int | None = None
    dropout: float | None = None
    norm: str | None = None
    pos: str | None = None
    # data
    vocab_size: int | None = None  # set complement only: tokens 0..v-1 (+ PAD); None: 16
    data: str | None = None  # Othello corpus .npy; None: fresh random games
    train_max_len: int | None = None  # train on the first L tokens; None: the block size
    loss: str | None = None  # "legal" | "next"; None: next on othello, legal on setcomp
    # optimisation
    steps: int = 50_000
    batch_size: int = 512  # per process; global batch = batch_size * world size
    lr: float = 5e-4
    beta1: float = 0.9
    beta2: float = 0.95
    weight_decay: float = 0.1  # Linear weight matrices only (not embeddings, biases, LayerNorms)
    grad_clip: float = 1.0  # 0 disables clipping
    warmup: int | None = None  # None: min(1000, steps // 10)
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    # weight averaging
    ema: bool = False
    ema_decay: float = 0.999
    bema: bool = False
    bema_ema_power: float = 0.5
    bema_bias_power: float = 0.2
    bema_lag: float = 10.0
    bema_multiplier: float = 1.0
    bema_burn_in: int = 0
    bema_update_every: int = 1
    # evaluation and logging
    eval_every: int = 1000  # 0: only at the end
    eval_size: int = 1024  # held-out sequences, fixed for the whole run
    eval_seed: int = 1234  # held-out data seed (same across training seeds: comparable runs)
    play_games: int = 100  # Othello: games vs a random player at the end (0: none)
    log_every: int = 10
    ckpt_every: int = 1000  # 0: only at the end / on interrupt
    # machine
    device: str = "auto"
    compile: bool = False
    num_threads: int | None = None
    seed: int = 0
    # where (not saved in config.toml: a saved config is reusable for a new run)
    out: str | None = None
    stop_at: int | None = None  # stop (with a checkpoint) at this global step; runtime only

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
# RunConfig fields that override the model preset's GPTConfig field of the same name
# (None: keep the preset's value); a resolved run stores the values actually used.
MODEL_FIELDS = ("n_layer", "n_head", "n_embd", "dropout", "norm", "pos")


def model_overrides(cfg: RunConfig) -> dict:
    """``{GPTConfig field: value}`` for the model fields this config sets."""
    return {k: getattr(cfg, k) for k in MODEL_FIELDS if getattr(cfg, k) is not None}
# Fields that describe where/how long this invocation runs, not the experiment.
RUNTIME_ONLY = ("out", "stop_at")
# Fields a --resume may change; every other field must match the checkpoint.
RESUMABLE = frozenset(
    {"steps", "eval_every", "log_every", "ckpt_every", "play_games", "device", "compile",
     "num_threads", "out", "stop_at"}
)
_TYPES = {  # field -> accepted Python types for a TOML value
    name: (
        (bool,) if f.type in ("bool",)
        else (int,) if f.type in ("int", "int | None")
        else (int, float) if f.type in ("float", "float | None")
        else (str,)
    )
    for name, f in FIELDS.items()
}


def load_toml(path) -> dict:
    """Read a config TOML file into ``{field: value}``; ValueError on anything unusable.

    Keys may use dashes or underscores (``batch-size`` = ``batch_size``). Unknown
    keys, wrong types and unreadable files are errors; nested tables are not
    accepted (the config is flat).
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read config file {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"config file {path} is not valid TOML: {e}") from None
    out = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in FIELDS:
            raise ValueError(f"config file {path}: unknown key {key!r}")
        if name == "stop_at":
            raise ValueError(f"config file {path}: {key!r} is a command-line option only")
        types = _TYPES[name]
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            want = " or ".join(t.__name__ for t in types)
            raise ValueError(
                f"config file {path}: {key} must be {want}, got {type(value).__name__} {value!r}"
            )
        out[name] = float(value) if float in types and not isinstance(value, bool) else value
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
    """Check every field on its own (no model or data needed). ValueError, one line.

    Checks that need the task or the preset (block size, vocabulary) are done
    by :func:`train.trainer.build` once those exist.
    """
    _check(cfg.env is not None, "--env is required (othello or setcomp)")
    _check(cfg.env in ENVS, f"unknown env {cfg.env!r}; choose from {', '.join(ENVS)}")
    _check(cfg.loss is None or cfg.loss in LOSSES,
           f"unknown loss {cfg.loss!r}; choose from {', '.join(LOSSES)}")
    _check(cfg.device in DEVICES,
           f"unknown device {cfg.device!r}; choose from {', '.join(DEVICES)}")
    _check(cfg.steps >= 1, f"--steps must be at least 1, got {cfg.steps}")
    _check(cfg.batch_size >= 1, f"--batch-size must be at least 1, got {cfg.batch_size}")
    _check(math.isfinite(cfg.lr) and cfg.lr > 0, f"--lr must be a positive number, got {cfg.lr}")
    for name in ("beta1", "beta2"):
        v = getattr(cfg, name)
        _check(0 <= v < 1, f"--{name} must lie in [0, 1), got {v}")
    _check(math.isfinite(cfg.weight_decay) and cfg.weight_decay >= 0,
           f"--weight-decay must be >= 0, got {cfg.weight_decay}")
    _check(math.isfinite(cfg.grad_clip) and cfg.grad_clip >= 0,
           f"--grad-clip must be >= 0 (0 disables), got {cfg.grad_clip}")
    _check(cfg.warmup is None or 0 <= cfg.warmup <= cfg.steps,
           f"--warmup must lie in 0..steps ({cfg.steps}), got {cfg.warmup}")
    _check(0 <= cfg.min_lr_ratio <= 1, f"min_lr_ratio must lie in [0, 1], got {cfg.min_lr_ratio}")
    _check(cfg.dropout is None or 0 <= cfg.dropout < 1,
           f"--dropout must lie in [0, 1), got {cfg.dropout}")
    for name in ("n_layer", "n_head", "n_embd"):
        v = getattr(cfg, name)
        _check(v is None or v >= 1, f"--{name.replace('_', '-')} must be at least 1, got {v}")
    _check(cfg.train_max_len is None or cfg.train_max_len >= 1,
           f"--train-max-len must be at least 1, got {cfg.train_max_len}")
    if cfg.env == "setcomp":
        _check(cfg.vocab_size is None or cfg.vocab_size >= 2,
               f"--vocab-size must be at least 2, got {cfg.vocab_size}")
        _check(cfg.data is None, "--data is an Othello corpus; set complement samples fresh data")
    else:
        _check(cfg.vocab_size is None,
               "--vocab-size applies to setcomp only (Othello's vocabulary is fixed at 61)")
    _check(0 < cfg.ema_decay < 1, f"--ema-decay must lie in (0, 1), got {cfg.ema_decay}")
    _check(cfg.bema_ema_power >= 0, f"--bema-ema-power must be >= 0, got {cfg.bema_ema_power}")
    _check(cfg.bema_bias_power >= 0, f"--bema-bias-power must be >= 0, got {cfg.bema_bias_power}")
    _check(cfg.bema_lag > 0, f"--bema-lag must be > 0, got {cfg.bema_lag}")
    _check(cfg.bema_multiplier > 0, f"--bema-multiplier must be > 0, got {cfg.bema_multiplier}")
    _check(cfg.bema_burn_in >= 0, f"--bema-burn-in must be >= 0, got {cfg.bema_burn_in}")
    _check(cfg.bema_update_every >= 1,
           f"--bema-update-every must be at least 1, got {cfg.bema_update_every}")
    for name in ("eval_every", "ckpt_every", "play_games"):
        v = getattr(cfg, name)
        _check(v >= 0, f"--{name.replace('_', '-')} must be >= 0, got {v}")
    _check(cfg.log_every >= 1, f"--log-every must be at least 1, got {cfg.log_every}")
    _check(cfg.eval_size >= 1, f"--eval-size must be at least 1, got {cfg.eval_size}")
    for name in ("seed", "eval_seed"):  # TOML integers are 64-bit signed
        v = getattr(cfg, name)
        _check(0 <= v < 2**63, f"--{name.replace('_', '-')} must lie in 0..2**63-1, got {v}")
    _check(cfg.num_threads is None or cfg.num_threads >= 1,
           f"--num-threads must be at least 1, got {cfg.num_threads}")
    _check(cfg.stop_at is None or 1 <= cfg.stop_at <= cfg.steps,
           f"--stop-at must lie in 1..steps ({cfg.steps}), got {cfg.stop_at}")
    for name in ("lr", "ema_decay", "bema_lag", "bema_multiplier", "bema_ema_power",
                 "bema_bias_power", "min_lr_ratio", "beta1", "beta2"):
        v = getattr(cfg, name)
        _check(math.isfinite(v), f"--{name.replace('_', '-')} must be finite, got {v}")


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

