"""`lgagent play`, train.analysis.play.match and agents.policies.BatchedModelPolicy (tiny untrained runs)."""

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from statsmodels.stats.proportion import proportion_confint

from agents import ModelPolicy, RandomPolicy
from agents import checkpoint as CK
from agents.policies import BatchedModelPolicy
from train.analysis.play import held_weights, match, play_run, score_interval
from train.cli.main import main


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_run):
    """An Othello run with EMA (no BEMA), a second Othello run, and a set complement run."""
    base = tmp_path_factory.mktemp("play")
    return {
        "othello": tiny_run(base / "oth", "--env", "othello", "--ema", "--steps", 2,
                          "--train-max-len", 20),
        "other": tiny_run(base / "oth2", "--env", "othello", "--steps", 2, "--seed", 7,
                        "--train-max-len", 20),
        "setcomp": tiny_run(base / "sc", "--env", "setcomp", "--vocab-size", 8, "--steps", 2),
    }


def play(*args):
    return CliRunner().invoke(main, ["play", *map(str, args), "--num-threads", "1"])


def _model(run, weights="raw"):
    return CK.model_from_checkpoint(CK.load(run), weights)


def _assert_counts(m, games):
    assert m["games"] == games and m["wins"] + m["draws"] + m["losses"] == games
    for side in ("as_black", "as_white"):
        s = m[side]
        assert s["wins"] + s["draws"] + s["losses"] == s["games"]
    assert m["as_black"]["games"] + m["as_white"]["games"] == games
    assert m["wins"] == m["as_black"]["wins"] + m["as_white"]["wins"]
    assert m["score"] == pytest.approx((m["wins"] + 0.5 * m["draws"]) / games)
    assert 0 <= m["score_ci_low"] <= m["score"] <= m["score_ci_high"] <= 1


# ----------------------------------------------------------------------------------------------
# The command


def test_play_json_counts_and_default_weights(runs):
    r = play(runs["othello"], "--games", 6, "--json")
    assert r.exit_code == 0, r.output + r.stderr
    res = json.loads(r.stdout)
    assert list(res["play"]) == ["raw", "ema"]  # every weights the run holds (no BEMA)
    assert res["opponent"] == "random" and res["opponent_weights"] is None and res["opening"] == 0
    for m in res["play"].values():
        _assert_counts(m, 6)
        assert m["as_black"]["games"] == 3  # --color both: half the games each
        assert 0 <= m["first_choice_legal"] <= 1 and m["decisions"] > 0
        assert isinstance(m["disc_diff"], float)


def test_play_table_and_weights_repeated_or_comma_separated(runs):
    r = play(runs["othello"], "--games", 2, "--weights", "ema", "--weights", "raw,ema")
    assert r.exit_code == 0, r.output + r.stderr
    lines = r.stdout.strip().splitlines()
    assert "vs random: 2 games" in lines[0]
    assert [ln.split()[0] for ln in lines[2:]] == ["ema", "raw"]


def test_same_seed_same_games_and_another_seed_differs(runs):
    args = (runs["othello"], "--games", 8, "--weights", "raw", "--json")
    a, b = play(*args, "--seed", 3), play(*args, "--seed", 3)
    c = play(*args, "--seed", 4)
    assert a.exit_code == b.exit_code == c.exit_code == 0
    assert json.loads(a.stdout) == json.loads(b.stdout)
    assert json.loads(a.stdout)["play"] != json.loads(c.stdout)["play"]


def test_model_vs_itself_scores_one_half(runs):
    r = play(runs["othello"], "--opponent", runs["othello"], "--weights", "ema", "--games", 10,
             "--json")
    assert r.exit_code == 0, r.output + r.stderr
    res = json.loads(r.stdout)
    assert res["opponent_weights"] == "ema" and res["opening"] == 4  # defaults vs a model
    m = res["play"]["ema"]
    _assert_counts(m, 10)
    # paired openings, colours swapped, the same greedy model on both sides: mirror games
    assert m["score"] == 0.5 and m["score_ci_low"] < 0.5 < m["score_ci_high"]
    assert m["disc_diff"] == 0
    assert m["as_black"]["wins"] == m["as_white"]["losses"]


def test_model_vs_another_run_plays_both_colours(runs):
    r = play(runs["othello"], "--opponent", runs["other"], "--games", 4, "--weights", "raw",
             "--json")
    assert r.exit_code == 0, r.output + r.stderr
    res = json.loads(r.stdout)
    assert res["opponent_weights"] == "raw"  # no EMA in the other run
    m = res["play"]["raw"]
    _assert_counts(m, 4)
    assert m["as_black"]["games"] == m["as_white"]["games"] == 2


def test_an_opponent_run_with_several_emas(runs, tiny_run, tmp_path):
    """RUN2 keeps ema_0.5 and ema_0.9 (no plain "ema"): its first EMA by default, any by name."""
    several = tiny_run(tmp_path / "several", "--env", "othello", "--ema", "--ema-decay", "0.5,0.9",
                       "--steps", 2, "--train-max-len", 20)
    r = play(runs["othello"], "--opponent", several, "--games", 2, "--weights", "raw", "--json")
    assert r.exit_code == 0, r.output + r.stderr
    assert json.loads(r.stdout)["opponent_weights"] == "ema_0.5"
    r = play(runs["othello"], "--opponent", several, "--opponent-weights", "ema_0.9", "--games", 2,
             "--weights", "raw", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["opponent_weights"] == "ema_0.9"
    r = play(runs["othello"], "--opponent", several, "--opponent-weights", "ema", "--games", 2)
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "several EMA weights (ema_0.5, ema_0.9): name one" in r.stderr


def test_color_black_and_white(runs):
    for color, black in (("black", 3), ("white", 0)):
        r = play(runs["othello"], "--games", 3, "--weights", "raw", "--color", color, "--json")
        assert r.exit_code == 0, r.output + r.stderr
        assert json.loads(r.stdout)["play"]["raw"]["as_black"]["games"] == black


@pytest.mark.parametrize("case, match_", [
    ("missing", "no checkpoint at"),
    ("bema", "no BEMA weights"),
    ("unknown_weights", "unknown weights 'best'"),
    ("games0", "'--games': 0 is not in the range x>=1"),
    ("games_neg", "'--games': -3 is not in the range x>=1"),
    ("setcomp", "is a setcomp run; play needs an Othello run"),
    ("opponent_missing", "no checkpoint at"),
    ("opponent_setcomp", "is a setcomp run"),
    ("opponent_weights_random", "--opponent-weights needs a model --opponent"),
    ("seed_neg", "'--seed': -1 is not in the range x>=0"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(runs, tmp_path, case, match_):
    oth = runs["othello"]
    args = {
        "missing": [tmp_path / "nope"],
        "bema": [oth, "--weights", "bema"],
        "unknown_weights": [oth, "--weights", "raw,best"],
        "games0": [oth, "--games", 0],
        "games_neg": [oth, "--games", -3],
        "setcomp": [runs["setcomp"]],
        "opponent_missing": [oth, "--opponent", tmp_path / "nope"],
        "opponent_setcomp": [oth, "--opponent", runs["setcomp"]],
        "opponent_weights_random": [oth, "--opponent-weights", "raw"],
        "seed_neg": [oth, "--seed", -1],
    }[case]
    before = {p: sorted(os.listdir(p)) for p in (tmp_path, oth)}
    r = play(*args)
    assert r.exit_code == 2, (r.exit_code, r.output, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and match_ in lines[0], r.stderr
    assert "Traceback" not in r.output and r.stdout == ""
    assert {p: sorted(os.listdir(p)) for p in (tmp_path, oth)} == before


def test_play_is_listed_by_lgagent_help():
    r = CliRunner().invoke(main, ["--help"])
    assert r.exit_code == 0 and "play " in r.output


# ----------------------------------------------------------------------------------------------
# match and the batched policy


def test_score_interval_is_wilson():
    for wins, n in ((0, 10), (3, 10), (10, 10), (57, 200)):
        low, high = proportion_confint(wins, n, alpha=0.05, method="wilson")
        assert score_interval(wins / n, n) == pytest.approx((low, high), abs=1e-9)
    low, high = score_interval(1.0, 10)
    assert 0.6 < low < 1 and high == pytest.approx(1)  # all wins: not a point interval
    with pytest.raises(ValueError):
        score_interval(0.5, 0)


def test_match_random_vs_random_counts_and_determinism():
    a = match("random", "random", 40, seed=1)
    _assert_counts(a, 40)
    assert a["decisions"] is None and a["first_choice_legal"] is None
    assert match("random", "random", 40, seed=1) == a
    assert match("random", "random", 40, seed=2) != a
    # game i is seeded by (seed, i): a longer match starts with the same games
    assert match("random", "random", 1, seed=1)["wins"] == int(
        match("random", "random", 2, seed=1)["as_black"]["wins"])
    # random vs random: about even (a 95% interval misses 0.5 once in 20 seeds; seed 1 fixed)
    assert a["score_ci_low"] < 0.5 < a["score_ci_high"]


def test_match_accepts_plain_policies_and_checks_arguments():
    _assert_counts(match(RandomPolicy(0), RandomPolicy(1), 4, seed=0, colors="white"), 4)
    for kwargs in ({"games": 0}, {"games": 2, "seed": -1}, {"games": 2, "colors": "red"},
                   {"games": 2, "opening": -1}):
        with pytest.raises(ValueError):
            match("random", "random", **kwargs)
    for bad in ("minimax", "", 3, None):
        with pytest.raises(ValueError, match="must be one of 'random', 'greedy', 'alphabeta' or a policy"):
            match(bad, "random", 2)


def test_batched_policy_plays_exactly_as_model_policy(runs):
    """One forward pass for many games gives the one-game ModelPolicy's moves."""
    model = _model(runs["othello"])
    # opening >= 1: the model never sees an empty board, where the two draw from different RNGs
    single = ModelPolicy(model, greedy=True, task="othello")
    batched = BatchedModelPolicy(model, task="othello")
    a = match(single, "random", 12, seed=5, opening=1)
    b = match(batched, "random", 12, seed=5, opening=1)
    assert a == b
    assert single.n_decisions == batched.n_decisions == a["decisions"] > 0
    assert single.n_illegal_choices == batched.n_illegal_choices


def test_batched_policy_act_batch_against_act(runs):
    model = _model(runs["othello"])
    p = BatchedModelPolicy(model, task="othello", seed=0)
    q = ModelPolicy(model, greedy=True, task="othello", seed=0)
    from othello_env import generate_games, legal_move_masks

    games = generate_games(6, seed=3)
    masks = legal_move_masks(games)  # (6, 60, 64): [g, t] = legal squares after moves 0..t
    lengths = [1, 5, 17, 30, 44, 58]
    hist = [games[g, :k] for g, k in enumerate(lengths)]
    m = np.zeros((6, 65), dtype=np.int8)
    for g, k in enumerate(lengths):
        m[g, :64] = masks[g, k - 1]
    assert m.any(axis=1).all()
    got = p.act_batch(m, hist)
    want = [q.act(None, {"action_mask": m[g], "moves": hist[g]}) for g in range(6)]
    assert got.tolist() == want and all(m[g, a] for g, a in enumerate(got))
    assert p.n_decisions == q.n_decisions == 6 and p.n_illegal_choices == q.n_illegal_choices
    # forced pass and empty history: no decision counted
    m2 = np.zeros((2, 65), dtype=np.int8)
    m2[0, 64] = 1
    m2[1, [19, 26, 37, 44]] = 1
    out = p.act_batch(m2, [games[0, :10], []], [np.random.default_rng(0)] * 2)
    assert out[0] == 64 and out[1] in (19, 26, 37, 44) and p.n_decisions == 6
    with pytest.raises(ValueError, match="all zero"):
        p.act_batch(np.zeros((1, 65), dtype=np.int8), [[]])


def test_batched_policy_refuses_a_setcomp_model(runs):
    with pytest.raises(ValueError, match="plays Othello"):
        BatchedModelPolicy(str(runs["setcomp"]), weights="raw")


def test_play_run_returns_the_step_and_held_weights(runs):
    res = play_run(runs["othello"], games=2, seed=0)
    assert res["step"] == 2 and list(res["play"]) == held_weights(CK.load(runs["othello"]))


def test_the_trainers_play_lgagent_eval_and_lgagent_play_report_the_same_games(tmp_path):
    """One player, one seed rule: a run's end-of-run play (``play_games = N``), ``lgagent eval
    RUN --play-games N --json`` and ``lgagent play RUN --games N --json`` (every seed at its
    default, PLAY_SEED) report identical results for every weights; ``lgagent eval
    --play-seed S`` equals ``lgagent play --seed S``."""
    from train.analysis import PLAY_SEED
    from train.training.run import run_to_result

    run = tmp_path / "run"
    result = run_to_result({"env": "othello", "preset": "tiny", "steps": 30, "batch_size": 8,
                            "eval_size": 16, "train_max_len": 20, "ema": True, "bema": True,
                            "play_games": 8, "num_threads": 1, "log_every": 10}, run)
    trained = json.loads(json.dumps(result["play"]))  # as result.json holds it
    assert list(trained) == ["raw", "ema", "bema"]

    def eval_play(*args):
        r = CliRunner().invoke(main, ["eval", str(run), "--play-games", "8", *map(str, args),
                                      "--json"])
        assert r.exit_code == 0, r.output + r.stderr
        return json.loads(r.stdout)["play"]

    def play_play(*args):
        r = play(run, "--games", 8, *args, "--json")
        assert r.exit_code == 0, r.output + r.stderr
        res = json.loads(r.stdout)
        assert res["opening"] == 0 and res["colors"] == "both"
        return res["seed"], res["play"]

    assert play_play() == (PLAY_SEED, trained)
    assert eval_play() == trained
    for w, m in trained.items():
        _assert_counts(m, 8)
        assert 0 <= m["first_choice_legal"] <= 1 and m["decisions"] > 0, w
    seed, other = play_play("--seed", 7)
    assert seed == 7 and eval_play("--play-seed", 7) == other != trained


# ----------------------------------------------------------------------------------------------
# Built-in opponents by name (othello_env.opponents)


def test_match_builtin_players_by_name_beat_random_and_alphabeta_beats_greedy():
    for a, b in (("greedy", "random"), ("alphabeta", "random"), ("alphabeta", "greedy")):
        m = match(a, b, 200, seed=0)
        _assert_counts(m, 200)
        assert m["as_black"]["games"] == m["as_white"]["games"] == 100
        assert m["score_ci_low"] > 0.6, (a, b, m["score"])  # a clear margin, not a coin flip
        assert m["decisions"] is None  # built-ins keep no model counters
    assert match("greedy", "random", 30, seed=4) == match("greedy", "random", 30, seed=4)
    assert match("greedy", "random", 30, seed=4) != match("greedy", "random", 30, seed=5)
    # greedy's tie-breaks come from each game's generator: a game does not depend on its batch
    assert match("greedy", "greedy", 1, seed=2)["wins"] == match("greedy", "greedy", 2, seed=2)[
        "as_black"]["wins"]


def test_match_builtin_names_and_policies_agree():
    from othello_env.opponents import make_policy

    assert match("alphabeta", "random", 20, seed=1) == match(make_policy("alphabeta"), "random",
                                                             20, seed=1)
    # a mirror match of a deterministic player with paired openings scores exactly one half
    m = match("alphabeta", "alphabeta", 10, seed=3, opening=4)
    assert m["score"] == 0.5 and m["disc_diff"] == 0


def test_play_against_greedy_and_alphabeta(runs):
    for opp, extra, depth in (("greedy", [], None), ("alphabeta", ["--depth", 2], 2),
                              ("alphabeta", [], 3)):
        r = play(runs["othello"], "--opponent", opp, *extra, "--games", 4, "--weights", "raw",
                 "--json")
        assert r.exit_code == 0, r.output + r.stderr
        res = json.loads(r.stdout)
        assert res["opponent"] == opp and res["opponent_weights"] is None
        assert res["opponent_depth"] == depth and res["opening"] == 4
        _assert_counts(res["play"]["raw"], 4)
        assert res["play"]["raw"]["decisions"] > 0
    r = play(runs["othello"], "--opponent", "alphabeta", "--depth", 1, "--games", 2)
    assert r.exit_code == 0 and "vs alphabeta (depth 1): 2 games" in r.stdout.splitlines()[0]
    # the same games as match() with the policy built by hand
    from othello_env.opponents import make_policy

    res = play_run(runs["othello"], opponent="greedy", weights=["raw"], games=6, seed=2)
    want = match(BatchedModelPolicy(_model(runs["othello"]), task="othello", seed=2),
                 make_policy("greedy", seed=2), 6, seed=2, opening=4)
    assert res["play"]["raw"] == want


@pytest.mark.parametrize("args, match_", [
    (["--opponent", "greedy", "--depth", 2], "--depth applies to --opponent alphabeta, not greedy"),
    (["--depth", 2], "--depth applies to --opponent alphabeta, not random"),
    (["--opponent", "alphabeta", "--depth", 0], "'--depth': 0 is not in the range 1<=x<=8"),
    (["--opponent", "alphabeta", "--depth", 9], "'--depth': 9 is not in the range 1<=x<=8"),
    (["--opponent", "greedy", "--opponent-weights", "raw"],
     "--opponent-weights needs a model --opponent (RUN2), not greedy"),
    (["--opponent", "minimax"], "--opponent minimax is neither a built-in player (random, greedy, "
                                "alphabeta) nor a run: no checkpoint at minimax"),
])
def test_builtin_opponent_bad_input_exits_2(runs, args, match_):
    r = play(runs["othello"], *args)
    assert r.exit_code == 2, (r.exit_code, r.output, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and match_ in lines[0], r.stderr
    assert r.stdout == ""
