"""One training run from options: config file, validation, RUN_DIR safety, then the trainer.

Everything is checked before anything is written: a bad option, an unreadable
``--data`` or ``--config`` file, a preset that does not exist, an impossible
number or a non-empty RUN_DIR exits with code 2 and one line on stderr.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from pathlib import Path

import click

from agents import snapshots
from train.errors import BadInput
from train.training import config as C
from train.training import tracking

RESULT = "result.json"  # a finished run's result (run_to_result); sweeps and reports read it

# Above this many parameters a CPU run gets a hint that the model is GPU-sized.
CPU_HINT_PARAMS = 5_000_000

# Files a run writes into RUN_DIR (what --force removes; nothing else is touched).
RUN_FILES = ("checkpoint.pt", "config.toml", "averages.json")  # the last: lgagent average --record
RUN_GLOBS = ("events.out.tfevents.*", ".checkpoint.pt.*.tmp", ".config.toml.*.tmp",
             ".averages.json.*.tmp")
# RUN_DIR/snapshots/ (--snapshot-every): its snapshots and their temporary files are a run's
# files too; so is RUN_DIR/wandb/ (--track): Weights & Biases' files of the run
SNAPSHOTS = snapshots.DIR
SNAPSHOT_GLOBS = (snapshots.GLOB, snapshots.TEMP_GLOB)
TRACK_DIR = tracking.DIR
# bytes a file name inside RUN_DIR may take: events.out.tfevents.<time>.<host name>.<pid>.<n>
RUN_FILE_ROOM = 128


# Upper bounds of the two options whose lower-bound messages ("must be at least") other
# commands and tests quote; the other options carry theirs in RunConfig (opt(..., le=)).
UPPER = {"steps": 10**12, "vocab_size": 65536}


def check_upper_bounds(cfg: C.RunConfig) -> None:
    """BadInput when ``steps`` or ``vocab_size`` is beyond :data:`UPPER`."""
    for name, hi in UPPER.items():
        v = getattr(cfg, name)
        if v is not None and v > hi:
            raise BadInput(f"{C.flag(name)} must be at most {hi}, got {v}")


def model_params(m) -> int:
    """Parameters of a GPT with config ``m`` (GPTConfig), counted without building it."""
    d = m.n_embd
    emb = m.vocab_size * d * (1 if m.tie_weights else 2) + (
        {"learned": m.block_size, "learned-random": m.pos_range}.get(m.pos, 0) * d)
    hd = m.n_head * (d // m.n_head if getattr(m, "head_dim", None) is None else m.head_dim)
    attn = 4 * d * hd + 3 * hd + d  # q, k, v (d -> hd) and the output projection (hd -> d)
    mlp = 2 * m.mlp_ratio * d * d + (m.mlp_ratio + 1) * d if m.mlp else 0
    return emb + m.n_layer * (attn + mlp + 4 * d) + 2 * d + m.vocab_size


def memory_estimate(cfg: C.RunConfig, model_cfg) -> dict:
    """Bytes a run needs, by part: a rough upper bound, float32 throughout.

    * ``state``: parameters, their gradients, AdamW's two moments and one copy per
      average (each EMA; BEMA keeps its average and theta_0);
    * ``activations``: what autograd keeps for one step of ``batch_size`` sequences of
      ``train_max_len`` tokens: per layer and token about (8 + 2 mlp_ratio) n_embd values
      (LayerNorms, q/k/v, attention output, residuals, MLP in and out) plus the
      attention probabilities and their dropout mask (2 n_head T); the logits three
      times over (logits, softmax, gradient) and the batch's legal mask (bool B T V);
    * ``eval_batch``: the fixed held-out batch (its legal mask, tokens and targets);
    * ``eval_forward``: a forward pass without gradients over one chunk of
      ``batch_size`` full-length sequences.

    The OthelloGPT defaults (25M parameters, batch 512) come to about 9.5 GB.
    """
    m, B = model_cfg, cfg.batch_size
    T, V, L, Te = cfg.train_max_len, model_cfg.vocab_size, model_cfg.n_layer, m.block_size
    n_avg = len(C.several(cfg.ema_decay)) * bool(cfg.ema) + 2 * bool(cfg.bema)
    per_token = L * ((8 + 2 * m.mlp_ratio * m.mlp) * m.n_embd + 2 * m.n_head * T) + 3 * V
    # without autograd only one layer's intermediates and the logits live at a time
    eval_token = (2 * m.mlp_ratio + 4) * m.n_embd + 2 * m.n_head * Te + 3 * V
    return {
        "state": 4 * model_params(m) * (4 + n_avg),
        "activations": 4 * B * T * per_token + B * T * (V + 16),
        "eval_batch": cfg.eval_size * Te * (V + 16),
        "eval_forward": 4 * B * Te * eval_token,
    }


def memory_total(need: dict) -> int:
    """Peak bytes of :func:`memory_estimate`'s parts: training and evaluation passes do not
    overlap, the state and the held-out batch live throughout."""
    return need["state"] + need["eval_batch"] + max(need["activations"], need["eval_forward"])


def available_memory(device) -> int | None:
    """Bytes free for a run on ``device``: the GPU's free memory, else the machine's
    MemAvailable (/proc/meminfo) or free physical pages; None when unknown."""
    if device.type == "cuda":
        import torch

        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def check_memory(cfg: C.RunConfig, model_cfg, device, processes: int = 1) -> None:
    """BadInput, one line with the sizes, when :func:`memory_estimate` exceeds what
    :func:`available_memory` reports (CPU: every process of the run on this machine)."""
    need = memory_estimate(cfg, model_cfg)
    total = memory_total(need) * (processes if device.type == "cpu" else 1)
    free = available_memory(device)
    if free is not None and total > free:
        parts = ", ".join(f"{k} {_gb(v)}" for k, v in need.items())
        raise BadInput(f"this run needs about {_gb(total)} of memory ({parts}), {_gb(free)} "
                       f"available on {device.type}: lower --batch-size, --eval-size or the "
                       "model size")


def _gb(n: int) -> str:
    return f"{n / 1e9:.3g} GB" if n >= 1e8 else f"{n / 1e6:.3g} MB"


def default_out(cfg: C.RunConfig) -> str:
    """CleanRL-style run directory: ``runs/<env>__<preset>__<seed>__<unix time>``."""
    return f"runs/{cfg.env}__{cfg.preset}__{cfg.seed}__{int(time.time())}"


def run_dir_state(out: Path) -> str:
    """``"missing"``, ``"empty"`` or ``"used"``; BadInput when ``out`` cannot be a directory.

    A missing ``out`` is created later (with its parents): its nearest existing
    ancestor must then be a writable directory, checked here so that the run does
    not die with a traceback after its checks passed.
    """
    from train.atomic import nearest_existing, path_problem, short_path

    if not str(out).strip():
        raise BadInput("--out is empty: give a run directory")
    problem = path_problem(out, inside=True, room=RUN_FILE_ROOM)  # long names, /proc, ...
    if problem:
        raise BadInput(f"--out {short_path(out)}: {problem}")
    if not out.exists():
        parent = nearest_existing(out.absolute().parent)
        if not parent.is_dir():
            raise BadInput(f"--out {short_path(out)}: {parent} is not a directory")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise BadInput(f"--out {short_path(out)}: cannot create it in {parent} "
                           "(permission denied)")
        return "missing"
    if not out.is_dir():
        raise BadInput(f"--out {out} exists and is not a directory")
    return "used" if any(out.iterdir()) else "empty"


class run_lock:
    """An exclusive advisory lock on RUN_DIR for the life of a run: a second process that
    trains or resumes into the same directory gets BadInput. The lock is on the directory
    itself (``flock`` of its descriptor; no lock file), so the OS drops it when the process
    dies and a crash never leaves the directory locked. A directory this lock created is
    removed again when the run fails before writing anything into it.
    """

    def __init__(self, out: Path):
        self.out = Path(out)
        self.fd = None
        self.created = False

    def __enter__(self):
        import fcntl

        self.created = not self.out.exists()
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.out, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            raise BadInput(f"--out {self.out}: cannot create or open it: "
                           f"{e.strerror or e}") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            self.fd = None
            raise BadInput(f"another lgagent process is using {self.out} (one run per "
                           "directory)") from None
        return self

    def __exit__(self, exc_type, *exc):
        if self.fd is not None:
            os.close(self.fd)
        if exc_type is not None and self.created:
            try:
                self.out.rmdir()  # only when still empty
            except OSError:
                pass
        return False


def clear_run_dir(out: Path) -> None:
    """Remove the files a previous run wrote (checkpoint, config, events, snapshots, W&B's
    ``wandb/``); nothing else."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)
    for pattern in RUN_GLOBS:
        for p in out.glob(pattern):
            if p.is_file():
                p.unlink()
    snaps = out / SNAPSHOTS
    if snaps.is_dir() and not snaps.is_symlink():
        for pattern in SNAPSHOT_GLOBS:
            for p in snaps.glob(pattern):
                if p.is_file():
                    p.unlink()
        try:
            snaps.rmdir()  # only when nothing else is in it
        except OSError:
            pass
    track = out / TRACK_DIR  # --track's W&B files (its run id too: a fresh run is a new W&B run)
    if track.is_dir() and not track.is_symlink():
        import shutil

        shutil.rmtree(track)


