"""othello_env.engine.edit_square / legal_after_edit and othello_env.games.legal_after_edits
(the boards of probe interventions) against the plain-Python reference of the rules."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from othello_env.engine import EMPTY, MINE, THEIRS, edit_square, legal_after_edit, legal_moves
from othello_env.games import board_states, generate_games, legal_after_edits
from tests.othello_env.reference import ref_legal, ref_start


def _bits(cells, value):
    return sum(1 << s for s in range(64) if cells[s] == value)


def _ref_after_edit(cells, sq, state):
    """Reference: the mover is colour 1 of ``cells``; set ``sq`` to state, list the legal moves."""
    new = list(cells)
    new[sq] = {EMPTY: 0, MINE: 1, THEIRS: -1}[state]
    return ref_legal(new, 1)


def test_edit_square_sets_one_square_and_nothing_else():
    me, opp = _bits(ref_start(), 1), _bits(ref_start(), -1)  # black to move
    assert edit_square(me, opp, 27, MINE) == (me | 1 << 27, opp & ~(1 << 27))
    assert edit_square(me, opp, 28, THEIRS) == (me & ~(1 << 28), opp | 1 << 28)
    assert edit_square(me, opp, 28, EMPTY) == (me & ~(1 << 28), opp)
    assert edit_square(me, opp, 0, MINE) == (me | 1, opp)
    assert edit_square(me, opp, 63, EMPTY) == (me, opp)
    for bad_sq, bad_state in ((-1, 1), (64, 1), (0, 3), (0, -1)):
        assert edit_square(me, opp, bad_sq, bad_state) == (me, opp)
    # the start: flipping white's 27 to black opens 37, 44, 45 and closes 19, 26
    assert legal_after_edit(me, opp, 27, MINE) == (1 << 37) | (1 << 44) | (1 << 45)
    assert legal_after_edit(me, opp, 28, MINE) == legal_moves(me, opp)  # its own state


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from([0, 0, 1, -1]), min_size=64, max_size=64),
       st.integers(0, 63), st.sampled_from([EMPTY, MINE, THEIRS]))
def test_legal_after_edit_matches_the_reference_on_any_board(cells, sq, state):
    me, opp = _bits(cells, 1), _bits(cells, -1)
    got = legal_after_edit(me, opp, sq, state)
    assert {s for s in range(64) if got >> s & 1} == _ref_after_edit(cells, sq, state)


def test_batch_helper_matches_the_reference_on_game_boards():
    g = generate_games(30, seed=3)
    boards = board_states(g)[:, ::7].reshape(-1, 64)  # (N, 64) colour-absolute
    rng = np.random.default_rng(0)
    sign = rng.choice([1, -1], size=len(boards))  # either colour as the mover
    rel = (boards * sign[:, None]).astype(np.int8)
    sq = rng.integers(0, 64, size=len(rel))
    state = rng.integers(0, 3, size=len(rel))
    got = legal_after_edits(rel, sq, state)
    for i in range(len(rel)):
        assert set(np.flatnonzero(got[i])) == _ref_after_edit(list(rel[i]), sq[i], state[i])
    # a square set to its own state: the board's own legal moves
    own = np.where(rel[np.arange(len(rel)), sq] == 1, MINE,
                   np.where(rel[np.arange(len(rel)), sq] == -1, THEIRS, EMPTY))
    same = legal_after_edits(rel, sq, own)
    for i in range(len(rel)):
        assert set(np.flatnonzero(same[i])) == ref_legal(list(rel[i]), 1)
    assert legal_after_edits(rel[:0], sq[:0], state[:0]).shape == (0, 64)


@pytest.mark.parametrize("boards, squares, states, match", [
    (np.zeros((2, 63), np.int8), [0, 0], [0, 0], "shape"),
    (np.full((1, 64), 2, np.int8), [0], [0], "1 \\(mine\\)"),
    (np.zeros((1, 64), np.int8), [64], [0], "squares must lie"),
    (np.zeros((1, 64), np.int8), [0], [3], "states must lie"),
    (np.zeros((1, 64), np.int8), [0, 1], [0], "squares must be"),
    (np.zeros((1, 64), np.float32), [0], [0], "integer"),
])
def test_batch_helper_rejects_bad_input(boards, squares, states, match):
    with pytest.raises(ValueError, match=match):
        legal_after_edits(boards, np.array(squares), np.array(states))
