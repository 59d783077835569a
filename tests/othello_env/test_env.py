"""Othello-v0 (othello_env.env): Gymnasium conventions, passes, illegal moves, options, rendering, examples."""

from __future__ import annotations

import pickle
import runpy
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import othello_env  # noqa: F401  (registers Othello-v0)
from othello_env.engine import BLACK_START, WHITE_START, apply_move, legal_moves
from othello_env.env import OthelloEnv
from othello_env.render import BORDER, SIZE, board_ansi, board_rgb, square_name
from othello_env.rng import seed_state

ROOT = Path(__file__).resolve().parents[2]

# Real random games (found with the engine, passes omitted as in OthelloGPT).
# GAME_B: after its first 8 moves black has no legal placement and passes; white plays 16.
GAME_B = [19, 18, 37, 11, 3, 4, 9, 2, 16, 0, 43, 50, 51, 26, 38, 52, 25, 29, 20, 46]
# GAME_W: after its first 11 moves (black played 58) white must pass; black plays 21 and,
# white having moves again, white plays 20.
GAME_W = [37, 43, 42, 45, 44, 41, 49, 29, 40, 56, 58, 21, 20, 53, 46, 50]
FIRST_MOVES = [19, 26, 37, 44]
START_ANSI = (
    "  a b c d e f g h\n"
    "1 . . . . . . . .\n"
    "2 . . . . . . . .\n"
    "3 . . . * . . . .\n"
    "4 . . * O X . . .\n"
    "5 . . . X O * . .\n"
    "6 . . . . * . . .\n"
    "7 . . . . . . . .\n"
    "8 . . . . . . . .\n"
    "X 2  O 2  agent (black) to move\n"
)


def played(moves):
    """The history in an info["moves"] (int8 (60,), -1 padded) as a list of squares."""
    moves = np.asarray(moves)
    return moves[moves >= 0].tolist()


class scripted:
    """A policy replaying ``game``: the move after the history it is shown (picklable)."""

    def __init__(self, game):
        self.game = game

    def __call__(self, obs, info):
        return self.game[len(played(info["moves"]))]


def legal(info):
    return np.flatnonzero(info["action_mask"]).tolist()


def play_random(env, seed, rng_seed=0, max_steps=200):
    """A masked random rollout; returns the list of (obs, reward, terminated, info) per step."""
    rng = np.random.default_rng(rng_seed)
    obs, info = env.reset(seed=seed)
    out = [(obs, 0.0, False, info)]
    for _ in range(max_steps):
        obs, r, term, trunc, info = env.step(int(rng.choice(legal(out[-1][3]))))
        out.append((obs, r, term, info))
        if term:
            break
    return out


