"""Interventions along board probes: does an Othello model *use* the board it carries?

:mod:`train.analysis.probe` shows that a square's state is linearly readable from the
residual stream. Reading is not using: this module edits the residual stream so that a
saved probe (``lgagent probe --save``) reads one square flipped (mine <-> theirs, as Li et
al. 2023 "Emergent World Representations" intervene), runs the rest of the model, and asks
whether the predicted legal moves become those of the edited board.

Positions and edits (:func:`sample_positions`, :func:`choose_edits`):

* fresh random games (a seed stream of their own, disjoint from the probe's and the
  training data's); in each game one position per length band, uniform among the plies
  of the band after which the game goes on: ``seen`` = 1..train_max_len tokens read,
  ``unseen`` = train_max_len + 1..59;
* the *edit square*: uniform among the occupied squares whose flip changes the mover's
  set of legal moves and leaves it non-empty (``othello_env.games.legal_after_edits``);
  the *null square* (a control): uniform among the occupied squares whose flip changes no
  legal move. A position with no such square takes no part in that condition.

The edit: the probe's logits of a square are linear in the residual ``x``,
``l_k(x) = ((x - mean) / std) . W[:, s, k] + b[s, k]``; the target class ``t`` (the flipped
one) must beat every other class of the edit square by ``margin`` logits. Two methods:

* ``"gradient"`` (the default, :func:`gradient_delta`): the smallest change of ``x`` that
  does so *and keeps the probe's read of the 63 other squares* (each at least at its
  current margin, capped at ``margin``), as a squared-hinge penalty minimised by LBFGS
  (the spirit of Li et al.'s gradient steps on the probe's loss towards the edited board;
  their unbounded cross-entropy is replaced by a margin so the edit stays finite);
* ``"margin"`` (:func:`probe_delta`): closed form, only the edit square: while some
  ``l_t - l_k`` falls short, ``x += (margin - (l_t - l_k)) d / |d|^2`` along its gradient
  ``d = (W[:, s, t] - W[:, s, k]) / std`` (the smallest change that closes that
  shortfall; at most 4 steps). It moves other squares' reads too, as their directions
  are not orthogonal (a 64-wide residual cannot hold 64 independent 3-class squares).

The edit is added at the edited position only, at one layer (0 = the embeddings, the
input of block 0; l = the output of block l), with torch forward hooks, so the model's
code is untouched; the positions after it are not read.

Read-out (:func:`outcome`): the model's scores of the 60 move tokens at the position;
against a board B its predicted legal set is the top-k with k = |legal(B)| (the scores
of the model, not a threshold, so a model that ranks right but is miscalibrated counts
as right). Per position: ``err_edited`` = the predicted moves (top-k, k = |legal of the
edited board|) that are not legal on the edited board (Li et al.'s error count);
``err_original`` the same against the original board; ``exact_*`` = no error;
``follow`` = of the moves whose legality the flip changes, the fraction the prediction
(top-k of the edited board) places on the edited board's side.

Conditions, on the same positions: ``none`` (the unedited model), ``edit``, ``sham``
(a random direction, uniform on the sphere, of the same norm as the edit, at the same
layer and position) and ``null`` (the probe edit of the null square, whose flip changes no
legal move: the edited and the original legal sets are the same). Rates carry 95%
intervals: Wilson for the ``exact_*`` proportions, a percentile bootstrap over positions
for the means (``err_*``, ``follow``) and for the paired differences (``effects``).

The API (:func:`intervene`) takes any model with the lgagent GPT's interface: a
``blocks`` ModuleList called in order, ``model(tokens)`` logits over the Othello
vocabulary and ``model(tokens, return_resid=True)``; a TransformerLens model becomes
one with ``lgagent import``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from train.analysis import EDIT_METHODS as METHODS
from train.analysis import LENGTH_BANDS, MARGIN

CONDITIONS = ("none", "sham", "edit", "null")
MAX_STEPS = 4  # margin steps of probe_delta
GRADIENT_STEPS = 50  # LBFGS iterations of gradient_delta
PENALTY = 100.0  # weight of the squared margin shortfalls in gradient_delta
EDIT_WEIGHT = 64.0  # ... times this at the edited square (as much as all the others together)
BOOTSTRAP = 1000  # resamples of every bootstrap interval
_INTERVENE_KEY = 17  # SeedSequence spawn key of the intervention games (probes: 16)


# ---------------------------------------------------------------------------------------------
# Positions and the squares to edit


def sample_positions(n_games: int, train_max_len: int, block: int, bands=("seen", "unseen"),
                     seed: int = 0):
    """Fresh games and one position per game and band: ``(games, plies, band)``.

    ``games`` int8 (N, 60) (row i's game), ``plies`` int64 (N,) (the position after moves
    0..ply, ``ply + 1`` tokens read), ``band`` (N,) the band name of each row. A band is
    ``seen`` (1..train_max_len tokens) or ``unseen`` (train_max_len + 1..block); a game
    that ends before a band has no position there. ValueError for an empty band.
    """
    from train.analysis.probe import seeded_games

    ss = np.random.SeedSequence(seed, spawn_key=(_INTERVENE_KEY,))
    g = seeded_games(n_games, ss)
    rng = np.random.default_rng(ss.spawn(1)[0])
    block = min(block, 59)
    ranges = {"seen": (0, min(train_max_len, block)), "unseen": (train_max_len, block)}
    rows, plies, names = [], [], []
    for band in bands:
        lo, hi = ranges[band]
        if hi <= lo:
            raise ValueError(f"the {band} length band is empty: the run trained on "
                             f"1..{train_max_len} tokens of at most {block}")
        goes_on = g[:, lo + 1: hi + 1] >= 0  # (n, hi - lo): the game continues after the ply
        counts = goes_on.sum(1)
        for i in np.flatnonzero(counts):
            choice = int(rng.integers(counts[i]))
            rows.append(i)
            plies.append(lo + int(np.flatnonzero(goes_on[i])[choice]))
            names.append(band)
        if not counts.any():
            raise ValueError(f"the {band} length band is empty: no game lasts that long")
    return g[rows], np.array(plies, dtype=np.int64), np.array(names)


def position_boards(games: np.ndarray, plies: np.ndarray):
    """``(board, legal)`` at each position: the board int8 (N, 64) relative to the player to
    move (1 mine, -1 theirs, 0 empty) and that player's legal moves bool (N, 64)."""
    from othello_env.games import board_states, legal_move_masks
    from train.analysis.probe import to_move

    rows = np.arange(len(plies))
    boards = board_states(games)
    mover = to_move(games, boards)[rows, plies]  # (N,) 1 black / -1 white
    board = (boards[rows, plies] * mover[:, None]).astype(np.int8)
    legal = legal_move_masks(games)[rows, plies]
    return board, legal


