"""othello_env.games.opponent_legal_masks against a plain-Python replay (OthelloGPT's lenient set)."""

import numpy as np
import pytest

from othello_env.games import generate_games, legal_move_masks, opponent_legal_masks
from tests.othello_env.reference import ref_legal, ref_play, ref_start


def _reference(moves):
    """Per ply: (mover's legal set, opponent's legal set), passes resolved, empty when over."""
    cells, player, out = ref_start(), 1, []
    for sq in moves:
        cells = ref_play(cells, player, sq)
        player = -player
        if not ref_legal(cells, player):
            player = -player  # forced pass (or the game is over)
        mine = ref_legal(cells, player)
        out.append((mine, ref_legal(cells, -player) if mine else set()))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_opponent_legal_masks_match_a_plain_python_replay(seed):
    games = generate_games(8, seed)
    opp = opponent_legal_masks(games)
    assert opp.shape == (8, 60, 64) and opp.dtype == np.bool_
    mine = legal_move_masks(games)
    for i, game in enumerate(games):
        moves = [int(s) for s in game if s >= 0]
        ref = _reference(moves)
        for t in range(60):
            exp_mine, exp_opp = ref[t] if t < len(moves) else (set(), set())
            assert set(np.flatnonzero(mine[i, t]).tolist()) == exp_mine
            assert set(np.flatnonzero(opp[i, t]).tolist()) == exp_opp, (i, t)


def test_opponent_legal_masks_on_a_prefix_and_an_empty_opponent_set():
    # the first move: black played 19; white to move, black's own set is the opponent's
    assert set(np.flatnonzero(opponent_legal_masks(np.array([[19]], np.int8))[0, 0])) == \
        _reference([19])[0][1]
    # a ply where the side not to move has no square (e.g. it just passed): all False
    games = generate_games(200, 5)
    for i, game in enumerate(games):
        moves = [int(s) for s in game if s >= 0]
        ref = _reference(moves)
        passes = [t for t in range(len(moves) - 1) if ref[t][0] and not ref[t][1]]
        if passes:
            t = passes[0]
            assert not opponent_legal_masks(games[i : i + 1, : t + 1])[0, t].any()
            break
    else:
        pytest.fail("no empty opponent set among 200 games")


def test_opponent_legal_masks_validates_games():
    with pytest.raises(ValueError, match="not a legal move"):
        opponent_legal_masks(np.array([[0]], np.int8))