# -- Gymnasium conventions ----------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"agent_color": "white"},
        {"agent_color": "random", "render_mode": "rgb_array"},
        {"render_mode": "ansi"},
    ],
)
def test_check_env_passes_without_warnings(kwargs, capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(gym.make("Othello-v0", **kwargs).unwrapped)
    assert [str(w.message) for w in caught] == []


def test_check_env_with_policy_opponent():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(gym.make("Othello-v0", opponent=scripted_first_legal).unwrapped)
    assert [str(w.message) for w in caught] == []


def scripted_first_legal(obs, info):
    return int(np.flatnonzero(info["action_mask"])[0])


def test_make_and_spaces():
    env = gym.make("Othello-v0")
    assert isinstance(env.unwrapped, OthelloEnv)
    assert env.action_space == gym.spaces.Discrete(65)
    assert env.observation_space == gym.spaces.Box(0, 1, (3, 8, 8), np.int8)
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.int8 and obs.shape == (3, 8, 8)
    assert info["action_mask"].dtype == np.int8 and info["action_mask"].shape == (65,)
    assert legal(info) == FIRST_MOVES and played(info["moves"]) == []
    # plane 0 = agent (black) on 28, 35; plane 1 = opponent on 27, 36; plane 2 = legal moves
    assert np.flatnonzero(obs[0]).tolist() == [28, 35]
    assert np.flatnonzero(obs[1]).tolist() == [27, 36]
    assert np.flatnonzero(obs[2]).tolist() == FIRST_MOVES
    assert env.unwrapped.action_masks().dtype == bool
    assert np.flatnonzero(env.unwrapped.action_masks()).tolist() == FIRST_MOVES


def test_module_prefixed_id_imports_package():
    code = "import gymnasium as gym; e = gym.make('othello_env:Othello-v0'); print(type(e.unwrapped).__name__)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "OthelloEnv"


def test_full_random_game_rewards_and_moves():
    env = OthelloEnv()
    steps = play_random(env, seed=1)
    obs, r, term, info = steps[-1]
    assert term
    black, white = env.boards()
    diff = bin(black).count("1") - bin(white).count("1")
    assert r == float(np.sign(diff))
    assert all(s[1] == 0.0 for s in steps[:-1])
    assert not info["illegal_action"] and legal(info) == []
    assert obs[2].sum() == 0
    moves = played(info["moves"])
    assert len(set(moves)) == len(moves) and not set(moves) & {27, 28, 35, 36}
    assert replay_with_engine(moves) == (black, white)  # the history reproduces the final board
    with pytest.raises(ValueError, match="reset"):
        env.step(0)


def replay_with_engine(moves):
    """(black, white) after a move list, passes implied, using only the engine."""
    me, opp, black_to_move = int(BLACK_START), int(WHITE_START), True
    for sq in moves:
        if legal_moves(me, opp) == 0:
            me, opp, black_to_move = opp, me, not black_to_move
        assert (legal_moves(me, opp) >> sq) & 1
        me, opp = apply_move(me, opp, sq)
        me, opp, black_to_move = opp, me, not black_to_move
    return (me, opp) if black_to_move else (opp, me)


def test_agent_white_opponent_moves_first():
    env = OthelloEnv(agent_color="white")
    obs, info = env.reset(seed=5)
    assert env.color == "white" and len(played(info["moves"])) == 1 and played(info["moves"])[0] in FIRST_MOVES
    assert obs[0].sum() == 1 and obs[1].sum() == 4  # white lost one disc to black's first move


def test_random_colour_uses_seeded_stream():
    env = OthelloEnv(agent_color="random")
    colours = []
    for s in range(16):
        env.reset(seed=s)
        colours.append(env.color)
    assert set(colours) == {"black", "white"}
    again = []
    for s in range(16):
        env.reset(seed=s)
        again.append(env.color)
    assert again == colours


# -- determinism, pickling ------------------------------------------------------


def test_seeded_determinism():
    a = play_random(OthelloEnv(), seed=7, rng_seed=3)
    b = play_random(OthelloEnv(), seed=7, rng_seed=3)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert np.array_equal(x[0], y[0]) and x[1] == y[1] and played(x[3]["moves"]) == played(y[3]["moves"])
    c = play_random(OthelloEnv(), seed=8, rng_seed=3)
    assert [played(s[3]["moves"]) for s in c] != [played(s[3]["moves"]) for s in a]


def test_reset_without_seed_continues_the_stream():
    a, b = OthelloEnv(agent_color="white"), OthelloEnv(agent_color="white")
    firsts_a, firsts_b = [], []
    for env, firsts in ((a, firsts_a), (b, firsts_b)):
        firsts.append(env.reset(seed=3)[1]["moves"][0])
        for _ in range(30):  # the opponent's first move, drawn from the continuing stream
            firsts.append(env.reset()[1]["moves"][0])
    assert firsts_a == firsts_b
    assert (
        len(set(firsts_a)) == 4
    )  # all four openings turn up: the stream moves on between episodes


def test_seed_state_is_splitmix64():
    # splitmix64 reference outputs for state 0: first output is 0xE220A8397B1DCDAF
    assert int(seed_state(0)) == 0xE220A8397B1DCDAF
    assert seed_state(1) != seed_state(0)


def test_pickle_mid_game_continues_identically():
    env = OthelloEnv(agent_color="random")
    obs, info = env.reset(seed=11)
    for _ in range(5):
        obs, _, _, _, info = env.step(legal(info)[0])
    clone = pickle.loads(pickle.dumps(env))
    rng = np.random.default_rng(0)
    info_c = info
    for _ in range(100):
        a = int(rng.choice(legal(info)))
        o1, r1, t1, _, info = env.step(a)
        o2, r2, t2, _, info_c = clone.step(a)
        assert np.array_equal(o1, o2) and r1 == r2 and t1 == t2 and played(info["moves"]) == played(info_c["moves"])
        if t1:
            break
    assert t1


# -- passes ---------------------------------------------------------------------


def test_agent_must_pass_with_action_64():
    env = OthelloEnv(agent_color="black", opponent=scripted(GAME_B))
    obs, info = env.reset(seed=0)
    for k in range(0, 8, 2):
        assert GAME_B[k] in legal(info)
        obs, r, term, _, info = env.step(GAME_B[k])
        assert not term and r == 0.0
    assert played(info["moves"]) == GAME_B[:8]
    assert legal(info) == [64] and obs[2].sum() == 0
    clone = pickle.loads(pickle.dumps(env))
    _, r, term, _, inf = clone.step(16)  # a placement is illegal while black must pass
    assert term and r == -1.0 and inf["illegal_action"]
    _, _, term, _, info = env.step(64)
    # after the pass white played GAME_B[8] = 16 and black is to move again
    assert not term and played(info["moves"]) == GAME_B[:9]
    assert GAME_B[9] in legal(info)
    _, _, _, _, info = env.step(GAME_B[9])
    assert played(info["moves"]) == GAME_B[:11]


def test_pass_is_illegal_when_a_placement_exists():
    env = OthelloEnv()
    env.reset(seed=0)
    _, r, term, _, info = env.step(64)
    assert term and r == -1.0 and info["illegal_action"]


def test_opponent_pass_is_automatic():
    env = OthelloEnv(agent_color="black", opponent=scripted(GAME_W))
    _, info = env.reset(seed=0)
    for k in range(0, 10, 2):
        _, _, _, _, info = env.step(GAME_W[k])
    assert played(info["moves"]) == GAME_W[:10]
    _, r, term, _, info = env.step(GAME_W[10])
    # white had no move: the env passed for it, black moves again
    assert not term and r == 0.0 and played(info["moves"]) == GAME_W[:11]
    assert GAME_W[11] in legal(info) and 64 not in legal(info)
    _, _, _, _, info = env.step(GAME_W[11])
    assert played(info["moves"]) == GAME_W[:13]


# -- illegal actions ----------------------------------------------------------


def test_illegal_action_terminates_by_default():
    env = OthelloEnv()
    obs0, _ = env.reset(seed=0)
    obs, r, term, trunc, info = env.step(0)
    assert term and not trunc and r == -1.0 and info["illegal_action"] is True
    assert np.array_equal(obs[:2], obs0[:2]) and obs[2].sum() == 0 and legal(info) == []
    with pytest.raises(ValueError):
        env.step(19)


def test_illegal_action_raise_leaves_state_unchanged():
    env = OthelloEnv(illegal_action="raise")
    ref = OthelloEnv()
    env.reset(seed=4)
    ref.reset(seed=4)
    with pytest.raises(ValueError, match="illegal action 0; legal actions: \\[19, 26, 37, 44\\]"):
        env.step(0)
    with pytest.raises(ValueError, match="illegal action 64"):
        env.step(64)
    o1, r1, t1, _, i1 = env.step(19)
    o2, r2, t2, _, i2 = ref.step(19)
    assert np.array_equal(o1, o2) and played(i1["moves"]) == played(i2["moves"]) and i1["illegal_action"] is False


@pytest.mark.parametrize("bad", [65, -1, 3.0, "a", None, np.array([1, 2])])
def test_out_of_space_actions_raise(bad):
    env = OthelloEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action must be an integer"):
        env.step(bad)
    env.step(np.int64(19))  # the env is still usable


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="agent_color"):
        OthelloEnv(agent_color="red")
    with pytest.raises(ValueError, match="illegal_action"):
        OthelloEnv(illegal_action="ignore")
    with pytest.raises(ValueError, match="render_mode"):
        OthelloEnv(render_mode="video")
    with pytest.raises(ValueError, match="opponent must be None, one of 'random', 'greedy', 'alphabeta', a callable"):
        OthelloEnv(opponent=42)
    with pytest.raises(ValueError, match="^unknown opponent 'Greedy'; built-in opponents: random, greedy, alphabeta$"):
        OthelloEnv(opponent="Greedy")


