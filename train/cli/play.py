"""``lgagent play``: a run's model plays Othello against random or another run, or a person.

The games live in :mod:`train.analysis.play` (:func:`train.analysis.play.match`); this module turns
options into a call of :func:`train.analysis.play.play_run` and prints a table or one JSON
object. ``--human`` plays in the terminal instead (:mod:`train.analysis.human`), reading moves
from stdin. Unusable input exits 2 with one line and nothing is written.
"""

from __future__ import annotations

import json
import sys

import click

from train.analysis import COLORS, PLAY_SEED  # not train.analysis.play: numpy, scipy, numba
from train.cli.main import machine_and_weights
from train.errors import BadInput


@click.command("play", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run", type=click.Path(exists=False))
@click.option("--opponent", default="random", show_default=True,
              help="'random' (uniform legal moves), 'greedy' (most discs flipped), 'alphabeta' "
                   "(a few plies of alpha-beta search, see --depth) or RUN2, another Othello run "
                   "(a run directory named like a built-in: ./greedy).")
@click.option("--depth", type=click.IntRange(1, 8), default=None,  # othello_env's MAX_DEPTH
              help="Search depth in plies of --opponent alphabeta (default 3).")
@click.option("--weights", multiple=True,
              help="raw, ema or bema; repeat or comma-separate (default: all the checkpoint "
                   "holds).")
@click.option("--opponent-weights", default=None,
              help="Weights of RUN2: raw, ema, ema_<decay> or bema (default: its first EMA, else raw).")
@click.option("--games", type=click.IntRange(min=1), default=100, show_default=True,
              help="Games per weights.")
@click.option("--color", type=click.Choice(COLORS), default="both", show_default=True,
              help="The model's colour; both alternates (half the games each).")
@click.option("--opening", type=click.IntRange(min=0), default=None,
              help="Random plies before the players move (default: 0 vs random, 4 vs RUN2, "
                   "greedy or alphabeta; paired games share an opening with colours swapped).")
@click.option("--seed", type=click.IntRange(min=0), default=PLAY_SEED, show_default=True,
              help="Same seed, same games; against random the games of lgagent eval "
                   "--play-seed and of the trainer's play (same default).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--num-threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for torch.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--no-cache", is_flag=True,
              help="Read each game's whole history at every move instead of the model's "
                   "key/value cache (slower; the same games and results).")
@click.option("--human", is_flag=True,
              help="Play against the model yourself in the terminal: type moves such as d3, "
                   "'pass' when you have none, 'quit' to stop. --color is still the model's "
                   "colour (both: you play black first, then colours alternate); --games "
                   "defaults to 1 here.")
@click.option("--gif", type=click.Path(dir_okay=False), default=None,
              help="With --human: write each game as an animated GIF to this file "
                   "(several games: NAME-1.gif, NAME-2.gif, ...; needs pillow).")
@click.pass_context
def play(ctx, run, opponent, depth, weights, opponent_weights, games, color, opening, seed, device,
         num_threads, as_json, no_cache, human, gif):
    """Play RUN's model at Othello (RUN is a RUN_DIR or a checkpoint file), or play it yourself.

    The model takes its most probable legal move; first_choice_legal is how often its
    unmasked top choice was legal. Per weights: wins, draws, losses, mean final disc
    difference and the score (win 1, draw 0.5) with a 95% Wilson interval. The games
    of each weights run side by side, one forward pass per round, which reads only the
    moves since the model's last decision in each game (its key/value cache; --no-cache
    reads whole histories, with the same results).
    """
    if human:
        if depth is not None:
            raise BadInput("--depth does not apply to --human (you are the opponent)")
        return _human(ctx, run, opponent, weights, opponent_weights, games, color, opening, seed,
                      device, num_threads, as_json, gif, no_cache)
    if depth is not None and opponent != "alphabeta":
        raise BadInput(f"--depth applies to --opponent alphabeta, not {opponent}")
    if gif is not None:
        raise BadInput("--gif needs --human (it writes the games you play)")
    names = machine_and_weights(num_threads, device, weights)
    from train.analysis.play import format_play, play_run

    try:
        res = play_run(run, opponent=opponent, weights=names or None,
                       opponent_weights=opponent_weights, games=games, colors=color, seed=seed,
                       opening=opening, device=device, depth=depth, use_cache=not no_cache)
    except ValueError as e:
        from agents.checkpoint import first_line

        raise BadInput(first_line(e)) from None
    if as_json:
        click.echo(json.dumps(res, indent=2))
    else:
        for line in format_play(res):
            click.echo(line)


def _read_line(prompt: str):
    """Show ``prompt`` and read one line of stdin; None at the end of input."""
    click.echo(prompt, nl=False)
    line = sys.stdin.readline()
    return line if line else None


def _human(ctx, run, opponent, weights, opponent_weights, games, color, opening, seed, device,
           num_threads, as_json, gif, no_cache=False):
    from click.core import ParameterSource

    for flag, given in (("--opponent", opponent != "random"), ("--json", as_json),
                        ("--opening", opening is not None),
                        ("--opponent-weights", opponent_weights is not None)):
        if given:
            raise BadInput(f"{flag} does not apply to --human (you are the opponent)")
    if ctx.get_parameter_source("games") is not ParameterSource.COMMANDLINE:
        games = 1
    names = machine_and_weights(num_threads, device, weights)
    if len(set(names)) > 1:
        raise BadInput(f"--human plays one weights; choose one of {', '.join(names)}")
    from train.analysis.human import human_session

    try:
        human_session(run, weights=names[0] if names else None, colors=color, games=games,
                      seed=seed, device=device, read=_read_line, write=click.echo, gif=gif,
                      use_cache=not no_cache)
    except ValueError as e:
        from agents.checkpoint import first_line

        raise BadInput(first_line(e)) from None
