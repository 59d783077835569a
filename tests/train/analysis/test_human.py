"""`lgagent play RUN --human` and train.analysis.human: the terminal loop, driven through stdin and a pty."""

import os
import pty
import select
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from agents import checkpoint as CK
from agents.policies import ModelPolicy
from othello_env import validate_games
from othello_env.render import parse_square
from train.analysis.human import format_choices, human_game, model_choices, model_probs
from train.cli.main import main


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_run):
    base = tmp_path_factory.mktemp("human")
    return {
        "othello": tiny_run(base / "oth", "--env", "othello", "--ema", "--steps", 2,
                          "--train-max-len", 20),
        "setcomp": tiny_run(base / "sc", "--env", "setcomp", "--vocab-size", 8, "--steps", 2),
    }


@pytest.fixture(scope="module")
def model(runs):
    return CK.model_from_checkpoint(CK.load(runs["othello"]), "ema")


def human(*args, input=None):
    return CliRunner().invoke(main, ["play", *map(str, args), "--human", "--num-threads", "1"],
                              input=input)


class Player:
    """A scripted person: asks for the legal moves, then types one of them (seeded), with
    junk and illegal entries mixed in, and records the moves that were accepted."""

    def __init__(self, seed, junk=("", "zz", "i9", "pass", "d4", "help", "  D3x ")):
        self.rng = np.random.default_rng(seed)
        self.junk = list(junk)
        self.out, self.typed, self.accepted = [], [], []
        self.want = "moves"

    def write(self, text):
        self.out.append(text)

    def read(self, prompt):
        assert prompt == "your move> "
        if self.want == "moves":
            self.want = "junk" if self.junk else "pick"
            line = "moves"
        elif self.want == "junk":
            self.want = "pick"
            line = self.junk.pop(0)
        else:
            self.want = "moves"
            legal = next(o for o in reversed(self.out) if o.startswith("legal moves: "))
            legal = legal.split(": ")[1].split()
            line = legal[self.rng.integers(len(legal))]
            self.accepted.append(line)
        self.typed.append(line)
        return line + "\n"


def _full(moves):
    g = np.full((1, 60), -1, dtype=np.int8)
    g[0, : len(moves)] = moves
    return g


def test_a_whole_game_with_junk_and_illegal_input(model):
    p = Player(0)
    res = human_game(ModelPolicy(model, greedy=True, task="othello", seed=0), True, p.read, p.write)
    assert res["result"] in ("win", "loss", "draw") and res["human"] == "black"
    validate_games(_full(res["moves"]))  # a legal, finished game
    assert res["black"] + res["white"] <= 64
    text = "\n".join(p.out)
    for expect in ("not a square name: 'zz'", "not a square name: 'i9'",
                   "you cannot pass: you have a legal move", "d4 is not a legal move",
                   "Type a square such as d3", "not a square name: 'd3x'", "Game over: black "):
        assert expect in text, expect
    # every accepted move is in the game, at the person's turns (black: even plies without passes)
    assert [parse_square(m) for m in p.accepted] == [m for m in res["moves"]
                                                      if m in {parse_square(a) for a in p.accepted}]
    # the model's lines: its move, then its choices with probabilities and legal mass
    plays = [o for o in p.out if o.startswith("The model (white) plays ")]
    choices = [o for o in p.out if o.startswith("model's choices: ")]
    assert len(plays) == len(choices) > 20
    assert all("%" in c and "on legal moves" in c for c in choices)


def test_every_game_ends_and_forced_passes_are_played_for_both(model):
    """Seeds until the person has to pass (about a third of random games hold a pass)."""
    seen_human_pass = seen_model_pass = False
    for seed in range(40):
        p = Player(seed, junk=())
        res = human_game(ModelPolicy(model, greedy=True, task="othello", seed=seed), seed % 2 == 0,
                         p.read, p.write)
        assert res["result"] in ("win", "loss", "draw")
        validate_games(_full(res["moves"]))
        seen_human_pass |= "You have no legal move: you pass." in p.out
        seen_model_pass |= any(o.endswith("has no legal move and passes.") for o in p.out)
        if seen_human_pass and seen_model_pass:
            break
    assert seen_human_pass and seen_model_pass