def flip_effects(board: np.ndarray) -> np.ndarray:
    """The mover's legal moves once each square's disc is flipped: bool (N, 64, 64).

    ``[i, s]`` is the legal set of row i's board with the disc on ``s`` changed to the
    other player's (an empty square stays empty: its row is the board's own legal set).
    """
    from othello_env.games import legal_after_edits

    n = board.shape[0]
    rep = np.repeat(board, 64, axis=0)  # (N * 64, 64)
    sq = np.tile(np.arange(64), n)
    cur = rep[np.arange(n * 64), sq]
    state = np.where(cur == 1, 2, np.where(cur == -1, 1, 0))  # mine -> theirs -> mine
    return legal_after_edits(rep, sq, state).reshape(n, 64, 64)


def choose_edits(board: np.ndarray, legal: np.ndarray, seed: int = 0) -> dict:
    """The edit square and the null square of each position (-1 where there is none).

    Returns ``{"square", "legal_edited", "null_square"}``: the edit square (N,) (its flip
    changes the legal set and leaves it non-empty), the legal set after flipping it bool
    (N, 64) (the original set where there is no edit square) and the null square (N,)
    (its flip changes no legal move). Uniform choices from ``seed``.
    """
    rng = np.random.default_rng(seed)
    after = flip_effects(board)  # (N, 64, 64)
    occupied = board != 0
    same = (after == legal[:, None, :]).all(-1)  # (N, 64)
    changes = occupied & ~same & after.any(-1)
    nulls = occupied & same

    def pick(mask):
        out = np.full(mask.shape[0], -1, dtype=np.int64)
        for i in np.flatnonzero(mask.any(1)):
            cand = np.flatnonzero(mask[i])
            out[i] = cand[rng.integers(len(cand))]
        return out

    square, null = pick(changes), pick(nulls)
    rows = np.arange(len(square))
    legal_edited = np.where((square >= 0)[:, None], after[rows, np.maximum(square, 0)], legal)
    return {"square": square, "legal_edited": legal_edited, "null_square": null}


# ---------------------------------------------------------------------------------------------
# The edit