def is_run_file(name: str) -> bool:
    """Whether a file named ``name`` inside RUN_DIR is one a run writes (:data:`RUN_FILES`,
    :data:`RUN_GLOBS`: what :func:`clear_run_dir` removes)."""
    import fnmatch

    return name in RUN_FILES or any(fnmatch.fnmatchcase(name, g) for g in RUN_GLOBS)


def killed_before_first_save(out: Path) -> bool:
    """Whether ``out`` is what a run killed before its first checkpoint leaves behind: a
    directory without ``checkpoint.pt`` that holds at least one file a run writes (the
    checkpoint's temporary file, config.toml, TensorBoard events; :func:`is_run_file`) and
    nothing else. ``--resume`` starts such a run fresh; a missing or empty directory, or one
    with any other entry, is not one."""
    try:
        entries = list(out.iterdir()) if out.is_dir() else []
    except OSError:
        return False
    if not entries or any(p.name == RUN_FILES[0] for p in entries):  # checkpoint.pt
        return False
    return all(_is_snapshot_dir(p) if p.name == SNAPSHOTS else
               p.is_dir() and not p.is_symlink() if p.name == TRACK_DIR else
               p.is_file() and not p.is_symlink() and is_run_file(p.name) for p in entries)


def _is_snapshot_dir(p: Path) -> bool:
    """Whether ``p`` is a run's snapshots directory holding only snapshots (and their
    temporary files)."""
    import fnmatch

    if not p.is_dir() or p.is_symlink():
        return False
    return all(q.is_file() and any(fnmatch.fnmatchcase(q.name, g) for g in SNAPSHOT_GLOBS)
               for q in p.iterdir())


