"""othello_env.engine (Numba) against perft counts and a plain-Python reference of the rules.

The reference (tests/othello_env/reference.py) walks the eight directions square by
square on a list of 64 colour-absolute cells (1 black, -1 white, 0 empty): slow and
obvious, no bit tricks, so it shares no bug with the bitboard engine.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import othello_env
from othello_env.engine import (
    BLACK_START,
    WHITE_START,
    apply_move,
    flips,
    flips_bit,
    is_game_over,
    legal_moves,
    lowest_square,
    perft,
    perft_jit,
    popcount,
    score,
)
from othello_env.games import board_states, generate_games, legal_move_masks
from tests.othello_env.reference import ref_flips, ref_game, ref_legal, ref_play, ref_start

# ANCHORS.md: perft from the start, a forced pass = one ply, a finished game = one leaf.
PERFT = [1, 4, 12, 56, 244, 1396, 8200, 55092, 390216, 3005288, 24571284]


def bits(squares):
    b = 0
    for s in squares:
        b |= 1 << s
    return np.uint64(b)


def to_boards(cells, player):
    """(me, opp) bitboards for `player` to move."""
    return bits(i for i in range(64) if cells[i] == player), bits(
        i for i in range(64) if cells[i] == -player
    )


def squares_of(board):
    return {i for i in range(64) if (int(board) >> i) & 1}


# ----------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("depth", range(0, 11))
def test_perft_matches_known_counts(depth):
    assert perft(depth) == PERFT[depth]


def test_perft_exported_from_package():
    assert othello_env.perft(7) == 55092
    assert perft_jit(6) == 8200


@pytest.mark.parametrize("depth", [-1, 61, 2.0, "3", True])
def test_perft_bad_depth(depth):
    with pytest.raises(ValueError, match="depth must"):
        perft(depth)


def test_start_position_constants():
    assert squares_of(BLACK_START) == {28, 35}
    assert squares_of(WHITE_START) == {27, 36}
    assert squares_of(legal_moves(BLACK_START, WHITE_START)) == {19, 26, 37, 44}
    assert squares_of(legal_moves(WHITE_START, BLACK_START)) == {20, 29, 34, 43}
    assert not is_game_over(BLACK_START, WHITE_START)


def test_popcount_and_lowest_square():
    assert popcount(np.uint64(0)) == 0
    assert popcount(np.uint64(0xFFFFFFFFFFFFFFFF)) == 64
    assert popcount(bits([0, 5, 63])) == 3
    assert lowest_square(bits([63])) == 63
    assert lowest_square(bits([7, 40])) == 7


def test_apply_move_first_move():
    me, opp = apply_move(BLACK_START, WHITE_START, 19)
    # Black at d3 (19) flips d4 (27).
    assert squares_of(me) == {19, 27, 28, 35}
    assert squares_of(opp) == {36}
    assert squares_of(flips(BLACK_START, WHITE_START, 19)) == {27}
    assert squares_of(flips_bit(BLACK_START, WHITE_START, bits([19]))) == {27}
    assert flips(BLACK_START, WHITE_START, 0) == 0  # illegal: nothing to flip
    assert flips(BLACK_START, WHITE_START, 27) == 0  # occupied
    assert flips(BLACK_START, WHITE_START, 64) == 0  # off the board
    # An illegal move leaves the boards unchanged.
    assert apply_move(BLACK_START, WHITE_START, 0) == (BLACK_START, WHITE_START)
    assert score(me, opp) == 3


def test_game_over_positions():
    full_black = np.uint64(0xFFFFFFFFFFFFFFFF)
    assert is_game_over(full_black, np.uint64(0))
    assert is_game_over(np.uint64(0), full_black)
    # One colour wiped out on a nearly empty board.
    assert is_game_over(bits([0, 1, 2]), np.uint64(0))
    # A blocked position: discs on a1 and h8 only, nobody can flank.
    assert is_game_over(bits([0]), bits([63]))
    # But a2-a3 adjacent with an empty a4 is not over.
    assert not is_game_over(bits([8]), bits([16]))


# Arbitrary (unreachable) positions: stresses row wrap-around at the board edges.
boards_strategy = st.lists(st.integers(0, 2), min_size=64, max_size=64)


@settings(max_examples=150, deadline=None)
@given(boards_strategy)
def test_engine_matches_reference_on_arbitrary_positions(cells3):
    cells = [0 if c == 0 else (1 if c == 1 else -1) for c in cells3]
    me, opp = to_boards(cells, 1)
    assert squares_of(legal_moves(me, opp)) == ref_legal(cells, 1)
    for sq in range(64):
        assert sorted(squares_of(flips(me, opp, sq))) == ref_flips(cells, 1, sq)
    for sq in ref_legal(cells, 1):
        nme, nopp = apply_move(me, opp, sq)
        assert (nme, nopp) == to_boards(ref_play(cells, 1, sq), 1)
    assert is_game_over(me, opp) == (not ref_legal(cells, 1) and not ref_legal(cells, -1))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_engine_matches_reference_on_random_games(data):
    """Play a random game chosen by Hypothesis; compare every ply, passes included."""
    cells, player = ref_start(), 1
    me, opp = BLACK_START, WHITE_START
    while True:
        legal = ref_legal(cells, player)
        assert squares_of(legal_moves(me, opp)) == legal
        if not legal:
            if not ref_legal(cells, -player):
                assert is_game_over(me, opp)
                break
            assert not is_game_over(me, opp)
            player, (me, opp) = -player, (opp, me)  # pass
            continue
        sq = data.draw(st.sampled_from(sorted(legal)))
        assert sorted(squares_of(flips(me, opp, sq))) == ref_flips(cells, player, sq)
        me, opp = apply_move(me, opp, sq)
        cells = ref_play(cells, player, sq)
        assert (me, opp) == to_boards(cells, player)
        player, (me, opp) = -player, (opp, me)
    assert score(me, opp) == sum(c == player for c in cells) - sum(c == -player for c in cells)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**64 - 1))
def test_batch_api_matches_reference(seed):
    """generate_games plays legal games to the end; masks and boards agree with the reference."""
    games = generate_games(6, seed)
    masks = legal_move_masks(games)
    boards = board_states(games)
    for i, game in enumerate(games):
        moves = [int(s) for s in game if s >= 0]
        assert (game[len(moves):] == -1).all()  # -1 only after the end
        ref_boards, ref_masks, over = ref_game(moves)  # raises on an illegal move
        assert over  # games are played to the end
        for t in range(60):
            tt = min(t, len(moves) - 1)
            assert boards[i, t].tolist() == ref_boards[tt]  # final board repeated on padding
            expected = ref_masks[t] if t < len(moves) else set()
            assert set(np.flatnonzero(masks[i, t]).tolist()) == expected


def test_disable_jit_subset_runs_as_pure_python():
    """The engine in plain Python (NUMBA_DISABLE_JIT=1) gives the same answers as compiled."""
    expected = generate_games(3, 7).tolist()
    code = textwrap.dedent(
        f"""
        import numpy as np
        np.seterr(all="ignore")  # uint64 wrap-around in splitmix64 warns in NumPy scalars
        import othello_env
        from othello_env import engine
        assert engine.popcount(np.uint64(2**64 - 1)) == 64
        assert [othello_env.perft(d) for d in range(5)] == [1, 4, 12, 56, 244]
        assert engine.is_game_over(np.uint64(1), np.uint64(2**63))
        g = othello_env.generate_games(3, 7)
        assert g.tolist() == {expected!r}, g.tolist()
        othello_env.validate_games(g)
        m = othello_env.legal_move_masks(g[:, :5])
        assert m.shape == (3, 5, 64)
        print("ok")
        """
    )
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"


def test_benchmark_script_prints_json():
    """benchmarks/engine.py runs end to end on a tiny workload (figures are not checked)."""
    import json
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "engine.py"
    out = subprocess.run(
        [sys.executable, str(script), "--games", "2000", "--repeats", "1", "--perft-depth", "5",
         "--no-peers"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["perft"]["leaves"] == 1396
    assert result["generate_games"]["games_per_s_1_thread"] > 0
    assert result["generate_games"]["games_per_s_all_threads"] > 0
    assert result["peers"] == {}


@pytest.mark.parametrize(
    "args, match",
    [(["--repeats", "0"], "must be positive"),
     (["--perft-depth", "70"], "--perft-depth must lie in 0..60, got 70")],
)
def test_benchmark_script_refuses_bad_arguments(args, match):
    """A zero count gave '0 games/s' and 'Infinity' seconds; now a usage error (exit 2)."""
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "engine.py"
    out = subprocess.run([sys.executable, str(script), "--no-peers", *args],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 2 and match in out.stderr.splitlines()[-1], out.stderr[-500:]
    assert out.stdout == ""