def probe_delta(probe, x: torch.Tensor, square: torch.Tensor, target: torch.Tensor,
                margin: float = MARGIN, steps: int = MAX_STEPS) -> torch.Tensor:
    """The change of ``x`` (N, C) that makes ``probe`` read class ``target`` (N,) at
    ``square`` (N,) ahead of every other class by ``margin`` logits (the module's
    ``"margin"`` method). Rows whose square is -1 get a zero change."""
    x = x.float()
    n = x.shape[0]
    rows = torch.arange(n)
    ok = square >= 0
    sq = square.clamp_min(0)
    w = probe.weight.permute(1, 0, 2)[sq] / probe.std[None, :, None]  # (N, C, K): d logit / dx
    delta = torch.zeros_like(x)
    for _ in range(steps):
        logits = probe.logits(x + delta)[rows, sq]  # (N, K)
        others = logits.clone()
        others[rows, target] = -math.inf
        rival = others.argmax(-1)
        short = (margin - (logits[rows, target] - others[rows, rival])).clamp_min(0)
        short = torch.where(ok, short, torch.zeros_like(short))
        if not bool((short > 1e-6).any()):
            break
        d = w[rows, :, target] - w[rows, :, rival]  # (N, C)
        delta = delta + (short / (d * d).sum(-1).clamp_min(1e-12))[:, None] * d
    return delta


def gradient_delta(probe, x: torch.Tensor, square: torch.Tensor, target: torch.Tensor,
                   margin: float = MARGIN, steps: int = GRADIENT_STEPS,
                   penalty: float = PENALTY) -> torch.Tensor:
    """The ``"gradient"`` method: the change of ``x`` (N, C) that flips the probe's read of
    ``square`` to ``target`` by ``margin`` logits while keeping its read of the 63 other
    squares, found by gradient steps (LBFGS, strong Wolfe, ``steps`` iterations from zero).

    It minimises ``|delta|^2 + penalty * (sum of squared shortfalls)``: at ``square`` the
    shortfall of ``l_t - l_k`` below ``margin`` for each other class k (weighted
    :data:`EDIT_WEIGHT`, so the flip wins where not every read can hold); at every other
    square the shortfall of ``l_read - l_k`` below ``min(its current margin, margin)``
    (read = the probe's current class), a penalty form of the smallest edit that moves
    one square and holds the rest. Li et al. (2023) take gradient steps on the probe's
    loss towards the edited board; an unbounded cross-entropy grows the edit without limit
    (tens of times the residual's norm here), so the loss is a margin instead.
    Rows whose square is -1 get a zero change.
    """
    x = x.float()
    rows = torch.arange(x.shape[0])
    ok = (square >= 0).float()[:, None]
    sq = square.clamp_min(0)
    with torch.no_grad():
        logits0 = probe.logits(x)  # (N, 64, K)
        want = logits0.argmax(-1)  # (N, 64): the current reads
        want[rows, sq] = torch.where(square >= 0, target, want[rows, sq])
        top = logits0.gather(-1, want[..., None])  # (N, 64, 1)
        need = (top - logits0).masked_fill(  # current margins over each rival, capped
            torch.nn.functional.one_hot(want, logits0.shape[-1]).bool(), math.inf)
        need = need.amin(-1, keepdim=True).clamp(0, margin).expand_as(logits0).clone()
        need[rows, sq] = margin  # the edited square: the full margin
        rival = ~torch.nn.functional.one_hot(want, logits0.shape[-1]).bool()  # (N, 64, K)
        weight = torch.ones(x.shape[0], 64, 1)
        weight[rows, sq] = EDIT_WEIGHT  # the flip comes first where not every read can hold
    with torch.enable_grad():
        delta = torch.zeros_like(x, requires_grad=True)
        opt = torch.optim.LBFGS([delta], lr=1, max_iter=steps, history_size=20,
                                line_search_fn="strong_wolfe", tolerance_grad=1e-7,
                                tolerance_change=1e-12)

        def closure():
            opt.zero_grad()
            d = delta * ok
            logits = probe.logits(x + d)  # (N, 64, K)
            gap = logits.gather(-1, want[..., None]) - logits  # (N, 64, K)
            short = (need - gap).clamp_min(0) * rival
            loss = (d * d).sum() + penalty * (weight * short * short).sum()
            loss.backward()
            return loss

        opt.step(closure)
    return (delta * ok).detach()


