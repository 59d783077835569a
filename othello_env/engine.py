"""Othello rules as pure Numba functions over uint64 bitboards.

Bit ``i`` of a board is square ``i = row*8 + col`` (a1 = 0, h8 = 63). A
position is a pair ``(me, opp)``: the discs of the player to move and of the
other player. The rule functions are ``@njit(cache=True)`` and callable both
from Python and from other Numba code; the two plain Python functions are
:func:`perft` (a checked wrapper of :func:`perft_jit`) and :func:`describe` (the
error-message helper). Boards are uint64 (from Python: a
``np.uint64`` or a plain int in 0..2**64-1; results come back as plain ints),
squares and counts are int64.

Turn handling is the caller's job: :func:`apply_move` returns the boards still
labelled from the old mover's side, so the next position is
``(new_opp, new_me)``. A player with no legal move passes (swap without a
move); the game is over when neither side can move (:func:`is_game_over`).

Numba note: uint64 mixed with a Python int promotes to int64 or float64, so
every constant and shift amount below is an ``np.uint64`` and no shift is by
64 or more.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import config, njit, types
from numba.extending import intrinsic

U0 = np.uint64(0)
U1 = np.uint64(1)
FULL = np.uint64(0xFFFFFFFFFFFFFFFF)
# Discs that may take part in a run along a direction with a column component:
# columns b..g. A disc on column a or h cannot be flanked horizontally, and
# masking them out stops shifted runs from wrapping around a row.
INNER_COLS = np.uint64(0x7E7E7E7E7E7E7E7E)
BLACK_START = np.uint64((1 << 28) | (1 << 35))
WHITE_START = np.uint64((1 << 27) | (1 << 36))

# Explicit signatures: boards arrive from Python as plain ints (Numba boxes
# uint64 results as int), and a lazily typed int64 signature would overflow
# on boards with bit 63 set.
_B = types.uint64

# Shift amounts: "up" (<<) moves towards higher squares, "down" (>>) towards lower.
S1 = np.uint64(1)  # col +1 / col -1
S7 = np.uint64(7)  # row +1 col -1 / row -1 col +1
S8 = np.uint64(8)  # row +1 / row -1
S9 = np.uint64(9)  # row +1 col +1 / row -1 col -1

# ---------------------------------------------------------------------------
# popcount / trailing zeros: LLVM intrinsics when compiled, plain Python under
# NUMBA_DISABLE_JIT (where an @intrinsic cannot be called).
# ---------------------------------------------------------------------------


@intrinsic
def _llvm_ctpop(typingctx, x):
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


@intrinsic
def _llvm_cttz(typingctx, x):
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        # Second operand false: defined result (64) for a zero input.
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 0))

    return sig, codegen


if config.DISABLE_JIT:

    def popcount(x):
        """Number of set bits of a uint64 board."""
        return bin(int(x)).count("1")

    def lowest_square(x):
        """Index of the lowest set bit of a non-zero board (64 for an empty board)."""
        x = int(x)
        return (x & -x).bit_length() - 1 if x else 64

else:

    @njit("int64(uint64)", cache=True, inline="always")
    def popcount(x):
        """Number of set bits of a uint64 board."""
        return np.int64(_llvm_ctpop(np.uint64(x)))

    @njit("int64(uint64)", cache=True, inline="always")
    def lowest_square(x):
        """Index of the lowest set bit of a non-zero board (64 for an empty board)."""
        return np.int64(_llvm_cttz(np.uint64(x)))


# ---------------------------------------------------------------------------
# Move generation. For each of the 8 directions, grow runs of opponent discs
# starting next to my discs (5 steps cover the longest run of 6); the empty
# square just past a run is a legal move.
# ---------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _moves_up(me, o, empty, s):
    t = o & (me << s)
    t |= o & (t << s)
    t |= o & (t << s)
    t |= o & (t << s)
    t |= o & (t << s)
    t |= o & (t << s)
    return empty & (t << s)


@njit(cache=True, inline="always")
def _moves_down(me, o, empty, s):
    t = o & (me >> s)
    t |= o & (t >> s)
    t |= o & (t >> s)
    t |= o & (t >> s)
    t |= o & (t >> s)
    t |= o & (t >> s)
    return empty & (t >> s)


@njit(_B(_B, _B), cache=True)
def legal_moves(me, opp):
    """Bitmask of the squares where the player owning ``me`` may move (0: must pass)."""
    me = np.uint64(me)
    opp = np.uint64(opp)
    empty = ~(me | opp)
    oh = opp & INNER_COLS
    m = _moves_up(me, oh, empty, S1)
    m |= _moves_down(me, oh, empty, S1)
    m |= _moves_up(me, opp, empty, S8)
    m |= _moves_down(me, opp, empty, S8)
    m |= _moves_up(me, oh, empty, S7)
    m |= _moves_down(me, oh, empty, S7)
    m |= _moves_up(me, oh, empty, S9)
    m |= _moves_down(me, oh, empty, S9)
    return m


@njit(cache=True, inline="always")
def _flips_up(me, o, mv, s):
    t = o & (mv << s)
    t |= o & (t << s)
    t |= o & (t << s)
    t |= o & (t << s)
    t |= o & (t << s)
    t |= o & (t << s)
    # The run is flanked iff the square just past its far end is mine.
    if (t << s) & me:
        return t
    return U0


@njit(cache=True, inline="always")
def _flips_down(me, o, mv, s):
    t = o & (mv >> s)
    t |= o & (t >> s)
    t |= o & (t >> s)
    t |= o & (t >> s)
    t |= o & (t >> s)
    t |= o & (t >> s)
    if (t >> s) & me:
        return t
    return U0


@njit(_B(_B, _B, _B), cache=True)
def flips_bit(me, opp, mv):
    """Discs flipped when the mover plays the single-bit board ``mv`` (no legality check)."""
    oh = opp & INNER_COLS
    f = _flips_up(me, oh, mv, S1)
    f |= _flips_down(me, oh, mv, S1)
    f |= _flips_up(me, opp, mv, S8)
    f |= _flips_down(me, opp, mv, S8)
    f |= _flips_up(me, oh, mv, S7)
    f |= _flips_down(me, oh, mv, S7)
    f |= _flips_up(me, oh, mv, S9)
    f |= _flips_down(me, oh, mv, S9)
    return f


@njit(_B(_B, _B, types.int64), cache=True)
def flips(me, opp, sq):
    """Discs flipped by the mover playing square ``sq`` (0 if ``sq`` is occupied or illegal)."""
    me = np.uint64(me)
    opp = np.uint64(opp)
    if sq < 0 or sq > 63:
        return U0
    mv = U1 << np.uint64(sq)
    if (me | opp) & mv:
        return U0
    return flips_bit(me, opp, mv)


@njit(types.UniTuple(_B, 2)(_B, _B, types.int64), cache=True)
def apply_move(me, opp, sq):
    """Boards after the mover plays the legal square ``sq``: ``(new_me, new_opp)``.

    Still labelled from the old mover's side: the next position is
    ``(new_opp, new_me)``. An illegal ``sq`` (nothing flipped) returns the
    boards unchanged; check :func:`legal_moves` first.
    """
    me = np.uint64(me)
    opp = np.uint64(opp)
    f = flips(me, opp, sq)
    if f == U0:
        return me, opp
    return me | f | (U1 << np.uint64(sq)), opp & ~f


# Square states of :func:`edit_square` / :func:`legal_after_edit` (the probes' "mover" classes).
EMPTY, MINE, THEIRS = 0, 1, 2


@njit(types.UniTuple(_B, 2)(_B, _B, types.int64, types.int64), cache=True)
def edit_square(me, opp, sq, state):
    """Boards with square ``sq`` (0..63) set to ``state``: 0 empty, 1 mine, 2 theirs.

    Nothing else changes (no flips): the result need not be reachable in a game.
    Out-of-range ``sq`` or ``state`` return the boards unchanged.
    """
    me = np.uint64(me)
    opp = np.uint64(opp)
    if sq < 0 or sq > 63 or state < 0 or state > 2:
        return me, opp
    bit = U1 << np.uint64(sq)
    me &= ~bit
    opp &= ~bit
    if state == 1:
        me |= bit
    elif state == 2:
        opp |= bit
    return me, opp


@njit(_B(_B, _B, types.int64, types.int64), cache=True)
def legal_after_edit(me, opp, sq, state):
    """Legal moves of the mover (``me``) once square ``sq`` is set to ``state``
    (0 empty, 1 mine, 2 theirs; :func:`edit_square`): the board of a probe intervention."""
    a, b = edit_square(me, opp, sq, state)
    return legal_moves(a, b)


@njit(types.boolean(_B, _B), cache=True)
def is_game_over(me, opp):
    """True when neither side has a legal move."""
    return legal_moves(me, opp) == U0 and legal_moves(opp, me) == U0


@njit(types.int64(_B, _B), cache=True)
def score(me, opp):
    """Disc difference ``popcount(me) - popcount(opp)`` (empties are not counted)."""
    return popcount(me) - popcount(opp)


def describe(value) -> str:
    """A short one-line description of a bad argument, for error messages.

    A NumPy array's repr spans several lines and a long list's runs on, so arrays
    are described by shape and dtype and other reprs are cut at 60 characters.
    """
    if isinstance(value, np.ndarray) and value.ndim:
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."


def perft(depth: int) -> int:
    """Leaves of the game tree from the start position after ``depth`` plies.

    Standard convention: a forced pass is one ply; a finished game is one leaf
    whatever depth remains (perft(10) = 24,571,284). Raises ValueError unless
    ``depth`` is an integer in 0..60.
    """
    if isinstance(depth, (bool, np.bool_)) or not isinstance(depth, (int, np.integer)):
        raise ValueError(f"depth must be an integer, got {describe(depth)}")
    if not 0 <= depth <= 60:
        raise ValueError(f"depth must lie in 0..60, got {depth}")
    return int(perft_jit(depth))


@njit(types.int64(types.int64), cache=True)
def perft_jit(depth):
    """:func:`perft` without argument checks, callable from Numba code.

    Iterative (explicit stack); the last ply is counted in bulk with popcount.
    """
    if depth <= 0:
        return 1
    # Stack of positions from the mover's side and of moves still to try.
    me_s = np.zeros(depth + 1, dtype=np.uint64)
    opp_s = np.zeros(depth + 1, dtype=np.uint64)
    todo = np.zeros(depth + 1, dtype=np.uint64)
    me_s[0] = BLACK_START
    opp_s[0] = WHITE_START
    todo[0] = legal_moves(BLACK_START, WHITE_START)
    leaves = 0
    d = 0  # stack level; remaining depth = depth - d
    while d >= 0:
        rem = depth - d
        me = me_s[d]
        opp = opp_s[d]
        ml = todo[d]
        if rem == 1:
            # Bulk count: each move is a leaf; a pass or game end is one leaf.
            c = popcount(ml)
            leaves += c if c > 0 else 1
            d -= 1
            continue
        if ml == U0:
            d -= 1
            continue
        if ml == FULL:
            # Marker: this level must pass (set when the node was entered).
            todo[d] = U0
            nme = opp
            nopp = me
        else:
            mv = ml & (~ml + U1)
            todo[d] = ml ^ mv
            f = flips_bit(me, opp, mv)
            nme = opp & ~f
            nopp = me | f | mv
        d += 1
        me_s[d] = nme
        opp_s[d] = nopp
        lm = legal_moves(nme, nopp)
        if lm == U0:
            if legal_moves(nopp, nme) == U0:
                leaves += 1  # game over: one leaf
                d -= 1
                continue
            if depth - d == 1:
                leaves += 1  # the pass itself is the last ply
                d -= 1
                continue
            lm = FULL  # FULL is never a real move set (the centre is occupied)
        todo[d] = lm
    return leaves