# -- opponents ------------------------------------------------------------------


class Recorder:
    """A policy object: first legal move; records what it is shown."""

    def __init__(self):
        self.seen = []

    def act(self, observation, info):
        self.seen.append((observation.copy(), info["action_mask"].copy(), list(played(info["moves"]))))
        return int(np.flatnonzero(info["action_mask"])[0])


def test_policy_object_opponent_sees_its_own_side():
    rec = Recorder()
    env = OthelloEnv(agent_color="white", opponent=rec)
    obs, info = env.reset(seed=0)
    obs_b, mask_b, moves_b = rec.seen[0]
    # black moved first from the start: its planes are [black, white, legal]
    assert np.flatnonzero(obs_b[0]).tolist() == [28, 35]
    assert np.flatnonzero(mask_b).tolist() == FIRST_MOVES and moves_b == []
    assert played(info["moves"]) == [19]
    _, _, _, _, info = env.step(legal(info)[0])
    assert len(rec.seen) == 2 and rec.seen[1][2] == played(info["moves"])[:2]


def game_of(env, seed, agent_seed=0):
    """One whole game against ``env``'s opponent, a random masked agent: the final moves and reward."""
    rng = np.random.default_rng(agent_seed)
    _, info = env.reset(seed=seed)
    done = False
    while not done:
        _, reward, done, _, info = env.step(int(rng.choice(legal(info))))
    return played(info["moves"]), reward


