"""``lgagent datagen``: a corpus of random Othello games (:func:`train.data.datagen.write_corpus`)."""

from __future__ import annotations

from pathlib import Path

import click

from train.data import FORMATS  # not train.data.datagen: numpy


@click.command("datagen")
@click.option("--env", "env_name", default="othello", show_default=True,
              help="Which corpus to generate (only 'othello' for now).")
@click.option("--games", "n_games", type=click.IntRange(min=1), required=True,
              help="Number of games N.")
@click.option("--seed", type=click.IntRange(0, 2**64 - 1), default=0, show_default=True,
              help="Random seed; game i depends only on (seed, i).")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Output file: .npy int8 (N, 60), square per move, -1 after the end; or "
                   ".parquet (--format parquet), one row per game.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="npy", show_default=True,
              help="npy: one int8 array (what --data of lgagent train reads); parquet: one row "
                   "per game (game, moves list<int8>, length, black_discs, white_discs, winner; "
                   "needs pyarrow).")
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def datagen(env_name: str, n_games: int, seed: int, out: Path, fmt: str, force: bool) -> None:
    """Generate N random Othello games (uniformly random legal moves) as .npy or .parquet."""
    from train.data.datagen import write_corpus

    write_corpus(out, n_games, seed, fmt, force, env_name)
