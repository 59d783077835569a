"""Shared test helpers."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from train.cli.main import main

# A run that trains in a second: tiny preset, small batches, one thread.
TINY = ["--preset", "tiny", "--batch-size", "8", "--eval-size", "16", "--no-progress",
        "--num-threads", "1", "--log-every", "1"]


@pytest.fixture(scope="session")
def tiny_run():
    """``tiny_run(out, *options)``: ``lgagent train`` a tiny model into ``out``; returns ``out``."""
    def train(out, *args):
        r = CliRunner().invoke(main, ["train", *TINY, *map(str, args), "--out", str(out)])
        assert r.exit_code == 0, r.output + r.stderr
        return out

    return train