def test_built_in_opponents_by_name():
    """"random" is the default opponent; "alphabeta" in the kernel plays as make_policy("alphabeta")
    asked through act (it draws nothing); "greedy" differs from both."""
    from othello_env.opponents import make_policy

    for seed in range(4):
        for colour in ("black", "white"):
            default = game_of(OthelloEnv(agent_color=colour), seed)
            assert game_of(OthelloEnv(agent_color=colour, opponent="random"), seed) == default
            kernel = game_of(OthelloEnv(agent_color=colour, opponent="alphabeta"), seed)
            assert game_of(OthelloEnv(agent_color=colour, opponent=make_policy("alphabeta")), seed) == kernel
            assert kernel != default
    env = OthelloEnv(opponent="greedy")
    assert env.opponent == "greedy" and game_of(env, 0) != game_of(OthelloEnv(), 0)
    assert game_of(env, 5) == game_of(OthelloEnv(opponent="greedy"), 5)  # seeded tie-breaks


def test_agents_random_policy_as_opponent():
    from agents.policies import RandomPolicy

    env = OthelloEnv(opponent=RandomPolicy(seed=0))
    steps = play_random(env, seed=0)
    assert steps[-1][2]


def test_opponent_illegal_answer_raises():
    env = OthelloEnv(opponent=lambda obs, info: 0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="opponent policy returned illegal action 0"):
        env.step(19)
    with pytest.raises(ValueError, match="reset"):
        env.step(18)


# -- reset options ----------------------------------------------------------------


def test_reset_from_moves():
    env = OthelloEnv(agent_color="white", opponent=scripted(GAME_B))
    obs, info = env.reset(seed=0, options={"moves": GAME_B[:5]})
    # after 5 moves white (the agent) is to move
    assert played(info["moves"]) == GAME_B[:5] and GAME_B[5] in legal(info)
    env = OthelloEnv(agent_color="black", opponent=scripted(GAME_B))
    obs, info = env.reset(seed=0, options={"moves": GAME_B[:5]})
    # white (the opponent) was to move and replied first
    assert played(info["moves"]) == GAME_B[:6]
    # after GAME_B[:8] black has no move: the list implies black's pass, white replies 16
    obs, info = env.reset(seed=0, options={"moves": GAME_B[:8]})
    assert played(info["moves"]) == GAME_B[:9] and GAME_B[9] in legal(info)


