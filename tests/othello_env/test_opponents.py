"""othello_env.opponents: the built-in players (random, greedy, alpha-beta) and batched model opponents.

Greedy and alpha-beta are checked against plain-Python references of their documented
rules, both jitted and under NUMBA_DISABLE_JIT; their strength with train.analysis.play.match;
a BatchedModelPolicy inside the native vector env against ModelPolicy inside Othello-v0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from agents import GPT, ModelPolicy, preset
from agents.policies import BatchedModelPolicy
from othello_env import generate_games, legal_move_masks
from othello_env.engine import flips, legal_moves
from othello_env.env import OthelloEnv
from othello_env.opponents import OPPONENT_NAMES, make_policy
from othello_env.vector import OthelloVectorEnv
from train.analysis.play import match

ROOT = Path(__file__).resolve().parents[2]
OPENINGS = [19, 26, 37, 44]

# Norvig, PAIP ch. 18, typed in again here (not imported) as the reference evaluation.
WEIGHTS = [
    120, -20, 20, 5, 5, 20, -20, 120,
    -20, -40, -5, -5, -5, -5, -40, -20,
    20, -5, 15, 3, 3, 15, -5, 20,
    5, -5, 3, 3, 3, 3, -5, 5,
    5, -5, 3, 3, 3, 3, -5, 5,
    20, -5, 15, 3, 3, 15, -5, 20,
    -20, -40, -5, -5, -5, -5, -40, -20,
    120, -20, 20, 5, 5, 20, -20, 120,
]  # fmt: skip


def squares(board: int) -> list[int]:
    out = []
    while board:
        low = board & -board
        out.append(low.bit_length() - 1)
        board ^= low
    return out


def position(moves):
    """(me, opp) to move after a list of squares, forced passes resolved (plain Python)."""
    me, opp = (1 << 28) | (1 << 35), (1 << 27) | (1 << 36)
    for sq in moves:
        assert legal_moves(me, opp) >> sq & 1
        f = flips(me, opp, sq)
        me, opp = opp & ~f, me | f | (1 << sq)
        if not legal_moves(me, opp):
            me, opp = opp, me
    return me, opp


def play(me, opp, sq):
    f = flips(me, opp, sq)
    return opp & ~f, me | f | (1 << sq)  # the next mover's side


def ref_value(me, opp, depth):
    """Plain minimax (no pruning) of the documented evaluation, from the mover's side."""
    mine, theirs = legal_moves(me, opp), legal_moves(opp, me)
    if not mine and not theirs:
        d = bin(me).count("1") - bin(opp).count("1")
        return (d > 0) * (2**20 + d) + (d < 0) * (-(2**20) + d)
    if depth == 0:
        w = sum(WEIGHTS[s] for s in squares(me)) - sum(WEIGHTS[s] for s in squares(opp))
        return w + 5 * (bin(mine).count("1") - bin(theirs).count("1"))
    if not mine:
        return -ref_value(opp, me, depth - 1)
    return max(-ref_value(*play(me, opp, s), depth - 1) for s in squares(mine))


def ref_alphabeta(me, opp, allowed, depth):
    values = [(-ref_value(*play(me, opp, s), depth - 1), s) for s in allowed]
    best = max(v for v, _ in values)
    return min(s for v, s in values if v == best)  # ties: the lowest square


def ref_greedy_ties(me, opp, allowed):
    """The squares greedy may choose: most flips, then the highest square weight."""
    keys = {s: (bin(flips(me, opp, s)).count("1"), WEIGHTS[s]) for s in allowed}
    top = max(keys.values())
    return {s for s, k in keys.items() if k == top}


def positions(n_games=12, seed=5, every=7):
    """(history int8 (60,) -1 padded, mask int8 (65,)) at every ``every``-th ply of random games."""
    games = generate_games(n_games, seed)
    masks = legal_move_masks(games)
    out = []
    for g, m in zip(games, masks):
        n = int((g >= 0).sum())
        for p in range(1, n, every):
            hist = np.full(60, -1, np.int8)
            hist[:p] = g[:p]
            mask = np.zeros(65, np.int8)
            mask[:64] = m[p - 1]
            out.append((hist, mask))
    return out


# -- the rules ---------------------------------------------------------------------------------