def prepare(cli_values: dict, *, config_file=None, resume=False, force=False, dist_info=None):
    """Turn options into a checked run: ``(cfg, task, model_cfg, ckpt | None)``. Writes nothing.

    BadInput for anything unusable. ``cli_values`` holds only the options given.

    ``resume`` on a RUN_DIR that a run killed before its first checkpoint left behind
    (:func:`killed_before_first_save`) starts that run fresh from the options given, saying
    so on stderr: ``ckpt`` is None then, and the caller passes ``force=True`` to
    :func:`run_training` so that the dead run's files go once the new run starts. Without
    ``--env`` (or another required option) that is BadInput naming what is missing.

    The options are checked before torch and numba are imported, so that an option error
    answers at once.
    """
    from train.training import distributed as D

    if resume and force:
        raise BadInput("--resume and --force exclude each other")
    try:
        file_values = C.load_toml(config_file) if config_file else {}
    except ValueError as e:
        raise BadInput(str(e)) from None
    given = set(file_values) | set(cli_values)
    for values in (cli_values, file_values):
        if "out" in values and not str(values["out"]).strip():
            raise BadInput("--out is empty: give a run directory")
    out = cli_values.get("out") or file_values.get("out")
    ckpt, restart = None, False
    if resume and not out:
        raise BadInput("--resume needs --out RUN_DIR (the run to continue)")
    if resume and killed_before_first_save(Path(out)):
        resume, restart = False, True

    def fresh(msg: str) -> str:  # an option error of a killed run that --resume starts fresh
        return (f"{out} holds no checkpoint (a run killed before its first save) and cannot "
                f"start fresh: {msg}") if restart else msg
    if resume:
        from agents import checkpoint

        try:
            ckpt = checkpoint.load(Path(out) / checkpoint.CHECKPOINT)
        except ValueError as e:
            raise BadInput(str(e)) from None
        if not checkpoint.resumable(ckpt):
            raise BadInput(f"{out}: the checkpoint holds weights only (no optimizer, schedule or "
                           "RNG state); it can be evaluated but not resumed")
        saved = C.upgrade(ckpt["config"])  # fields it predates: what their absence meant
        unknown = sorted(set(saved) - set(C.FIELDS))
        if unknown:
            raise BadInput(f"{out}: checkpoint config has unknown fields {', '.join(unknown)}")
        try:  # the saved config is checked as a whole before anything uses it
            C.validate(C.merge(saved))
            cfg = C.merge(saved, file_values, cli_values)
        except (ValueError, TypeError) as e:
            from agents.checkpoint import first_line

            raise BadInput(f"{out}: the checkpoint's config is invalid: {first_line(e)}") from None
        bad = C.incompatible(saved, cfg, given)
        if bad:
            raise BadInput(f"cannot resume {out} with a different {'; '.join(bad)} "
                           "(start a new run, or --force to start over)")
    else:
        try:
            cfg = C.merge(file_values, cli_values)
        except ValueError as e:
            raise BadInput(fresh(str(e))) from None
    try:
        C.validate(cfg)
        check_upper_bounds(cfg)
        cfg = C.resolve(cfg)
    except (ValueError, BadInput) as e:
        raise BadInput(fresh(e.format_message() if isinstance(e, BadInput) else str(e))) from None
    if cfg.track:  # Weights & Biases installed: checked before anything is written
        from train.training.tracking import check_available

        check_available()
    from train.training.assemble import build  # torch and numba: only once the options are valid

    try:
        d = dist_info or D.dist_from_env()
        device = D.resolve_device(cfg.device, d)
        cfg, task, model_cfg = build(cfg, rank=d.rank)
    except ValueError as e:
        raise BadInput(str(e)) from None
    check_memory(cfg, model_cfg, device, d.world_size)  # before anything is allocated
    cfg.out = out or default_out(cfg)
    if resume:
        if ckpt["model_config"] != _asdict(model_cfg):
            raise BadInput(f"cannot resume {out}: its model config differs from the preset's now")
        try:  # e.g. the corpus file now holds a different number of games
            task.load_state_dict(ckpt["data"])
        except (ValueError, KeyError) as e:
            raise BadInput(f"cannot resume {out}: data stream state does not fit: {e}") from None
        if cfg.steps < ckpt["step"]:
            raise BadInput(f"--steps {cfg.steps} is below the checkpoint's step {ckpt['step']}")
        if cfg.stop_at is not None and cfg.stop_at <= ckpt["step"]:
            raise BadInput(f"--stop-at {cfg.stop_at} is not after the checkpoint's step "
                           f"{ckpt['step']}")
    else:
        state = run_dir_state(Path(cfg.out))
        if state == "used" and not (force or restart):
            raise BadInput(f"--out {cfg.out} is not empty: --resume to continue it, --force to "
                           "start over, or choose another directory")
    if restart and d.is_main:
        click.echo(f"{out} holds no checkpoint (a run killed before its first save): starting "
                   "it fresh", err=True)
    return cfg, task, model_cfg, ckpt


