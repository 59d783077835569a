"""Othello matches: a model against a built-in player or another model (``lgagent play``).

:func:`match` plays ``games`` games between two policies with the rules and views of the
PettingZoo form of ``Othello-v0`` (:func:`othello_env.pettingzoo.raw_env`: both sides move
from outside, which a model-vs-model match needs), all games at once in the arrays of
:class:`othello_env.twoplayer.TwoPlayerGames` (Numba kernels, no env object per game):
each round, every game whose side is to move with a batched policy
(:class:`agents.policies.BatchedModelPolicy`)
is decided by one forward pass. The built-in players ``"random"``, ``"greedy"`` and
``"alphabeta"`` (:mod:`othello_env.opponents`) are given by name.
:func:`play_models` plays each of several models (one per weights) with :func:`match`:
it is the one model-vs-player path of ``lgagent play`` (:func:`play_run`, which loads
runs), ``lgagent eval --play-games`` and the trainer's end-of-run play (``play_games``).
``train/cli/play.py`` is the command. No click here.

Seeding: game ``i`` draws its random moves (the random player's, a model's first move
on an empty board, the random opening) from its own generators seeded by
``(seed, i)``, so a game does not depend on which other games run beside it, and the
same seed gives the same games. The seed defaults to
:data:`train.analysis.PLAY_SEED` (0) everywhere: ``lgagent play RUN --games N``,
``lgagent eval RUN --play-games N`` and a run trained with ``play_games = N`` play the
same games for the same weights, and ``lgagent play --seed S`` equals ``lgagent eval
--play-seed S``.
"""

from __future__ import annotations

import math
import os

import numpy as np
from scipy import stats

from othello_env.kernels import PASS
from train.analysis import COLORS, PLAY_SEED

BATCH = 1024  # games played side by side; more only grows the padded forward pass


