"""``lgagent eval``: evaluate saved runs' checkpoints from the command line.

The metrics and the play loop live in :mod:`train.analysis.evaluate`, the figure in
:mod:`train.analysis.plots`; this module only turns options into calls of
:func:`train.analysis.evaluate.evaluate_checkpoint` and prints a table or JSON, and
writes the per-length figure with ``--plot``. Unusable input exits 2 with one
line and writes nothing (every run is evaluated before the figure is written).
Ctrl-C or SIGTERM stops it with one line and exit 130/143, writing nothing.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import click

from train.analysis import PLAY_SEED
from train.cli.main import nan_to_none
from train.cli.train import held_out_options, option_type  # the ranges of lgagent train's options
from train.errors import BadInput

# config fields that name where or how a run was made, not what was trained
_NOT_A_LABEL = ("out", "device", "num_threads", "compile", "stop_at", "data")


@click.command("eval", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("runs", metavar="RUN...", nargs=-1, required=True,
                type=click.Path(exists=False))
@click.option("--weights", default=None,
              help="Comma-separated weights names, e.g. raw,ema,bema (default: all the "
                   "checkpoint holds).")
@held_out_options
@click.option("--play-games", type=option_type("play_games"), default=0,
              help="Othello games vs random per weights.")
@click.option("--play-seed", type=option_type("eval_seed"), default=PLAY_SEED, show_default=True,
              help="Seed of the --play-games games; the games of lgagent play --seed (same "
                   "default) and, by default, of the run's own end-of-run play.")
@click.option("--plot", "plot", type=click.Path(), default=None,
              help="Write the per-length figure (PNG): one panel per metric, a line per run "
                   "and weights.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: one object (one RUN) or one object per RUN path (several).")
def eval_command(runs, weights, eval_size, eval_seed, train_max_len, play_games, play_seed, plot,
                 device, as_json):
    """Evaluate runs' checkpoints (each RUN is a RUN_DIR or a checkpoint file).

    Legality at seen and unseen lengths and at every length, for each kept
    weights (raw, EMA, BEMA), optionally games against a random player and a
    per-length figure; several RUNs are overlaid in one figure, labelled by the
    options in which their configs differ. The games are those of ``lgagent play
    RUN --games N --seed S`` for ``--play-games N --play-seed S`` (both seeds default
    to 0, the seed of the trainer's end-of-run play): the same results for the same
    weights.
    """
    if device == "cuda":
        import torch  # here, not at the top: --help and option errors never import torch

        if not torch.cuda.is_available():
            raise BadInput("--device cuda: no CUDA device is available")
    if plot is not None:
        target = Path(plot)
        if target.is_dir():
            raise BadInput(f"--plot {plot}: is a directory, give a file name (e.g. per_length.png)")
        if not target.parent.is_dir():
            raise BadInput(f"--plot {plot}: directory {target.parent} does not exist")
    if len(set(runs)) != len(runs):
        raise BadInput("a RUN is given twice")
    try:
        with _signals_stop():
            _evaluate_and_report(runs, weights, eval_size, eval_seed, train_max_len,
                                 play_games, play_seed, plot, device, as_json)
    except _Stopped as e:
        click.echo(f"lgagent eval: stopped by {signal.Signals(e.signum).name}", err=True)
        raise click.exceptions.Exit(128 + e.signum) from None


class _Stopped(BaseException):
    """SIGINT or SIGTERM while evaluating (a BaseException: no ``except Exception`` eats it)."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _signals_stop():
    """SIGINT and SIGTERM raise :class:`_Stopped` (the main thread only handles signals)."""
    from train.signals import handling

    def handle(signum, frame):
        raise _Stopped(signum)

    return handling(handle)


def _evaluate_and_report(runs, weights, eval_size, eval_seed, train_max_len, play_games,
                         play_seed, plot, device, as_json):
    """Evaluate every run, then write the figure and print the table or JSON."""
    from train.analysis.evaluate import evaluate_checkpoint, format_results, table_lengths

    results = {}
    for run in runs:
        try:
            Path(run).exists()
        except OSError as e:  # a name over the file system's limit
            raise BadInput(f"no checkpoint at {str(run)[:120]}: {e.strerror or e}") from None
        _check_memory(run, eval_size, device)
        try:
            results[run] = evaluate_checkpoint(
                run, weights=weights.split(",") if weights else None, eval_size=eval_size,
                eval_seed=eval_seed, train_max_len=train_max_len, play_games=play_games,
                play_seed=play_seed, device=device, with_config=True)
        except ValueError as e:
            raise BadInput(str(e) if len(runs) == 1 else f"{run}: {e}") from None
    configs = {run: res.pop("config") for run, res in results.items()}
    if plot is not None:
        from train.analysis.plots import per_length_figure, save

        labels = run_labels(configs)
        save(per_length_figure([(labels[run], res["eval"], res["train_max_len"])
                                for run, res in results.items()]), plot)
    if as_json:
        out = results[runs[0]] if len(runs) == 1 else results
        click.echo(json.dumps(nan_to_none(out), indent=2))
        return
    for run, res in results.items():
        click.echo(f"{run}: {res['env']} at step {res['step']}, seen lengths "
                   f"1..{res['train_max_len']}")
        lengths = table_lengths(res["train_max_len"], _max_length(res["eval"]))
        for line in format_results(res["eval"], res["play"], lengths):
            click.echo(line)
    if plot is not None:
        click.echo(f"figure: {plot}")


def _check_memory(run, eval_size, device) -> None:
    """BadInput when ``run``'s held-out batch at ``eval_size`` (legal mask, tokens, targets:
    ``eval_size x block_size x (vocab + 16)`` bytes) cannot fit the free memory."""
    import torch

    from agents.checkpoint import load
    from train.training.run import available_memory

    try:
        ckpt = load(run)
    except ValueError:
        return  # evaluate_checkpoint says what is wrong with it
    m, cfg = ckpt.get("model_config"), ckpt.get("config")
    if not isinstance(m, dict) or not isinstance(cfg, dict):
        return
    n = eval_size if eval_size is not None else cfg.get("eval_size")
    try:
        need = int(n) * int(m["block_size"]) * (int(m["vocab_size"]) + 16)
    except (KeyError, TypeError, ValueError):
        return
    free = available_memory(torch.device(device))
    if free is not None and need > free:
        raise BadInput(f"--eval-size {n}: the held-out batch needs about {need / 1e9:.3g} GB, "
                       f"{free / 1e9:.3g} GB available")


def run_labels(configs: dict) -> dict:
    """``{run: label}``: the run's name alone, or for several runs the options that differ.

    ``configs`` maps each RUN path to its saved config. Several runs are labelled
    ``"key=value,..."`` over the fields whose values differ; when that does not
    tell them apart (same configs), by their names.
    """
    names = {run: _run_name(run) for run in configs}
    if len(configs) == 1:
        return names
    keys = sorted({k for c in configs.values() for k in c} - set(_NOT_A_LABEL))
    differ = [k for k in keys if len({repr(c.get(k)) for c in configs.values()}) > 1]
    labels = {run: ",".join(f"{k}={c.get(k)}" for k in differ) for run, c in configs.items()}
    if not differ or len(set(labels.values())) < len(labels):
        return names
    return labels


def _run_name(run) -> str:
    """A run directory's name (a checkpoint file: its directory's name)."""
    p = Path(run)
    return (p.parent.name if p.suffix == ".pt" else p.name) or str(run)


def _max_length(results: dict) -> int:
    return max((e["length"] for res in results.values() for e in res.get("per_length") or []),
               default=1)