def run_training(cfg, task, model_cfg, ckpt, *, dist_info, progress: bool = True,
                 force: bool = False) -> dict:
    """Run a prepared training run (see :func:`prepare`) to its end, its --stop-at or a signal.

    The one entry of ``lgagent train`` and ``lgagent sweep``: picks the device,
    joins the process group under torchrun, builds the :class:`train.training.trainer.Trainer`
    (BadInput when it cannot start: a damaged checkpoint, an eval batch too big),
    only then clears a ``--force``'d RUN_DIR, announces the run on stderr (rank 0),
    trains and leaves the process group. Rank 0 holds :class:`run_lock` on RUN_DIR
    for the whole run. Returns the trainer's summary.
    """
    d, out = dist_info, Path(cfg.out)
    with run_lock(out) if d.is_main else contextlib.nullcontext():
        if d.is_main and ckpt is None and not force and run_dir_state(out) == "used":
            # another run used the directory between this run's checks and its lock
            raise BadInput(f"--out {cfg.out} is not empty: --resume to continue it, --force "
                           "to start over, or choose another directory")
        return _run_locked(cfg, task, model_cfg, ckpt, d, out, progress, force)


def _run_locked(cfg, task, model_cfg, ckpt, d, out: Path, progress: bool, force: bool) -> dict:
    from train.training import distributed as D
    from train.training.prefetch import DataFailed
    from train.training.trainer import Trainer, WriteFailed

    device = D.resolve_device(cfg.device, d)
    D.init_distributed(d, device)
    try:
        try:
            trainer = Trainer(cfg, task, model_cfg, out, dist_info=d, device=device, resume=ckpt,
                              progress=progress)
        except ValueError as e:
            raise BadInput(f"cannot resume {out}: {e}" if ckpt else str(e)) from None
        if force and d.is_main and out.is_dir():  # only once the new run is sure to start
            clear_run_dir(out)
        D.barrier(d)
        if d.is_main:
            _announce(cfg, trainer, d, device, resumed=ckpt is not None)
        try:
            summary = trainer.train()
        except (WriteFailed, DataFailed) as e:  # a full disk, a failed batch: one line; a fresh
            # run leaves nothing behind
            if d.is_main and trainer.saved_step is None:
                clear_run_dir(out)
            raise BadInput(str(e)) from None
    except BaseException:
        D.abandon_distributed(d)  # no barrier: the other ranks may never reach it
        raise
    # The DDP wrapper keeps gloo's worker threads alive; left to interpreter teardown they
    # abort the process now and then ("terminate called without an active exception").
    del trainer
    gc.collect()
    D.shutdown_distributed(d)
    return summary