def test_alphabeta_equals_plain_minimax_of_the_documented_evaluation():
    pos = positions(n_games=6, every=5)
    hists = np.stack([h for h, _ in pos])
    masks = np.stack([m for _, m in pos])
    for depth in (1, 2, 3):
        if depth == 3:  # the plain-Python reference is slow: every third position
            pos, hists, masks = pos[::3], hists[::3], masks[::3]
        got = make_policy("alphabeta", depth=depth).act_batch(masks, hists)
        for (hist, mask), sq in zip(pos, got):
            me, opp = position(hist[hist >= 0].tolist())
            assert sq == ref_alphabeta(me, opp, np.flatnonzero(mask[:64]).tolist(), depth)
    # restricted to a sub-mask: it chooses among the allowed squares only
    hist, mask = pos[3]
    legal = np.flatnonzero(mask[:64])
    sub = np.zeros(65, np.int8)
    sub[legal[-2:]] = 1
    me, opp = position(hist[hist >= 0].tolist())
    assert make_policy("alphabeta").act({}, {"action_mask": sub, "moves": hist}) == \
        ref_alphabeta(me, opp, legal[-2:].tolist(), 3)


def test_greedy_flips_the_most_and_draws_among_ties():
    pos = positions()
    pol = make_policy("greedy", seed=0)
    for hist, mask in pos:
        me, opp = position(hist[hist >= 0].tolist())
        assert pol.act({}, {"action_mask": mask, "moves": hist}) in ref_greedy_ties(
            me, opp, np.flatnonzero(mask[:64]).tolist())
    # the four openings tie (one disc each, weight -1): the seeded draw covers them
    start = np.zeros(65, np.int8)
    start[OPENINGS] = 1
    draws = make_policy("greedy", seed=1).act_batch(np.tile(start, (200, 1)), [[]] * 200)
    assert set(draws.tolist()) == set(OPENINGS)
    again = make_policy("greedy", seed=1).act_batch(np.tile(start, (200, 1)), [[]] * 200)
    assert np.array_equal(draws, again)  # same seed, same draws
    # with rngs, each game draws from its own generator: the same generators give the same moves
    rngs = [np.random.default_rng([4, i]) for i in range(50)]
    a = make_policy("greedy", seed=9).act_batch(np.tile(start, (50, 1)), [[]] * 50, rngs)
    rngs = [np.random.default_rng([4, i]) for i in range(50)]
    b = make_policy("greedy", seed=123).act_batch(np.tile(start, (50, 1)), [[]] * 50, rngs)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("name", OPPONENT_NAMES)
def test_every_policy_plays_legal_moves_only(name):
    pol = make_policy(name, seed=3)
    pos = positions(n_games=30, seed=8, every=3)
    masks = np.stack([m for _, m in pos])
    got = pol.act_batch(masks, [h for h, _ in pos])
    assert got.dtype == np.int64 and got.shape == (len(pos),)
    assert masks[np.arange(len(pos)), got].all()
    # a forced pass is played without looking at the history
    only_pass = np.zeros(65, np.int8)
    only_pass[64] = 1
    assert pol.act({}, {"action_mask": only_pass, "moves": [19]}) == 64
    # PettingZoo form: the mask in the observation dict
    hist, mask = pos[5]
    assert pol.act({"observation": None, "action_mask": mask}, {"moves": hist}) in np.flatnonzero(mask)
    # in Othello-v0 (kernel) and through act (Python): whole games, every move legal
    from othello_env import validate_games

    for opponent in (name, pol):
        env = OthelloEnv(agent_color="random", opponent=opponent)
        rng = np.random.default_rng(0)
        for g in range(5):
            _, info = env.reset(seed=g)
            done = False
            while not done:
                _, _, done, _, info = env.step(int(rng.choice(np.flatnonzero(info["action_mask"]))))
            assert not info["illegal_action"]
            validate_games(info["moves"][None].astype(np.int8))
            if name == "greedy":  # the kernel's greedy follows the rule too (a stale Numba cache would not)
                for me, opp, sq in opponent_moves(info["moves"], env.color):
                    assert sq in ref_greedy_ties(me, opp, squares(legal_moves(me, opp)))


