"""OthelloGPT's move vocabulary: token 0 is padding, tokens 1..60 the playable squares.

The 60 non-centre squares (row*8 + col, centre 27, 28, 35, 36 excluded) are
numbered in increasing square order: square 0 -> token 1, ..., square 26 ->
token 27, square 29 -> token 28, ..., square 63 -> token 60. Passes have no
token (a pass shows as the same colour moving twice).
"""

from __future__ import annotations

import numpy as np

PAD = 0
VOCAB_SIZE = 61
CENTRE = (27, 28, 35, 36)

# TOKEN_TO_SQUARE[token] = square, -1 for PAD; SQUARE_TO_TOKEN[square] = token, -1 for centre squares
TOKEN_TO_SQUARE = np.array([-1] + [s for s in range(64) if s not in CENTRE], dtype=np.int64)
SQUARE_TO_TOKEN = np.full(64, -1, dtype=np.int64)
SQUARE_TO_TOKEN[TOKEN_TO_SQUARE[1:]] = np.arange(1, VOCAB_SIZE)
_SQUARE_OR_NONE_TO_TOKEN = np.append(SQUARE_TO_TOKEN, PAD)  # index -1 (no move) -> PAD


def _as_int64(values, what: str) -> np.ndarray:
    """``values`` as int64; ValueError unless they are integers (no silent truncation of 19.7)."""
    arr = np.asarray(values)
    if arr.size and (arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{what} must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def squares_to_tokens(squares) -> np.ndarray:
    """Map square indices (any shape; -1 = no move) to tokens (PAD for -1).

    Raises ValueError on a non-integer input, a centre square or a value outside -1..63.
    """
    sq = _as_int64(squares, "square indices")
    if sq.size and (sq.min() < -1 or sq.max() > 63):
        raise ValueError("square indices must lie in -1..63")
    tok = _SQUARE_OR_NONE_TO_TOKEN[sq]  # one lookup: a play's move lists are long
    if tok.size and tok.min() < 0:
        raise ValueError("centre squares 27, 28, 35, 36 are never played")
    return tok


def tokens_to_squares(tokens) -> np.ndarray:
    """Map tokens (any shape) to square indices, -1 for PAD.

    Raises ValueError on a non-integer input or a token outside 0..60.
    """
    tok = _as_int64(tokens, "tokens")
    if tok.size and (tok.min() < 0 or tok.max() >= VOCAB_SIZE):
        raise ValueError(f"tokens must lie in 0..{VOCAB_SIZE - 1}")
    return TOKEN_TO_SQUARE[tok]