def sham_delta(delta: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Random directions (uniform on the sphere, torch generator ``seed``) of ``delta``'s
    row norms."""
    gen = torch.Generator().manual_seed(seed)
    r = torch.randn(delta.shape, generator=gen)
    return r / r.norm(dim=-1, keepdim=True) * delta.norm(dim=-1, keepdim=True)


def edited_logits(model, tokens: torch.Tensor, plies: torch.Tensor, layer: int,
                  delta: torch.Tensor | None = None) -> torch.Tensor:
    """The model's logits (N, V) at row i's position ``plies[i]``, with ``delta[i]`` added to
    the residual stream at ``layer`` there (0: the input of block 0; l: the output of block
    l); ``delta=None`` is the unedited model. A forward (pre-)hook does the edit and is
    removed afterwards."""
    rows = torch.arange(tokens.shape[0], device=tokens.device)
    pos = plies.to(tokens.device)

    def add(x):
        x = x.clone()
        x[rows, pos] = x[rows, pos] + delta.to(x.device, x.dtype)
        return x

    handle = None
    if delta is not None:
        blocks = model.blocks
        if not 0 <= layer <= len(blocks):
            raise ValueError(f"layer {layer} is out of range 0..{len(blocks)}")
        if layer < len(blocks):
            handle = blocks[layer].register_forward_pre_hook(
                lambda module, args: (add(args[0]), *args[1:]))
        else:
            handle = blocks[-1].register_forward_hook(
                lambda module, args, out: ((add(out[0]), *out[1:]) if isinstance(out, tuple)
                                           else add(out)))
    try:
        logits = model(tokens)
    finally:
        if handle is not None:
            handle.remove()
    return logits[rows, pos].float()


# ---------------------------------------------------------------------------------------------
# Outcomes


def square_scores(logits: torch.Tensor) -> np.ndarray:
    """Logits (N, V) over the Othello vocabulary -> scores (N, 64) of the squares (the
    centre squares, which have no token, -inf)."""
    from othello_env.tokens import TOKEN_TO_SQUARE

    out = np.full((logits.shape[0], 64), -np.inf)
    out[:, TOKEN_TO_SQUARE[1:]] = logits[:, 1:61].detach().cpu().double().numpy()
    return out


def top_k(scores: np.ndarray, k: np.ndarray) -> np.ndarray:
    """bool (N, 64): the ``k[i]`` best-scored squares of each row (ties: lower square)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(64)[None, :].repeat(len(order), 0), axis=1)
    return rank < k[:, None]


def outcome(scores: np.ndarray, legal_original: np.ndarray, legal_edited: np.ndarray) -> dict:
    """Per position, the predicted legal sets against both boards (module docstring):
    ``err_edited``, ``err_original`` (int), ``exact_edited``, ``exact_original`` (bool),
    ``follow`` (float, NaN where the two boards' legal sets agree)."""
    pred_e = top_k(scores, legal_edited.sum(1))
    pred_o = top_k(scores, legal_original.sum(1))
    err_e = (pred_e & ~legal_edited).sum(1)
    err_o = (pred_o & ~legal_original).sum(1)
    changed = legal_edited ^ legal_original
    n_changed = changed.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        follow = np.where(n_changed > 0,
                          ((pred_e == legal_edited) & changed).sum(1) / n_changed, np.nan)
    return {"err_edited": err_e, "err_original": err_o, "exact_edited": err_e == 0,
            "exact_original": err_o == 0, "follow": follow}


# ---------------------------------------------------------------------------------------------
# The API


