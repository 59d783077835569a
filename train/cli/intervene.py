"""``lgagent intervene``: does editing the board picture along saved probes change a run's
predicted legal moves, at seen and at unseen lengths?

The work lives in :mod:`train.analysis.intervene` (:func:`train.analysis.intervene.intervene_run`);
this module turns options into that call, prints a table or one JSON object and writes the
figure. Unusable input exits 2 with one line and nothing is written.
"""

from __future__ import annotations

import click

from train.analysis import EDIT_METHODS, LENGTH_BANDS, MARGIN  # not train.analysis.intervene: torch
from train.cli.main import machine_and_weights, show
from train.errors import BadInput


@click.command("intervene", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run", type=click.Path(exists=False))
@click.option("--probe", "probe_file", required=True, type=click.Path(dir_okay=False),
              help="A probe file of RUN's model shape, from lgagent probe --save.")
@click.option("--weights", default=None,
              help="raw, ema, bema or ema_<decay>: the weights edited (default: the probe "
                   "file's first; it must hold probes of them).")
@click.option("--layers", default="all", show_default=True,
              help="'all' (every layer of the probe file) or comma-separated layers: "
                   "0 = embeddings, l = after block l.")
@click.option("--games", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Fresh random games: one position per game and length band.")
@click.option("--lengths", type=click.Choice(LENGTH_BANDS), default="all", show_default=True,
              help="Positions at seen lengths (1..train_max_len tokens), unseen ones, or both.")
@click.option("--method", type=click.Choice(EDIT_METHODS), default="gradient",
              show_default=True,
              help="gradient: the smallest edit (LBFGS on a penalty) that makes the probe read "
                   "the flipped disc by --margin logits and keeps its read of the other "
                   "squares; margin: closed-form steps along the flipped square's class "
                   "directions only (moves other squares' reads too).")
@click.option("--margin", type=click.FloatRange(min=0, min_open=True), default=MARGIN,
              show_default=True,
              help="Edit until the probe reads the flipped class ahead of the others by "
                   "this many logits.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Same seed, same games, squares and sham directions.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--num-threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for torch.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Write the follow rates and errors per layer and band to this PNG.")
def intervene(run, probe_file, weights, layers, games, lengths, method, margin, seed, device,
              num_threads, as_json, plot):
    """Flip one square of the board picture in RUN's residual stream and see whether the
    predicted legal moves follow (RUN is a RUN_DIR or checkpoint file).

    At one position per fresh game and length band: flip a disc (mine <-> theirs) whose flip
    changes the legal moves, edit the residual stream at a layer so that the saved probe
    reads the flipped disc, run the rest of the model and compare its top-k moves with the
    legal moves of the edited and of the original board. Controls: the unedited model, a
    sham edit (random direction, same norm) and a null edit (a flip that changes no legal
    move). 95% intervals on every rate (docs/PROBES.md).
    """
    if plot is not None and not plot.lower().endswith(".png"):
        raise BadInput(f"--plot must name a .png file, got {plot}")
    names = machine_and_weights(num_threads, device, [weights] if weights else [])
    if len(names) > 1:
        raise BadInput("--weights takes one name")
    from train.analysis.intervene import format_intervene, intervene_run

    try:
        res = intervene_run(run, probe_file, weights=names[0] if names else None,
                            layers=layers, games=games, lengths=lengths, method=method,
                            margin=margin,
                            seed=seed, device=device)
    except ValueError as e:
        from agents.checkpoint import first_line

        raise BadInput(first_line(e)) from None
    from train.analysis.intervene import intervene_figure

    show(res, as_json=as_json, lines=format_intervene, plot=plot, figure=intervene_figure)
