"""Many two-player Othello games in arrays, both sides moved from outside, stepped by Numba.

What a match between two policies needs (:func:`train.analysis.play.match`): the rules and
views of the PettingZoo env (:class:`othello_env.pettingzoo.raw_env`) for ``n`` games at
once, without an env object per game. :class:`TwoPlayerGames` holds the games; row ``i``
after the same actions is the same position, history, action mask and observation as a
``raw_env`` after the same ``step`` calls (tests/othello_env/test_twoplayer.py checks
them against each other): black moves first; a pass (64) is an explicit turn, legal only
when the mover has no placement; the game is over when neither side can move.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from othello_env.engine import BLACK_START, U0, WHITE_START, apply_move, legal_moves, popcount
from othello_env.games import MAX_MOVES
from othello_env.kernels import FIRST_LEGAL, N_ACTIONS, OBS_SHAPE, PASS, as_words, write_planes_row

BLACK, WHITE = 0, 1


@njit(cache=True)
def _masks(discs, turn, legal, over, rows, mask):
    """mask int8 (k, 65): the mover's legal actions in each of ``rows`` (all 0 once over)."""
    for k in range(rows.shape[0]):
        i = rows[k]
        lg = U0 if over[i] else legal[i]
        for s in range(64):
            mask[k, s] = np.int8((lg >> np.uint64(s)) & np.uint64(1))
        mask[k, PASS] = 1 if not over[i] and lg == U0 else 0


@njit(cache=True)
def _views(discs, turn, legal, over, rows, obs, mask):
    """The mover's observation [own, other, legal] (k, 3, 8, 8) and mask (k, 65), int8."""
    words = as_words(obs)
    for k in range(rows.shape[0]):
        i = rows[k]
        p = turn[i]
        lg = U0 if over[i] else legal[i]
        ok = 1 if not over[i] and lg == U0 else 0
        write_planes_row(discs[i, p], discs[i, 1 - p], lg, ok, words, mask, k)


@njit(cache=True)
def _play(discs, turn, legal, over, hist, nmoves, rows, actions):
    """The mover of row ``rows[k]`` plays ``actions[k]``: -1, or the first k whose action is
    not legal (then nothing is played)."""
    for k in range(rows.shape[0]):
        i = rows[k]
        a = actions[k]
        if over[i] or a < 0 or a > PASS:
            return k
        if a == PASS:
            if legal[i] != U0:
                return k
        elif (legal[i] >> np.uint64(a)) & np.uint64(1) == U0:
            return k
    for k in range(rows.shape[0]):
        i = rows[k]
        a = actions[k]
        p = turn[i]
        if a != PASS:
            me, opp = apply_move(discs[i, p], discs[i, 1 - p], a)
            discs[i, p] = me
            discs[i, 1 - p] = opp
            hist[i, nmoves[i]] = a
            nmoves[i] += 1
        turn[i] = 1 - p
        legal[i] = legal_moves(discs[i, 1 - p], discs[i, p])  # the other side's placements
        if legal[i] == U0 and legal_moves(discs[i, p], discs[i, 1 - p]) == U0:
            over[i] = True
    return -1


@njit(cache=True)
def _disc_diff(discs, out):
    """out int64 (n,): black's discs minus white's."""
    for i in range(discs.shape[0]):
        out[i] = popcount(discs[i, BLACK]) - popcount(discs[i, WHITE])


class TwoPlayerGames:
    """``n`` Othello games from the start position, each side's moves given from outside.

    State (NumPy arrays, row ``i`` = game ``i``): ``discs`` uint64 (n, 2) black's and
    white's discs, ``turn`` int64 (n,) the side to move (0 black, 1 white; after the end,
    the side that would move next), ``over`` bool (n,), ``hist`` int8 (n, 60) the squares
    played (passes omitted) then -1, as ``raw_env``'s ``infos[agent]["moves"]``, and
    ``nmoves`` int64 (n,) their number. ``rows`` arguments are int64 index arrays.
    """

    def __init__(self, n: int):
        self.discs = np.empty((n, 2), np.uint64)
        self.discs[:, BLACK], self.discs[:, WHITE] = BLACK_START, WHITE_START
        self.turn = np.zeros(n, np.int64)
        self.legal = np.full(n, FIRST_LEGAL, np.uint64)  # the mover's placements
        self.over = np.zeros(n, np.bool_)
        self.hist = np.full((n, MAX_MOVES), -1, np.int8)
        self.nmoves = np.zeros(n, np.int64)

    def __len__(self) -> int:
        return self.turn.shape[0]

    def _state(self):
        return self.discs, self.turn, self.legal, self.over

    def masks(self, rows) -> np.ndarray:
        """int8 (k, 65): the legal actions of the side to move in each of ``rows`` (pass 64
        only when it has no placement; all 0 in a finished game), as ``raw_env.observe``."""
        rows = np.asarray(rows, np.int64)
        mask = np.empty((rows.shape[0], N_ACTIONS), np.int8)
        _masks(*self._state(), rows, mask)
        return mask

    def forced_pass(self, rows) -> np.ndarray:
        """bool (k,): the side to move in each of ``rows`` can only pass."""
        rows = np.asarray(rows, np.int64)
        return (self.legal[rows] == 0) & ~self.over[rows]

    def views(self, rows) -> tuple[np.ndarray, np.ndarray]:
        """``(observations, masks)`` of the side to move in ``rows``: int8 (k, 3, 8, 8)
        (its discs, the other's, its legal placements) and (k, 65), as ``raw_env.observe``."""
        rows = np.asarray(rows, np.int64)
        obs = np.empty((rows.shape[0],) + OBS_SHAPE, np.int8)
        mask = np.empty((rows.shape[0], N_ACTIONS), np.int8)
        _views(*self._state(), rows, obs, mask)
        return obs, mask

    def play(self, rows, actions):
        """The side to move in ``rows[k]`` plays ``actions[k]`` (0..63, or 64 to pass when it
        has no placement); ValueError, with nothing played, if one is not legal."""
        rows = np.asarray(rows, np.int64)
        actions = np.asarray(actions, np.int64)
        if actions.shape != rows.shape:
            raise ValueError(f"need one action per row: {actions.shape} for {rows.shape}")
        bad = _play(*self._state(), self.hist, self.nmoves, rows, actions)
        if bad >= 0:
            i, a = int(rows[bad]), int(actions[bad])
            mask = self.masks(rows[bad : bad + 1])[0]
            who = ("player_0", "player_1")[int(self.turn[i])]
            state = "the game is over" if self.over[i] else (
                f"legal actions: {np.flatnonzero(mask).tolist()}")
            raise ValueError(f"illegal action {a} for {who} in game {i}; {state}")

    def disc_diff(self) -> np.ndarray:
        """int64 (n,): black's discs minus white's in each game."""
        out = np.empty(len(self), np.int64)
        _disc_diff(self.discs, out)
        return out
