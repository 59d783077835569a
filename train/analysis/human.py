"""A person plays Othello against a run's model in the terminal (``lgagent play RUN --human``).

:func:`human_game` is the loop of one game, with the input and output passed in
(``read(prompt)`` shows the prompt and returns a line, or None at the end of input;
``write(text)`` prints a line), so
tests drive it through stdin or a pseudo-terminal. The board is the ``ansi`` picture
of the PettingZoo env (``X`` black, ``O`` white, ``*`` your legal moves). The person
types a square (``d3``, any case), ``pass`` (only when forced; a forced pass is also
played automatically), ``moves`` (list the legal moves), ``help`` or ``quit``;
malformed or illegal input asks again. After each model move the model's top choices
are shown with their probabilities (softmax over the 60 square tokens at the last
position, illegal ones flagged) and the probability it puts on legal moves. The model plays
its most probable legal move, as in ``lgagent play``; on an empty board (the model
plays black and moves first) it has no input, so its first move is a seeded random
legal move. :func:`human_session` loads the run and plays one game or several. No
click here.
"""

from __future__ import annotations

import numpy as np

from othello_env.kernels import PASS
from othello_env.render import parse_square, square_name

QUIT = ("quit", "exit", "q", "resign")
HELP = ("help", "?", "h")
LIST = ("moves", "legal", "m")
RESULTS = ("win", "loss", "draw", "quit", "end of input")
HELP_TEXT = ("Type a square such as d3 (file a-h, rank 1-8), 'pass' when you have no move, "
             "'moves' for your legal moves, 'quit' to stop.")


def model_probs(model, moves) -> np.ndarray | None:
    """The model's next-square probabilities after ``moves`` (squares, passes omitted).

    Softmax of the logits at the last position (:meth:`agents.policies.ModelPolicy.last_logits`)
    over the 60 square tokens (PAD left out), as float64 ``(64,)`` indexed by square (0 on
    the four centre squares): they sum to 1 over all squares, legal or not. ``model``: a
    GPT or a ModelPolicy. None for an empty history (the model has no input there).
    """
    import torch

    from agents.policies import ModelPolicy
    from othello_env.tokens import TOKEN_TO_SQUARE

    policy = model if isinstance(model, ModelPolicy) else ModelPolicy(model, task="othello", seed=0)
    logits = policy.last_logits(moves)
    if logits is None:
        return None
    out = np.zeros(64)
    out[TOKEN_TO_SQUARE[1:]] = torch.softmax(logits[1:].double(), dim=0).numpy()  # tokens 1..60
    return out


def model_choices(model, moves, k: int = 5) -> list[tuple[int, float]]:
    """The model's ``k`` most probable next squares after ``moves``, best first:
    ``[(square, probability), ...]`` (:func:`model_probs`); ``[]`` for an empty history."""
    probs = model_probs(model, moves)
    if probs is None:
        return []
    order = np.argsort(-probs, kind="stable")[:k]
    return [(int(s), float(probs[s])) for s in order]


def _legal_squares(mask) -> list[int]:
    return [int(s) for s in np.flatnonzero(np.asarray(mask)[:64])]


def _names(squares) -> str:
    return " ".join(square_name(s) for s in squares)


def format_choices(probs, mask, k: int = 5) -> str:
    """One line: the model's ``k`` top choices with probabilities, illegal ones flagged, and
    the probability it puts on legal moves (``probs`` from :func:`model_probs`)."""
    if probs is None:
        return "model's choices: none (an empty board gives the model no input; it moved at random)"
    legal = _legal_squares(mask)
    order = np.argsort(-probs, kind="stable")[:k]
    parts = [f"{square_name(s)} {probs[s]:.1%}" + ("" if s in legal else " (illegal)")
             for s in order]
    return f"model's choices: {', '.join(parts)}; on legal moves {probs[legal].sum():.1%}"