def _announce(cfg, trainer, d, device, resumed: bool) -> None:
    n = trainer.model.num_params()
    where = f"{d.world_size} processes" if d.enabled else "1 process"
    start = f"from step {trainer.step} " if resumed else ""
    click.echo(f"lgagent train: {cfg.env}, preset {cfg.preset} ({n / 1e6:.2f}M parameters), "
               f"loss {cfg.loss}, {where} on {device.type}, {start}to step {cfg.steps}; "
               f"out {cfg.out}", err=True)
    if device.type == "cpu" and n > CPU_HINT_PARAMS:
        click.echo(f"note: {n / 1e6:.0f}M parameters is sized for a GPU and slow on the CPU; "
                   "for a CPU run try --preset tiny --batch-size 64 (see lgagent --help)",
                   err=True)
    if cfg.pos == "learned" and cfg.train_max_len < trainer.model.config.block_size:
        click.echo(untrained_positions_note(cfg.train_max_len), err=True)
    count, each = trainer.snapshot_plan()
    if count:
        from train.atomic import human_bytes

        click.echo(f"snapshots: {count} of {human_bytes(each)} each ({human_bytes(count * each)}) "
                   f"into {Path(cfg.out) / SNAPSHOTS}, every {cfg.snapshot_every} steps",
                   err=True)


def untrained_positions_note(L: int) -> str:
    """Why "unseen length" means "untrained position embedding" with learned positions."""
    return (f"note: with --pos learned the position embeddings {L} and beyond are never trained "
            f"(positions >= --train-max-len {L}); at unseen lengths they keep their initial "
            "values in raw and averaged weights alike (compare --pos none, rope, alibi, or "
            "learned-random, which trains every position)")


def interrupted_exit_code(summary: dict) -> int:
    """130 after Ctrl-C, 143 after SIGTERM (the shell's 128 + signal number)."""
    return 130 if summary["interrupted"] == "SIGINT" else 143


def _asdict(model_cfg) -> dict:
    import dataclasses

    return dataclasses.asdict(model_cfg)


def run_to_result(values: dict, out: Path, config_file=None, progress: bool = False) -> dict:
    """Train (or resume) one run of ``lgagent sweep`` into ``out``; return its result.

    The result (``name``, ``config``, ``step``, ``eval``, ``play``) is also saved as
    ``out/result.json``; a run that has one is not trained again. A run killed
    before its first checkpoint starts over; one with a checkpoint resumes (only
    the resumable options of ``values`` apply then). Raises ``click.exceptions.Exit``
    (130/143) when a signal stopped the run, BadInput for unusable options.
    """
    import json

    from agents.checkpoint import CHECKPOINT
    from train.atomic import atomic_write_text, remove_stale_temps
    from train.training.distributed import Dist

    done = out / RESULT
    if done.exists():
        return json.loads(done.read_text())
    remove_stale_temps(done)  # a SIGKILL while it was written (the sweep holds its lock)
    resume = (out / CHECKPOINT).exists()
    if not resume and out.exists():  # killed before its first checkpoint: start it over
        clear_run_dir(out)
    given = {"out": str(out), **values}
    if resume:  # the saved config holds everything else; only where and how long may change
        given = {k: v for k, v in given.items() if k in C.RESUMABLE}
    cfg, task, model_cfg, ckpt = prepare(given, config_file=None if resume else config_file,
                                         resume=resume)
    summary = run_training(cfg, task, model_cfg, ckpt, dist_info=Dist(), progress=progress)
    if summary["interrupted"] or not summary["finished"]:  # also a stopped final evaluation
        click.echo(f"{out.name}: stopped by {summary['interrupted']} at step {summary['step']} "
                   "(saved); run the same command again to resume", err=True)
        raise click.exceptions.Exit(interrupted_exit_code(summary))
    result = {"name": out.name, "config": cfg.saved_dict(), "step": summary["step"],
              "eval": summary["eval"], "play": summary.get("play")}
    atomic_write_text(done, json.dumps(result, indent=1, allow_nan=True))
    return result
