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
from pathlib import Path

import click

from agents.checkpoint import CHECKPOINT
from train import config as C
from train.atomic import atomic_write_text
from train.cli import BadInput

DEFAULT_GRID = (("dropout", (0.0, 0.1)), ("norm", ("pre", "post")))
RESULT = "result.json"
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


def run_one(values: dict, out: Path, config_file, progress: bool) -> dict:
    """Train (or resume) one run into ``out``; returns its result (also saved as result.json)."""
    from train.distributed import Dist
    from train.run import clear_run_dir, interrupted_exit_code, prepare, run_training

    done = out / RESULT
    if done.exists():
        return json.loads(done.read_text())
    resume = (out / CHECKPOINT).exists()
    if not resume and out.exists():  # killed before its first checkpoint: start it over
        clear_run_dir(out)
    given = {"out": str(out), **values}
    if resume:  # the saved config holds everything else; only where and how long may change
        given = {k: v for k, v in given.items() if k in C.RESUMABLE}
    cfg, task, model_cfg, ckpt = prepare(given, config_file=None if resume else config_file,
                                         resume=resume)
    summary = run_training(cfg, task, model_cfg, ckpt, dist_info=Dist(), progress=progress)
    if not summary["finished"]:
        raise click.exceptions.Exit(interrupted_exit_code(summary))
    result = {"name": out.name, "config": cfg.saved_dict(), "step": summary["step"],
              "eval": summary["eval"], "play": summary.get("play")}
    atomic_write_text(done, json.dumps(result, indent=1, allow_nan=True))
    return result


def summary_lines(results: list[dict], split: str = "unseen") -> list[str]:
    """One line per run and weights: top-1 error and separation at seen and unseen lengths."""
    width = max([len(r["name"]) for r in results] + [3])
    lines = [f"{'run':{width}} {'weights':7} {'seen_err':>9} {'unseen_err':>10} "
             f"{'unseen_sep':>10}"]
    for r in results:
        for w, splits in (r["eval"] or {}).items():
            seen, unseen = splits.get("seen", {}), splits.get(split, {})
            lines.append(f"{r['name']:{width}} {w:7} {seen.get('top1_err', float('nan')):9.4f} "
                         f"{unseen.get('top1_err', float('nan')):10.4f} "
                         f"{unseen.get('sep_acc', float('nan')):10.4f}")
    return lines


@click.command("sweep", context_settings={"help_option_names": ["-h", "--help"],
                                          "max_content_width": 100})
@click.option("--env", type=click.Choice(C.ENVS), default=None,
              help="Task (or give env in --config).")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True,
              help="Sweep directory: one run directory per grid point and seed, results.json.")
@click.option("--grid", "grid", multiple=True, metavar="KEY=V1,V2,...",
              help="An axis of the grid over any training option (the long option's name, "
                   "dashes or underscores), e.g. --grid dropout=0,0.1 --grid norm=pre,post "
                   "(default: exactly those two). Repeatable.")
@click.option("--set", "fixed", multiple=True, metavar="KEY=VALUE",
              help="A training option for every run, e.g. --set steps=2000 --set "
                   "train_max_len=8. Repeatable.")
@click.option("--seeds", default="0", show_default=True,
              help="Comma-separated training seeds; every grid point runs once per seed.")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="TOML file of training options for every run (--set and --grid win).")
@click.option("--no-averaging", is_flag=True,
              help="Do not turn on EMA and BEMA in every run (they are on by default so each run "
                   "reports raw, EMA and BEMA weights).")
@click.option("--progress/--no-progress", default=True, help="Progress bar per run.")
def sweep(env, out, grid, fixed, seeds, config_file, no_averaging, progress):
    """Train a grid of runs and tabulate legality at seen and unseen lengths.

    \b
    Every run trains on the first train_max_len tokens (required: --set
    train_max_len=L or in --config) and reports the top-1 legality error of its
    raw, EMA and BEMA weights at seen and unseen lengths. Example (CPU, minutes):
      lgagent sweep --env setcomp --out runs/sweep --set vocab_size=16 \\
        --set preset=tiny --set train_max_len=8 --set steps=1500 --seeds 0,1
    Run the same command again to resume a stopped sweep.
    """
    from train.distributed import dist_from_env

    if dist_from_env().enabled:
        raise BadInput("lgagent sweep runs its runs one after another in one process; "
                       "use lgagent train under torchrun for DDP")
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
    base = dict(parse_assignment(f, multi=False) for f in fixed)
    base = {k: v[0] for k, v in base.items()}
    if env is not None:
        base["env"] = env
    if not no_averaging:
        base.setdefault("ema", True)
        base.setdefault("bema", True)
    clash = sorted(set(base) & {k for k, _ in axes})
    if clash:
        raise BadInput(f"{', '.join(clash)} is both fixed (--set/--env) and a --grid axis")
    try:
        file_values = C.load_toml(config_file) if config_file else {}
    except ValueError as e:
        raise BadInput(str(e)) from None
    if "train_max_len" not in base and "train_max_len" not in file_values and not any(
            k == "train_max_len" for k, _ in axes):
        raise BadInput("a sweep measures length generalization: set train_max_len "
                       "(e.g. --set train_max_len=8) so that some lengths are unseen")
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out} exists and is not a directory")

    runs = [(point, seed) for point in grid_points(axes) for seed in seed_list]
    from train.run import prepare
    for point, seed in runs:  # check every run's options before training any
        name = run_name(point, seed)
        if not (out / name / CHECKPOINT).exists():
            prepare({**base, **point, "seed": seed, "out": str(out / "check" / name)},
                    config_file=config_file)

    results = []
    for i, (point, seed) in enumerate(runs, 1):
        name = run_name(point, seed)
        click.echo(f"[{i}/{len(runs)}] {name}", err=True)
        results.append(run_one({**base, **point, "seed": seed}, out / name, config_file,
                               progress))
        atomic_write_text(out / RESULTS, json.dumps(results, indent=1, allow_nan=True))
    for line in summary_lines(results):
        click.echo(line)
    click.echo(f"results: {out / RESULTS}")