def opponent_moves(moves, agent_color):
    """(me, opp, square) of every move the opponent of an ``agent_color`` agent made in a game."""
    me, opp = (1 << 28) | (1 << 35), (1 << 27) | (1 << 36)
    black_to_move = True
    for sq in moves[moves >= 0].tolist():
        if black_to_move != (agent_color == "black"):
            yield me, opp, sq
        me, opp = play(me, opp, sq)
        black_to_move = not black_to_move
        if not legal_moves(me, opp):
            me, opp = opp, me
            black_to_move = not black_to_move


def test_policy_errors_are_one_line():
    cases = [
        (lambda: make_policy("minimax"), "unknown opponent 'minimax'; built-in opponents: random, greedy, alphabeta"),
        (lambda: make_policy(3), "unknown opponent 3"),
        (lambda: make_policy("alphabeta", depth=0), r"depth must be an integer in 1..8, got 0"),
        (lambda: make_policy("alphabeta", depth=True), "depth must be an integer"),
        (lambda: make_policy("greedy", seed=-1), "seed must be None or a non-negative integer"),
        (lambda: make_policy("greedy").act({}, {"action_mask": np.ones(65)}), "needs the move history"),
        (lambda: make_policy("greedy").act({}, {}), "no action mask"),
        (lambda: make_policy("greedy").act({}, {"action_mask": np.ones(64), "moves": []}), r"shape \(65,\)"),
        (lambda: make_policy("random").act({}, {"action_mask": np.zeros(65)}), "no legal action"),
        (lambda: make_policy("greedy").act_batch(np.ones((2, 65)), [[]]), "one history per mask row"),
        (lambda: make_policy("greedy").act_batch(np.ones((2, 64)), [[], []]), "numeric array of shape"),
        (lambda: make_policy("greedy").act_batch(np.ones((1, 65)), [[19, 19]]), "move 1 .square 19. is illegal"),
        (lambda: make_policy("greedy").act_batch(np.ones((1, 65)), [[70]]), "squares 0..63"),
        (lambda: make_policy("greedy").act_batch(np.ones((1, 65)), [[1.5]]), "integer squares"),
        (lambda: make_policy("greedy").act_batch(np.ones((1, 65)), [[]], rngs=[]), "rngs must be None or 1"),
    ]
    only_a1 = np.zeros(65, np.int8)
    only_a1[0] = 1
    cases.append((lambda: make_policy("alphabeta").act({}, {"action_mask": only_a1, "moves": []}),
                  "allows square 0, which is not legal after the move history"))
    for call, message in cases:
        with pytest.raises(ValueError, match=message) as e:
            call()
        assert "\n" not in str(e.value)