@pytest.mark.parametrize(
    "moves,match",
    [
        ([19, 99], r"options\['moves'\]\[1\] = 99 is not a square"),
        ([19, 0], r"options\['moves'\]\[1\] = 0 is not a legal move"),
        ([19, 19], r"options\['moves'\]\[1\] = 19 is not a legal move"),
        ([[19]], "flat list"),
        ([19.5], "flat list"),
        ("19", "flat list"),
    ],
)
def test_reset_bad_moves(moves, match):
    env = OthelloEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.reset(options={"moves": moves})


def test_reset_moves_that_end_the_game_and_unknown_option():
    # a shortest Othello game (found by search with the engine): white wiped out after 9 moves
    wipeout = [19, 18, 17, 11, 4, 43, 51, 20, 29]
    env = OthelloEnv()
    with pytest.raises(ValueError, match="ends the game"):
        env.reset(options={"moves": wipeout})
    with pytest.raises(ValueError, match="already over before this move"):
        env.reset(options={"moves": wipeout + [0]})
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"move": [19]})


# -- rendering --------------------------------------------------------------------


def test_render_ansi_literal():
    env = OthelloEnv(render_mode="ansi")
    env.reset(seed=0)
    assert env.render() == START_ANSI


def test_render_rgb_array_pixels():
    env = gym.make("Othello-v0", render_mode="rgb_array")
    env.reset(seed=0)
    img = env.render()
    assert img.dtype == np.uint8 and img.shape == (SIZE, SIZE, 3)

    def centre(sq):
        r, c = divmod(sq, 8)
        return img[BORDER + r * 32 + 16, BORDER + c * 32 + 16]

    assert centre(28).tolist() == [15, 15, 15]  # black disc
    assert centre(27).tolist() == [240, 240, 240]  # white disc
    assert centre(19).tolist() == [255, 200, 0]  # legal-move dot
    assert centre(0).tolist() == [0, 120, 60]  # empty board


def test_render_human_prints(capsys):
    env = OthelloEnv(render_mode="human")
    env.reset(seed=0)
    assert capsys.readouterr().out.startswith(START_ANSI.rstrip("\n").rsplit("\n", 1)[0])
    env.step(19)
    out = capsys.readouterr().out
    assert "agent (black) to move" in out and env.render() is None


def test_render_without_mode_warns():
    env = OthelloEnv()
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert env.render() is None


def test_render_helpers():
    assert square_name(0) == "a1" and square_name(19) == "d3" and square_name(63) == "h8"
    assert square_name(64) == "pass"
    with pytest.raises(ValueError):
        square_name(65)
    text = board_ansi(1 << 63, 1, 0, None)
    assert text.splitlines()[1].startswith("1 O") and text.splitlines()[8].endswith("X")
    img = board_rgb(0, 0, 0)
    assert (img[BORDER + 16, BORDER + 16] == [0, 120, 60]).all()


# -- examples -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["masked_random_rollout.py", "pettingzoo_loop.py"])
def test_examples_run(name, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [name, "--episodes", "3"])
    runpy.run_path(str(ROOT / "examples" / name), run_name="__main__")
    out = capsys.readouterr().out
    assert "episodes" in out


