"""Built-in Othello opponents: random, greedy and a small alpha-beta searcher, in Numba.

Three players, selectable by name (:data:`OPPONENT_NAMES`) as ``opponent=`` of
``Othello-v0``, of its native vector env (both run them inside their Numba turn
kernels, :mod:`othello_env.kernels`) and of ``lgagent play``; :func:`make_policy`
gives the same players as policy objects for anything that takes a policy
(``act(observation, info)``, and ``act_batch(masks, histories, rngs)`` for many games
at once, as :class:`agents.policies.BatchedModelPolicy`).

* ``"random"``: a uniformly random legal move (:func:`othello_env.rng.random_square`,
  the sampler of the random corpus and of the envs' random opponent).
* ``"greedy"``: the move that flips the most discs. Ties (frequent: most moves flip
  one or two discs) go to the square of highest weight in the table below (a corner
  before an edge before a square next to a corner), then to a seeded uniform draw
  among the squares still tied (same sampler), so greedy against greedy does not
  replay one game forever. The positional tie-break matters: over 2000 games against
  random, greedy scored 0.78 with it and 0.61 with a plain random tie-break.
* ``"alphabeta"``: negamax with alpha-beta pruning to ``depth`` plies (default 3;
  a forced pass counts as one ply), scoring the leaves with the square-weight
  table of Norvig's *Paradigms of AI Programming* (ch. 18: corners 120, the
  squares next to them -20 and -40, ...) plus :data:`MOBILITY` points per legal
  move more than the other side; a finished game scores
  ``WIN_SCORE * sign(disc difference) + disc difference``. Deterministic given
  the position: moves are searched from the lowest square up and a later move
  must score strictly higher, so ties go to the lowest square; it draws no random
  number.

The players read the position from the move history (``info["moves"]``, the envs'
int8 (60,) array padded with -1, or any sequence of squares) and choose among the
placements of the action mask (``info["action_mask"]``, 65 actions, 64 = pass);
a mask that allows a square not legal after the history is an error.
Nothing here imports torch.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from othello_env.engine import U0, U1, describe, flips_bit, legal_moves, lowest_square, popcount
from othello_env.games import ERR_AFTER_END, ERR_ILLEGAL, MAX_MOVES, replay_game
from othello_env.rng import next_random, random_square, seed_state

OPPONENT_NAMES = ("random", "greedy", "alphabeta")
DEFAULT_DEPTH = 3
MAX_DEPTH = 8  # depth 8: ~70 ms per move on average, up to ~0.3 s (measured on random games); 3: ~0.1 ms

# Kernel codes of an opponent: POLICY is asked from Python (OPPONENT_TO_MOVE in the kernels),
# the others play inside the kernels. Code k >= 1 is OPPONENT_NAMES[k - 1].
POLICY, RANDOM, GREEDY, ALPHABETA = 0, 1, 2, 3

PASS = 64  # the pass action, as othello_env.kernels.PASS (which imports this module)
N_ACTIONS = 65

# Norvig, Paradigms of AI Programming (1992), ch. 18 "weighted-squares", a1..h8 row by row.
SQUARE_WEIGHTS = np.array(
    [
        120, -20, 20, 5, 5, 20, -20, 120,
        -20, -40, -5, -5, -5, -5, -40, -20,
        20, -5, 15, 3, 3, 15, -5, 20,
        5, -5, 3, 3, 3, 3, -5, 5,
        5, -5, 3, 3, 3, 3, -5, 5,
        20, -5, 15, 3, 3, 15, -5, 20,
        -20, -40, -5, -5, -5, -5, -40, -20,
        120, -20, 20, 5, 5, 20, -20, 120,
    ],
    dtype=np.int64,
)  # fmt: skip
MOBILITY = 5  # points per legal move more than the other side
WIN_SCORE = 1 << 20  # above any positional score: a won game beats every unfinished one
INF = 1 << 40

# ---------------------------------------------------------------------------
# Scalar kernels over (me, opp) bitboards, the mover's side.
# ---------------------------------------------------------------------------


@njit(cache=True, inline="always")
def weighted_squares(board):
    """Sum of SQUARE_WEIGHTS over the discs of ``board``."""
    total = 0
    while board != U0:
        total += SQUARE_WEIGHTS[lowest_square(board)]
        board &= board - U1
    return total


@njit(cache=True)
def evaluate(me, opp):
    """Positional score of an unfinished position for the mover: squares + mobility."""
    mobility = popcount(legal_moves(me, opp)) - popcount(legal_moves(opp, me))
    return weighted_squares(me) - weighted_squares(opp) + MOBILITY * mobility


@njit(cache=True, inline="always")
def final_score(me, opp):
    """Score of a finished game for the owner of ``me``: a win dominates any position."""
    d = popcount(me) - popcount(opp)
    if d > 0:
        return WIN_SCORE + d
    if d < 0:
        return -WIN_SCORE + d
    return 0


@njit(cache=True)
def negamax(me, opp, depth, alpha, beta):
    """Alpha-beta value of the position for the mover, searched ``depth`` plies (a pass is one)."""
    moves = legal_moves(me, opp)
    if moves == U0:
        if legal_moves(opp, me) == U0:
            return final_score(me, opp)
        if depth <= 0:
            return evaluate(me, opp)
        return -negamax(opp, me, depth - 1, -beta, -alpha)
    if depth <= 0:
        return evaluate(me, opp)
    best = -INF
    while moves != U0:
        bit = moves & (~moves + U1)
        moves ^= bit
        f = flips_bit(me, opp, bit)
        v = -negamax(opp & ~f, me | f | bit, depth - 1, -beta, -alpha)
        if v > best:
            best = v
            if v > alpha:
                alpha = v
                if alpha >= beta:
                    break
    return best


@njit(cache=True)
def alphabeta_square(me, opp, moves, depth):
    """The square of the non-empty set ``moves`` with the best ``depth``-ply value; lowest on ties."""
    best_sq = -1
    best = -INF
    while moves != U0:
        bit = moves & (~moves + U1)
        moves ^= bit
        f = flips_bit(me, opp, bit)
        # window (best, INF): a move that cannot beat the best so far is cut early
        v = -negamax(opp & ~f, me | f | bit, depth - 1, -INF, -best)
        if v > best:
            best = v
            best_sq = lowest_square(bit)
    return best_sq


@njit(cache=True)
def greedy_square(me, opp, moves, rng):
    """``(square, rng)``: a square of ``moves`` flipping the most discs.

    Ties go to the highest SQUARE_WEIGHTS entry, then to a uniform draw from ``rng``
    (|weight| < 1000, so the weight never outranks one more flipped disc).
    """
    best = -(1 << 30)
    tied = U0
    while moves != U0:
        bit = moves & (~moves + U1)
        moves ^= bit
        c = popcount(flips_bit(me, opp, bit)) * 1000 + SQUARE_WEIGHTS[lowest_square(bit)]
        if c > best:
            best = c
            tied = bit
        elif c == best:
            tied |= bit
    return random_square(rng, tied)


@njit(cache=True, inline="always")
def choose_square(kind, depth, me, opp, moves, rng):
    """``(square, rng)``: built-in opponent ``kind`` (RANDOM, GREEDY, ALPHABETA) picks from ``moves``.

    ``moves`` is a non-empty subset of the mover's legal squares in ``(me, opp)``. Only
    the random draw is inlined into the callers (the envs' step loops): inlining the
    others too made the random opponent's vector env about 15% slower.
    """
    if kind == RANDOM:
        return random_square(rng, moves)
    if kind == GREEDY:
        return greedy_square(me, opp, moves, rng)
    if kind == ALPHABETA:
        return alphabeta_square(me, opp, moves, depth), rng
    return random_square(rng, moves)  # not reached: kind is one of the three


# Errors of _choose_batch, per row.
OK, ERR_EMPTY, ERR_HISTORY, ERR_ENDED, ERR_MASK = 0, 1, 2, 3, 4


@njit(cache=True)
def _choose_batch(kind, depth, masks, hist, states, out, err):
    """Each row: the history's position, then a move among the mask's placements.

    masks bool (n, 65), hist int8 (n, 60) padded with -1, states uint64 (n,) one random
    state per row; out int64 (n,) the actions, err int64 (n, 2) (error code, detail).
    """
    boards = np.empty((1, 1, 64), np.int8)  # replay_game fills neither (want_* False)
    fills = np.empty((1, 1, 64), np.bool_)
    for i in range(masks.shape[0]):
        err[i, 0] = OK
        allowed = U0
        for s in range(64):
            if masks[i, s]:
                allowed |= U1 << np.uint64(s)
        if allowed == U0:
            out[i] = PASS
            if not masks[i, PASS]:
                err[i, 0] = ERR_EMPTY
            continue
        if kind == RANDOM:  # the position is not needed
            sq, _ = random_square(states[i], allowed)
            out[i] = sq
            continue
        ply, problem, me, opp, _, ended = replay_game(hist, i, fills, boards, False, False)
        if problem == ERR_ILLEGAL or problem == ERR_AFTER_END:
            err[i, 0] = ERR_HISTORY
            err[i, 1] = ply
            continue
        if ended:
            err[i, 0] = ERR_ENDED
            continue
        extra = allowed & ~legal_moves(me, opp)
        if extra != U0:
            err[i, 0] = ERR_MASK
            err[i, 1] = lowest_square(extra)
            continue
        sq, _ = choose_square(kind, depth, me, opp, allowed, states[i])
        out[i] = sq


@njit(cache=True)
def _stream(state, n):
    """``n`` random uint64 states from a splitmix64 stream: ``(states, new state)``."""
    out = np.empty(n, np.uint64)
    for k in range(n):
        state, out[k] = next_random(state)
    return out, state


# ---------------------------------------------------------------------------
# Policy objects
# ---------------------------------------------------------------------------


def opponent_kind(name) -> int:
    """The kernel code (RANDOM, GREEDY, ALPHABETA) of an opponent name; ValueError otherwise."""
    if not isinstance(name, str) or name not in OPPONENT_NAMES:
        raise ValueError(f"unknown opponent {describe(name)}; built-in opponents: {', '.join(OPPONENT_NAMES)}")
    return OPPONENT_NAMES.index(name) + 1


def _histories(histories, n) -> np.ndarray:
    """int8 (n, 60): each history's squares (entries < 0 dropped), then -1."""
    if isinstance(histories, np.ndarray) and histories.ndim == 2 and histories.shape == (n, MAX_MOVES):
        if histories.dtype == np.int8:
            return np.ascontiguousarray(histories)
        if histories.dtype.kind in "iu" and (histories.size == 0 or histories.max() < 64):
            return np.ascontiguousarray(histories.astype(np.int8))
    out = np.full((n, MAX_MOVES), -1, np.int8)
    for i in range(n):
        try:
            h = np.asarray(histories[i]).ravel()
        except Exception:  # ragged nesting and the like
            raise ValueError(f"histories[{i}] is not a sequence of squares") from None
        if h.size and h.dtype.kind not in "iu":
            raise ValueError(f"histories[{i}] must hold integer squares, got {describe(histories[i])}")
        h = h[h >= 0]
        if h.size > MAX_MOVES or (h.size and h.max() > 63):
            raise ValueError(f"histories[{i}] must be at most {MAX_MOVES} squares 0..63")
        out[i, : h.size] = h
    return out


def action_mask(observation, info) -> np.ndarray:
    """The legal actions a policy is given, as a 1-D bool array: ``info["action_mask"]``, else
    a PettingZoo dict observation's ``observation["action_mask"]`` (any task: its length is
    the caller's to check). ValueError when there is none or it is not a 1-D numeric array.
    """
    mask = None
    if isinstance(info, dict) and "action_mask" in info:
        mask = info["action_mask"]
    elif isinstance(observation, dict) and "action_mask" in observation:
        mask = observation["action_mask"]
    if mask is None:
        raise ValueError('no action mask: expected info["action_mask"] or observation["action_mask"]')
    mask = np.asarray(mask)
    if mask.ndim != 1 or mask.dtype.kind not in "biuf":
        raise ValueError(f"the action mask must be a 1-D numeric array, got {describe(mask)}")
    return mask.astype(bool)


class BuiltinPolicy:
    """A built-in opponent (``"random"``, ``"greedy"``, ``"alphabeta"``) as a policy object.

    Made by :func:`make_policy`. ``act(observation, info)`` decides one move from
    ``info["action_mask"]`` (or a PettingZoo ``observation["action_mask"]``) and
    ``info["moves"]``; ``act_batch(masks, histories, rngs)`` decides for many games in
    one Numba call. A forced pass (only action 64 allowed) returns 64. Random draws
    (random's move, greedy's tie-break) come from the policy's own splitmix64 stream
    seeded by ``seed`` (None: fresh entropy), or, in ``act_batch``, from one 64-bit
    draw of each game's ``rngs[i]`` when given. ``alphabeta`` draws nothing.
    """

    def __init__(self, name: str, seed: int | None = None, depth: int = DEFAULT_DEPTH):
        self.kind = opponent_kind(name)
        if isinstance(depth, (bool, np.bool_)) or not isinstance(depth, (int, np.integer)) or not (
            1 <= depth <= MAX_DEPTH
        ):
            raise ValueError(f"depth must be an integer in 1..{MAX_DEPTH}, got {describe(depth)}")
        if seed is not None and (
            isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0
        ):
            raise ValueError(f"seed must be None or a non-negative integer, got {describe(seed)}")
        self.name = name
        self.depth = int(depth)
        self.seed = seed
        entropy = np.random.SeedSequence().entropy if seed is None else int(seed)
        self._state = seed_state(entropy)

    def __repr__(self) -> str:
        depth = f", depth={self.depth}" if self.kind == ALPHABETA else ""
        return f"make_policy({self.name!r}, seed={self.seed!r}{depth})"

    def act(self, observation, info) -> int:
        """One move: an int in 0..64 allowed by the action mask."""
        mask = action_mask(observation, info)
        if mask.shape != (N_ACTIONS,):
            raise ValueError(f"the action mask must have shape ({N_ACTIONS},), got {mask.shape}")
        if self.kind == RANDOM:
            moves = ()
        elif not isinstance(info, dict) or "moves" not in info:
            raise ValueError(f'the {self.name} policy needs the move history in info["moves"]')
        else:
            moves = info["moves"]
        return int(self.act_batch(mask[None], [moves])[0])

    __call__ = act

    def act_batch(self, masks, histories, rngs=None) -> np.ndarray:
        """Moves for ``n`` games: int64 ``(n,)``.

        ``masks``: bool/int8 ``(n, 65)`` allowed actions; ``histories``: ``n`` sequences of
        the squares played so far (passes omitted; entries < 0 are dropped, so the envs'
        padded ``info["moves"]`` and an int8 ``(n, 60)`` array work); ``rngs``: None or
        ``n`` ``np.random.Generator``, one per game (each gives one 64-bit draw per call
        when a random draw may be needed). The signature of
        :meth:`agents.policies.BatchedModelPolicy.act_batch`. ValueError (one line) on a
        bad shape, an all-zero mask, an illegal history or a mask allowing a square not
        legal after its history.
        """
        masks = np.asarray(masks)
        if masks.ndim != 2 or masks.shape[1] != N_ACTIONS or masks.dtype.kind not in "biuf":
            raise ValueError(f"masks must be a numeric array of shape (n, {N_ACTIONS}), got {describe(masks)}")
        n = masks.shape[0]
        if isinstance(histories, (str, bytes)) or not hasattr(histories, "__len__") or len(histories) != n:
            raise ValueError(f"need one history per mask row ({n}), got {describe(histories)}")
        hist = _histories(histories, n)
        if rngs is None:
            states, state = _stream(self._state, n)
            self._state = np.uint64(state)  # Numba returns uint64 as a Python int
        else:
            if not hasattr(rngs, "__len__") or len(rngs) != n:
                raise ValueError(f"rngs must be None or {n} numpy Generators, got {describe(rngs)}")
            if self.kind == ALPHABETA:
                states = np.zeros(n, np.uint64)  # never drawn from: leave the generators untouched
            else:
                states = np.array([g.integers(0, 2**64, dtype=np.uint64) for g in rngs], np.uint64)
        out = np.empty(n, np.int64)
        err = np.zeros((n, 2), np.int64)
        _choose_batch(self.kind, self.depth, masks.astype(np.bool_), hist, states, out, err)
        bad = np.flatnonzero(err[:, 0])
        if bad.size:
            i = int(bad[0])
            code, detail = int(err[i, 0]), int(err[i, 1])
            where = "the action mask" if n == 1 else f"masks[{i}]"
            if code == ERR_EMPTY:
                raise ValueError(f"no legal action: {where} is all zero")
            if code == ERR_HISTORY:
                raise ValueError(f"the move history is not a legal game: move {detail} "
                                 f"(square {int(hist[i, detail])}) is illegal or after the end")
            if code == ERR_ENDED:
                raise ValueError(f"the move history is a finished game, but {where} allows a square")
            raise ValueError(f"{where} allows square {detail}, which is not legal after the move history")
        return out


def make_policy(name: str, seed: int | None = None, depth: int = DEFAULT_DEPTH) -> BuiltinPolicy:
    """The built-in opponent ``name`` (one of :data:`OPPONENT_NAMES`) as a policy object.

    ``seed`` seeds its random draws (random's moves, greedy's tie-breaks; None: fresh
    entropy); ``depth`` (1..8) is alpha-beta's search depth in plies. See
    :class:`BuiltinPolicy`. ValueError (one line, listing the names) for an unknown name.
    """
    return BuiltinPolicy(name, seed=seed, depth=depth)