def test_pure_python_path_gives_the_same_moves():
    """NUMBA_DISABLE_JIT=1: the same functions as plain Python choose the same moves."""
    pos = positions(n_games=4, seed=2, every=9)
    hists = np.stack([h for h, _ in pos])
    masks = np.stack([m for _, m in pos])
    expected = {name: make_policy(name, seed=4).act_batch(masks, hists).tolist() for name in OPPONENT_NAMES}
    env = OthelloEnv(agent_color="white", opponent="alphabeta")
    _, info = env.reset(seed=1)
    _, _, _, _, info = env.step(int(np.flatnonzero(info["action_mask"])[0]))
    code = textwrap.dedent(f"""
        import numpy as np
        np.seterr(all="ignore")  # uint64 wrap-around in splitmix64 warns in NumPy scalars
        from othello_env import opponents
        from othello_env.env import OthelloEnv
        assert not hasattr(opponents.negamax, "py_func")  # really not compiled
        hists = np.array({hists.tolist()!r}, np.int8)
        masks = np.array({masks.tolist()!r}, np.int8)
        got = {{n: opponents.make_policy(n, seed=4).act_batch(masks, hists).tolist()
               for n in opponents.OPPONENT_NAMES}}
        assert got == {expected!r}, got
        env = OthelloEnv(agent_color="white", opponent="alphabeta")
        _, info = env.reset(seed=1)
        _, _, _, _, info = env.step(int(np.flatnonzero(info["action_mask"])[0]))
        assert info["moves"].tolist() == {info["moves"].tolist()!r}
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, NUMBA_DISABLE_JIT="1"),
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"


# -- strength (train.analysis.play.match: both colours, 95% Wilson interval) --------------------------------


@pytest.mark.parametrize(
    "a, b, floor",
    [("greedy", "random", 0.65), ("alphabeta", "random", 0.8), ("alphabeta", "greedy", 0.65)],
)
def test_stronger_players_win_by_a_clear_margin(a, b, floor):
    """200 games each, colours alternating; the whole 95% interval must lie above ``floor``."""
    side_b = "random" if b == "random" else make_policy(b, seed=2)
    result = match(make_policy(a, seed=1), side_b, 200, seed=0)
    assert result["games"] == 200
    assert result["score_ci_low"] > floor, result
    assert result["as_black"]["wins"] > result["as_black"]["losses"]
    assert result["as_white"]["wins"] > result["as_white"]["losses"]


# -- model opponents: BatchedModelPolicy in the vector env == ModelPolicy in Othello-v0 ---------


def tiny_model(n_layer=1, seed=0):
    """A random-weights 1-layer tiny lgagent model, weights scaled up so its choices are clear-cut."""
    torch.manual_seed(seed)
    model = GPT(preset("tiny", n_layer=n_layer, dropout=0.0))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(5.0)
    return model.eval()


@pytest.mark.parametrize("agent_color", ["black", "white"])
def test_batched_model_opponent_equals_single_env_model_policy(agent_color):
    """Row i of the vector env (reset seed s) against BatchedModelPolicy plays move for move like
    Othello-v0 (reset seed s + i) against ModelPolicy of the same model, over several episodes.

    The one random choice is the model's first move on an empty board (agent white): the vector
    env draws it from row i's generator, np.random.default_rng(s + i) (documented), the single
    env's ModelPolicy from its torch generator. So the single env starts each game from the
    opening drawn as documented (reset(options={"moves": [opening]})); all else is compared."""
    torch.set_num_threads(1)
    model = tiny_model()
    n, seed, steps = 4, 11, 110
    batched = BatchedModelPolicy(model)
    vec = OthelloVectorEnv(num_envs=n, agent_color=agent_color, opponent=batched)
    singles = [OthelloEnv(agent_color=agent_color, opponent=ModelPolicy(model, greedy=True))
               for _ in range(n)]
    draws = [np.random.default_rng(seed + i) for i in range(n)]

    def start(i, seeded):
        options = {"moves": [OPENINGS[draws[i].integers(4)]]} if agent_color == "white" else None
        return singles[i].reset(seed=seed + i if seeded else None, options=options)

    obs, info = vec.reset(seed=seed)
    for i in range(n):
        o, inf = start(i, True)
        assert np.array_equal(obs[i], o) and np.array_equal(info["action_mask"][i], inf["action_mask"])
        assert np.array_equal(vec.moves(i), inf["moves"])
    rng = np.random.default_rng(0)
    ended = np.zeros(n, bool)
    episodes = 0
    for t in range(steps):
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in info["action_mask"]])
        obs, rewards, terminated, _, info = vec.step(actions)
        for i in range(n):
            if ended[i]:  # NEXT_STEP autoreset in the vector env, a reset in the single env
                o, inf = start(i, False)
                r, done = 0.0, False
            else:
                o, r, done, _, inf = singles[i].step(int(actions[i]))
            assert np.array_equal(obs[i], o), (t, i)
            assert rewards[i] == r and terminated[i] == done, (t, i)
            expected = inf["action_mask"].copy()
            expected[64] |= done  # a row that just ended may only pass (documented)
            assert np.array_equal(info["action_mask"][i], expected), (t, i)
            assert np.array_equal(vec.moves(i), inf["moves"]), (t, i)
        ended = terminated
        episodes += int(terminated.sum())
    assert episodes >= 2 * n  # several whole games per row
    # the same model decisions, counted the same way (openings are not decisions)
    assert batched.n_decisions == sum(env.opponent.n_decisions for env in singles) > 100
    assert batched.n_illegal_choices == sum(env.opponent.n_illegal_choices for env in singles)


def test_benchmark_script_prints_json():
    """benchmarks/opponents.py on a tiny workload: JSON with both figures (not checked)."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "opponents.py"), "--num-envs", "8",
         "--vector-steps", "5", "--single-steps", "20", "--repeats", "1"],
        capture_output=True, text=True, timeout=300, check=False,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["vector"]["num_envs"] == 8 and result["vector"]["steps_per_s"] > 0
    assert result["single"]["steps_per_s"] > 0 and result["ratio"] > 0
    assert result["model"]["n_layer"] == 1
