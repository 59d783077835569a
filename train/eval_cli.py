"""``lgagent eval``: evaluate a saved run's checkpoint from the command line.

The metrics and the play loop live in :mod:`train.evaluate`; this module only
turns options into a call of :func:`train.evaluate.evaluate_checkpoint` and
prints a table or one JSON object. Unusable input exits 2 with one line.
"""

from __future__ import annotations

import json
import math

import click
import torch

from train.cli import BadInput
from train.evaluate import evaluate_checkpoint, format_results


@click.command("eval", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run", type=click.Path(exists=False))
@click.option("--weights", default=None,
              help="Comma-separated raw,ema,bema (default: all the checkpoint holds).")
@click.option("--eval-size", type=int, default=None, help="Held-out sequences (default: "
              "the run's).")
@click.option("--eval-seed", type=int, default=None, help="Held-out seed (default: the run's).")
@click.option("--train-max-len", type=int, default=None,
              help="Seen/unseen boundary (default: the run's).")
@click.option("--play-games", type=int, default=0, help="Othello games vs random per weights.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def eval_command(run, weights, eval_size, eval_seed, train_max_len, play_games, device, as_json):
    """Evaluate a run's checkpoint (RUN is a RUN_DIR or a checkpoint file).

    Legality at seen and unseen lengths for the raw/EMA/BEMA weights, and
    optionally games against a random player.
    """
    if eval_size is not None and eval_size < 1:
        raise BadInput(f"--eval-size must be at least 1, got {eval_size}")
    if device == "cuda" and not torch.cuda.is_available():
        raise BadInput("--device cuda: no CUDA device is available")
    try:
        res = evaluate_checkpoint(
            run, weights=weights.split(",") if weights else None, eval_size=eval_size,
            eval_seed=eval_seed, train_max_len=train_max_len, play_games=play_games,
            device=device)
    except ValueError as e:
        raise BadInput(str(e)) from None
    if as_json:
        click.echo(json.dumps(_nan_to_none(res), indent=2))
    else:
        click.echo(f"{run}: {res['env']} at step {res['step']}, seen lengths < "
                   f"{res['train_max_len']}")
        for line in format_results(res["eval"], res["play"]):
            click.echo(line)


def _nan_to_none(obj):
    """Strict JSON: NaN (a metric with no position to average) becomes null."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    return obj
