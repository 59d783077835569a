"""Random search for ``lgagent sweep --trials N``: search spaces, per-trial draws, Optuna bookkeeping.

A *space* maps training options (the long option names of ``lgagent train``,
with underscores) to the values a trial may take. In a TOML file (``--space``):

.. code-block:: toml

    lr = {low = 1e-3, high = 3e-2, scale = "log"}     # a range; "log" or "linear" (default)
    train_max_len = {low = 2, high = 6}               # integers when both ends are integers
    norm = ["pre", "post", "none"]                    # a list of choices
    steps = 2000                                      # one value: fixed for every trial

Trial ``k`` (Optuna's trial number in the study) draws each option with
Optuna's :class:`~optuna.samplers.RandomSampler` seeded by ``(seed, k, option)``
only, so a trial's configuration does not depend on how many workers ran, in
which order trials finished, or whether the sweep was stopped and resumed.

Bookkeeping is Optuna's: a study (by default ``SWEEP_DIR/study.db``, SQLite;
``--storage URL`` for a database that several machines share) records every
trial's parameters and state. A finished trial is ``COMPLETE`` (its run
directory holds ``result.json``), a trial whose run raised is ``FAIL`` with the
error in its ``error`` user attribute, and a trial of a sweep that was stopped
stays ``RUNNING`` until the same command, run again, resumes it from its
checkpoint. Finished and failed trials are never retrained. A finished trial also
keeps its result (``result.json``'s contents) in the study, as its ``run_result``
user attribute, so ``lgagent report --storage URL`` reads a study whose run
directories lie on several machines.

Several machines, one study (``--storage URL`` of a shared database, each machine
its own ``--out``): every sweep process asks the study for the next trial number
(Optuna hands each number out once, so no trial trains twice) and stops when the
study holds ``--trials`` trials. While a trial trains, its sweep process records a
heartbeat in the study every ``--heartbeat`` seconds (default 30). A trial left
``RUNNING`` by a sweep that died (SIGKILL, a lost machine) is found by the next
sweep on that storage: the same command on the same machine and ``--out`` resumes
it from its checkpoint, as above; any other sweep, once the trial has had no
heartbeat for ``LOST_AFTER`` heartbeats, takes it as lost: Optuna marks it ``FAIL``
and a new trial with the same options (user attribute ``retry_of``: the lost
trial's number) is queued and trained in its place, so the study still ends with
``--trials`` finished trials. A lost trial does not count as failed (``lgagent
report``, the sweep's last line); its partial run directory is left where it was.
"""

from __future__ import annotations

import hashlib
import math
import os
import socket
from pathlib import Path

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from train.signals import handling
from train.study.report import STUDY_DB, STUDY_NAME, trial_name
from train.training import config as C

# Options a space may not draw: the sweep decides them per trial.
RESERVED = ("out", "stop_at", "env")
SCALES = ("linear", "log")

# The default spaces (see docs/RESULTS.md for why each range). Every trial keeps EMA and BEMA
# next to its raw weights, so averaging is compared within a trial, not across trials.
DEFAULT_SPACES = {
    "setcomp": {
        "vocab_size": 16,
        "preset": ["setcomp-1l", "tiny"],
        "n_layer": [1, 2],
        "n_embd": [16, 32, 64],
        "n_head": [1, 2, 4],
        # no positions, as in the paper's model: set complement is order-free, and learned
        # positions beyond train_max_len would stay untrained (a confound, not dispersion)
        "pos": "none",
        "norm": ["none", "pre", "post"],
        "attn_dropout": [0.0, 0.0, 0.1, 0.2],
        "resid_dropout": [0.0, 0.0, 0.1, 0.2],
        "embd_dropout": [0.0, 0.0, 0.1],
        "loss": ["next", "legal"],
        "lr": {"low": 1e-3, "high": 3e-2, "scale": "log"},
        "min_lr_ratio": [1.0, 0.1],  # 1.0: constant after warmup; 0.1: cosine to 10%
        "steps": 2000,
        "batch_size": [32, 64, 128],
        "train_max_len": [2, 3, 4, 6],
        "ema_decay": [0.99, 0.995, 0.999],
        "bema_burn_in": [0, 200, 1000],
        "bema_bias_power": [0.2, 0.5],
        "eval_every": 0,
        "ckpt_every": 500,
        "seed": {"low": 0, "high": 1_000_000},
    },
    "othello": {
        "preset": "tiny",
        "n_embd": [32, 64],
        "pos": ["learned", "none", "rope"],
        "norm": ["pre", "post"],
        "attn_dropout": [0.0, 0.1],
        "resid_dropout": [0.0, 0.1],
        "embd_dropout": [0.0, 0.1],
        "loss": ["next", "legal"],
        "lr": {"low": 1e-3, "high": 1e-2, "scale": "log"},
        "min_lr_ratio": [1.0, 0.1],
        "steps": 3000,
        "batch_size": 64,
        "train_max_len": [30, 40, 50],
        "ema_decay": [0.99, 0.995, 0.999],
        "bema_burn_in": [0, 500],
        "eval_every": 0,
        "play_games": 0,
        "ckpt_every": 500,
        "seed": {"low": 0, "high": 1_000_000},
    },
}