def test_model_probabilities(model):
    hist = [19, 18, 17]
    probs = model_probs(model, hist)
    assert probs.shape == (64,) and probs.sum() == pytest.approx(1.0)
    assert (probs[[27, 28, 35, 36]] == 0).all() and (probs[[0, 63]] > 0).all()
    top = model_choices(model, hist, 3)
    assert [s for s, _ in top] == list(np.argsort(-probs, kind="stable")[:3])
    assert model_probs(model, []) is None and model_choices(model, np.full(60, -1), 3) == []
    mask = np.zeros(65, dtype=np.int8)
    mask[top[0][0]] = 1
    line = format_choices(probs, mask, 3)
    assert line.count("(illegal)") == 2 and f"on legal moves {probs[top[0][0]]:.1%}" in line
    # the policy plays the most probable legal move
    legal = np.zeros(65, dtype=np.int8)
    legal[[9, 10, 11, 12]] = 1  # any mask will do for the argmax
    act = ModelPolicy(model, greedy=True, task="othello").act(None, {"action_mask": legal,
                                                                     "moves": hist})
    assert act == [9, 10, 11, 12][int(np.argmax(probs[[9, 10, 11, 12]]))]


# ----------------------------------------------------------------------------------------------
# The command, through stdin


def test_cli_plays_the_same_game_as_the_api(runs, model):
    p = Player(3)
    human_game(ModelPolicy(model, greedy=True, task="othello", seed=0), True, p.read, p.write)
    r = human(runs["othello"], "--weights", "ema", input="".join(t + "\n" for t in p.typed))
    assert r.exit_code == 0, r.output + r.stderr
    assert "Game over: black " in r.stdout
    assert r.stdout.strip().splitlines()[-1] == next(o for o in p.out if o.startswith("Game over"))
    assert r.stdout.count("The model (white) plays ") == sum(
        o.startswith("The model (white) plays ") for o in p.out)


def test_cli_end_of_input_and_quit_end_cleanly(runs):
    r = human(runs["othello"], input="")
    assert r.exit_code == 0 and "End of input: the game is abandoned." in r.stdout
    assert r.stdout.count("your move> ") == 1
    r = human(runs["othello"], input="zz\n\nq9\nh9\n")  # only junk, then EOF: re-asked each time
    assert r.exit_code == 0 and r.stdout.count("your move> ") == 5
    assert r.stdout.count("not a square name") == 3 and "Traceback" not in r.output
    r = human(runs["othello"], input="d3\nquit\nd3\n")
    assert r.exit_code == 0 and "You stopped the game." in r.stdout
    assert r.stdout.count("The model (white) plays ") == 1  # nothing read after quit


def test_cli_colour_the_model_plays_black_and_moves_first(runs):
    r = human(runs["othello"], "--color", "black", input="quit\n")
    assert r.exit_code == 0, r.output + r.stderr
    lines = r.stdout.splitlines()
    assert "You play white (O); the model plays black." in lines[1]
    assert lines[2].startswith("The model (black) plays ")
    assert "model's choices: none (an empty board gives the model no input" in lines[3]


def test_cli_several_games_alternate_colours_and_write_gifs(runs, tmp_path, model):
    from PIL import Image

    games = []
    for human_black, seed in ((True, 1), (False, 2)):
        p = Player(seed, junk=())
        res = human_game(ModelPolicy(model, greedy=True, task="othello", seed=5), human_black,
                         p.read, p.write)
        games.append((p.typed, res))
    text = "".join(t + "\n" for typed, _ in games for t in typed)
    gif = tmp_path / "g.gif"
    r = human(runs["othello"], "--games", 2, "--seed", 5, "--weights", "ema", "--gif", gif,
              input=text)
    assert r.exit_code == 0, r.output + r.stderr
    assert "-- game 1 of 2 --" in r.stdout and "-- game 2 of 2 --" in r.stdout
    assert "You play black (X)" in r.stdout and "You play white (O)" in r.stdout
    assert "in 2 finished games." in r.stdout
    assert sorted(os.listdir(tmp_path)) == ["g-1.gif", "g-2.gif"]
    for k, (_, res) in enumerate(games):
        with Image.open(tmp_path / f"g-{k + 1}.gif") as im:
            assert im.n_frames == len(res["moves"]) + 1 + 0  # implicit passes: no extra frame