def test_benchmark_script_prints_json():
    import json

    cmd = [
        sys.executable,
        "benchmarks/envs.py",
        "--single-steps",
        "300",
        "--vector-steps",
        "3",
        "--sizes",
        "16",
        "--repeats",
        "1",
        "--no-peers",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    result = json.loads(out.stdout)
    assert (
        result["single"]["othello_steps_per_s"] > 0 and result["single"]["cartpole_steps_per_s"] > 0
    )
    assert (
        result["single"]["ratio_vs_cartpole"] > 0 and result["vector"]["16"]["env_steps_per_s"] > 0
    )
    assert "pgx" not in result
    for bad_args in (["--sizes", "0"], ["--pgx-steps", "0"]):  # pgx-steps 0 printed 0 env-steps/s
        bad = subprocess.run(cmd[:2] + bad_args, capture_output=True, text=True, cwd=ROOT)
        assert bad.returncode == 2 and "positive" in bad.stderr, bad_args


def test_benchmark_action_picker_is_uniform_over_legal_moves():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from envs import random_legal_actions
    finally:
        sys.path.pop(0)
    mask = np.zeros((3000, 65), np.int8)
    mask[:, [19, 26, 37]] = 1
    mask[2000:] = 0
    mask[2000:, 64] = 1  # rows that must pass
    out = np.zeros(3000, np.int64)
    random_legal_actions(mask, np.array([7], np.uint64), out)
    counts = np.bincount(out[:2000], minlength=65)
    assert np.flatnonzero(counts).tolist() == [19, 26, 37] and counts[[19, 26, 37]].min() > 550
    assert (out[2000:] == 64).all()


def test_bad_argument_errors_are_one_line():
    """Arrays and long lists in error messages: described in one short line, not their repr."""
    from othello_env.pettingzoo import raw_env

    env = OthelloEnv()
    env.reset(seed=0)
    grid = np.arange(4).reshape(2, 2)
    cases = [
        (lambda: env.step(grid), "action must be an integer in 0..64, got an array of shape (2, 2)"),
        (lambda: env.reset(options={"moves": grid}), "got an array of shape (2, 2) and dtype int64"),
        (lambda: env.reset(options={"moves": list(range(100)) + [1.5]}), "got [0, 1, 2"),
        (lambda: OthelloEnv(opponent=lambda o, i: grid).reset(seed=0) and None, None),
        (lambda: OthelloEnv(agent_color=np.array(["black"])), "agent_color must be"),
        (lambda: OthelloEnv(illegal_action=["raise"]), "illegal_action must be"),
        (lambda: raw_env().step(np.eye(3)), "got an array of shape (3, 3)"),
        (lambda: othello_env.generate_games(grid), "n must be a non-negative integer, got an array"),
        (lambda: othello_env.perft(grid), "depth must be an integer, got an array"),
    ]
    wait = OthelloEnv(agent_color="white", opponent=lambda o, i: grid)
    cases[3] = (lambda: wait.reset(seed=0), "the opponent policy returned an array of shape (2, 2)")
    for call, expected in cases:
        with pytest.raises(ValueError) as e:
            call()
        msg = str(e.value)
        assert "\n" not in msg and len(msg) < 160 and expected in msg, msg


# Full random games (generate_games(20, seed=0), games 0, 4 and 11) with their final disc
# difference black - white: a black win, a white win and a 32-32 draw.
BLACK_WINS = [44, 43, 18, 53, 34, 20, 21, 33, 13, 19, 41, 37, 38, 29, 51, 39, 30, 50, 25, 52,
              61, 32, 59, 14, 54, 31, 23, 12, 45, 62, 63, 16, 3, 4, 48, 22, 10, 15, 17, 26,
              11, 1, 2, 8, 49, 60, 5, 42, 9, 24, 58, 57, 0, 6, 56, 55, 7, 46, 47, 40]  # +46
WHITE_WINS = [26, 18, 37, 34, 17, 45, 33, 41, 19, 32, 48, 12, 25, 43, 44, 9, 51, 40, 0, 11,
              54, 56, 16, 59, 10, 21, 20, 13, 14, 52, 58, 50, 49, 42, 60, 63, 57, 6, 29, 7,
              38, 53, 22, 8, 30, 31, 46, 61, 62, 24, 15, 23, 4, 39, 5, 3, 2, 1, 47, 55]  # -36
DRAWN = [19, 34, 45, 11, 10, 54, 44, 29, 12, 52, 37, 3, 60, 59, 63, 1, 26, 18, 22, 61,
         9, 46, 21, 30, 2, 43, 13, 47, 4, 15, 39, 31, 0, 5, 6, 17, 53, 38, 20, 62,
         25, 24, 55, 16, 58, 51, 42, 50, 33, 41, 40, 48, 8, 23, 56, 49, 32, 7, 14, 57]  # 0


@pytest.mark.parametrize(
    "game, colour, reward",
    [(BLACK_WINS, "black", 1.0), (BLACK_WINS, "white", -1.0), (WHITE_WINS, "black", -1.0),
     (WHITE_WINS, "white", 1.0), (DRAWN, "black", 0.0), (DRAWN, "white", 0.0)],
)
def test_final_reward_win_loss_draw(game, colour, reward):
    """The last step's reward is +1 / -1 / 0 from the agent's side (the draw was never played)."""
    othello_env.validate_games(np.array([game], np.int8))
    env = OthelloEnv(agent_color=colour, opponent=scripted(game))
    _, info = env.reset(seed=0)
    term, rewards = False, []
    while not term:
        a = game[len(played(info["moves"]))] if len(played(info["moves"])) < 60 else 64
        _, r, term, _, info = env.step(a if info["action_mask"][a] else 64)
        rewards.append(r)
    assert played(info["moves"]) == game and not info["illegal_action"]
    assert rewards[-1] == reward and set(rewards[:-1]) <= {0.0}


def test_bad_reset_options_leave_the_seed_alone():
    """A refused reset changes nothing: np_random was re-seeded before the options were checked."""
    env = OthelloEnv()
    env.reset(seed=1)
    for options in ({"moves": [19, 99]}, {"colour": "white"}):
        with pytest.raises(ValueError):
            env.reset(seed=2, options=options)
        assert env.np_random_seed == 1


def test_random_opponent_draws_exactly_like_generate_games():
    """The opponent's move sampler is rng.below (multiply-and-reject), not a biased multiply-shift.

    0x83C9...9FB1 is a state whose next splitmix64 output has 32 zero high bits (built by
    inverting the mixer): multiply-shift alone takes the lowest of three moves there, while
    Lemire's method rejects that draw and takes the next one.
    """
    from othello_env.rng import GOLDEN, below, mix64, random_square

    moves = np.uint64((1 << 19) | (1 << 26) | (1 << 37))
    special = np.uint64(0x83C953D1D0EE9FB1)
    assert int(mix64(np.uint64((int(special) + int(GOLDEN)) % 2**64))) >> 32 == 0
    states = [special] + [np.uint64(s) for s in np.random.default_rng(0).integers(0, 2**63, 200)]
    for s in states:
        k, state = below(s, 3)
        assert random_square(s, moves) == ([19, 26, 37][k], state)


def test_moves_info_is_a_fixed_size_array_buffers_can_stack():
    """info["moves"] is int8 (60,), -1 padded (a list growing every step broke Tianshou's buffer)."""
    env = OthelloEnv()
    _, info = env.reset(seed=2)
    infos = [info]
    rng = np.random.default_rng(0)
    done = False
    while not done:
        _, _, term, trunc, info = env.step(int(rng.choice(legal(info))))
        infos.append(info)
        done = term or trunc
    stacked = np.stack([i["moves"] for i in infos])
    assert stacked.shape == (len(infos), 60) and stacked.dtype == np.int8
    assert (stacked[0] == -1).all()
    final = stacked[-1]
    othello_env.validate_games(final[None])  # a finished game: a row of a games array
    for row in stacked:  # squares then padding only
        n = len(played(row))
        assert (row[:n] >= 0).all() and (row[n:] == -1).all()
    infos[-1]["moves"][0] = 99  # a copy each time: the env's history is untouched
    assert env._hist[0, 0] != 99


def test_bool_actions_and_a_bool_opponent_reply_are_refused():
    from othello_env.arguments import call_policy

    o = gym.make("othello_env:Othello-v0").unwrapped
    o.reset(seed=0)
    # refused by the check itself, not by NumPy (NumPy < 2 lets operator.index take np.bool_)
    for a in (True, np.bool_(True), np.array(True)):
        with pytest.raises(ValueError, match="action must be an integer in 0..64"):
            o.step(a)
    with pytest.raises(ValueError, match="the opponent policy returned .*True.*, not an integer"):
        call_policy(lambda obs, info: np.bool_(True), None, np.ones(65, bool), None)