# ------------------------------------------------------------------------------------------
# Spaces


def _kind(name: str):
    """The Python type of a RunConfig field's values: bool, int, float or str."""
    return C.TYPES[name]


def _check_value(name: str, value, where: str):
    kind = _kind(name)
    types = tuple(t for t in C.toml_types(name) if t is not list)  # Optuna: scalar choices
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        raise ValueError(f"{where}: {name} takes {kind.__name__} values, got {value!r}")
    value = float(value) if kind is float else value
    if kind in (int, float) and not C.in_range(name, value):
        raise ValueError(f"{where}: {name} must {C.range_text(name)}, got {value!r}")
    choices = C.OPTS[name].choices
    if choices and value not in choices:
        raise ValueError(f"{where}: {name} must be one of {', '.join(map(str, choices))}, "
                         f"got {value!r}")
    return value


def parse_space(raw: dict, where: str = "space") -> tuple[dict, dict]:
    """Split a raw space into ``(distributions, fixed)``; ValueError (one line) if unusable.

    ``distributions`` maps an option to an Optuna distribution, ``fixed`` to one value.
    """
    dists, fixed = {}, {}
    for key, spec in raw.items():
        name = key.replace("-", "_")
        if name not in C.FIELDS:
            raise ValueError(f"{where}: {key!r} is not a training option (see lgagent train --help)")
        if name in RESERVED:
            raise ValueError(f"{where}: {key!r} is set by the sweep itself")
        if isinstance(spec, list):
            if not spec:
                raise ValueError(f"{where}: {key} has an empty list of choices")
            choices = [_check_value(name, v, where) for v in spec]
            dists[name] = CategoricalDistribution(choices)
        elif isinstance(spec, dict):
            extra = sorted(set(spec) - {"low", "high", "scale"})
            if extra or "low" not in spec or "high" not in spec:
                raise ValueError(f"{where}: {key} must be {{low = A, high = B[, scale = "
                                 f"\"log\"|\"linear\"]}} or a list of choices")
            scale = spec.get("scale", "linear")
            if scale not in SCALES:
                raise ValueError(f"{where}: {key}: scale must be log or linear, got {scale!r}")
            kind = _kind(name)
            if kind not in (int, float):
                raise ValueError(f"{where}: {key} takes {kind.__name__} values: give a list of "
                                 "choices, not a range")
            low = _check_value(name, spec["low"], where)
            high = _check_value(name, spec["high"], where)
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError(f"{where}: {key}: need finite low < high, got {low} and {high}")
            if scale == "log" and low <= 0:
                raise ValueError(f"{where}: {key}: a log scale needs low > 0, got {low}")
            if kind is int:
                dists[name] = IntDistribution(low, high, log=scale == "log")
            else:
                dists[name] = FloatDistribution(low, high, log=scale == "log")
        else:
            fixed[name] = _check_value(name, spec, where)
    return dists, fixed


