"""othello_env.games, the batch API: scripted games with literal boards, passes, determinism, validation errors.

Literal boards give rows 0..7 separated by spaces (row 0 holds squares 0..7,
a1..h1), columns left to right; X = black, O = white, . = empty. The move lists are
real random games found with the engine and checked against the plain-Python
reference in test_engine.py.
"""

import hashlib
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

import othello_env
from othello_env.games import (
    board_states,
    generate_games,
    generate_into,
    legal_move_masks,
    validate_games,
)

CELL = {"X": 1, "O": -1, ".": 0}


def board(text):
    rows = text.split()
    assert len(rows) == 8 and all(len(r) == 8 for r in rows)
    return np.array([CELL[c] for r in rows for c in r], dtype=np.int8)


def padded(moves):
    g = np.full((1, 60), -1, dtype=np.int8)
    g[0, : len(moves)] = moves
    return g


def mask_set(mask_row):
    return np.flatnonzero(mask_row).tolist()


# A 9-move game: black wipes white out (the shortest game length seen in random play).
SHORT_GAME = [44, 45, 26, 34, 42, 43, 46, 20, 12]
SHORT_BOARDS = [
    "........ ........ ........ ...OX... ...XX... ....X... ........ ........",
    "........ ........ ........ ...OX... ...XO... ....XO.. ........ ........",
    "........ ........ ........ ..XXX... ...XO... ....XO.. ........ ........",
    "........ ........ ........ ..XXX... ..OOO... ....XO.. ........ ........",
    "........ ........ ........ ..XXX... ..XXO... ..X.XO.. ........ ........",
    "........ ........ ........ ..XXX... ..XXO... ..XOOO.. ........ ........",
    "........ ........ ........ ..XXX... ..XXO... ..XXXXX. ........ ........",
    "........ ........ ....O... ..XXO... ..XXO... ..XXXXX. ........ ........",
    "........ ....X... ....X... ..XXX... ..XXX... ..XXXXX. ........ ........",
]
SHORT_MASKS = [
    [29, 43, 45],
    [19, 26, 37, 46],
    [18, 20, 34, 43, 52],
    [41, 42, 43, 46, 54],
    [18, 20, 33, 43, 52],
    [37, 46, 51, 52, 53, 54],
    [18, 20, 33, 50, 52, 54],
    [12, 13, 21, 29, 37],
    [],
]

# A full 60-move game in which white must pass after move 50 (black plays 52, then 56).
PASS_GAME = [
    26, 18, 19, 34, 45, 37, 9, 11, 46, 20, 10, 38, 21, 53, 33, 1, 60, 14, 29, 61,
    47, 59, 43, 32, 22, 23, 12, 39, 55, 2, 41, 48, 13, 8, 7, 51, 40, 63, 42, 44,
    50, 49, 30, 25, 24, 5, 0, 54, 16, 17, 52, 56, 57, 4, 3, 31, 58, 6, 15, 62,
]
PASS_BOARDS = {
    49: "XOO..O.X XOOOOOO. XOOOOOOO XOOXXOO. XOXOXOOO XOOXOOOO OOOO.OOO ...OOO.O",
    50: "XOO..O.X XOOOOOO. XOOOOOOO XOOXXOO. XOXOXOOO XOOXXOOO OOOOXOOO ...OOO.O",
    51: "XOO..O.X XOOOOOO. XOOOOOOO XOOXXOO. XOXXXOOO XOXXXOOO XXOOXOOO X..OOO.O",
    59: "XXXXXXXX XOOOOOOO XOXOXOXO XXOXXXXX XOXXXOXO XOXXXXXO XXXXXXXO XXXXXXXO",
}
PASS_MASKS = {
    49: [3, 4, 6, 15, 31, 52, 56, 57, 58, 62],  # black to move
    50: [3, 4, 6, 15, 31, 56, 57, 58, 62],  # white has no move: black's set again
    51: [57],
    59: [],
}


def test_short_game_literal_boards_and_masks():
    g = padded(SHORT_GAME)
    validate_games(g)
    boards = board_states(g)
    masks = legal_move_masks(g)
    assert boards.shape == (1, 60, 64) and boards.dtype == np.int8
    assert masks.shape == (1, 60, 64) and masks.dtype == np.bool_
    for t, rows in enumerate(SHORT_BOARDS):
        np.testing.assert_array_equal(boards[0, t], board(rows), err_msg=f"ply {t}")
        assert mask_set(masks[0, t]) == SHORT_MASKS[t], f"ply {t}"
    # After the end: the final board repeats, no legal squares.
    assert (boards[0, 9:] == board(SHORT_BOARDS[-1])).all()
    assert not masks[0, 9:].any()


