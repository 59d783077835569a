"""othello_env.render: square names both ways, the labelled RGB board, the last-move mark, GIFs."""

import os

import numpy as np
import pytest

from othello_env import generate_games
from othello_env.engine import BLACK_START, WHITE_START
from othello_env.render import (
    BORDER,
    CELL,
    SIZE,
    board_rgb,
    game_frames,
    last_square,
    parse_square,
    save_gif,
    square_name,
)


def centre(img, sq):
    r, c = divmod(sq, 8)
    return img[BORDER + r * CELL + CELL // 2, BORDER + c * CELL + CELL // 2].tolist()


# -- square names -------------------------------------------------------------------


def test_parse_square_inverts_square_name_on_every_square():
    for sq in range(65):
        name = square_name(sq)
        assert parse_square(name) == sq
        assert parse_square(f"  {name.upper()}\n") == sq  # case and whitespace do not matter
    assert [square_name(s) for s in (0, 7, 19, 56, 63)] == ["a1", "h1", "d3", "a8", "h8"]
    assert len({square_name(s) for s in range(64)}) == 64


@pytest.mark.parametrize("bad", ["", " ", "d", "d9", "i3", "a0", "3d", "d33", "dd", "pas", "passs",
                                 "d 3", "x" * 500, "d3;", "-1"])
def test_parse_square_refuses_bad_names_with_one_line(bad):
    with pytest.raises(ValueError) as e:
        parse_square(bad)
    assert "\n" not in str(e.value) and "not a square name" in str(e.value)
    assert len(str(e.value)) < 200  # a huge input is cut


@pytest.mark.parametrize("bad", [19, None, b"d3", ["d3"]])
def test_parse_square_refuses_non_strings(bad):
    with pytest.raises(ValueError, match="must be a string"):
        parse_square(bad)


# -- the RGB board ------------------------------------------------------------------


def test_board_rgb_size_discs_hints_and_frame():
    img = board_rgb(BLACK_START, WHITE_START, (1 << 19) | (1 << 26))
    assert img.dtype == np.uint8 and img.shape == (SIZE, SIZE, 3) == (296, 296, 3)
    assert centre(img, 28) == [15, 15, 15] and centre(img, 27) == [240, 240, 240]
    assert centre(img, 19) == [255, 200, 0] and centre(img, 0) == [0, 120, 60]
    assert img[0, 0].tolist() == [40, 40, 40]  # the frame's corner carries no label


def test_board_rgb_draws_each_coordinate_in_its_margin():
    img = board_rgb(0, 0)
    label = np.array([210, 210, 210])
    for i in range(8):
        lo, hi = BORDER + i * CELL, BORDER + (i + 1) * CELL
        top, bottom = img[:BORDER, lo:hi], img[-BORDER:, lo:hi]  # file i above and below
        left, right = img[lo:hi, :BORDER], img[lo:hi, -BORDER:]  # rank i + 1 on both sides
        for part in (top, bottom, left, right):
            assert (part == label).all(-1).sum() > 10
        np.testing.assert_array_equal(top, bottom)
        np.testing.assert_array_equal(left, right)
    # the glyphs differ from one another: eight distinct files, eight distinct ranks
    files = {img[:BORDER, BORDER + i * CELL: BORDER + (i + 1) * CELL].tobytes() for i in range(8)}
    ranks = {img[BORDER + i * CELL: BORDER + (i + 1) * CELL, :BORDER].tobytes() for i in range(8)}
    assert len(files) == 8 and len(ranks) == 8
    # nothing is drawn on the board itself
    assert not (img[BORDER:-BORDER, BORDER:-BORDER] == label).all(-1).any()


def test_board_rgb_marks_the_last_move_only():
    # black has played d3 (19), flipping d4 (27); np.uint64 throughout (NumPy 1.24 refuses uint64 | int)
    black, white = BLACK_START | np.uint64((1 << 19) | (1 << 27)), WHITE_START & ~np.uint64(1 << 27)
    plain = board_rgb(black, white)
    marked = board_rgb(black, white, last=19)
    assert centre(plain, 19) == [15, 15, 15] and centre(marked, 19) == [220, 30, 30]
    diff = np.argwhere((plain != marked).any(-1))
    r0, c0 = BORDER + 2 * CELL, BORDER + 3 * CELL  # d3: row 2, column 3
    assert diff.size and (diff >= [r0, c0]).all() and (diff < [r0 + CELL, c0 + CELL]).all()
    for last in (None, -1, 64):
        np.testing.assert_array_equal(board_rgb(BLACK_START, WHITE_START, last=last),
                                      board_rgb(BLACK_START, WHITE_START))
    with pytest.raises(ValueError, match="last must be"):
        board_rgb(0, 0, last=65)
    hist = np.full(60, -1, dtype=np.int8)
    assert last_square(hist) is None and last_square([]) is None
    hist[:3] = [19, 18, 17]
    assert last_square(hist) == 17 and last_square([19]) == 19


# -- frames and GIFs ---------------------------------------------------------------


def test_game_frames_follow_the_game_with_passes_implicit_or_explicit():
    from othello_env import board_states

    game = generate_games(1, seed=1)
    frames = game_frames(game[0])
    n = int((game[0] >= 0).sum())
    assert len(frames) == n + 1  # start + one per move; -1 padding ignored
    np.testing.assert_array_equal(frames[0], board_rgb(BLACK_START, WHITE_START,
                                                       _legal_of(game[0, :0])))
    states = board_states(game)  # (1, 60, 64): +1 black, -1 white after moves 0..t
    for k in (1, 2, n // 2, n):
        black, white = _bitboard(states[0, k - 1] == 1), _bitboard(states[0, k - 1] == -1)
        legal = 0 if k == n else _legal_of(game[0, :k])  # the game is over after the last move
        np.testing.assert_array_equal(frames[k], board_rgb(black, white, legal, int(game[0, k - 1])))
    names = [square_name(int(s)) for s in game[0, :n]]
    np.testing.assert_array_equal(np.stack(game_frames(names)), np.stack(frames))


def _bitboard(squares):
    return sum(1 << int(s) for s in np.flatnonzero(squares))


def _legal_of(prefix):
    from othello_env.arguments import replay_moves
    from othello_env.engine import legal_moves

    black, white, black_to_move, _ = replay_moves(np.asarray(prefix, dtype=np.int64))
    return legal_moves(black, white) if black_to_move else legal_moves(white, black)


def test_game_frames_explicit_forced_pass():
    # a game in which some side passes: consecutive moves by the same colour
    from othello_env.pettingzoo import raw_env

    games = generate_games(400, seed=3)
    for g in games:
        env = raw_env()
        env.reset()
        seq, passed_at = [], None
        for sq in g[g >= 0]:
            if env.observe(env.agent_selection)["action_mask"][64]:
                passed_at = passed_at if passed_at is not None else len(seq)
                seq.append(64)
                env.step(64)
            seq.append(int(sq))
            env.step(int(sq))
        if passed_at is not None:
            break
    assert passed_at is not None
    explicit, implicit = game_frames(seq), game_frames([s for s in seq if s != 64])
    assert len(explicit) == len(implicit) + seq.count(64)


@pytest.mark.parametrize("moves, match", [
    ([19, 19], r"moves\[1\] = d3 is not legal"),
    ([0], r"moves\[0\] = a1 is not legal"),
    ([64], r"moves\[0\] = a pass is not legal"),
    ([19, 65], r"moves\[1\] = 65 is not a square"),
    ([19, -1, 18], r"moves\[1\] = -1 \(padding\) is followed"),
    (["d3", "zz"], "not a square name"),
    ([19, 1.5], r"moves\[1\] = 1.5 is not a square"),
    ([True], "is not a square"),
    ("d3", "must be a list"),
    (19, "must be a list"),
])
def test_game_frames_refuses_bad_moves(moves, match):
    with pytest.raises(ValueError, match=match) as e:
        game_frames(moves)
    assert "\n" not in str(e.value)


def test_save_gif_writes_every_position_atomically(tmp_path):
    pytest.importorskip("PIL")
    from PIL import Image

    game = generate_games(1, seed=2)[0]
    moves = game[game >= 0][:12]
    out = tmp_path / "game.gif"
    save_gif(moves, out, fps=4)
    assert sorted(os.listdir(tmp_path)) == ["game.gif"]  # no temporary left
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would make it
    frames = game_frames(moves)
    with Image.open(out) as im:
        assert im.format == "GIF" and im.n_frames == len(frames) == 13
        assert im.info["duration"] == 250 and im.info.get("loop") == 0
        for k in (0, 5, 12):
            im.seek(k)
            np.testing.assert_array_equal(np.asarray(im.convert("RGB")), frames[k])
    save_gif([], out)  # overwrite: the start position alone
    with Image.open(out) as im:
        assert im.n_frames == 1


def test_save_gif_bad_input_leaves_nothing(tmp_path):
    pytest.importorskip("PIL")
    out = tmp_path / "g.gif"
    out.write_bytes(b"previous")
    for kwargs, match in (({"moves": [19, 0]}, "not legal"), ({"moves": [19], "fps": 0}, "fps"),
                          ({"moves": [19], "fps": True}, "fps")):
        with pytest.raises(ValueError, match=match):
            save_gif(kwargs["moves"], out, **{k: v for k, v in kwargs.items() if k != "moves"})
    assert out.read_bytes() == b"previous"
    with pytest.raises(ValueError, match="is a directory"):
        save_gif([19], tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        save_gif([19], tmp_path / "missing" / "g.gif")
    assert sorted(os.listdir(tmp_path)) == ["g.gif"]


def test_save_gif_without_pillow_says_what_to_install(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_pil(name, *args, **kwargs):
        if name == "PIL" or name.startswith("PIL."):
            raise ImportError("No module named 'PIL'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pil)
    with pytest.raises(ModuleNotFoundError, match="pip install pillow"):
        save_gif([19], tmp_path / "g.gif")
    assert os.listdir(tmp_path) == []



def _position_of(prefix):
    """(black, white, legal) after a move list, legal for the side to move (what the envs draw)."""
    from othello_env.arguments import replay_moves

    black, white, _, _ = replay_moves(np.asarray(prefix, dtype=np.int64))
    return black, white, _legal_of(prefix)


def test_the_envs_mark_the_last_move_in_their_pictures():
    """Othello-v0, the native vector env and the PettingZoo env draw the last square played."""
    import gymnasium as gym

    from othello_env.pettingzoo import env as aec_env
    from othello_env.vector import OthelloVectorEnv

    single = gym.make("othello_env:Othello-v0", render_mode="rgb_array").unwrapped
    _, info = single.reset(seed=3)
    _, _, _, _, info = single.step(int(np.flatnonzero(info["action_mask"])[0]))
    played = info["moves"][info["moves"] >= 0]  # the agent's move and the opponent's reply
    frame = single.render()
    np.testing.assert_array_equal(frame, board_rgb(*_position_of(played), int(played[-1])))
    assert not np.array_equal(frame, board_rgb(*_position_of(played), None))

    vec = OthelloVectorEnv(2, render_mode="rgb_array")
    _, infos = vec.reset(seed=3)
    vec.step(np.array([int(np.flatnonzero(m)[0]) for m in infos["action_mask"]]))
    for i, img in enumerate(vec.render()):
        h = vec.moves(i)
        h = h[h >= 0]
        np.testing.assert_array_equal(img, board_rgb(*_position_of(h), int(h[-1])))

    pz = aec_env(render_mode="rgb_array")
    pz.reset()
    first = int(np.flatnonzero(pz.observe(pz.agent_selection)["action_mask"])[0])
    pz.step(first)
    np.testing.assert_array_equal(pz.render(), board_rgb(*_position_of([first]), first))
