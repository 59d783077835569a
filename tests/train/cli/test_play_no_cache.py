"""`lgagent play --no-cache`: the model reads whole histories instead of its key/value cache,
and plays the same games (match results, and a person's game through --human)."""

import json

import pytest
from click.testing import CliRunner

from train.analysis.human import human_session
from train.cli.main import main


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_run):
    return tiny_run(tmp_path_factory.mktemp("nocache") / "oth", "--env", "othello", "--ema",
                    "--steps", 2, "--train-max-len", 20)


def play(*args, input=None):
    return CliRunner().invoke(main, ["play", *map(str, args), "--num-threads", "1"], input=input)


def test_no_cache_plays_the_same_games(run, monkeypatch):
    results = {}
    for extra in ((), ("--opponent", run, "--games", 6)):  # a model opponent: both sides
        results[extra] = play(run, "--games", 10, *extra, "--json")
    from agents.model import KVCache

    def no(*a, **k):
        raise AssertionError("--no-cache used the cache")

    monkeypatch.setattr(KVCache, "begin", no)
    for extra, a in results.items():
        b = play(run, "--games", 10, *extra, "--json", "--no-cache")
        assert a.exit_code == b.exit_code == 0, a.output + b.output
        assert json.loads(a.stdout) == json.loads(b.stdout)
    assert play(run, "--games", 2).exit_code != 0  # the cache is on by default


class FirstLegal:
    """A person who asks for the legal moves and plays the first one."""

    def __init__(self):
        self.out, self.asked = [], False

    def write(self, text):
        self.out.append(text)

    def read(self, prompt):
        self.asked = not self.asked
        if self.asked:
            return "moves"
        return next(t for t in reversed(self.out) if t.startswith("legal moves: ")).split()[2]


def test_human_game_is_the_same_without_the_cache(run):
    games = {}
    for use_cache in (True, False):
        p = FirstLegal()
        res = human_session(run, games=2, read=p.read, write=p.write, use_cache=use_cache)
        games[use_cache] = (res, p.out)
    assert games[True] == games[False]
    assert all(g["result"] in ("win", "loss", "draw") for g in games[True][0])


def test_human_cli_takes_no_cache(run):
    r = play(run, "--human", "--no-cache", "--color", "black", input="quit\n")
    assert r.exit_code == 0, r.output + r.stderr
    assert "The model (black) plays" in r.stdout and "You stopped the game." in r.stdout
