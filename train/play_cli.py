"""``lgagent play``: a run's model plays Othello against random or another run.

The games live in :mod:`train.play` (:func:`train.play.match`); this module turns
options into a call of :func:`train.play.play_run` and prints a table or one JSON
object. Unusable input exits 2 with one line and nothing is written.
"""

from __future__ import annotations

import json

import click

from train.cli import BadInput, machine_and_weights
from train.play import COLORS, format_play, play_run


@click.command("play", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run", type=click.Path(exists=False))
@click.option("--opponent", default="random", show_default=True,
              help="'random' (uniform legal moves) or RUN2, another Othello run.")
@click.option("--weights", multiple=True,
              help="raw, ema or bema; repeat or comma-separate (default: all the checkpoint "
                   "holds).")
@click.option("--opponent-weights", type=click.Choice(["raw", "ema", "bema"]), default=None,
              help="Weights of RUN2 (default: ema when RUN2 has them, else raw).")
@click.option("--games", type=int, default=100, show_default=True, help="Games per weights.")
@click.option("--color", type=click.Choice(COLORS), default="both", show_default=True,
              help="The model's colour; both alternates (half the games each).")
@click.option("--opening", type=int, default=None,
              help="Random plies before the models play (default: 0 vs random, 4 vs RUN2; "
                   "paired games share an opening with colours swapped).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Same seed, same games.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--num-threads", type=int, default=None, help="CPU threads for torch.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def play(run, opponent, weights, opponent_weights, games, color, opening, seed, device,
         num_threads, as_json):
    """Play RUN's model at Othello (RUN is a RUN_DIR or a checkpoint file).

    The model takes its most probable legal move; first_choice_legal is how often its
    unmasked top choice was legal. Per weights: wins, draws, losses, mean final disc
    difference and the score (win 1, draw 0.5) with a 95% Wilson interval. The games
    of each weights run side by side, one forward pass per round.
    """
    if games < 1:
        raise BadInput(f"--games must be at least 1, got {games}")
    if seed < 0:
        raise BadInput(f"--seed must be non-negative, got {seed}")
    if opening is not None and opening < 0:
        raise BadInput(f"--opening must be non-negative, got {opening}")
    names = machine_and_weights(num_threads, device, weights)
    try:
        res = play_run(run, opponent=opponent, weights=names or None,
                       opponent_weights=opponent_weights, games=games, colors=color, seed=seed,
                       opening=opening, device=device)
    except ValueError as e:
        raise BadInput(str(e).splitlines()[0] if str(e) else "bad input") from None
    if as_json:
        click.echo(json.dumps(res, indent=2))
    else:
        for line in format_play(res):
            click.echo(line)
