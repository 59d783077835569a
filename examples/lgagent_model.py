"""Shared by the examples that play a trained lgagent model: train a tiny one, or use a RUN.

``with model_run(run, steps, seed) as path:`` gives the run directory that holds
``checkpoint.pt``: ``run`` itself when given, else a fresh run trained in a temporary
folder (removed at the end of the ``with``) by

    lgagent train --env othello --preset tiny --steps STEPS --batch-size 64 --lr 3e-3 --ema ...

(the README's CPU quick start, on one thread, without the evaluation and play at the end).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def model_run(run: str | None, steps: int, seed: int = 0) -> Iterator[Path]:
    """The RUN directory to load: ``run`` (checked) or a tiny model trained now for ``steps`` steps."""
    if run is not None:
        path = Path(run)
        if not (path / "checkpoint.pt").is_file():
            sys.exit(f"error: {path} holds no checkpoint.pt (give a RUN directory of lgagent train)")
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="lgagent_example_") as tmp:
        yield train_tiny(Path(tmp) / "run", steps, seed)


def train_tiny(out: Path, steps: int, seed: int) -> Path:
    """Run ``lgagent train`` (tiny preset, one CPU thread) into ``out``; returns ``out``."""
    cmd = [
        sys.executable, "-m", "train.cli.main", "train", "--env", "othello", "--preset", "tiny",
        "--steps", str(steps), "--batch-size", "64", "--lr", "3e-3", "--ema",
        "--eval-every", "0", "--eval-size", "64", "--play-games", "0", "--log-every", "50",
        "--ckpt-every", "0", "--num-threads", "1", "--device", "cpu", "--seed", str(seed),
        "--no-progress", "--out", str(out),
    ]
    print(f"training a tiny lgagent model ({steps} steps) in {out} ...", flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        sys.exit(f"error: lgagent train failed:\n{done.stderr}")
    return out


def model_args(description: str):
    """The command line shared by the model examples (``--run``, ``--train-steps``, ``--weights``,
    ``--games``, ``--seed``, ``--threads``, ``--smoke``), parsed; torch threads are set."""
    import argparse

    import torch

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--run", default=None, help="RUN directory of lgagent train (default: train one)")
    parser.add_argument("--train-steps", type=int, default=2000, help="steps of the tiny model trained here")
    parser.add_argument("--weights", default="ema", help="checkpoint weights: ema, bema or raw")
    parser.add_argument("--games", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--smoke", action="store_true", help="a 20-step model, 4 games (seconds)")
    args = parser.parse_args()
    if args.smoke:
        args.train_steps, args.games = 20, 4
    torch.set_num_threads(args.threads)
    return args
