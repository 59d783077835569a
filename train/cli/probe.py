"""``lgagent probe``: is the board linearly readable from a run's residual stream, per length?

The probing lives in :mod:`train.analysis.probe` (:func:`train.analysis.probe.probe_run`); this module turns
options into that call and prints a table or one JSON object, and writes the figure.
Unusable input exits 2 with one line and nothing is written.
"""

from __future__ import annotations

import click

from train.analysis import CODINGS, FIT_LENGTHS  # not train.analysis.probe: torch
from train.cli.main import machine_and_weights, show
from train.errors import BadInput


@click.command("probe", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run", type=click.Path(exists=False))
@click.option("--weights", multiple=True,
              help="raw, ema or bema (or ema_<decay>); repeat or comma-separate (default: all "
                   "the checkpoint holds). A random-init model of the same shape is always "
                   "added.")
@click.option("--layers", default="all", show_default=True,
              help="'all' or comma-separated layers: 0 = embeddings, l = after block l.")
@click.option("--games", type=click.IntRange(min=2), default=2000, show_default=True,
              help="Fresh random games: the first half fits the probes, the second scores them.")
@click.option("--coding", type=click.Choice(CODINGS), default="mover", show_default=True,
              help="mover: empty/mine/theirs (player to move); colour: empty/black/white.")
@click.option("--fit-lengths", type=click.Choice(FIT_LENGTHS), default="seen", show_default=True,
              help="Fit the probes on positions at seen lengths only, or at every length.")
@click.option("--max-iter", type=click.IntRange(min=1), default=100, show_default=True,
              help="LBFGS iterations per probe.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Same seed, same games.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--num-threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for torch.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Write accuracy against length (a line per layer) to this PNG.")
@click.option("--save", type=click.Path(dir_okay=False), default=None,
              help="Write the fitted probes (every layer and weights) to this file, for "
                   "lgagent intervene (docs/PROBES.md: the format).")
def probe(run, weights, layers, games, coding, fit_lengths, max_iter, seed, device, num_threads, as_json,
          plot, save):
    """Fit linear board probes to RUN's residual stream (RUN is a RUN_DIR or checkpoint file).

    One multinomial logistic regression per layer over all 64 squares (3 classes), fitted
    with torch LBFGS on positions at seen lengths and scored at seen and unseen lengths and
    per length; baselines: a randomly initialised model of the same shape and the majority
    class of each square.
    """
    if plot is not None and not plot.lower().endswith(".png"):
        raise BadInput(f"--plot must name a .png file, got {plot}")
    from train.atomic import path_problem

    problem = path_problem(save) if save is not None else None
    if problem:
        raise BadInput(f"--save {save}: {problem}")
    names = machine_and_weights(num_threads, device, weights)
    from train.analysis.probe import format_probe, probe_run

    try:
        res = probe_run(run, weights=names or None, layers=layers, games=games, coding=coding,
                        fit_lengths=fit_lengths,
                        seed=seed, max_iter=max_iter, device=device, save=save)
    except ValueError as e:
        from agents.checkpoint import first_line

        raise BadInput(first_line(e)) from None
    from train.analysis.probe import probe_figure

    show(res, as_json=as_json, lines=format_probe, plot=plot, figure=probe_figure)
    if save is not None and not as_json:
        click.echo(f"probes: {save}")
