"""``lgagent average``: averaging schemes computed from a run's weight snapshots, evaluated.

A scheme spec is ``NAME`` or ``NAME:key=value,key=value``:

* ``raw``: the snapshot's own weights;
* ``ema:decay=D``: lgagent's EMA (theta_1 copied, then ema = D ema + (1 - D) theta every
  step; default D = 0.999);
* ``uniform:from=F``: the mean of the weights of every step from F to the evaluated step
  (a tail average, SWA style; the raw weights before F);
* ``bema:...``: BEMA, :class:`agents.averaging.BEMA`'s schedule, with the keys (aliases in
  brackets) ``kappa`` (ema_power, 0.5), ``eta`` (bias_power, 0.2), ``rho`` (lag, 10),
  ``gamma`` (multiplier, 1), ``tau`` (burn_in, update_after; 0), ``phi`` (update_every,
  update_freq; 1), ``floor`` (min_ema_multiplier; 0), ``clock`` (since-snapshot | global |
  authors; since-snapshot), ``theta0`` (burn-in | initial; burn-in), ``anchor`` (tau |
  tau+1; tau). The defaults are those of ``lgagent train --bema``.
* presets, each taking the same keys as overrides: ``bema-trl`` (TRL's ``BEMACallback``
  defaults: phi 400, kappa 0.5, eta 0.2, rho 10, gamma 1, tau 0, floor 0, global clock,
  theta_0 = the initial weights), ``bema-authors`` (the BEMA authors' offline code and
  configs, abblock/bema: phi 400, floor 1e-4, the authors' clock s = max(step - tau + rho,
  1), beta = max((1 + gamma s)^-kappa, floor), alpha = (1 + s)^-eta), ``bema-run`` (the
  run's own ``--bema`` settings, from its config).

The averages come from :func:`agents.posthoc.average` (the formulas and the
interpolation between snapshots are in its module doc); the evaluation is
:func:`train.analysis.evaluate.evaluate_weights` on the run's held-out set, as
``lgagent eval``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("raw", "ema", "uniform", "bema")
RECORD = "averages.json"  # RUN_DIR/averages.json: lgagent average --record; lgagent report --averages
RECORD_FORMAT = "lgagent-averages"
BEMA_DEFAULTS = dict(ema_power=0.5, bias_power=0.2, lag=10.0, multiplier=1.0, burn_in=0,
                     update_every=1, clock="since-snapshot", theta0="burn-in", anchor="tau",
                     min_ema_multiplier=0.0)
PRESETS = {
    "bema-trl": dict(BEMA_DEFAULTS, update_every=400, clock="global", theta0="initial"),
    "bema-authors": dict(BEMA_DEFAULTS, update_every=400, clock="authors",
                         min_ema_multiplier=1e-4),
}
# spec key -> BEMA argument
BEMA_KEYS = {"kappa": "ema_power", "ema_power": "ema_power", "eta": "bias_power",
             "bias_power": "bias_power", "rho": "lag", "lag": "lag", "gamma": "multiplier",
             "multiplier": "multiplier", "tau": "burn_in", "burn_in": "burn_in",
             "update_after": "burn_in", "phi": "update_every", "update_every": "update_every",
             "update_freq": "update_every", "floor": "min_ema_multiplier",
             "min_ema_multiplier": "min_ema_multiplier", "clock": "clock", "theta0": "theta0",
             "anchor": "anchor"}
_INTS = ("burn_in", "update_every")
_CHOICES = {"clock": ("since-snapshot", "global", "authors"), "theta0": ("burn-in", "initial"),
            "anchor": ("tau", "tau+1")}
# the run config's --bema-* fields -> BEMA arguments (bema-run)
RUN_FIELDS = {"bema_ema_power": "ema_power", "bema_bias_power": "bias_power",
              "bema_lag": "lag", "bema_multiplier": "multiplier", "bema_burn_in": "burn_in",
              "bema_update_every": "update_every", "bema_clock": "clock",
              "bema_theta0": "theta0", "bema_anchor": "anchor",
              "bema_floor": "min_ema_multiplier"}
LEGACY_RUN = {"bema_anchor": "tau+1"}  # what a config saved before the option meant


@dataclass(frozen=True)
class Scheme:
    """A parsed ``--scheme``: its label (the spec as given), kind and arguments."""

    label: str
    kind: str
    args: dict = field(default_factory=dict)

    def schedule(self):
        """The :class:`agents.posthoc.Schedule` (None for raw)."""
        from agents import posthoc

        if self.kind == "raw":
            return None
        if self.kind == "ema":
            return posthoc.ema_schedule(self.args["decay"])
        if self.kind == "uniform":
            return posthoc.uniform_schedule(self.args["from"])
        return posthoc.bema_schedule(**self.args)


def _number(key: str, text: str, integer: bool = False):
    try:
        v = int(text) if integer else float(text)
    except ValueError:
        raise ValueError(f"{key}={text!r} is not {'an integer' if integer else 'a number'}") \
            from None
    if not math.isfinite(v):
        raise ValueError(f"{key}={text!r} is not finite")
    return v


def parse_scheme(spec: str, run_config: dict | None = None) -> Scheme:
    """A :class:`Scheme` from ``spec`` (see the module doc); ValueError (one line naming the
    spec) when it is not one. ``run_config`` (the run's saved config) serves ``bema-run``."""
    try:
        return _parse(spec, run_config or {})
    except ValueError as e:
        raise ValueError(f"--scheme {spec!r}: {e}") from None


def _parse(spec: str, run_config: dict) -> Scheme:
    name, _, rest = spec.strip().partition(":")
    pairs = {}
    if rest.strip():
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or not key or not value:
                raise ValueError(f"expected key=value, got {item.strip()!r}")
            if key in pairs:
                raise ValueError(f"{key} is given twice")
            pairs[key] = value
    elif rest and not rest.strip():
        raise ValueError("nothing after ':'")
    presets = (*PRESETS, "bema-run")
    if name not in KINDS and name not in presets:
        raise ValueError(f"unknown scheme {name!r}; choose from {', '.join(KINDS + presets)}")
    if name == "raw":
        if pairs:
            raise ValueError("raw takes no settings")
        return Scheme(spec, "raw")
    if name == "ema":
        unknown = set(pairs) - {"decay"}
        if unknown:
            raise ValueError(f"unknown ema setting {sorted(unknown)[0]!r}; ema takes decay")
        decay = _number("decay", pairs.get("decay", "0.999"))
        if not 0 <= decay <= 1:
            raise ValueError(f"decay must lie in [0, 1], got {decay:g}")
        return Scheme(spec, "ema", {"decay": decay})
    if name == "uniform":
        unknown = set(pairs) - {"from"}
        if unknown or "from" not in pairs:
            raise ValueError("uniform takes from=STEP (the first step of the tail average)")
        start = _number("from", pairs["from"], integer=True)
        if start < 0:
            raise ValueError(f"from must be >= 0, got {start}")
        return Scheme(spec, "uniform", {"from": start})
    if name == "bema":
        args = dict(BEMA_DEFAULTS)
    elif name == "bema-run":
        if not run_config.get("bema"):
            raise ValueError("the run was trained without --bema (no settings to replay)")
        args = {**BEMA_DEFAULTS, **{arg: {**LEGACY_RUN, **run_config}.get(f, BEMA_DEFAULTS[arg])
                                    for f, arg in RUN_FIELDS.items()}}
    else:
        args = dict(PRESETS[name])
    for key, value in pairs.items():
        arg = BEMA_KEYS.get(key)
        if arg is None:
            raise ValueError(f"unknown bema setting {key!r}; choose from "
                             f"{', '.join(k for k in BEMA_KEYS)}")
        if arg in _CHOICES:
            if value not in _CHOICES[arg]:
                raise ValueError(f"{key} must be one of {', '.join(_CHOICES[arg])}, got {value!r}")
            args[arg] = value
        else:
            args[arg] = _number(key, value, integer=arg in _INTS)
    for arg in ("ema_power", "bias_power", "lag", "multiplier", "burn_in"):
        if args[arg] < 0:
            raise ValueError(f"{arg} must be >= 0, got {args[arg]:g}")
    if args["update_every"] < 1:
        raise ValueError(f"update_every (phi) must be >= 1, got {args['update_every']}")
    if args["lag"] + args["multiplier"] < 1:
        raise ValueError(f"rho + gamma must be >= 1, got {args['lag']:g} + {args['multiplier']:g}")
    if not 0 <= args["min_ema_multiplier"] <= 1:
        raise ValueError(f"floor must lie in [0, 1], got {args['min_ema_multiplier']:g}")
    return Scheme(spec, "bema", args)


class Snapshots:
    """A run's snapshots (``agents.snapshots``), checked: every file readable and of the run's
    model, none missing from the run's cadence. ValueError (one line) otherwise."""

    def __init__(self, run_dir, ckpt: dict):
        import torch

        from agents import snapshots
        from agents.config import GPTConfig
        from agents.model import GPT

        self.paths = snapshots.listing(run_dir)
        every = ckpt["config"].get("snapshot_every") or 0
        if not self.paths:
            hint = "" if every else " (trained without --snapshot-every)"
            raise ValueError(f"{run_dir} holds no snapshots{hint}")
        steps = list(self.paths)
        if every:  # every multiple of the cadence between the first and the last snapshot
            first = -(-steps[0] // every) * every
            missing = sorted(set(range(first, steps[-1] + 1, every)) - set(steps))
            if missing:
                where = Path(run_dir) / snapshots.DIR / snapshots.file_name(missing[0])
                raise ValueError(f"snapshot {where} is missing ({len(missing)} of the run's "
                                 f"every-{every}-steps snapshots are)")
        with torch.device("meta"):
            self.shapes = {k: tuple(v.shape) for k, v in
                           GPT(GPTConfig(**ckpt["model_config"])).state_dict().items()}
        self.names = list(self.shapes)
        for path in self.paths.values():  # every file checked before any is used
            snapshots.read(path, self.shapes)
        self.steps = steps

    def load(self, step: int):
        from agents import snapshots

        state = snapshots.float32(snapshots.read(self.paths[step], self.shapes))
        return [state[n] for n in self.names]


def compute(run_dir, schemes: list[Scheme], at: list[int] | None = None, curve: bool = False):
    """``(ckpt, snaps, {label: {step: state dict}})``: each scheme's averaged weights at the
    steps ``at`` (default: the last snapshot; ``curve``: every snapshot step)."""
    from agents import posthoc
    from agents.checkpoint import CHECKPOINT, load

    run_dir = Path(run_dir)
    ckpt = load(run_dir / CHECKPOINT if run_dir.is_dir() else run_dir)
    if not run_dir.is_dir():
        run_dir = run_dir.parent
    snaps = Snapshots(run_dir, ckpt)
    steps = snaps.steps if curve else sorted(set(at)) if at else [snaps.steps[-1]]
    for s in steps:
        if s not in snaps.paths:
            raise ValueError(f"no snapshot at step {s} (snapshots at {_ranges(snaps.steps)})")
    out = {}
    for sc in schemes:
        got = posthoc.average(sc.schedule(), snaps.load, snaps.steps, steps)
        out[sc.label] = {step: dict(zip(snaps.names, tensors)) for step, tensors in got}
    return ckpt, snaps, out


def _ranges(steps: list[int]) -> str:
    if len(steps) <= 4:
        return ", ".join(map(str, steps))
    return f"{steps[0]}, {steps[1]}, ..., {steps[-1]}"


def evaluate_schemes(ckpt: dict, weights: dict, *, eval_size=None, eval_seed=None,
                     train_max_len=None, device="cpu") -> tuple[dict, int]:
    """``({label: {step: evaluate_model result}}, train_max_len)`` of every scheme's
    weights (``compute``'s third value) on the run's held-out set."""
    import torch

    from agents.config import GPTConfig
    from agents.model import GPT
    from train.analysis.evaluate import evaluate_model, held_out_batch, held_out_task

    cfg = ckpt["config"]
    task, L = held_out_task(cfg, train_max_len)
    batch = held_out_batch(task, cfg, eval_size, eval_seed)
    device = torch.device(device)
    model = GPT(GPTConfig(**ckpt["model_config"])).to(device).eval()
    results = {}
    for label, by_step in weights.items():
        results[label] = {}
        for step, state in by_step.items():
            model.load_state_dict(state)
            results[label][step] = evaluate_model(
                model, batch, pad_id=task.pad_id, train_max_len=L,
                chunk_size=cfg.get("batch_size") or 512, device=device)
    return results, L


def with_saved_weights(path, ckpt: dict, name: str, scheme: Scheme, step: int,
                       state: dict) -> dict:
    """The checkpoint ``ckpt`` (read from ``path``) with ``state`` added as the named weights
    ``name`` (its ``saved_averages``), its checksum renewed and the whole checked; the caller
    writes it (atomically: :func:`train.training.trainer.save_checkpoint`). ValueError (one
    line) for a name the run uses itself."""
    from agents.checkpoint import SAVED, check, checksum, saved_name_problem

    problem = saved_name_problem(name, ckpt)
    if problem:
        raise ValueError(f"--save {problem}")
    new = dict(ckpt)
    new[SAVED] = {**(ckpt.get(SAVED) or {}),
                  name: {"kind": "average", "scheme": scheme.label, "step": int(step),
                         "module": {k: v.detach().cpu().clone() for k, v in state.items()}}}
    if "checksum" in new:
        new["checksum"] = checksum(new)
    check(new, str(path))
    return new


def read_schemes_file(path) -> list[str]:
    """The scheme specs of a ``--schemes-file``: one per line, blank lines and ``#`` comments
    skipped. ValueError (one line) for an unreadable or empty file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"--schemes-file {path}: cannot read it: "
                         f"{getattr(e, 'strerror', None) or e}") from None
    specs = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    specs = [s for s in specs if s]
    if not specs:
        raise ValueError(f"--schemes-file {path}: no scheme in it")
    return specs


def read_record(run_dir) -> dict:
    """The ``{label: entry}`` of ``RUN_DIR/averages.json`` ({} when there is none); each entry
    holds kind, args, step and eval (held-out metrics without per-length rows). ValueError
    (one line) for a damaged file."""
    import json

    path = Path(run_dir) / RECORD
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not a readable averages record: {e}") from None
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT or \
            not isinstance(data.get("schemes"), dict):
        raise ValueError(f"{path} is not an averages record (format {RECORD_FORMAT!r})")
    return data["schemes"]


def record(run_dir, schemes: list[Scheme], step: int, results: dict, held_out: dict) -> Path:
    """Merge each scheme's ``results[label]`` (an ``evaluate_model`` result at ``step``) into
    ``RUN_DIR/averages.json``, atomically; a label recorded before is replaced. ``held_out``:
    the evaluation's overrides (eval_size, eval_seed, train_max_len; None = the run's own).
    Returns the path."""
    import json

    from train.atomic import atomic_write_text

    run_dir = Path(run_dir)
    entries = read_record(run_dir)
    for sc in schemes:
        res = results[sc.label]
        entries[sc.label] = {"kind": sc.kind, "args": sc.args, "step": int(step),
                             "held_out": held_out,
                             "eval": {k: v for k, v in res.items() if k != "per_length"}}
    path = run_dir / RECORD
    text = json.dumps({"format": RECORD_FORMAT, "version": 1, "schemes": entries}, indent=1,
                      default=_json_number)
    atomic_write_text(path, text + "\n")
    return path


def _json_number(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        raise TypeError(f"not JSON: {x!r}") from None
