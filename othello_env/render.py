"""Board pictures shared by the Othello environments: text and RGB, NumPy only.

Squares follow the engine: square ``i = row*8 + col``, row 0 printed first and
labelled rank ``1``, column 0 labelled file ``a`` (so square 0 is ``a1`` and
square 19, a first legal move for black, is ``d3``).
"""

from __future__ import annotations

import numpy as np

FILES = "abcdefgh"
CELL = 32  # pixels per square in rgb_array pictures
BORDER = 4  # pixels of frame around the board
SIZE = 8 * CELL + 2 * BORDER  # picture height = width = 264

_GREEN = np.array([0, 120, 60], dtype=np.uint8)
_FRAME = np.array([40, 40, 40], dtype=np.uint8)
_GRID = np.array([0, 70, 35], dtype=np.uint8)
_BLACK = np.array([15, 15, 15], dtype=np.uint8)
_WHITE = np.array([240, 240, 240], dtype=np.uint8)
_HINT = np.array([255, 200, 0], dtype=np.uint8)

# Pixel masks of one cell: a disc (radius 13) and a legal-move hint (radius 4).
_yy, _xx = np.mgrid[0:CELL, 0:CELL] + 0.5 - CELL / 2
_DISC = _yy**2 + _xx**2 <= 13.0**2
_DOT = _yy**2 + _xx**2 <= 4.0**2


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


def board_rgb(black, white, legal=0) -> np.ndarray:
    """RGB picture of the board, uint8 (SIZE, SIZE, 3): green board, discs, yellow legal-move dots."""
    b, w, lg = _bits(black), _bits(white), _bits(legal)
    img = np.empty((SIZE, SIZE, 3), dtype=np.uint8)
    img[:] = _FRAME
    img[BORDER:-BORDER, BORDER:-BORDER] = _GREEN
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
    return img


def square_name(sq: int) -> str:
    """Algebraic name of a square index: 0 -> 'a1', 19 -> 'd3', 64 -> 'pass'."""
    if sq == 64:
        return "pass"
    if not 0 <= sq < 64:
        raise ValueError(f"square must lie in 0..64, got {sq}")
    return f"{FILES[sq % 8]}{sq // 8 + 1}"
