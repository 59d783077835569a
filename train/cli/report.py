"""``lgagent report``: the statistics of a sweep directory (:mod:`train.study.report`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from train.errors import BadInput


@click.command("report", context_settings={"help_option_names": ["-h", "--help"],
                                           "max_content_width": 100})
@click.argument("sweep_dirs", metavar="[SWEEP_DIR]...", nargs=-1, type=click.Path(path_type=Path))
@click.option("--storage", default=None, metavar="URL",
              help="The study of a sweep shared through a database (lgagent sweep --storage "
                   "URL): every finished trial's result is read from it, whichever machine ran "
                   "it; SWEEP_DIRs given beside it add their runs' training curves.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: trials, failed, "
              "effects (name -> estimate, ci_low, ci_high, p_value, n, p_holm), means, curve, "
              "regression_note (null, or why the factors' effects are missing: the trials the "
              "regression needs and the trials there are).")
@click.option("--plot", "plot_file", type=click.Path(path_type=Path), default=None,
              help="Write a PNG: each effect with its 95% interval, and each metric against "
                   "the training length.")
@click.option("--averages", is_flag=True, help="Instead: the averaging schemes that lgagent "
              "average --record kept in each run (RUN_DIR/averages.json), each against raw "
              "and the best EMA, seen and unseen, paired over runs (JSON: runs, where, "
              "best_ema, schemes).")
@click.option("--where", "where", multiple=True, metavar="KEY=VALUE",
              help="With --averages: only runs whose training option KEY has VALUE (e.g. "
                   "--where preset=setcomp-1l). Repeatable.")
def report(sweep_dirs, storage, as_json, plot_file, averages, where):
    """Effects of each factor on unseen-length legality, with 95% intervals and p-values.

    \b
    Averaging (EMA/BEMA vs raw) is compared within each trial (paired t-test);
    the other factors by a regression over the trials' raw weights (OLS,
    HC3-robust), which needs more trials than there are effects: with fewer, a
    line says how many it needs. See train/study/report.py for the definitions.
      lgagent report runs/search --plot runs/search/effects.png
      lgagent report --storage postgresql+psycopg://user@host/db runs/search
    """
    if not sweep_dirs and not storage:
        raise BadInput("give a sweep directory, or --storage URL of a shared study")
    for sweep_dir in sweep_dirs:
        if not sweep_dir.is_dir():
            raise BadInput(f"{sweep_dir} is not a sweep directory")
    if plot_file is not None and (plot_file.is_dir() or not plot_file.absolute().parent.is_dir()):
        raise BadInput(f"--plot {plot_file}: not a file in an existing directory")
    conditions = {}
    for item in where:
        key, eq, value = item.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise BadInput(f"--where {item!r}: expected KEY=VALUE")
        conditions[key.strip().replace("-", "_")] = value.strip()
    if conditions and not averages:
        raise BadInput("--where filters --averages; add --averages")
    if averages and plot_file is not None:
        raise BadInput("--averages prints a table: drop --plot")
    from train.study import report as R  # numpy, pandas, statsmodels: once the options are good
    from train.study.report import RESULT
    if averages:
        try:
            runs = R.gather(sweep_dirs, storage)[2]
            av = R.averages(runs, conditions)
        except ValueError as e:
            raise BadInput(str(e)) from None
        if av["runs"] == 0:
            raise BadInput("no run holds recorded averages (lgagent average RUN --scheme raw "
                           "--scheme ... --record)" + (" matching --where" if conditions else ""))
        if as_json:
            click.echo(json.dumps(av, indent=1, allow_nan=False))
        else:
            for line in R.format_averages(av):
                click.echo(line)
        return
    try:
        gathered = R.gather(sweep_dirs, storage)
        rep = R.report(gathered=gathered)
    except ValueError as e:
        raise BadInput(str(e)) from None
    if rep["trials"] == 0:
        where = " and ".join(map(str, sweep_dirs))
        raise BadInput("the study holds no finished trial" if storage else
                       f"{where} holds no finished run (no */{RESULT})")
    if plot_file is not None:
        R.plot(rep, R.table(gathered[0]), plot_file)
    if as_json:
        click.echo(json.dumps(rep, indent=1, allow_nan=False))
    else:
        for line in R.format_report(rep):
            click.echo(line)
        if plot_file is not None:
            click.echo(f"figure: {plot_file}")