@torch.no_grad()
def intervene(model, probes: dict, games: np.ndarray, plies, *, coding: str = "mover",
              method: str = "gradient", margin: float = MARGIN, seed: int = 0,
              chunk_size: int = 256, device="cpu") -> dict:
    """Probe interventions at every layer of ``probes`` on the positions ``(games, plies)``.

    ``model``: an lgagent GPT (or a module with its interface, module docstring), put in
    eval mode; ``probes``: ``{layer: LinearProbe}`` (:func:`train.analysis.probe.probe_of`
    of a saved probe file) of the probe classes of ``coding``; ``games`` int8 (N, 60) full
    games, ``plies`` (N,) positions (after moves 0..ply; the game must go on after it).
    Returns ``{"positions": {...}, "none": outcome, "layers": {layer: {"edit", "sham",
    "null": outcome + extras}}}``: per-position arrays (:func:`outcome`; ``edit`` also
    ``probe_target`` (the probe reads the flipped class after the edit), ``probe_before``
    (it read the true class before), ``probe_others`` (fraction of the other 63 squares
    whose read changed), ``delta_norm``, ``resid_norm``), where ``positions`` holds
    ``square``, ``null_square``, ``legal``, ``legal_edited``, ``has_edit``, ``has_null``.
    """
    from othello_env import tokens as othello_tokens

    if method not in METHODS:
        raise ValueError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    games = np.asarray(games)
    plies = np.asarray(plies, dtype=np.int64)
    if games.ndim != 2 or games.shape[0] != plies.shape[0] or games.shape[0] == 0:
        raise ValueError(f"need games (N, 60) and plies (N,) with N > 0, got "
                         f"{games.shape} and {plies.shape}")
    rows = np.arange(len(plies))
    if (plies < 0).any() or (plies >= games.shape[1] - 1).any() or (games[rows, plies + 1] < 0).any():
        raise ValueError("every position must be followed by a move of its game")
    n_layer = len(model.blocks)
    block = int(getattr(getattr(model, "config", None), "block_size", 59))
    T = min(int(plies.max()) + 2, games.shape[1], block, 59)
    if int(plies.max()) >= T:
        raise ValueError(f"a position at ply {int(plies.max())} is past the model's block "
                         f"size {block}")
    board, legal = position_boards(games, plies)
    edits = choose_edits(board, legal, seed=seed)
    square, null = edits["square"], edits["null_square"]
    legal_edited = edits["legal_edited"]
    cur = board[rows, np.maximum(square, 0)]  # 1 mine / -1 theirs (0: no edit)
    cur_null = board[rows, np.maximum(null, 0)]
    if coding == "colour":  # classes 1 black / 2 white: the mover's colour decides
        from othello_env.games import board_states

        colour = board_states(games)[rows, plies]  # (N, 64) 1 black / -1 white
        cls = np.where(colour[rows, np.maximum(square, 0)] == 1, 1, 2)
        cls_null = np.where(colour[rows, np.maximum(null, 0)] == 1, 1, 2)
    else:
        cls = np.where(cur == 1, 1, 2)
        cls_null = np.where(cur_null == 1, 1, 2)
    target = torch.from_numpy(3 - cls)  # the flipped class (1 <-> 2)
    target_null = torch.from_numpy(3 - cls_null)

    tok = othello_tokens.SQUARE_TO_TOKEN[np.where(games[:, :T] >= 0, games[:, :T], 0)]
    tok[games[:, :T] < 0] = othello_tokens.PAD
    tokens = torch.from_numpy(tok)
    ply_t = torch.from_numpy(plies)
    model.eval().to(device)
    chunks = [slice(i, i + chunk_size) for i in range(0, len(plies), chunk_size)]
    layers = sorted(int(k) for k in probes)
    for layer in layers:
        if not 0 <= layer <= n_layer:
            raise ValueError(f"probe layer {layer} is out of range 0..{n_layer}")

    none_logits, resid = [], {layer: [] for layer in layers}
    for c in chunks:
        logits, res = model(tokens[c].to(device), return_resid=True)
        r = torch.arange(logits.shape[0], device=logits.device)
        p = ply_t[c].to(logits.device)
        none_logits.append(logits[r, p].float().cpu())
        for layer in layers:
            resid[layer].append(res[layer][r, p].float().cpu())
    base_scores = square_scores(torch.cat(none_logits))
    out = {"positions": {"square": square, "null_square": null, "legal": legal,
                         "legal_edited": legal_edited, "has_edit": square >= 0,
                         "has_null": null >= 0, "plies": plies},
           "none": outcome(base_scores, legal, legal_edited), "layers": {}}
    sq_t, null_t = torch.from_numpy(square), torch.from_numpy(null)
    for li, layer in enumerate(layers):
        probe = probes[layer]
        x = torch.cat(resid[layer])  # (N, C)
        if method == "gradient":
            d_edit = gradient_delta(probe, x, sq_t, target, margin)
            d_null = gradient_delta(probe, x, null_t, target_null, margin)
        else:
            d_edit = probe_delta(probe, x, sq_t, target, margin)
            d_null = probe_delta(probe, x, null_t, target_null, margin)
        d_sham = sham_delta(d_edit, seed=seed * 1000 + li)
        scores = {}
        for name, d in (("edit", d_edit), ("sham", d_sham), ("null", d_null)):
            logits = torch.cat([edited_logits(model, tokens[c].to(device), ply_t[c], layer,
                                              d[c]) for c in chunks])
            scores[name] = square_scores(logits)
        res = {"edit": outcome(scores["edit"], legal, legal_edited),
               "sham": outcome(scores["sham"], legal, legal_edited),
               "null": outcome(scores["null"], legal, legal)}
        before = probe.predict(x)
        after = probe.predict(x + d_edit)
        r = torch.arange(len(x))
        s0 = sq_t.clamp_min(0)
        others = (after != before).double().sum(1) - (after[r, s0] != before[r, s0]).double()
        res["edit"].update(
            probe_target=(after[r, s0] == target).numpy(),
            probe_before=(before[r, s0] == torch.from_numpy(cls)).numpy(),
            probe_others=(others / 63).numpy(),
            delta_norm=d_edit.norm(dim=-1).numpy(), resid_norm=x.norm(dim=-1).numpy())
        after_null = probe.predict(x + d_null)
        res["null"]["probe_target"] = (after_null[r, null_t.clamp_min(0)] == target_null).numpy()
        out["layers"][layer] = res
    return out


