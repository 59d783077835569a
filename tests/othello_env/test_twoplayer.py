"""othello_env.twoplayer.TwoPlayerGames: many games in arrays, move for move the PettingZoo env."""

import numpy as np
import pytest

from othello_env.pettingzoo import raw_env
from othello_env.twoplayer import TwoPlayerGames


def test_random_games_match_the_pettingzoo_env_move_for_move():
    n = 40
    rng = np.random.default_rng(0)
    envs = [raw_env() for _ in range(n)]
    games = TwoPlayerGames(n)
    for _ in range(70):  # past the end of every game (at most 60 placements and some passes)
        live = np.flatnonzero([not e.terminations[e.agent_selection] for e in envs])
        assert (games.over == [e.terminations[e.agent_selection] for e in envs]).all()
        if not live.size:
            break
        obs, masks = games.views(live)
        assert (masks == games.masks(live)).all()
        acts = []
        for k, r in enumerate(live.tolist()):
            e = envs[r]
            view = e.observe(e.agent_selection)
            assert (obs[k] == view["observation"]).all() and (masks[k] == view["action_mask"]).all()
            assert (games.hist[r] == e.infos[e.agent_selection]["moves"]).all()
            assert games.turn[r] == ("player_0", "player_1").index(e.agent_selection)
            assert games.forced_pass(np.array([r]))[0] == (masks[k].sum() == 1 and masks[k][64])
            legal = np.flatnonzero(masks[k])
            acts.append(int(legal[rng.integers(legal.size)]))
            e.step(acts[-1])
        games.play(live, acts)
    assert games.over.all()
    planes = [e.observe("player_0")["observation"] for e in envs]
    assert (games.disc_diff() == [int(p[0].sum()) - int(p[1].sum()) for p in planes]).all()
    assert (games.masks(np.arange(n)) == 0).all()  # finished: nothing to play


def test_an_illegal_action_is_a_value_error_and_plays_nothing():
    games = TwoPlayerGames(3)
    with pytest.raises(ValueError, match="illegal action 0 for player_0 in game 1"):
        games.play(np.array([0, 1]), np.array([19, 0]))
    assert (games.nmoves == 0).all()  # row 0's legal move was not played either
    with pytest.raises(ValueError, match="illegal action 64"):
        games.play(np.array([2]), np.array([64]))  # a pass with a placement to make
    with pytest.raises(ValueError, match="one action per row"):
        games.play(np.array([0, 1]), np.array([19]))
    games.play(np.array([0]), np.array([19]))
    assert games.hist[0, 0] == 19 and games.turn.tolist() == [1, 0, 0]