def test_pass_game_literal_boards_and_masks_around_the_pass():
    g = np.array([PASS_GAME], dtype=np.int8)
    validate_games(g)
    boards = board_states(g)[0]
    masks = legal_move_masks(g)[0]
    for t, rows in PASS_BOARDS.items():
        np.testing.assert_array_equal(boards[t], board(rows), err_msg=f"ply {t}")
        assert mask_set(masks[t]) == PASS_MASKS[t], f"ply {t}"
    # Moves 50 and 51 are both black's: the pass is implicit in the move list.
    assert boards[50, 52] == 1 and boards[51, 56] == 1


# 59 moves, then neither side can take the last empty square (b1 = 1): a blocked end.
BLOCKED_GAME = [
    19, 20, 45, 42, 13, 44, 37, 11, 2, 21, 18, 30, 34, 3, 38, 26, 43, 17, 29, 22,
    4, 53, 54, 52, 61, 46, 39, 31, 60, 59, 51, 12, 25, 55, 49, 58, 14, 41, 5, 56,
    40, 48, 16, 63, 57, 6, 7, 62, 23, 32, 50, 24, 33, 9, 47, 8, 0, 15, 10,
]
BLOCKED_FINAL = "X.XXXXXX OOOOOOOO OOOOXXOO OOOXOOXO OOOXOOXO OOOOXXOO OOOXXXOO OOOOOOOO"


def test_blocked_game_ends_with_an_empty_square():
    g = padded(BLOCKED_GAME)
    validate_games(g)
    boards = board_states(g)[0]
    masks = legal_move_masks(g)[0]
    np.testing.assert_array_equal(boards[58], board(BLOCKED_FINAL))
    np.testing.assert_array_equal(boards[59], board(BLOCKED_FINAL))
    assert masks[57].any() and not masks[58:].any()
    g[0, 59] = 1  # nobody may play the last square
    with pytest.raises(ValueError, match="ply 59: square 1 is played after the game ended"):
        validate_games(g)


def test_package_exports():
    for name in ("generate_games", "legal_move_masks", "validate_games", "board_states", "perft"):
        assert callable(getattr(othello_env, name))


def test_generate_games_shape_padding_and_statistics():
    g = generate_games(4000, seed=5)
    assert g.shape == (4000, 60) and g.dtype == np.int8
    validate_games(g)
    length = (g >= 0).sum(1)
    # -1 only as a suffix
    assert ((g >= 0) == (np.arange(60) < length[:, None])).all()
    # ANCHORS: 99.05% of random games last all 60 moves.
    assert 0.98 < (length == 60).mean() < 0.999
    assert generate_games(0).shape == (0, 60)


def test_generate_games_first_moves_are_uniform():
    g = generate_games(40000, seed=11)
    counts = np.array([(g[:, 0] == s).sum() for s in (19, 26, 37, 44)])
    assert counts.sum() == 40000
    chi2 = ((counts - 10000) ** 2 / 10000).sum()
    assert chi2 < 16.3  # p = 0.001 for 3 degrees of freedom
    # Second move given first move 19: white's replies 18, 20, 34 uniformly.
    second = g[g[:, 0] == 19, 1]
    c2 = np.array([(second == s).sum() for s in (18, 20, 34)])
    assert c2.sum() == len(second)
    e = len(second) / 3
    assert ((c2 - e) ** 2 / e).sum() < 13.8  # p = 0.001, 2 dof


def test_generate_games_seeds_prefixes_and_chunks():
    a = generate_games(300, seed=3)
    assert (generate_games(300, seed=3) == a).all()
    assert (generate_games(100, seed=3) == a[:100]).all()
    assert (generate_games(300, seed=4) != a).any()
    out = np.empty((300, 60), dtype=np.int8)
    generate_into(out[:120], seed=3, offset=0)
    generate_into(out[120:], seed=3, offset=120)
    assert (out == a).all()
    big = generate_games(5, seed=2**64 - 1)
    validate_games(big)


def test_generate_games_same_whatever_the_thread_count():
    n_all = numba.config.NUMBA_NUM_THREADS
    try:
        numba.set_num_threads(1)
        one = generate_games(5000, seed=9)
        masks_one = legal_move_masks(one[:200])
    finally:
        numba.set_num_threads(n_all)
    many = generate_games(5000, seed=9)
    assert (one == many).all()
    assert (legal_move_masks(many[:200]) == masks_one).all()
    # A fresh process with 3 threads: the comparison above is 1 vs 1 on a one-core machine
    # (NUMBA_NUM_THREADS defaults to the core count), and 3 splits the games unevenly.
    code = (
        "import hashlib, numba, othello_env as o; assert numba.config.NUMBA_NUM_THREADS == 3; "
        "g = o.generate_games(5000, seed=9); m = o.legal_move_masks(g[:200]); "
        "print(hashlib.sha256(g.tobytes()).hexdigest(), hashlib.sha256(m.tobytes()).hexdigest())"
    )
    env = dict(os.environ, NUMBA_NUM_THREADS="3")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [hashlib.sha256(one.tobytes()).hexdigest(),
                                  hashlib.sha256(masks_one.tobytes()).hexdigest()]