# ---------------------------------------------------------------------------------------------
# Rates with intervals


def wilson(k: int, n: int) -> list[float]:
    """95% Wilson score interval of the proportion ``k / n`` (n >= 1): play's
    :func:`~train.analysis.play.score_interval`, exactly 0 or 1 at the ends."""
    from train.analysis.play import score_interval

    lo, hi = score_interval(k / n, n)
    return [0.0 if k == 0 else lo, 1.0 if k == n else hi]


def _prop(v: np.ndarray):
    v = np.asarray(v, dtype=bool)
    if not v.size:
        return None
    return {"value": float(v.mean()), "ci": wilson(int(v.sum()), v.size)}


def _mean(v: np.ndarray, rng, paired: np.ndarray | None = None):
    """Mean of ``v`` (or of ``v - paired``) with a percentile bootstrap over positions."""
    v = np.asarray(v, dtype=np.float64)
    if paired is not None:
        v = v - np.asarray(paired, dtype=np.float64)
    v = v[~np.isnan(v)]
    if not v.size:
        return None
    idx = rng.integers(0, v.size, size=(BOOTSTRAP, v.size))
    boot = v[idx].mean(1)
    return {"value": float(v.mean()),
            "ci": [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))]}


def _rates(o: dict, sel: np.ndarray, rng) -> dict:
    out = {"n": int(sel.sum())}
    for key in ("err_edited", "err_original", "follow"):
        out[key] = _mean(o[key][sel], rng)
    for key in ("exact_edited", "exact_original"):
        out[key] = _prop(o[key][sel])
    for key in ("probe_target", "probe_before"):
        if key in o:
            out[key] = _prop(o[key][sel])
    for key in ("probe_others", "delta_norm", "resid_norm"):
        if key in o:
            out[key] = float(np.mean(o[key][sel])) if sel.any() else None
    return out


def summarise_interventions(res: dict, band: np.ndarray, seed: int = 0) -> dict:
    """Rates with 95% intervals per band and layer from :func:`intervene`'s result.

    ``{band: {"positions", "edit_positions", "null_positions", "none": rates,
    "layers": {layer: {"edit", "sham", "null": rates, "effects": {...}}}}}``; rates of
    ``none``, ``edit`` and ``sham`` are over the positions that have an edit square, those
    of ``null`` over the positions that have a null square. ``effects``: paired
    differences, ``follow_edit_minus_sham``, ``follow_edit_minus_none``,
    ``err_edited_edit_minus_sham`` and ``null_err_original_minus_none`` (the damage of an
    edit that should change nothing).
    """
    rng = np.random.default_rng(seed)
    pos = res["positions"]
    out = {}
    for b in dict.fromkeys(band.tolist()):
        in_band = band == b
        sel, sel_null = in_band & pos["has_edit"], in_band & pos["has_null"]
        entry = {"positions": int(in_band.sum()), "edit_positions": int(sel.sum()),
                 "null_positions": int(sel_null.sum()),
                 "none": _rates(res["none"], sel, rng), "layers": {}}
        for layer, by in res["layers"].items():
            e, s, nl = by["edit"], by["sham"], by["null"]
            entry["layers"][str(layer)] = {
                "edit": _rates(e, sel, rng), "sham": _rates(s, sel, rng),
                "null": _rates(nl, sel_null, rng),
                "effects": {
                    "follow_edit_minus_sham": _mean(e["follow"][sel], rng, s["follow"][sel]),
                    "follow_edit_minus_none": _mean(e["follow"][sel], rng,
                                                    res["none"]["follow"][sel]),
                    "err_edited_edit_minus_sham": _mean(e["err_edited"][sel], rng,
                                                        s["err_edited"][sel]),
                    "null_err_original_minus_none": _mean(nl["err_original"][sel_null], rng,
                                                          res["none"]["err_original"][sel_null]),
                }}
        out[b] = entry
    return out


# ---------------------------------------------------------------------------------------------
# A run


def bands_of(lengths: str) -> tuple[str, ...]:
    """``--lengths`` -> the bands: ``seen``, ``unseen`` or both (``all``)."""
    if lengths not in LENGTH_BANDS:
        raise ValueError(f"--lengths must be one of {', '.join(LENGTH_BANDS)}, got {lengths!r}")
    return ("seen", "unseen") if lengths == "all" else (lengths,)