def score_interval(score: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a mean game score ``score`` (win 1, draw 0.5) over ``n`` games.

    The score is treated as a proportion with ``z`` from ``scipy.stats.norm``. A
    game's score variance is at most ``p (1 - p)`` (equal when there is no draw), so
    with draws the interval is conservative; unlike a t interval on per-game scores
    it is not empty when every game ends alike (all wins, or a mirror match).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    z = float(stats.norm.ppf(0.5 + level / 2))
    denom = 1 + z * z / n
    centre = (score + z * z / (2 * n)) / denom
    half = z * math.sqrt(score * (1 - score) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def builtin_names() -> tuple[str, ...]:
    """The built-in players a match or ``lgagent play --opponent`` takes by name."""
    from othello_env.opponents import OPPONENT_NAMES

    return OPPONENT_NAMES


class _Side:
    """One player of a match: "random", another built-in by name, a batched policy
    (``act_batch``) or any policy."""

    def __init__(self, policy):
        if isinstance(policy, str) and policy != "random" and policy in builtin_names():
            from othello_env.opponents import make_policy

            policy = make_policy(policy, seed=0)  # its draws come from each game's rngs
        self.policy = policy
        self.kind = ("random" if isinstance(policy, str) and policy == "random"
                     else "batched" if hasattr(policy, "act_batch")
                     else "single" if not isinstance(policy, str) and (
                         callable(policy) or hasattr(policy, "act")) else None)
        if self.kind is None:
            names = ", ".join(repr(n) for n in builtin_names())
            raise ValueError(f"a match player must be one of {names} or a policy, got {policy!r}")

    def decide(self, games, rows, rngs) -> np.ndarray:
        """The moves of the side to move in ``rows`` of ``games`` (a TwoPlayerGames)."""
        if self.kind == "single":
            views, masks = games.views(rows)
        else:
            masks = games.masks(rows)
        moves = games.hist[rows]  # int8 (k, 60): the squares played, then -1
        if self.kind == "batched":
            return np.asarray(self.policy.act_batch(masks.astype(bool), moves, rngs),
                              dtype=np.int64)
        out = np.empty(len(rows), dtype=np.int64)
        if self.kind == "random":
            return _uniform_legal(masks, rngs)
        act = self.policy.act if hasattr(self.policy, "act") else self.policy
        for r in range(len(rows)):
            out[r] = int(act(views[r], {"action_mask": masks[r], "moves": moves[r]}))
        return out


def _uniform_legal(masks: np.ndarray, rngs) -> np.ndarray:
    """Row r's ``legal[rngs[r].integers(legal.size)]``, ``legal = np.flatnonzero(masks[r])``
    (the same draws), found at once: the first square where the running count of legal
    squares passes the draw."""
    draws = np.array([rng.integers(n) for rng, n in zip(rngs, masks.sum(axis=1).tolist())],
                     dtype=np.int64)
    return (masks.cumsum(axis=1) > draws[:, None]).argmax(axis=1)


def _counters(policy) -> tuple[int, int] | None:
    if hasattr(policy, "n_decisions") and hasattr(policy, "n_illegal_choices"):
        return policy.n_decisions, policy.n_illegal_choices
    return None


def match(policy_a, policy_b, games: int, seed: int = PLAY_SEED, *, colors: str = "both",
          opening: int = 0) -> dict:
    """Play ``games`` Othello games of ``policy_a`` against ``policy_b``; results from a's side.

    Players: ``"random"`` (uniform legal moves), ``"greedy"`` or ``"alphabeta"``
    (:func:`othello_env.opponents.make_policy`, default depth; greedy's tie-breaks drawn
    from each game's generator), a batched policy (an object with
    ``act_batch(masks, histories, rngs)``, e.g. ``BatchedModelPolicy``: one call per
    round for all its games) or any policy ``policy(observation, info)`` /
    ``policy.act(observation, info)`` (called game by game). ``colors``: ``"both"``
    (a plays black in even games, white in odd ones: half the games each), ``"black"``
    or ``"white"`` (a's colour in every game). ``opening``: the first ``opening`` plies
    of every game are uniformly random legal moves (both sides); with ``"both"`` the
    two games of a pair (2k, 2k + 1) share their opening with colours swapped, so a
    deterministic policy against itself scores exactly 0.5. ``seed``: see the module
    docstring.

    Returns ``games``, ``wins``, ``draws``, ``losses`` (counts, summing to games),
    ``score`` (mean of win 1, draw 0.5, loss 0) with its 95% interval
    ``score_ci_low``/``score_ci_high`` (:func:`score_interval`), ``disc_diff`` (mean
    final discs of a minus discs of b), ``as_black``/``as_white`` (``games``, ``wins``,
    ``draws``, ``losses`` per colour of a), ``decisions`` and ``first_choice_legal``
    (share of a's model decisions whose unmasked first choice was legal; None when a
    keeps no such counters or made no decision).
    """
    from othello_env.twoplayer import TwoPlayerGames

    if isinstance(games, bool) or not isinstance(games, (int, np.integer)) or games < 1:
        raise ValueError(f"games must be a positive integer, got {games!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if colors not in COLORS:
        raise ValueError(f"colors must be one of {COLORS}, got {colors!r}")
    if isinstance(opening, bool) or not isinstance(opening, (int, np.integer)) or opening < 0:
        raise ValueError(f"opening must be a non-negative integer, got {opening!r}")
    sides = (_Side(policy_a), _Side(policy_b))
    before = _counters(policy_a)

    a_black = np.array([colors == "black" or (colors == "both" and i % 2 == 0)
                        for i in range(games)])
    diff = np.zeros(games, dtype=np.int64)  # final discs of a minus discs of b
    for start in range(0, games, BATCH):
        idx = np.arange(start, min(games, start + BATCH))
        board = TwoPlayerGames(len(idx))
        rngs = [np.random.default_rng([seed, i, 1]) for i in idx.tolist()]
        if opening:
            pairs = idx // 2 if colors == "both" else idx
            opening_rngs = [np.random.default_rng([seed, p, 0]) for p in pairs.tolist()]
            for _ in range(opening):  # each game draws from its own generator: ply by ply
                rows = np.flatnonzero(~board.over)
                if not rows.size:
                    break
                board.play(rows, _uniform_legal(board.masks(rows),
                                                [opening_rngs[r] for r in rows.tolist()]))
        a_black_here = a_black[idx]
        live = np.flatnonzero(~board.over)
        while live.size:
            for s, side in enumerate(sides):
                # rows whose player to move is side s: a is black (turn 0) in a_black games
                rows = live[(board.turn[live] == 0) == (a_black_here[live] == (s == 0))]
                if not rows.size:
                    continue
                forced = board.forced_pass(rows)
                if forced.any():  # nothing to decide: no policy call, no decision counted
                    board.play(rows[forced], np.full(int(forced.sum()), PASS))
                    rows = rows[~forced]
                if rows.size:
                    board.play(rows, side.decide(board, rows, [rngs[r] for r in rows.tolist()]))
                live = live[~board.over[live]]
        black_minus_white = board.disc_diff()
        diff[idx] = np.where(a_black_here, black_minus_white, -black_minus_white)

    win, draw, loss = diff > 0, diff == 0, diff < 0
    score = float((win.sum() + 0.5 * draw.sum()) / games)
    low, high = score_interval(score, games)

    def counts(sel):
        return {"games": int(sel.sum()), "wins": int((win & sel).sum()),
                "draws": int((draw & sel).sum()), "losses": int((loss & sel).sum())}

    after = _counters(policy_a)
    decisions = illegal = None
    if before is not None and after is not None:
        decisions, illegal = after[0] - before[0], after[1] - before[1]
    return {
        **counts(np.ones(games, dtype=bool)),
        "score": score, "score_ci_low": low, "score_ci_high": high,
        "disc_diff": float(diff.mean()),
        "as_black": counts(a_black), "as_white": counts(~a_black),
        "decisions": decisions,
        "first_choice_legal": 1.0 - illegal / decisions if decisions else None,
    }


def play_models(models: dict, opponent="random", games: int = 100, seed: int = PLAY_SEED, *,
                colors: str = "both", opening: int = 0, use_cache: bool = True) -> dict:
    """``{weights: match result}``: each model of ``{weights: model}`` against ``opponent``.

    Each model (a GPT, or an EMA/BEMA's module; on any device, left there and in its
    train/eval mode) plays greedily through a
    :class:`agents.policies.BatchedModelPolicy` seeded with ``seed``, in
    :func:`match` (``games``, ``seed``, ``colors``, ``opening`` as there; ``opponent``:
    a built-in name or a policy; ``use_cache``: the policy's key/value cache, False to
    read every history whole, with the same results). The one model-vs-player path: :func:`play_run`
    (``lgagent play``), :func:`train.analysis.evaluate.evaluate_checkpoint` (``lgagent
    eval --play-games``) and the trainer's end-of-run play all call it, so the same
    weights and seed give the same games and results in all three.
    """
    from agents.policies import BatchedModelPolicy

    return {w: match(BatchedModelPolicy(m, task="othello", seed=seed, use_cache=use_cache),
                     opponent, games, seed, colors=colors, opening=opening)
            for w, m in models.items()}


def held_weights(ckpt: dict) -> list[str]:
    """The weights a checkpoint holds, in the order raw, ema (or ema_<decay> each), bema."""
    from agents.checkpoint import weights_of

    return weights_of(ckpt)


def _othello_checkpoint(run, what: str, device) -> dict:
    from agents import checkpoint

    ckpt = checkpoint.load(run, map_location=device)
    task = checkpoint.task_of(ckpt)
    if task != "othello":
        raise ValueError(f"{what} {run} is a {task} run; play needs an Othello run")
    return ckpt


def play_run(run, *, opponent: str = "random", weights=None, opponent_weights: str | None = None,
             games: int = 100, colors: str = "both", seed: int = PLAY_SEED,
             opening: int | None = None, device="cpu", depth: int | None = None,
             use_cache: bool = True) -> dict:
    """Play a run's model (each of ``weights``) against ``opponent`` with :func:`play_models`.

    ``run``/``opponent``: a RUN_DIR or checkpoint file (``opponent`` may also be a
    built-in player, ``"random"``, ``"greedy"`` or ``"alphabeta"``; a run directory of
    that name is given as ``./greedy``). ``weights``: a list of raw/ema/bema (default:
    every weights the checkpoint holds). ``opponent_weights``: the opponent model's
    weights (default ema when it has them, else raw). ``depth``: alpha-beta's search
    depth in plies (default 3; only with ``"alphabeta"``). ``opening``: random plies
    before the players move (default 0 against random, 4 against a model, greedy or
    alphabeta: two deterministic players otherwise replay the same few games).
    ``seed``: default :data:`train.analysis.PLAY_SEED`, the seed of ``lgagent eval
    --play-games`` and of the trainer's play, so against random (colours both, no
    opening) the results equal theirs for the same weights. ``use_cache=False``
    (``lgagent play --no-cache``): the models read every history whole instead of
    through their key/value cache; the games are the same. Everything is checked
    before a game is played; ValueError, one line, for unusable input.

    Returns ``{"run", "step", "opponent", "opponent_weights", "opponent_depth",
    "games", "colors", "seed", "opening", "play": {weights: match result}}``
    (``opponent_depth``: alpha-beta's depth, else None).
    """
    from agents import checkpoint
    from agents.policies import BatchedModelPolicy

    if isinstance(games, bool) or not isinstance(games, int) or games < 1:
        raise ValueError(f"--games must be at least 1, got {games}")
    if seed < 0:
        raise ValueError(f"--seed must be non-negative, got {seed}")
    if opening is not None and opening < 0:
        raise ValueError(f"--opening must be non-negative, got {opening}")
    ckpt = _othello_checkpoint(run, "RUN", device)
    weights = list(weights) if weights else held_weights(ckpt)
    for w in weights:
        if w not in checkpoint.WEIGHTS and w not in held_weights(ckpt):
            raise ValueError(f"unknown weights {w!r}; choose from "
                             f"{', '.join(held_weights(ckpt))}")
    weights = list(dict.fromkeys(weights))  # "raw,raw" plays once
    models = {w: checkpoint.model_from_checkpoint(ckpt, w, device) for w in weights}
    builtin = isinstance(opponent, str) and opponent in builtin_names()
    if depth is not None and opponent != "alphabeta":
        raise ValueError(f"--depth applies to --opponent alphabeta, not {opponent}")
    opp_policy, opp_w, opp_depth = "random", None, None
    if builtin and opponent != "random":
        from othello_env.opponents import DEFAULT_DEPTH, make_policy

        if opponent_weights is not None:
            raise ValueError(f"--opponent-weights needs a model --opponent (RUN2), not {opponent}")
        if opponent == "alphabeta":
            opp_depth = DEFAULT_DEPTH if depth is None else depth
        # seeded; its random draws (greedy's tie-breaks) come from each game's generators
        opp_policy = make_policy(opponent, seed=seed, **({"depth": opp_depth} if opp_depth else {}))
    elif opponent != "random":
        if not os.path.exists(opponent):
            raise ValueError(f"--opponent {opponent} is neither a built-in player "
                             f"({', '.join(builtin_names())}) nor a run: no checkpoint at {opponent}")
        opp_ckpt = _othello_checkpoint(opponent, "--opponent", device)
        held = held_weights(opp_ckpt)
        # default: its (first) EMA, else raw
        opp_w = opponent_weights or next((w for w in held if w.startswith("ema")), "raw")
        if opp_w not in checkpoint.WEIGHTS and opp_w not in held:
            raise ValueError(f"unknown --opponent-weights {opp_w!r}; "
                             f"choose from {', '.join(held)}")
        opp_policy = BatchedModelPolicy(checkpoint.model_from_checkpoint(opp_ckpt, opp_w, device),
                                        task="othello", seed=seed, use_cache=use_cache)
    elif opponent_weights is not None:
        raise ValueError("--opponent-weights needs a model --opponent (RUN2), not random")
    if opening is None:
        opening = 0 if opponent == "random" else 4
    results = play_models(models, opp_policy, games, seed, colors=colors, opening=opening,
                          use_cache=use_cache)
    return {"run": str(run), "step": int(ckpt["step"]), "opponent": str(opponent),
            "opponent_weights": opp_w, "opponent_depth": opp_depth, "games": games, "colors": colors, "seed": seed,
            "opening": opening, "play": results}


def format_play(res: dict) -> list[str]:
    """Terminal lines: one per weights (W-D-L, score and interval, disc difference, legality)."""
    opp = res["opponent"] + (f" ({res['opponent_weights']})" if res["opponent_weights"] else "")
    if res.get("opponent_depth"):
        opp += f" (depth {res['opponent_depth']})"
    lines = [f"{res['run']} (step {res['step']}) vs {opp}: {res['games']} games, colours "
             f"{res['colors']}, seed {res['seed']}, {res['opening']} random opening plies"]
    lines.append(f"{'weights':8} {'W-D-L':>13} {'score':>6} {'95% CI':>15} {'disc_diff':>9} "
                 f"{'first_choice_legal':>18}")
    for w, m in res["play"].items():
        wdl = f"{m['wins']}-{m['draws']}-{m['losses']}"
        ci = f"[{m['score_ci_low']:.3f}, {m['score_ci_high']:.3f}]"
        fcl = "n/a" if m["first_choice_legal"] is None else f"{m['first_choice_legal']:.4f}"
        lines.append(f"{w:8} {wdl:>13} {m['score']:6.3f} {ci:>15} {m['disc_diff']:+9.2f} "
                     f"{fcl:>18}")
    return lines