@pytest.mark.parametrize(
    "n, seed, match",
    [(-1, 0, "n must be"), (2.5, 0, "n must be"), (True, 0, "n must be"),
     (3, -1, "seed must lie"), (3, 2**64, "seed must lie"), (3, "a", "seed must be")],
)
def test_generate_games_bad_arguments(n, seed, match):
    with pytest.raises(ValueError, match=match):
        generate_games(n, seed)


def test_generate_into_bad_arguments():
    with pytest.raises(ValueError, match="C-contiguous int8"):
        generate_into(np.empty((3, 60), dtype=np.int16))
    with pytest.raises(ValueError, match="offset"):
        generate_into(np.empty((3, 60), dtype=np.int8), offset=-2)


def test_prefixes_are_accepted():
    g = np.array([PASS_GAME], dtype=np.int8)
    validate_games(g[:, :10])  # an unfinished prefix is fine
    np.testing.assert_array_equal(legal_move_masks(g[:, :51]), legal_move_masks(g)[:, :51])
    np.testing.assert_array_equal(board_states(g[:, :51]), board_states(g)[:, :51])
    # Other integer dtypes are accepted and give the same answer.
    np.testing.assert_array_equal(legal_move_masks(g.astype(np.int64)), legal_move_masks(g))


@pytest.mark.parametrize(
    "games, match",
    [
        ([[19] + [-1] * 59], "must be a numpy array"),
        (np.zeros(60, dtype=np.int8), r"shape \(n, L\)"),
        (np.zeros((2, 61), dtype=np.int8), r"shape \(n, L\)"),
        (np.zeros((2, 60), dtype=np.float32), "integer dtype"),
        (np.zeros((2, 60), dtype=np.bool_), "integer dtype"),
        (np.array([[19, 18, 70] + [-1] * 57], dtype=np.int16),
         r"game 0, ply 2: value 70 .*-1\.\.63"),
        (np.array([[19, 18, -5] + [-1] * 57], dtype=np.int8), r"game 0, ply 2: value -5"),
    ],
)
def test_validate_games_bad_type_shape_dtype_value(games, match):
    with pytest.raises(ValueError, match=match):
        validate_games(games)


def test_validate_games_names_game_ply_square():
    g = generate_games(5, seed=1)
    validate_games(g)
    bad = g.copy()
    bad[3, 7] = 27  # a centre square: occupied from the start
    bad[4, 2] = 0
    with pytest.raises(ValueError, match=r"^game 3, ply 7: square 27 is not a legal move$"):
        validate_games(bad)
    early = g.copy()
    early[1, 30:] = -1
    msg = r"^game 1, ply 30: -1 \(end of game\) but the game is not over$"
    with pytest.raises(ValueError, match=msg):
        validate_games(early)
    after = padded(SHORT_GAME)
    after[0, 9] = 0
    msg = r"^game 0, ply 9: square 0 is played after the game ended$"
    with pytest.raises(ValueError, match=msg):
        validate_games(after)
    hole = padded(SHORT_GAME)
    hole[0, 11] = 5  # a move after the -1 padding
    with pytest.raises(ValueError, match="game 0, ply 11: square 5 is played after the game ended"):
        validate_games(hole)
    # The batch functions validate too.
    with pytest.raises(ValueError, match="game 3, ply 7"):
        legal_move_masks(bad)
    with pytest.raises(ValueError, match="game 3, ply 7"):
        board_states(bad)


def test_token_mapping_round_trip_and_errors():
    from othello_env.tokens import PAD, VOCAB_SIZE, squares_to_tokens, tokens_to_squares

    squares = np.array([[0, 26, 29, 63], [-1, 19, 44, 34]])
    tokens = squares_to_tokens(squares)
    assert tokens.tolist() == [[1, 27, 28, 60], [PAD, 20, 41, 33]]
    np.testing.assert_array_equal(tokens_to_squares(tokens), squares)
    assert sorted(tokens_to_squares(np.arange(1, VOCAB_SIZE)).tolist()) == [
        s for s in range(64) if s not in (27, 28, 35, 36)
    ]
    assert squares_to_tokens([]).shape == (0,)
    with pytest.raises(ValueError, match="centre squares"):
        squares_to_tokens([19, 27])
    with pytest.raises(ValueError, match="-1..63"):
        squares_to_tokens([64])
    with pytest.raises(ValueError, match="0..60"):
        tokens_to_squares([61])
    # non-integers are refused, not truncated (19.7 would silently become square 19)
    with pytest.raises(ValueError, match="square indices must be integers, got dtype float64"):
        squares_to_tokens([19.7])
    with pytest.raises(ValueError, match="tokens must be integers, got dtype bool"):
        tokens_to_squares(np.array([True, False]))