SHAPE_KEYS = ("vocab_size", "block_size", "n_layer", "n_embd")


def intervene_run(run, probe_file, *, weights=None, layers: str | None = None,
                  games: int = 1000, lengths: str = "all", method: str = "gradient",
                  margin: float = MARGIN, seed: int = 0, device="cpu",
                  chunk_size: int = 256) -> dict:
    """:func:`intervene` on a run's checkpoint with a saved probe file, summarised.

    ``weights``: one name among the probe file's (default: its first, usually ``raw``);
    ``layers``: ``"all"`` / None (every layer of the probe file) or ``"0,2"``; ``games``
    fresh games, one position per game and band; ``lengths``: seen, unseen or all (all:
    only seen for a run trained on every length).
    ValueError, one line, for unusable input (a probe file of another model shape, an
    empty band, a missing file, ...).
    """
    from agents.checkpoint import load, model_from_checkpoint, task_of, weights_of
    from train.analysis.probe import load_probes, parse_layers, probe_of

    if isinstance(games, bool) or not isinstance(games, int) or games < 1:
        raise ValueError(f"--games must be at least 1, got {games}")
    if not margin > 0 or not math.isfinite(margin):
        raise ValueError(f"--margin must be a positive number, got {margin}")
    if method not in METHODS:
        raise ValueError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    bands = bands_of(lengths)
    ckpt = load(run)
    if task_of(ckpt) != "othello":
        raise ValueError(f"{run} is a set complement run; interventions edit the Othello board")
    pf = load_probes(probe_file)
    cfg = ckpt["model_config"]
    theirs = {k: pf["model_config"].get(k) for k in SHAPE_KEYS}
    ours = {k: cfg.get(k) for k in SHAPE_KEYS}
    if theirs != ours:
        diff = ", ".join(f"{k} {theirs[k]} vs {ours[k]}" for k in SHAPE_KEYS
                         if theirs[k] != ours[k])
        raise ValueError(f"{probe_file} was fitted on a model of another shape than {run} "
                         f"({diff})")
    w = weights or next(iter(pf["probes"]))
    if w not in pf["probes"]:
        raise ValueError(f"{probe_file} holds no probes of {w!r} weights (it holds "
                         f"{', '.join(pf['probes'])})")
    if w not in weights_of(ckpt):
        raise ValueError(f"{run} holds no {w} weights")
    held = sorted(int(k) for k in pf["probes"][w])
    if layers in (None, "all"):
        layer_ids = held
    else:
        layer_ids = parse_layers(layers, cfg["n_layer"])
        missing = [la for la in layer_ids if la not in held]
        if missing:
            raise ValueError(f"{probe_file} has no probe of layer {missing[0]} (it holds "
                             f"{', '.join(map(str, held))})")
    L = min(ckpt["config"].get("train_max_len") or cfg["block_size"], cfg["block_size"], 59)
    if lengths == "all" and L >= min(cfg["block_size"], 59):
        bands = ("seen",)  # trained on every length: there is no unseen band to add
    g, plies, band = sample_positions(games, L, cfg["block_size"], bands, seed)
    model = model_from_checkpoint(ckpt, w, device=device)
    probes = {la: probe_of(pf["probes"][w][str(la)]) for la in layer_ids}
    res = intervene(model, probes, g, plies, coding=pf["coding"], method=method,
                    margin=margin, seed=seed, chunk_size=chunk_size, device=device)
    same = bool(pf["checksum"]) and pf["checksum"] == str(ckpt.get("checksum") or "")
    return {"run": str(run), "step": ckpt["step"], "weights": w, "train_max_len": L,
            "probe_file": str(probe_file), "probe_run": pf["run"], "probe_step": pf["step"],
            "probe_same_checkpoint": same, "coding": pf["coding"], "layers": layer_ids,
            "lengths": lengths, "games": games, "seed": seed, "method": method,
            "margin": margin, "topk": "k = number of legal moves of the board compared with",
            "bands": summarise_interventions(res, band, seed)}


# ---------------------------------------------------------------------------------------------
# Output


def _method(res: dict) -> str:
    if res["method"] == "gradient":
        return f"gradient, margin {res['margin']:g}"
    return f"margin {res['margin']:g}"


def _fmt(r, key, digits=3) -> str:
    v = r.get(key)
    if v is None:
        return "-"
    return f"{v['value']:.{digits}f} [{v['ci'][0]:.{digits}f}, {v['ci'][1]:.{digits}f}]"


