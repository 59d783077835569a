"""``lgagent sweep``: a grid of training runs and one table of their length generalization.

The research question: do dropout, Post-Norm, EMA and BEMA improve legality at
lengths never seen in training? Every run trains on the first ``train_max_len``
tokens and is evaluated on the positions before (``seen``) and after
(``unseen``) that length. EMA and BEMA are on in every run by default, so each
run reports its raw, EMA and BEMA weights side by side; the grid varies the rest
(by default ``dropout`` x ``norm``).

Layout of SWEEP_DIR: one ordinary run directory per grid point and seed
(``dropout=0.1__norm=post__seed=0/``, resumable with ``lgagent train
--resume``), each with ``result.json`` once finished, and ``results.json`` with
every finished run. Running the same command again skips finished runs and
resumes unfinished ones, so a killed sweep loses at most the steps since a
run's last checkpoint.
"""

from __future__ import annotations

import itertools
import json
import signal
from pathlib import Path

import click

from train.atomic import atomic_write_text, remove_stale_temps
from train.errors import BadInput
from train.signals import handling
from train.training import config as C
from train.training.run import prepare, run_to_result

DEFAULT_GRID = (("dropout", (0.0, 0.1)), ("norm", ("pre", "post")))
RESULTS = "results.json"
# Grid and --set may not touch these: the sweep decides them per run.
RESERVED = ("out", "stop_at", "seed")


def parse_value(name: str, text: str):
    """``text`` as the RunConfig field ``name``'s type; BadInput when it does not parse."""
    try:
        return C.parse_text(name, text)
    except ValueError as e:
        raise BadInput(f"{name}={text!r}: {e}") from None


def parse_assignment(text: str, *, multi: bool) -> tuple[str, list]:
    """``key=v1,v2`` (``multi``) or ``key=value`` into ``(key, [values])``."""
    key, sep, values = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not values:
        raise BadInput(f"{text!r}: expected KEY=VALUE{',VALUE...' if multi else ''}")
    if key not in C.FIELDS:
        raise BadInput(f"{key!r} is not a training option (see lgagent train --help)")
    if key in RESERVED:
        raise BadInput(f"{key!r} is set by the sweep itself; use --seeds for seeds")
    items = values.split(",") if multi else [values]
    parsed = [parse_value(key, v.strip()) for v in items]
    if len(set(map(repr, parsed))) != len(parsed):
        raise BadInput(f"{key}: repeated value in {values!r}")
    return key, parsed


def grid_points(grid: list[tuple[str, list]]) -> list[dict]:
    """Every combination of the grid's values, in the order given."""
    keys = [k for k, _ in grid]
    return [dict(zip(keys, combo)) for combo in itertools.product(*(v for _, v in grid))]


def run_name(point: dict, seed: int) -> str:
    return "__".join([f"{k}={v}" for k, v in point.items()] + [f"seed={seed}"])


def summary_lines(results: list[dict], split: str = "unseen") -> list[str]:
    """One line per run and weights: top-1 error and separation at seen and unseen lengths."""
    width = max([len(r["name"]) for r in results] + [3])
    ww = max([len(w) for r in results for w in (r["eval"] or {})] + [7])  # ema_0.995, ...
    lines = [f"{'run':{width}} {'weights':{ww}} {'seen_err':>9} {'unseen_err':>10} "
             f"{'unseen_sep':>10}"]
    for r in results:
        for w, splits in (r["eval"] or {}).items():
            seen, unseen = splits.get("seen", {}), splits.get(split, {})
            lines.append(f"{r['name']:{width}} {w:{ww}} {seen.get('top1_err', float('nan')):9.4f} "
                         f"{unseen.get('top1_err', float('nan')):10.4f} "
                         f"{unseen.get('sep_acc', float('nan')):10.4f}")
    return lines


def run_sweep(env, out: Path, grid=(), fixed=(), seeds="0", config_file=None, no_averaging=False,
              progress=True, trials=None, space_file=None, storage=None, workers=1,
              search_seed=0, heartbeat=None) -> None:
    """``lgagent sweep``: a grid (``grid`` x ``seeds``) or ``trials`` random trials into ``out``.

    Arguments are the command's options (``fixed``: the ``--set KEY=VALUE`` texts,
    ``grid``: the ``--grid KEY=V1,V2`` texts). Prints progress on stderr and the table
    on stdout; BadInput for anything unusable, click's Exit when a signal stopped it.
    """
    from train.training.distributed import dist_from_env

    if dist_from_env().enabled:
        raise BadInput("lgagent sweep runs its runs one after another in one process; "
                       "use lgagent train under torchrun for DDP")
    if trials is not None:
        if grid or seeds != "0":
            raise BadInput("--trials draws every option from the space: --grid and --seeds "
                           "belong to a grid sweep")
        return _random_search(env, out, fixed, config_file, no_averaging, trials, space_file,
                              storage, workers, search_seed, heartbeat)
    if space_file or storage or workers != 1 or heartbeat is not None:
        raise BadInput("--space, --storage, --workers and --heartbeat apply to a random search "
                       "(--trials N)")
    try:
        seed_list = [int(s) for s in seeds.split(",")]
    except ValueError:
        raise BadInput(f"--seeds {seeds!r}: expected comma-separated integers") from None
    if len(set(seed_list)) != len(seed_list) or min(seed_list) < 0:
        raise BadInput(f"--seeds {seeds!r}: expected distinct non-negative integers")
    axes = [parse_assignment(g, multi=True) for g in grid] or [
        (k, list(v)) for k, v in DEFAULT_GRID]
    if len({k for k, _ in axes}) != len(axes):
        raise BadInput("--grid: the same option is given twice")
    base, file_values = _fixed_options(env, fixed, config_file, no_averaging)
    clash = sorted(set(base) & {k for k, _ in axes})
    if clash:
        raise BadInput(f"{', '.join(clash)} is both fixed (--set/--env) and a --grid axis")
    if "train_max_len" not in base and "train_max_len" not in file_values and not any(
            k == "train_max_len" for k, _ in axes):
        raise BadInput("a sweep measures length generalization: set train_max_len "
                       "(e.g. --set train_max_len=8) so that some lengths are unseen")
    _check_out(out)
    from agents.checkpoint import CHECKPOINT  # torch: only once the options are checked

    runs = [(point, seed) for point in grid_points(axes) for seed in seed_list]
    for point, seed in runs:  # check every run's options before training any
        name = run_name(point, seed)
        if not (out / name / CHECKPOINT).exists():
            prepare({**base, **point, "seed": seed, "out": str(out / "check" / name)},
                    config_file=config_file)

    out.mkdir(parents=True, exist_ok=True)
    results = []
    with _lock(out), _between_runs() as stop:  # one sweep process per directory
        remove_stale_temps(out / RESULTS)
        for i, (point, seed) in enumerate(runs, 1):
            name = run_name(point, seed)
            click.echo(f"[{i}/{len(runs)}] {name}", err=True)
            results.append(run_to_result({**base, **point, "seed": seed}, out / name,
                                         config_file, progress))
            atomic_write_text(out / RESULTS, json.dumps(results, indent=1, allow_nan=True))
            if stop.signum is not None and i < len(runs):  # a signal between two runs
                click.echo(f"sweep stopped by {signal.Signals(stop.signum).name} after "
                           f"{i} of {len(runs)} runs; run the same command again to go on",
                           err=True)
                raise click.exceptions.Exit(128 + stop.signum)
    for line in summary_lines(results):
        click.echo(line)
    click.echo(f"results: {out / RESULTS}")


def _random_search(env, out: Path, fixed, config_file, no_averaging, n_trials, space_file,
                   storage, workers, search_seed, heartbeat=None):
    """``lgagent sweep --trials N``: see :mod:`train.study.search`."""
    from train.study import search as S

    base, file_values = _fixed_options(env, fixed, config_file, no_averaging)
    env = base.get("env") or file_values.get("env")
    if env is None:
        raise BadInput("--env is required (othello or setcomp), or env in --config")
    base["env"] = env
    try:
        raw = S.load_space(space_file) if space_file else S.DEFAULT_SPACES[env]
        dists, space_fixed = S.parse_space(raw, where=f"space file {space_file}" if space_file
                                           else "default space")
    except ValueError as e:
        raise BadInput(str(e)) from None
    # --set wins over the space: an option given there is not drawn
    dists = {k: d for k, d in dists.items() if k not in base}
    base = {**space_fixed, **base}
    if "train_max_len" not in base and "train_max_len" not in dists and \
            "train_max_len" not in file_values:
        raise BadInput("a sweep measures length generalization: put train_max_len in the space "
                       "or --set train_max_len=L so that some lengths are unseen")
    _check_out(out)
    # every choice of the space must make a valid run: check each value once, before any trial
    for name, d in dists.items():
        values = getattr(d, "choices", None) or (d.low, d.high)
        for v in values:
            corner = {**base, **{k: _first(x) for k, x in dists.items()}, name: v}
            try:
                prepare({**corner, "out": str(out / "check")}, config_file=config_file)
            except BadInput as e:
                raise BadInput(f"the space's {name}={v!r} makes an invalid run: {e}") from None
    heartbeat = heartbeat or S.HEARTBEAT
    # a shared database: a wrong URL or a dead server is one line before anything is written
    study = S.open_study(out, storage, search_seed, heartbeat) if storage else None
    out.mkdir(parents=True, exist_ok=True)
    with _lock(out):
        study = study or S.open_study(out, storage, search_seed, heartbeat)
        try:
            n = S.run_search(study, out, n_trials=n_trials, dists=dists, base=base,
                             config_file=config_file, workers=workers,
                             echo=lambda m: click.echo(m, err=True))
        except S.Interrupted as e:
            click.echo("sweep stopped; run the same command again to resume", err=True)
            raise click.exceptions.Exit(e.code) from None
        except RuntimeError as e:
            raise BadInput(str(e)) from None
    lost = f" ({n['lost']} lost with a dead worker and retried)" if n.get("lost") else ""
    if storage:
        from train.study.storage import shown

        where = f"--storage '{shown(storage)}' {out}"
    else:
        where = str(out)
    click.echo(f"{n.get('complete', 0)} trials complete, {n.get('fail', 0)} failed{lost}, "
               f"{n.get('running', 0) + n.get('waiting', 0)} left running; statistics: "
               f"lgagent report {where}")


def _fixed_options(env, fixed, config_file, no_averaging) -> tuple[dict, dict]:
    """The options of every run of a sweep, grid or random: ``(base, config file values)``.

    ``base`` holds the ``--set`` options, ``env`` (which must agree with ``--set env=``)
    and, unless ``--no-averaging``, EMA and BEMA on; BadInput for anything unusable.
    """
    base = {k: v[0] for k, v in (parse_assignment(f, multi=False) for f in fixed)}
    if env is not None:
        if base.get("env", env) != env:
            raise BadInput(f"--env {env} and --set env={base['env']} disagree")
        base["env"] = env
    if not no_averaging:
        base.setdefault("ema", True)
        base.setdefault("bema", True)
    try:
        file_values = C.load_toml(config_file) if config_file else {}
    except ValueError as e:
        raise BadInput(str(e)) from None
    return base, file_values


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out} exists and is not a directory")


def _first(dist):
    """A distribution's first choice or its low end (a valid value of the space)."""
    return dist.choices[0] if hasattr(dist, "choices") else dist.low


class _between_runs:
    """SIGINT/SIGTERM between two runs of a grid sweep stop it before the next run (each
    run's trainer handles the signals while it trains, and saves)."""

    def __enter__(self):
        self.signum, self._handling = None, handling(self._handle)
        self._handling.__enter__()
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        self._handling.__exit__(*exc)
        return False


class _lock:
    """An exclusive lock on SWEEP_DIR/.sweep.lock: one sweep process per directory."""

    def __init__(self, out: Path):
        self.path = out / ".sweep.lock"

    def __enter__(self):
        import fcntl

        self.f = open(self.path, "w")
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.f.close()
            raise BadInput(f"another lgagent sweep is running in {self.path.parent}") from None
        return self

    def __exit__(self, *exc):
        self.f.close()
        return False