def load_space(path) -> dict:
    """Read a ``--space`` TOML file (see the module docstring); ValueError if unusable."""
    raw = C.read_toml(path, "space file")
    if not raw:
        raise ValueError(f"space file {path} is empty")
    parse_space(raw, where=f"space file {path}")  # check now, one line
    return raw


def _seed(*parts) -> int:
    """A 32-bit seed from any values, stable across processes and Python versions."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:4], "little")


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """Optuna's RandomSampler, reseeded per (sweep seed, trial number, option).

    Trial ``k`` therefore draws the same configuration however many workers
    there are and in whatever order the trials run.
    """

    def __init__(self, seed: int = 0):
        self.seed = seed

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        sampler = optuna.samplers.RandomSampler(seed=_seed(self.seed, trial.number, param_name))
        return sampler.sample_independent(study, trial, param_name, param_distribution)


def draw(dists: dict[str, BaseDistribution], trial) -> dict:
    """Suggest every option of the space on an Optuna trial; returns ``{option: value}``."""
    out = {}
    for name in sorted(dists):
        d = dists[name]
        if isinstance(d, CategoricalDistribution):
            out[name] = trial.suggest_categorical(name, d.choices)
        elif isinstance(d, IntDistribution):
            out[name] = trial.suggest_int(name, d.low, d.high, log=d.log)
        else:
            out[name] = trial.suggest_float(name, d.low, d.high, log=d.log)
    return out


def preview(dists: dict[str, BaseDistribution], seed: int, n: int) -> list[dict]:
    """The options trials ``0..n-1`` of a sweep with this space and seed will draw."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=TrialSeededSampler(seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(draw(dists, trial))
        study.tell(trial, 0.0)
    return out


# ------------------------------------------------------------------------------------------
# The study


HEARTBEAT = 30  # seconds between a running trial's heartbeats (lgagent sweep --heartbeat)
LOST_AFTER = 4  # heartbeats missed before another sweep takes a RUNNING trial as lost


class RetryLost:
    """Optuna's stale-trial callback: queue a trial with the lost one's options.

    Optuna has marked the trial ``FAIL`` (one process wins that, under a row lock); the
    new trial carries ``retry_of`` (the lost trial's number). ``found`` lists the lost
    trials of this process, for its log.
    """

    def __init__(self):
        self.found = []

    def __call__(self, study, trial) -> None:
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        self.found.append(trial)


def open_study(out: Path, storage: str | None, seed: int,
               heartbeat: int = HEARTBEAT) -> optuna.Study:
    """Create or load the sweep's study (SQLite in ``out`` unless ``storage`` is given).

    BadInput (one line) when the storage cannot be opened (see :mod:`train.study.storage`).
    """
    import sqlalchemy.exc

    from train.errors import BadInput
    from train.study.storage import _db_line, rdb_storage, shown

    url = storage or f"sqlite:///{(out / STUDY_DB).absolute()}"
    rdb = rdb_storage(url, heartbeat=heartbeat, grace=LOST_AFTER * heartbeat,
                      on_stale=RetryLost())
    for attempt in range(2):  # two new workers may create the study at once: load it then
        try:
            return optuna.create_study(study_name=STUDY_NAME, storage=rdb,
                                       sampler=TrialSeededSampler(seed), direction="minimize",
                                       load_if_exists=True)
        except sqlalchemy.exc.SQLAlchemyError as e:
            if attempt == 1 or not isinstance(e, sqlalchemy.exc.IntegrityError):
                raise BadInput(f"--storage {shown(url)}: cannot open the study: "
                               f"{_db_line(e)}") from None


def beat(study: optuna.Study, trials) -> None:
    """Record a heartbeat for each of ``trials`` (this process is training them)."""
    storage = study._storage
    if optuna.storages._heartbeat.is_heartbeat_enabled(storage):
        for t in trials:
            storage.record_heartbeat(t._trial_id)


