"""Board pictures shared by the Othello environments: text, RGB and GIF, NumPy only.

Squares follow the engine: square ``i = row*8 + col``, row 0 printed first and
labelled rank ``1``, column 0 labelled file ``a`` (so square 0 is ``a1`` and
square 19, a first legal move for black, is ``d3``). :func:`square_name` and
:func:`parse_square` convert between the two. The RGB picture draws the same
labels around the board and can mark the last move; :func:`save_gif` writes a
whole game (pillow, imported only there).
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

FILES = "abcdefgh"
CELL = 32  # pixels per square in rgb_array pictures
BORDER = 20  # pixels of frame around the board, holding the coordinates
SIZE = 8 * CELL + 2 * BORDER  # picture height = width = 296

_GREEN = np.array([0, 120, 60], dtype=np.uint8)
_FRAME = np.array([40, 40, 40], dtype=np.uint8)
_GRID = np.array([0, 70, 35], dtype=np.uint8)
_BLACK = np.array([15, 15, 15], dtype=np.uint8)
_WHITE = np.array([240, 240, 240], dtype=np.uint8)
_HINT = np.array([255, 200, 0], dtype=np.uint8)
_LAST = np.array([220, 30, 30], dtype=np.uint8)
_LABEL = np.array([210, 210, 210], dtype=np.uint8)

# Pixel masks of one cell: a disc (radius 13), a legal-move hint (radius 4), the last-move mark.
_yy, _xx = np.mgrid[0:CELL, 0:CELL] + 0.5 - CELL / 2
_DISC = _yy**2 + _xx**2 <= 13.0**2
_DOT = _yy**2 + _xx**2 <= 4.0**2
_MARK = _yy**2 + _xx**2 <= 5.0**2

# 5x7 glyphs of the coordinates, drawn at twice the size (10x14 pixels).
_FONT_ROWS = {
    "a": ("     ", "     ", " ### ", "    #", " ####", "#   #", " ####"),
    "b": ("#    ", "#    ", "# ## ", "##  #", "#   #", "#   #", "#### "),
    "c": ("     ", "     ", " ### ", "#    ", "#    ", "#   #", " ### "),
    "d": ("    #", "    #", " ## #", "#  ##", "#   #", "#   #", " ####"),
    "e": ("     ", "     ", " ### ", "#   #", "#####", "#    ", " ### "),
    "f": ("  ## ", " #  #", " #   ", "###  ", " #   ", " #   ", " #   "),
    "g": ("     ", " ####", "#   #", "#   #", " ####", "    #", " ### "),
    "h": ("#    ", "#    ", "# ## ", "##  #", "#   #", "#   #", "#   #"),
    "1": ("  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "),
    "2": (" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"),
    "3": ("#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "),
    "4": ("   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "),
    "5": ("#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "),
    "6": ("  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "),
    "7": ("#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "),
    "8": (" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "),
}
_SCALE = 2
_GLYPHS = {
    ch: np.kron(np.array([[c == "#" for c in row] for row in rows]), np.ones((_SCALE, _SCALE)))
    .astype(bool)
    for ch, rows in _FONT_ROWS.items()
}  # char -> bool (14, 10)


def _bits(board) -> np.ndarray:
    """Bool (64,) array: bit i of a uint64 board."""
    le = np.array([int(board)], dtype="<u8").view(np.uint8)
    return np.unpackbits(le, bitorder="little").astype(bool)


def board_ansi(black, white, legal=0, to_move: str | None = None) -> str:
    """Text board: ``X`` black, ``O`` white, ``*`` a legal move of the side to move, ``.`` empty.

    Args:
        black, white: uint64 bitboards.
        legal: bitboard of legal moves to mark (0 marks none).
        to_move: an optional status line printed under the board.
    """
    b, w, lg = _bits(black), _bits(white), _bits(legal)
    lines = ["  " + " ".join(FILES)]
    for r in range(8):
        row = []
        for c in range(8):
            s = r * 8 + c
            row.append("X" if b[s] else "O" if w[s] else "*" if lg[s] else ".")
        lines.append(f"{r + 1} " + " ".join(row))
    lines.append(f"X {int(b.sum())}  O {int(w.sum())}" + (f"  {to_move}" if to_move else ""))
    return "\n".join(lines) + "\n"


def last_square(moves) -> int | None:
    """The last square of a move history (``info["moves"]``: squares, then -1), or None.

    For :func:`board_rgb`'s ``last``: ``board_rgb(black, white, legal, last_square(moves))``.
    """
    h = np.asarray(moves).ravel()
    h = h[h >= 0]
    return int(h[-1]) if h.size else None


def _label(img: np.ndarray, ch: str, cy: int, cx: int) -> None:
    """Draw glyph ``ch`` centred on pixel (cy, cx)."""
    g = _GLYPHS[ch]
    y, x = cy - g.shape[0] // 2, cx - g.shape[1] // 2
    img[y : y + g.shape[0], x : x + g.shape[1]][g] = _LABEL


def board_rgb(black, white, legal=0, last: int | None = None) -> np.ndarray:
    """RGB picture of the board, uint8 (SIZE, SIZE, 3) = (296, 296, 3).

    Green board, black and white discs, yellow legal-move dots, files ``a``-``h``
    above and below the board and ranks ``1``-``8`` on both sides (rank 1 at the top,
    as in :func:`board_ansi`). ``last``: the square of the last move, marked by a red
    dot on its disc (None, -1 or 64 (a pass) mark nothing).
    """
    b, w, lg = _bits(black), _bits(white), _bits(legal)
    if last is not None and not -1 <= int(last) <= 64:
        raise ValueError(f"last must be a square 0..63 (or None, -1, 64), got {last}")
    img = np.empty((SIZE, SIZE, 3), dtype=np.uint8)
    img[:] = _FRAME
    img[BORDER:-BORDER, BORDER:-BORDER] = _GREEN
    for i in range(8):
        mid = BORDER + i * CELL + CELL // 2
        for edge in (BORDER // 2, SIZE - BORDER // 2):
            _label(img, FILES[i], edge, mid)  # files along the top and bottom
            _label(img, str(i + 1), mid, edge)  # ranks along the left and right
    for s in range(64):
        r, c = divmod(s, 8)
        cell = img[
            BORDER + r * CELL : BORDER + (r + 1) * CELL, BORDER + c * CELL : BORDER + (c + 1) * CELL
        ]
        cell[0, :] = _GRID  # one-pixel grid line on the top and left edge of every cell
        cell[:, 0] = _GRID
        if b[s]:
            cell[_DISC] = _BLACK
        elif w[s]:
            cell[_DISC] = _WHITE
        elif lg[s]:
            cell[_DOT] = _HINT
        if last is not None and int(last) == s:
            cell[_MARK] = _LAST
    return img


def square_name(sq: int) -> str:
    """Algebraic name of a square index: 0 -> 'a1', 19 -> 'd3', 64 -> 'pass'."""
    if sq == 64:
        return "pass"
    if not 0 <= sq < 64:
        raise ValueError(f"square must lie in 0..64, got {sq}")
    return f"{FILES[sq % 8]}{sq // 8 + 1}"


def parse_square(name: str) -> int:
    """Square index of an algebraic name: 'a1' -> 0, 'D3' -> 19, ' h8 ' -> 63, 'pass' -> 64.

    Case-insensitive, surrounding whitespace ignored; the inverse of :func:`square_name`.
    ValueError (one line) for anything else.
    """
    if not isinstance(name, str):
        raise ValueError(f"a square name must be a string such as 'd3', got {type(name).__name__}")
    text = name.strip().lower()
    if text == "pass":
        return 64
    if len(text) == 2 and text[0] in FILES and text[1] in "12345678":
        return (int(text[1]) - 1) * 8 + FILES.index(text[0])
    shown = name if len(name) <= 20 else name[:20] + "..."
    raise ValueError(f"not a square name: {shown!r}; use a file a-h and a rank 1-8 such as 'd3', "
                     "or 'pass'")


def game_frames(moves, legal: bool = True) -> list[np.ndarray]:
    """RGB pictures of a game: the start position, then the position after each move.

    ``moves``: squares 0..63 or names ('d3'), in play order; a pass is implicit (as in
    ``info["moves"]`` and the corpus) or an explicit 64 / 'pass' where the side to move
    has no placement; trailing -1 (padding of ``info["moves"]``) is ignored. Each frame
    marks its move (:func:`board_rgb` ``last``) and, with ``legal``, the next side's
    legal moves. ValueError (one line, naming the index) for a bad or illegal move.
    """
    from othello_env.engine import BLACK_START, WHITE_START, apply_move, legal_moves

    if isinstance(moves, (str, bytes)) or not hasattr(moves, "__iter__"):
        raise ValueError(f"moves must be a list of squares or names, got {type(moves).__name__}")
    items = list(moves)
    while items and not isinstance(items[-1], str) and _square_value(items[-1], len(items) - 1) == -1:
        items.pop()
    me, opp, black_to_move = int(BLACK_START), int(WHITE_START), True

    def frame(last=None):
        black, white = (me, opp) if black_to_move else (opp, me)
        return board_rgb(black, white, legal_moves(me, opp) if legal else 0, last)

    frames = [frame()]
    for k, item in enumerate(items):
        sq = parse_square(item) if isinstance(item, str) else _square_value(item, k)
        if sq == -1:
            raise ValueError(f"moves[{k}] = -1 (padding) is followed by more moves")
        mine = legal_moves(me, opp)
        if mine == 0 and legal_moves(opp, me) == 0:
            raise ValueError(f"moves[{k}]: the game is already over before this move")
        if mine == 0:  # a forced pass, implicit or explicit
            me, opp, black_to_move = opp, me, not black_to_move
            if sq == 64:
                frames.append(frame(64))
                continue
            mine = legal_moves(me, opp)
        if sq == 64 or not (mine >> sq) & 1:
            what = "a pass" if sq == 64 else square_name(sq)
            raise ValueError(f"moves[{k}] = {what} is not legal in that position")
        new_me, new_opp = apply_move(me, opp, sq)
        me, opp, black_to_move = int(new_opp), int(new_me), not black_to_move
        frames.append(frame(sq))
    return frames


def _square_value(item, k: int) -> int:
    """An integer move entry in -1..64; ValueError otherwise."""
    if isinstance(item, (bool, np.bool_)):
        raise ValueError(f"moves[{k}] = {item!r} is not a square")
    try:
        v = int(item)
    except (TypeError, ValueError):
        raise ValueError(f"moves[{k}] = {item!r} is not a square") from None
    if v != item or not -1 <= v <= 64:
        raise ValueError(f"moves[{k}] = {item!r} is not a square 0..63 (64 = pass)")
    return v


def save_gif(moves, path, fps: float = 2.0, legal: bool = True) -> None:
    """Write a game (a move list, see :func:`game_frames`) as an animated GIF at ``path``.

    One frame per position at ``fps`` frames per second, the final position held for
    three frames, looping. Written to a temporary file in the same directory and renamed
    onto ``path``: a failure leaves no partial file. Needs pillow (imported here only);
    ValueError (one line) for bad moves, a bad ``fps`` or an unusable ``path``.
    """
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 100:
        raise ValueError(f"fps must be a number in (0, 100], got {fps!r}")
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ValueError(f"cannot write {path}: it is a directory")
    if not os.path.isdir(parent):
        raise ValueError(f"cannot write {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {path}: permission denied in {parent}")
    frames = game_frames(moves, legal=legal)
    try:
        from PIL import Image
    except ImportError:
        raise ModuleNotFoundError("save_gif needs pillow: pip install pillow") from None
    images = [Image.fromarray(f) for f in frames]
    ms = int(round(1000 / fps))
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            images[0].save(fh, format="GIF", save_all=True, append_images=images[1:],
                           duration=[ms] * (len(images) - 1) + [3 * ms], loop=0)
        umask = os.umask(0)  # mkstemp makes 0600; the result should look like open()'s
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError):
            raise ValueError(f"cannot write {path}: {e.strerror or e}") from None
        raise
