"""``lgagent sweep``: a grid of training runs, or a random search, into one sweep directory.

The work is :func:`train.study.sweep.run_sweep`; this module holds its options.
"""

from __future__ import annotations

from pathlib import Path

import click

from train.training.config import ENVS


@click.command("sweep", context_settings={"help_option_names": ["-h", "--help"],
                                          "max_content_width": 100})
@click.option("--env", type=click.Choice(ENVS), default=None,
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
@click.option("--trials", type=click.IntRange(min=1), default=None, metavar="N",
              help="Random search instead of a grid: N trials drawn from --space (default: the "
                   "env's built-in space; see train/study/search.py).")
@click.option("--space", "space_file", type=click.Path(path_type=Path), default=None,
              help="TOML search space for --trials: option = [choices] or {low, high, scale = "
                   "\"log\"|\"linear\"} or one fixed value.")
@click.option("--storage", default=None, metavar="URL",
              help="Optuna storage URL shared by several machines (default: sqlite "
                   "SWEEP_DIR/study.db).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="--trials: trials run in parallel processes (torch threads split between "
                   "them unless --set num_threads=K).")
@click.option("--search-seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="--trials: seed of the draws (trial k's options depend only on it and k).")
@click.option("--heartbeat", type=click.IntRange(min=1), default=None, metavar="SECONDS",
              help="--trials: seconds between a running trial's heartbeats in the study "
                   "(default 30); a RUNNING trial of another sweep without one for 4 of them is "
                   "taken as lost (its worker died): failed, and trained again as a new trial.")
def sweep(env, out, grid, fixed, seeds, config_file, no_averaging, progress, trials, space_file,
          storage, workers, search_seed, heartbeat):
    """Train a grid of runs (or N random trials) and tabulate legality at unseen lengths.

    \b
    Every run trains on the first train_max_len tokens (required: --set
    train_max_len=L, in --config or in the space) and reports the top-1 legality
    error of its raw, EMA and BEMA weights at seen and unseen lengths.
    A grid (CPU, minutes):
      lgagent sweep --env setcomp --out runs/sweep --set vocab_size=16 \\
        --set preset=tiny --set train_max_len=8 --set steps=1500 --seeds 0,1
    A random search, then its statistics:
      lgagent sweep --env setcomp --trials 200 --workers 2 --out runs/search
      lgagent report runs/search
    Run the same command again to resume a stopped sweep.
    """
    from train.study.sweep import run_sweep

    run_sweep(env, out, grid, fixed, seeds, config_file, no_averaging, progress, trials, space_file,
              storage, workers, search_seed, heartbeat)