def take_lost(study: optuna.Study) -> list:
    """Fail the study's RUNNING trials whose heartbeat stopped and queue their retries
    (:class:`RetryLost`); returns the lost trials this call took over."""
    import warnings

    from train.study.storage import stale_callback

    callback = stale_callback(study._storage)
    before = len(callback.found) if isinstance(callback, RetryLost) else 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    return callback.found[before:] if isinstance(callback, RetryLost) else []


def retried(trials) -> set:
    """Numbers of the lost trials that a retry replaced."""
    return {t.user_attrs["retry_of"] for t in trials if "retry_of" in t.user_attrs}


def trial_dir(out: Path, number: int) -> Path:
    return out / trial_name(number)


def owner() -> str:
    """The host of this sweep process (a RUNNING trial records it, with its sweep directory)."""
    return socket.gethostname()


def orphans(study: optuna.Study, out: Path) -> list:
    """RUNNING trials of this host and sweep directory (a stopped sweep's): to be resumed.

    Only valid while this process holds the sweep directory's lock.
    """
    here = str(out.absolute())
    return [optuna.trial.Trial(study, t._trial_id)
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.user_attrs.get("host") == owner() and t.user_attrs.get("out") == here]


def counts(study: optuna.Study) -> dict:
    """Trials by state name (complete, fail, running, waiting), with two kinds of ``FAIL``
    apart: ``lost`` (a dead worker's trial, retried) and ``surplus`` (asked for beyond
    ``--trials`` by a worker that raced another, never run)."""
    trials = study.get_trials(deepcopy=False)
    lost = retried(trials)
    out = {}
    for t in trials:
        name = t.state.name.lower()
        if t.state == TrialState.FAIL and t.number in lost:
            name = "lost"
        elif t.state == TrialState.FAIL and str(t.user_attrs.get("error", "")).startswith("surplus"):
            name = "surplus"
        out[name] = out.get(name, 0) + 1
    return out


def default_threads(workers: int) -> int:
    """Torch threads per trial so that ``workers`` trials share the machine's cores."""
    return max(1, (os.cpu_count() or 1) // workers)


# ------------------------------------------------------------------------------------------
# Running the trials


def _run_trial(values: dict, out: str, config_file, threads: int) -> dict:
    """Worker: train (or resume) one trial's run and return its result (a child process)."""
    import torch

    torch.set_num_threads(threads)
    from train.training.run import run_to_result

    return run_to_result(values, Path(out), config_file, False)


class Interrupted(Exception):
    """The sweep was stopped by a signal; RUNNING trials resume on the next run."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def run_search(study: optuna.Study, out: Path, *, n_trials: int, dists: dict, base: dict,
               config_file=None, workers: int = 1, echo=print) -> dict:
    """Run the study's trials until ``n_trials`` exist and none of this sweep's is left running.

    ``base`` holds the options of every trial (``--set``, env, EMA/BEMA on); a
    trial's drawn options override it. Trials run ``workers`` at a time in
    child processes (spawned: the engine's thread pool is not fork-safe). A
    trial whose run raises is told FAIL with its error; the sweep goes on.
    Returns :func:`counts` at the end. Raises :class:`Interrupted` after
    SIGINT/SIGTERM (its trials stay RUNNING and resume on the next call).
    """
    import concurrent.futures as cf
    import multiprocessing as mp
    import time
    import warnings

    threads = base.get("num_threads") or default_threads(workers)
    here = str(out.absolute())
    todo = list(orphans(study, out))  # a stopped sweep's trials first
    beat(study, todo)  # claimed: no other sweep takes them as lost now
    interval = study._storage.get_heartbeat_interval() or HEARTBEAT
    last_beat = time.monotonic()
    running: dict = {}  # future -> (trial number, Trial or FrozenTrial)
    stop = {"signal": None}

    def new_trial():
        for t in take_lost(study):
            echo(f"trial {t.number}: lost (its sweep on {t.user_attrs.get('host')} in "
                 f"{t.user_attrs.get('out')} sent no heartbeat for {LOST_AFTER * interval} s): "
                 "failed, and queued again with the same options")
        trials = study.get_trials(deepcopy=False)
        waiting = any(t.state == TrialState.WAITING for t in trials)  # retries of lost trials
        if not waiting and len(trials) - len(retried(trials)) >= n_trials:
            return None
        with warnings.catch_warnings():  # Optuna: "heartbeat is supposed to be used with optimize"
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            trial = study.ask()
        beat(study, [trial])
        if "retry_of" not in trial.user_attrs and trial.number >= n_trials + len(
                retried(study.get_trials(deepcopy=False))):  # another machine got there first
            trial.set_user_attr("error", "surplus trial beyond --trials (not run)")
            study.tell(trial, state=TrialState.FAIL)
            return None
        draw(dists, trial)
        trial.set_user_attr("host", owner())
        trial.set_user_attr("out", here)
        return trial

    def values_of(trial) -> dict:
        return {**base, **trial.params, "num_threads": threads}

    def on_signal(signum, frame):  # the children get the same signal and save their runs
        stop["signal"] = signum

    ctx = mp.get_context("spawn")
    with handling(on_signal):
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            while True:
                while stop["signal"] is None and len(running) < workers:
                    trial = todo.pop(0) if todo else new_trial()
                    if trial is None:
                        break
                    d = trial_dir(out, trial.number)
                    retry = trial.user_attrs.get("retry_of")
                    echo(f"trial {trial.number}: {d.name} "
                         + ("" if retry is None else f"(retry of lost trial {retry}) ")
                         + " ".join(f"{k}={v}" for k, v in sorted(trial.params.items())))
                    fut = pool.submit(_run_trial, values_of(trial), str(d), config_file, threads)
                    running[fut] = trial
                if not running:
                    break
                done, _ = cf.wait(running, timeout=0.5, return_when=cf.FIRST_COMPLETED)
                if time.monotonic() - last_beat >= interval:
                    beat(study, [running[f] for f in running if f not in done])
                    last_beat = time.monotonic()
                for fut in done:
                    trial = running.pop(fut)
                    if isinstance(fut.exception(), cf.process.BrokenProcessPool):
                        # a worker died (killed, out of memory): its trials stay RUNNING
                        raise RuntimeError(
                            f"a trial's worker process died (trial {trial.number}; killed or out "
                            "of memory?); run the same command again to resume") from None
                    _finish(study, trial, fut, echo)
        if stop["signal"] is not None:
            raise Interrupted(128 + stop["signal"])
    return counts(study)


def _finish(study, trial, fut, echo) -> None:
    """Tell the study how a trial's run ended."""
    import click

    number = trial.number
    try:
        result = fut.result()
    except click.exceptions.Exit:  # the run was stopped by a signal: resume it next time
        echo(f"trial {number}: stopped (resumes when the sweep is run again)")
        return
    except Exception as e:  # noqa: BLE001 - any failure of one trial is recorded, not fatal
        from train.training.prefetch import one_line

        msg = one_line(e)
        try:
            trial.set_user_attr("error", msg)
            study.tell(trial, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # taken as lost by another sweep meanwhile: its retry runs
        echo(f"trial {number}: FAILED: {msg}")
        return
    value = objective(result)
    try:
        trial.set_user_attr("result", str(trial_dir(Path(trial.user_attrs["out"]), number)))
        trial.set_user_attr("run_result", result)  # lgagent report --storage: no directory needed
        # Optuna refuses NaN values: a run without unseen lengths reports its seen error
        study.tell(trial, value if math.isfinite(value) else 1.0, state=TrialState.COMPLETE)
    except optuna.exceptions.UpdateFinishedTrialError:
        # its heartbeats stopped reaching the study for a while (a database outage?) and another
        # sweep took it as lost: the retry counts, this run's directory stays as it is
        echo(f"trial {number}: finished, but another sweep had taken it as lost meanwhile "
             "(its retry counts in the study)")
        return
    echo(f"trial {number}: done, raw unseen top1_err {value:.4f}")


def objective(result: dict) -> float:
    """The value a trial reports to Optuna: the raw weights' unseen-length top-1 error."""
    ev = (result.get("eval") or {}).get("raw", {})
    return float((ev.get("unseen") or ev.get("seen") or {}).get("top1_err", float("nan")))