def human_game(policy, human_black: bool, read, write, top: int = 5) -> dict:
    """Play one game between a person (``read``/``write``) and ``policy`` (a ModelPolicy).

    ``human_black``: the person plays black (moves first). ``read(prompt)``: show
    ``prompt``, return the next input line, or None at the end of input;
    ``write(text)``: show a line. Returns ``{"result": one of RESULTS (the person's
    view), "human": "black"|"white", "black": discs, "white": discs, "moves": [squares,
    passes omitted]}``.
    """
    from othello_env.pettingzoo import raw_env

    env = raw_env(render_mode="ansi")
    env.reset()
    human = "player_0" if human_black else "player_1"
    colour = "black" if human_black else "white"
    model_colour = "white" if human_black else "black"
    write(f"You play {colour} ({'X' if human_black else 'O'}); the model plays {model_colour}. "
          + HELP_TEXT)
    result = None
    while not env.terminations[env.agent_selection]:
        agent = env.agent_selection
        mask = env.observe(agent)["action_mask"]
        forced_pass = bool(mask[PASS]) and int(mask.sum()) == 1
        moves = env.infos[agent]["moves"]
        if agent != human:
            if forced_pass:
                write(f"The model ({model_colour}) has no legal move and passes.")
                env.step(PASS)
                continue
            probs = model_probs(policy, moves)
            action = int(policy.act(None, {"action_mask": mask, "moves": moves}))
            write(f"The model ({model_colour}) plays {square_name(action)}.")
            write(format_choices(probs, mask, top))
            env.step(action)
            continue
        write(env.render().rstrip("\n"))
        if forced_pass:
            write("You have no legal move: you pass.")
            env.step(PASS)
            continue
        legal = _legal_squares(mask)
        action = None
        while action is None:
            line = read("your move> ")
            if line is None:
                result = "end of input"
                break
            text = line.strip().lower()
            if not text:
                continue
            if text in QUIT:
                result = "quit"
                break
            if text in HELP:
                write(HELP_TEXT)
                continue
            if text in LIST:
                write(f"legal moves: {_names(legal)}")
                continue
            try:
                sq = parse_square(text)
            except ValueError as e:
                write(f"{e}")
                continue
            if sq == PASS:
                write(f"you cannot pass: you have a legal move ({_names(legal)})")
            elif sq not in legal:
                write(f"{square_name(sq)} is not a legal move; legal moves: {_names(legal)}")
            else:
                action = sq
        if result is not None:
            break
        env.step(action)
    planes = env.observe("player_0")["observation"]  # black's side: own, other
    black, white = int(planes[0].sum()), int(planes[1].sum())
    hist = env.infos[env.agent_selection]["moves"]
    played = [int(s) for s in hist[hist >= 0]]
    if result is None:
        write(env.render().rstrip("\n"))
        mine, theirs = (black, white) if human_black else (white, black)
        result = "win" if mine > theirs else "loss" if mine < theirs else "draw"
        write(f"Game over: black {black}, white {white}. "
              + {"win": "You win.", "loss": "The model wins.", "draw": "A draw."}[result])
    elif result == "quit":
        write("You stopped the game.")
    else:
        write("")
        write("End of input: the game is abandoned.")
    return {"result": result, "human": colour, "black": black, "white": white, "moves": played}


def human_session(run, *, weights: str | None = None, colors: str = "both", games: int = 1,
                  seed: int = 0, device="cpu", read, write, gif=None, top: int = 5,
                  use_cache: bool = True) -> list[dict]:
    """Load RUN's model and play ``games`` games against a person (:func:`human_game`).

    ``colors`` is the model's colour as in ``lgagent play`` (black, white, or both:
    the person plays black in the first game and colours alternate). ``weights``: one
    the run holds (raw, ema, ema_<decay>, bema; default: its first EMA weights, else raw). ``gif``: a path; each
    game (also an unfinished one) is written there as a GIF (several games:
    ``NAME-1.gif``, ``NAME-2.gif``, ...). Stops early on ``quit`` or the end of input.
    ``use_cache``: the model's key/value cache (False: ``--no-cache``, each move reads the
    whole history; the same moves). ValueError, one line, for unusable input (checked
    before any game).
    """
    from agents import checkpoint
    from agents.policies import ModelPolicy
    from train.analysis.play import COLORS, _othello_checkpoint, held_weights

    if colors not in COLORS:
        raise ValueError(f"colors must be one of {COLORS}, got {colors!r}")
    if isinstance(games, bool) or not isinstance(games, int) or games < 1:
        raise ValueError(f"--games must be at least 1, got {games}")
    if seed < 0:
        raise ValueError(f"--seed must be non-negative, got {seed}")
    ckpt = _othello_checkpoint(run, "RUN", device)
    held = held_weights(ckpt)
    w = weights or next((h for h in held if h == "ema" or h.startswith("ema_")), "raw")
    if w not in held:
        raise ValueError(f"unknown weights {w!r}; choose from {', '.join(held)}")
    paths = gif_paths(gif, games) if gif is not None else [None] * games
    policy = ModelPolicy(checkpoint.model_from_checkpoint(ckpt, w, device), greedy=True,
                         task="othello", seed=seed, use_cache=use_cache)
    write(f"{run} (step {int(ckpt['step'])}, {w} weights)")
    out = []
    for i in range(games):
        human_black = colors == "white" or (colors == "both" and i % 2 == 0)
        if games > 1:
            write(f"-- game {i + 1} of {games} --")
        res = human_game(policy, human_black, read, write, top=top)
        out.append(res)
        if paths[i] is not None:
            from othello_env.render import save_gif

            save_gif(res["moves"], paths[i])
            write(f"wrote {paths[i]}")
        if res["result"] in ("quit", "end of input"):
            break
    if len(out) > 1:
        counts = {r: sum(g["result"] == r for g in out) for r in ("win", "draw", "loss")}
        write(f"You: {counts['win']} wins, {counts['draw']} draws, {counts['loss']} losses "
              f"in {sum(counts.values())} finished games.")
    return out


def gif_paths(gif, games: int) -> list:
    """The GIF file of each game: ``gif`` itself for one game, ``stem-k.suffix`` for several.

    ValueError (one line) when the directory does not exist or ``gif`` is a directory.
    """
    import os
    from pathlib import Path

    p = Path(gif)
    if p.is_dir():
        raise ValueError(f"--gif {p} is a directory; give a file name such as game.gif")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"--gif {p}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--gif {p}: cannot write to {parent}: permission denied")
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise ValueError("--gif needs pillow: pip install pillow") from None
    if games == 1:
        return [p]
    return [p.with_name(f"{p.stem}-{k + 1}{p.suffix or '.gif'}") for k in range(games)]