def test_cli_gif_of_an_abandoned_game(runs, tmp_path):
    from PIL import Image

    gif = tmp_path / "one.gif"
    r = human(runs["othello"], "--gif", gif, input="d3\n")
    assert r.exit_code == 0, r.output + r.stderr
    with Image.open(gif) as im:
        assert im.n_frames == 3  # start, d3, the model's reply
    assert f"wrote {gif}" in r.stdout


@pytest.mark.parametrize("case, match_", [
    ("opponent", "--opponent does not apply to --human"),
    ("json", "--json does not apply to --human"),
    ("opening", "--opening does not apply to --human"),
    ("opponent_weights", "--opponent-weights does not apply to --human"),
    ("two_weights", "--human plays one weights"),
    ("bema", "unknown weights 'bema'"),
    ("games0", "'--games': 0 is not in the range x>=1"),
    ("seed", "'--seed': -1 is not in the range x>=0"),
    ("setcomp", "is a setcomp run; play needs an Othello run"),
    ("missing", "no checkpoint at"),
    ("gif_dir", "is a directory"),
    ("gif_missing_dir", "does not exist"),
])
def test_bad_input_exits_2_with_one_line(runs, tmp_path, case, match_):
    oth = runs["othello"]
    args = {
        "opponent": [oth, "--opponent", oth],
        "json": [oth, "--json"],
        "opening": [oth, "--opening", 2],
        "opponent_weights": [oth, "--opponent-weights", "raw"],
        "two_weights": [oth, "--weights", "raw,ema"],
        "bema": [oth, "--weights", "bema"],
        "games0": [oth, "--games", 0],
        "seed": [oth, "--seed", -1],
        "setcomp": [runs["setcomp"]],
        "missing": [tmp_path / "nope"],
        "gif_dir": [oth, "--gif", tmp_path],
        "gif_missing_dir": [oth, "--gif", tmp_path / "no" / "g.gif"],
    }[case]
    before = sorted(os.listdir(tmp_path))
    r = human(*args, input="d3\n")
    assert r.exit_code == 2, (r.exit_code, r.output, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and match_ in lines[0], r.stderr
    assert r.stdout == "" and sorted(os.listdir(tmp_path)) == before


def test_gif_needs_human(runs, tmp_path):
    r = CliRunner().invoke(main, ["play", str(runs["othello"]), "--gif", str(tmp_path / "g.gif")])
    assert r.exit_code == 2 and "--gif needs --human" in r.stderr and not os.listdir(tmp_path)


# ----------------------------------------------------------------------------------------------
# A real terminal


def _pty_session(args, keys, timeout=120):
    """Run ``lgagent play ... --human`` on a pseudo-terminal, type ``keys`` once it prompts."""
    leader, follower = pty.openpty()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "train.cli.main", "play", *map(str, args), "--human",
                             "--num-threads", "1"], stdin=follower, stdout=follower,
                            stderr=follower, env=env, close_fds=True)
    os.close(follower)
    out, sent, deadline = b"", False, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            if not sent and b"your move> " in out:
                for k in keys:  # typed ahead: the terminal's line discipline buffers them
                    os.write(leader, k)
                sent = True
            if proc.poll() is not None and not ready:
                break
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    return proc.returncode, out.decode(errors="replace").replace("\r\n", "\n")


def test_pseudo_terminal_session_with_ctrl_d(runs):
    rc, out = _pty_session([runs["othello"]], [b"hello\n", b"a1\n", b"\x04"])
    assert rc == 0, out
    assert "not a square name: 'hello'" in out and "a1 is not a legal move" in out
    assert "hello" in out.split("your move> ")[1]  # the terminal echoed the typing
    assert "End of input: the game is abandoned." in out and "Traceback" not in out