def format_intervene(res: dict) -> list[str]:
    """Text table lines of :func:`intervene_run`'s result: per band, the unedited model,
    then per layer the edit, sham and null conditions (value [95% interval])."""
    lines = [f"{res['run']}: step {res['step']}, {res['weights']} weights, seen lengths "
             f"1..{res['train_max_len']}, probes {res['probe_file']} ({res['coding']} coding"
             f"{'' if res['probe_same_checkpoint'] else ', fitted on another checkpoint'}), "
             f"method {_method(res)}, {res['games']} games"]
    head = (f"{'layer':>5} {'condition':<9} {'n':>5}  {'follow':<22} {'err_edited':<22} "
            f"{'err_original':<22} {'exact_edited':<22} {'probe_target':<22}")
    for b, entry in res["bands"].items():
        lines.append(f"{b} band: {entry['positions']} positions, {entry['edit_positions']} "
                     f"with an edit square, {entry['null_positions']} with a null square")
        lines.append(head)
        rows = [("-", "none", entry["none"])]
        for layer, by in entry["layers"].items():
            rows += [(layer, c, by[c]) for c in ("edit", "sham", "null")]
        for layer, c, r in rows:
            lines.append(f"{layer:>5} {c:<9} {r['n']:>5}  {_fmt(r, 'follow'):<22} "
                         f"{_fmt(r, 'err_edited', 2):<22} {_fmt(r, 'err_original', 2):<22} "
                         f"{_fmt(r, 'exact_edited'):<22} {_fmt(r, 'probe_target'):<22}")
        for layer, by in entry["layers"].items():
            ef = by["effects"]
            lines.append(f"  layer {layer}: follow edit - sham {_fmt(ef, 'follow_edit_minus_sham')}"
                         f", edit - none {_fmt(ef, 'follow_edit_minus_none')}; null edit damage "
                         f"(err_original - none) {_fmt(ef, 'null_err_original_minus_none', 2)}")
    return lines


def intervene_figure(res: dict):
    """Per band (a column): the follow rate (top) and the errors against the edited board
    (bottom) per layer, for the edit, the sham edit and the unedited model (95% intervals);
    bottom also the null edit's errors against the (unchanged) legal set."""
    from matplotlib.figure import Figure

    bands = list(res["bands"])
    fig = Figure(figsize=(4.8 * len(bands), 6.5))
    axes = fig.subplots(2, len(bands), squeeze=False)
    styles = {"edit": ("C0", "o"), "sham": ("C1", "s"), "none": ("k", "_"), "null": ("C2", "^")}
    for j, b in enumerate(bands):
        entry = res["bands"][b]
        layers = [int(la) for la in entry["layers"]]
        for row, (key, conds) in enumerate((("follow", ("edit", "sham", "none")),
                                            ("err_edited", ("edit", "sham", "none", "null")))):
            ax = axes[row, j]
            for k, c in enumerate(conds):
                vals = [(entry["none"] if c == "none" else entry["layers"][str(la)][c])
                        for la in layers]
                metric = "err_original" if c == "null" else key
                ys = [math.nan if v[metric] is None else v[metric]["value"] for v in vals]
                lo = [0 if v[metric] is None else v[metric]["value"] - v[metric]["ci"][0]
                      for v in vals]
                hi = [0 if v[metric] is None else v[metric]["ci"][1] - v[metric]["value"]
                      for v in vals]
                color, marker = styles[c]
                label = {"none": "unedited", "null": "null edit (vs original)"}.get(c, c)
                ax.errorbar([la + 0.08 * (k - 1.5) for la in layers], ys, yerr=[lo, hi],
                            color=color, marker=marker, capsize=3, lw=1, label=label)
            ax.set_xticks(layers)
            ax.set_xlabel("layer edited (0 = embeddings)")
            ax.grid(alpha=0.3)
            if key == "follow":
                ax.set_ylim(0, 1.02)
                ax.set_title(f"{b} lengths: changed moves on the edited side", fontsize=9)
            else:
                ax.set_ylim(bottom=0)
                ax.set_title(f"{b} lengths: errors of top-k vs the edited board", fontsize=9)
    axes[0, 0].set_ylabel("follow rate")
    axes[1, 0].set_ylabel("mean errors per position")
    axes[0, 0].legend(fontsize=7)
    axes[1, 0].legend(fontsize=7)
    fig.suptitle(f"probe interventions ({_method(res)}; "
                 f"seen = 1..{res['train_max_len']} tokens; 95% intervals)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig
