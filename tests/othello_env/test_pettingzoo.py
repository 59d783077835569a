"""PettingZoo AEC Othello (othello_env.pettingzoo): the official API, seed and render tests, passes, illegal moves."""

from __future__ import annotations

import pickle

import numpy as np
import pettingzoo
import pytest
from pettingzoo.test import api_test, render_test, seed_test

import othello_env  # registers othello_env/Othello-v0
from othello_env.pettingzoo import env, raw_env

# After these 8 moves black (player_0) has no legal placement; white then plays 16.
GAME_B = [19, 18, 37, 11, 3, 4, 9, 2, 16, 0, 43]


def played(moves):
    """The history in an info["moves"] (int8 (60,), -1 padded) as a list of squares."""
    moves = np.asarray(moves)
    return moves[moves >= 0].tolist()


# api_test's two warnings about Dict observations are the ones PettingZoo's classic envs give too.
@pytest.mark.filterwarnings(
    "ignore:Observation space for each agent", "ignore:Observation is not a NumPy array"
)
def test_api_test_wrapped_and_raw():
    api_test(env(), num_cycles=200)
    api_test(raw_env(), num_cycles=200)


def test_seed_test():
    seed_test(env, num_cycles=200)


def test_render_test(capsys):
    render_test(env)
    assert "player_0 (black) to move" in capsys.readouterr().out  # the human mode printed boards


def test_registry_and_agents():
    e = pettingzoo.make("aec", "othello_env/Othello-v0")
    assert e.metadata["name"] == "othello_env/Othello-v0"  # the id it is made with
    e.reset()
    assert e.possible_agents == ["player_0", "player_1"] and e.agent_selection == "player_0"
    obs = e.observe("player_0")
    assert set(obs) == {"observation", "action_mask"}
    assert obs["observation"].shape == (3, 8, 8) and obs["observation"].dtype == np.int8
    assert np.flatnonzero(obs["action_mask"]).tolist() == [19, 26, 37, 44]
    assert np.flatnonzero(obs["observation"][0]).tolist() == [28, 35]  # black's own discs first
    other = e.observe("player_1")
    assert other["action_mask"].sum() == 0 and other["observation"][2].sum() == 0
    assert np.flatnonzero(other["observation"][0]).tolist() == [27, 36]


def play_out(e, rng):
    """Random masked play to the end; returns the final rewards and the moves info."""
    for _agent in e.agent_iter():
        obs, reward, term, trunc, info = e.last()
        assert type(term) is bool and type(trunc) is bool
        e.step(None if term or trunc else int(rng.choice(np.flatnonzero(obs["action_mask"]))))
    return e


def test_full_game_rewards_and_moves_info():
    e = raw_env()
    e.reset()
    rng = np.random.default_rng(0)
    rewards = {a: 0.0 for a in e.possible_agents}
    moves = None
    for agent in e.agent_iter():
        obs, reward, term, trunc, info = e.last()
        rewards[agent] += reward
        moves = played(info["moves"])
        e.step(None if term or trunc else int(rng.choice(np.flatnonzero(obs["action_mask"]))))
    black, white = (bin(int(d)).count("1") for d in e._discs)
    sign = float(np.sign(black - white))
    assert rewards == {"player_0": sign, "player_1": -sign}
    assert len(moves) == len(set(moves)) and 9 <= len(moves) <= 60


def test_explicit_pass():
    e = env()
    e.reset(options={"moves": GAME_B[:7]})
    assert e.agent_selection == "player_1"  # after 7 moves white is to move
    e.step(GAME_B[7])
    assert e.agent_selection == "player_0"
    obs = e.observe("player_0")
    assert np.flatnonzero(obs["action_mask"]).tolist() == [64]
    e.step(64)
    assert e.agent_selection == "player_1" and not any(e.terminations.values())
    assert GAME_B[8] in np.flatnonzero(e.observe("player_1")["action_mask"])
    e.step(GAME_B[8])
    assert played(e.infos["player_0"]["moves"]) == GAME_B[:9] == played(e.infos["player_1"]["moves"])


def test_options_moves_implied_pass_and_errors():
    e = raw_env()
    e.reset(options={"moves": GAME_B[:8]})  # black cannot move: the list implies its pass
    assert e.agent_selection == "player_1" and played(e.infos["player_1"]["moves"]) == GAME_B[:8]
    with pytest.raises(ValueError, match="not a legal move"):
        e.reset(options={"moves": [19, 0]})


def test_illegal_move_wrapped_ends_game_with_minus_one(caplog):
    e = env()
    e.reset()
    e.step(0)
    assert "Illegal move made" in caplog.text
    assert all(e.terminations.values())
    assert e._cumulative_rewards == {"player_0": -1.0, "player_1": 0.0}
    # a pass while a placement exists is illegal too
    e.reset()
    e.step(64)
    assert all(e.terminations.values()) and e._cumulative_rewards["player_0"] == -1.0


def test_illegal_move_raw_raises():
    e = raw_env()
    e.reset()
    with pytest.raises(ValueError, match="illegal action 0 for player_0"):
        e.step(0)
    with pytest.raises(ValueError, match="action must be an integer"):
        e.step(70)
    e.step(19)  # unchanged, still playable
    assert e.agent_selection == "player_1"


def test_pickle_mid_game():
    e = env()
    e.reset()
    e.step(19)
    clone = pickle.loads(pickle.dumps(e))
    for x in (e, clone):
        x.step(18)
    assert np.array_equal(
        e.observe("player_0")["observation"], clone.observe("player_0")["observation"]
    )
    assert e.infos.keys() == clone.infos.keys()
    assert all(np.array_equal(e.infos[a]["moves"], clone.infos[a]["moves"]) for a in e.infos)


def test_render_modes():
    e = raw_env(render_mode="ansi")
    e.reset()
    text = e.render()
    assert text.splitlines()[3] == "3 . . . * . . . ." and "player_0 (black) to move" in text
    e = raw_env(render_mode="rgb_array")
    e.reset()
    img = e.render()
    assert img.shape == (296, 296, 3) and img.dtype == np.uint8
    with pytest.raises(ValueError, match="render_mode"):
        raw_env(render_mode="video")


@pytest.mark.parametrize("index, expected", [(0, (1.0, -1.0)), (4, (-1.0, 1.0)), (11, (0.0, 0.0))])
def test_final_rewards_win_loss_draw(index, expected):
    """Both agents' returns for a black win (+46), a white win (-36) and a 32-32 draw."""
    games = othello_env.generate_games(20, seed=0)  # the games of test_othello_env's reward test
    game = games[index].tolist()
    final = othello_env.board_states(games[index : index + 1])[0, -1]
    assert np.sign(final.sum()) == expected[0]  # black minus white discs, from the engine
    e = env()
    e.reset()
    returns = {a: 0.0 for a in e.possible_agents}
    for agent in e.agent_iter():
        obs, reward, term, trunc, info = e.last()
        returns[agent] += reward
        if term or trunc:
            e.step(None)
            continue
        a = game[len(played(info["moves"]))] if len(played(info["moves"])) < 60 else 64
        e.step(a if obs["action_mask"][a] else 64)
    assert played(info["moves"]) == game
    assert (returns["player_0"], returns["player_1"]) == expected


def test_moves_info_is_a_fixed_size_array_buffers_can_stack():
    """infos[agent]["moves"] is int8 (60,), -1 padded: a replay buffer can stack it step after step."""
    e = raw_env()
    e.reset(options={"moves": GAME_B[:3]})
    rng = np.random.default_rng(3)
    stacked = []
    for _agent in e.agent_iter():
        obs, _, term, trunc, info = e.last()
        stacked.append(info["moves"])
        e.step(None if term or trunc else int(rng.choice(np.flatnonzero(obs["action_mask"]))))
    history = np.stack(stacked)  # a growing list would fail here
    assert history.shape == (len(stacked), 60) and history.dtype == np.int8
    assert played(history[0]) == GAME_B[:3]
    final = history[-1]
    n = len(played(final))
    assert n >= 9 and (final[n:] == -1).all()
    othello_env.validate_games(final[None])  # a finished game: a valid row of a games array
    assert all(played(h) == played(final)[: len(played(h))] for h in history)  # one growing history
