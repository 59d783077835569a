"""Linear probes of the board in an Othello model's residual stream, per layer and length.

The question: when a model trained on the first L moves fails at unseen lengths,
has its picture of the board broken down there, or is the board still linearly readable and
only the read-out fails? :func:`probe_run` answers it for a run's checkpoint:

1. Fresh random games (``othello_env.games.generate_games``, a seed of their own) are fed to
   the model; ``GPT(..., return_resid=True)`` gives the residual stream after the embeddings
   (layer 0) and after each block (layer l), all from one forward pass.
2. Targets: the board after each move (``othello_env.games.board_states``), 3 classes per
   square: empty / mine / theirs (``coding="mover"``, Nanda et al. 2023: relative to the
   player to move next, see :func:`to_move`) or empty / black / white (``coding="colour"``).
3. One probe per layer: a multinomial logistic regression over all 64 squares at once
   (logits (N, 64, 3) = standardised activations (N, C) @ W (C, 64 * 3) + b), fitted on the
   first half of the games at seen lengths only (1..train_max_len tokens) and scored on the
   second half at every length. A probe fitted at seen lengths can only name classes it saw
   there (a corner never holds a disc in the first 10 moves); ``fit_lengths="all"`` fits on
   every length of the fit games instead, asking whether the board is still *present* at
   unseen lengths rather than whether the seen-length read-out still works.

Solver: ``torch.optim.LBFGS`` (strong-Wolfe line search, full batch, float32) on the mean
cross-entropy plus a small L2 penalty on W; no scikit-learn dependency, deterministic from
zero initial weights. Baselines that make the numbers meaningful: the same probe on a
randomly initialised model of the same shape (``"random_init"``) and the majority class of
each square on the fit positions (``"majority"``, a probe that ignores the activations).

``probe_run(..., save=PATH)`` (``lgagent probe --save``) writes the fitted probes to a probe
file (:func:`check_probes` documents its format; :func:`load_probes` reads it) for the
interventions of :mod:`train.analysis.intervene`.

Accuracy is the fraction of squares classified right, averaged over positions;
``*_occupied`` counts only squares holding a disc (for the mover coding: mine vs theirs,
the part that needs the game's rules; empty vs occupied follows from the tokens alone).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

from train.analysis import CODINGS, FIT_LENGTHS

CLASSES = {"mover": ("empty", "mine", "theirs"), "colour": ("empty", "black", "white")}
SOLVER = "torch.optim.LBFGS (strong Wolfe, full batch, float32), L2 on W"
_PROBE_KEY = 16  # SeedSequence spawn key of the probe games: disjoint from train/eval streams
PROBE_FORMAT, PROBE_VERSION = "lgagent-probes", 1  # the probe file (:func:`save_probes`)
L2 = 1e-4  # fit_probe's default L2 penalty, recorded in the probe file


# ---------------------------------------------------------------------------------------------
# Targets


def to_move(games: np.ndarray, boards: np.ndarray) -> np.ndarray:
    """Who moves next after each move: int8 (n, L), 1 black, -1 white, 0 on the -1 padding.

    ``games`` (n, L) squares (-1 after the end), ``boards`` = ``board_states(games)``.
    Read from the replay, not from parity (a pass lets one colour move twice): the disc
    placed by move t + 1 has its mover's colour (a move never flips its own square). After
    the last move of a game nobody moves; the side that did not make it is used, as if the
    colours alternated, so every position has a "mine". For the final ply of a prefix
    (t = L - 1 < 59, game not over) nobody is known either: pass the full 60-move games
    and slice the result.
    """
    games = np.asarray(games)
    n, L = games.shape
    rows = np.arange(n)[:, None]
    sq = np.where(games >= 0, games, 0).astype(np.int64)
    placed = boards[rows, np.arange(L)[None, :], sq].astype(np.int8)  # (n, L): mover of move t
    placed[games < 0] = 0
    nxt = np.zeros_like(placed)
    nxt[:, :-1] = placed[:, 1:]
    out = np.where(nxt != 0, nxt, -placed).astype(np.int8)
    out[games < 0] = 0
    return out


def board_targets(games: np.ndarray, coding: str = "mover") -> np.ndarray:
    """Probe classes int64 (n, L, 64) of the board after each move of int8 ``games`` (n, L).

    ``coding="mover"``: 0 empty, 1 a disc of the player to move (:func:`to_move`), 2 the
    other player's. ``coding="colour"``: 0 empty, 1 black, 2 white. ValueError for an
    unknown coding or illegal games (as :func:`othello_env.games.validate_games`).
    """
    from othello_env.games import board_states

    if coding not in CODINGS:
        raise ValueError(f"coding must be one of {', '.join(CODINGS)}, got {coding!r}")
    boards = board_states(games)  # (n, L, 64) int8, 1 black / -1 white
    if coding == "mover":
        boards = boards * to_move(games, boards)[:, :, None]  # 1 mine / -1 theirs
    out = np.zeros(boards.shape, dtype=np.int64)
    out[boards == 1] = 1
    out[boards == -1] = 2
    return out


# ---------------------------------------------------------------------------------------------
# Activations


@torch.no_grad()
def residuals(model: torch.nn.Module, tokens: torch.Tensor, layers: list[int], *,
              chunk_size: int = 256, device="cpu") -> torch.Tensor:
    """The residual stream at ``layers`` (0 = embeddings, l = after block l) for ``tokens``.

    Returns float32 (len(layers), B, T, C) on the CPU; the model runs in eval mode in
    chunks of ``chunk_size`` sequences, one forward pass per chunk for all layers.
    """
    model.eval().to(device)
    out = []
    for i in range(0, tokens.shape[0], chunk_size):
        _, resid = model(tokens[i: i + chunk_size].to(device), return_resid=True)
        out.append(torch.stack([resid[layer].float().cpu() for layer in layers]))
    return torch.cat(out, dim=1)


# ---------------------------------------------------------------------------------------------
# The probe


class LinearProbe:
    """Multinomial logistic regression per square on standardised activations.

    ``mean``, ``std`` (C,), ``weight`` (C, 64, K), ``bias`` (64, K); K classes (3).
    """

    def __init__(self, mean, std, weight, bias):
        self.mean, self.std, self.weight, self.bias = mean, std, weight, bias

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C) activations -> (N, 64, K) logits."""
        z = (x.float() - self.mean) / self.std
        return (z @ self.weight.flatten(1)).view(len(z), *self.bias.shape) + self.bias

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C) activations -> (N, 64) predicted classes."""
        return self.logits(x).argmax(-1)


def fit_probe(x: torch.Tensor, y: torch.Tensor, *, n_classes: int = 3, l2: float = 1e-4,
              max_iter: int = 100) -> LinearProbe:
    """Fit a :class:`LinearProbe` to activations ``x`` (N, C) and classes ``y`` (N, S) long.

    Minimises mean cross-entropy over positions and squares + ``l2 * |W|^2 / 2`` with
    torch's LBFGS (strong-Wolfe line search) from zero weights: deterministic given the data.
    Features are standardised with the fit data's mean and std (LBFGS converges far faster
    on a well-conditioned problem; the std floor keeps dead dimensions finite).
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"need x (N, C) and y (N, S) with N > 0, got {tuple(x.shape)}, "
                         f"{tuple(y.shape)}")
    x = x.float()
    mean = x.mean(0)
    std = x.std(0, unbiased=False).clamp_min(1e-6)
    z = (x - mean) / std
    n_sq = y.shape[1]
    w = torch.zeros(x.shape[1], n_sq, n_classes, requires_grad=True)
    b = torch.zeros(n_sq, n_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-6,
                            tolerance_change=1e-9)
    target = y.reshape(-1)

    def closure():
        opt.zero_grad()
        logits = (z @ w.flatten(1)).view(len(z), n_sq, n_classes) + b  # (N, S, K)
        loss = F.cross_entropy(logits.reshape(-1, n_classes), target) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return LinearProbe(mean, std, w.detach(), b.detach())


def majority_classes(y: torch.Tensor, n_classes: int = 3) -> torch.Tensor:
    """The most frequent class of each square in ``y`` (N, S): long (S,) (ties: lowest class)."""
    counts = F.one_hot(y, n_classes).sum(0)  # (S, K)
    return counts.argmax(-1)


def summarise(correct: torch.Tensor, occupied: torch.Tensor, lengths: torch.Tensor,
              train_max_len: int) -> dict:
    """Accuracy at seen / unseen lengths and per length from per-square results.

    ``correct``, ``occupied``: bool (N, S); ``lengths``: (N,) tokens seen per position.
    Positions weigh equally (mean over their squares); ``*_occupied`` pools the squares
    holding a disc. None where there is no position (or no disc).
    """
    acc = correct.double().mean(1)  # (N,)
    occ_right = (correct & occupied).sum(1).double()
    occ_count = occupied.sum(1).double()

    def stats(sel):
        n = int(sel.sum())
        if n == 0:
            return n, None, None
        oc = float(occ_count[sel].sum())
        return n, float(acc[sel].mean()), (float(occ_right[sel].sum()) / oc if oc else None)

    seen = lengths <= train_max_len
    n_seen, a_seen, o_seen = stats(seen)
    n_unseen, a_unseen, o_unseen = stats(~seen)
    per_length = []
    for length in sorted(set(lengths.tolist())):
        n, a, o = stats(lengths == length)
        per_length.append({"length": int(length), "positions": n, "acc": a, "acc_occupied": o})
    return {"seen": a_seen, "unseen": a_unseen, "seen_occupied": o_seen,
            "unseen_occupied": o_unseen, "positions_seen": n_seen, "positions_unseen": n_unseen,
            "per_length": per_length}


# ---------------------------------------------------------------------------------------------
# A run


def seeded_games(n: int, ss: np.random.SeedSequence) -> np.ndarray:
    """``n`` random games (int8 (n, 60)) from the stream ``ss`` (a seed within
    generate_games' range: 63 bits)."""
    from othello_env.games import generate_games

    return generate_games(n, seed=int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1)))


def probe_games(n: int, seed: int = 0) -> np.ndarray:
    """``n`` fresh random games (int8 (n, 60)) for probing; depend only on ``(n, seed)``."""
    return seeded_games(n, np.random.SeedSequence(seed, spawn_key=(_PROBE_KEY,)))


def parse_layers(spec: str, n_layer: int) -> list[int]:
    """``"all"`` -> 0..n_layer; ``"0,4,8"`` -> [0, 4, 8] (sorted, unique). ValueError if bad."""
    spec = str(spec).strip()
    if spec == "all":
        return list(range(n_layer + 1))
    out = set()
    for part in spec.split(","):
        part = part.strip()
        if not part.isdigit():
            raise ValueError(f"--layers must be 'all' or comma-separated layer numbers "
                             f"0..{n_layer}, got {spec!r}")
        if int(part) > n_layer:
            raise ValueError(f"--layers: layer {int(part)} is out of range 0..{n_layer} "
                             f"(0 = embeddings, {n_layer} = last block)")
        out.add(int(part))
    return sorted(out)


def random_init_model(model_config: dict, seed: int = 0):
    """A GPT of the same shape with fresh initial weights (torch seed ``seed``), eval mode.

    The global torch RNG is restored afterwards, so the call changes no other stream.
    """
    from agents.config import GPTConfig
    from agents.model import GPT

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GPT(GPTConfig(**model_config)).eval()


def probe_run(run, *, weights=None, layers: str = "all", games: int = 2000,
              coding: str = "mover", fit_lengths: str = "seen", seed: int = 0,
              max_iter: int = 100, device="cpu", chunk_size: int = 256, save=None) -> dict:
    """Probe a run's checkpoint (a RUN_DIR or checkpoint file) per weights and layer.

    ``weights``: names among the checkpoint's (default: every one it holds); a randomly
    initialised model of the same shape is always added as ``"random_init"``.
    ``games``: fresh games, the first half fits the probes (at seen lengths), the second
    half scores them (at every length). ``fit_lengths``: "seen" (1..train_max_len) or
    "all". Returns ``{"run", "step", "train_max_len", "coding", "fit_lengths", "classes",
    "layers", "games", "seed", "solver", "probe": {weights: {layer:
    summary}}, "majority": summary}`` (summary: :func:`summarise` plus ``"fit"``, the
    accuracy on the fit positions). ``save``: a path; the fitted probes of the checkpoint's
    weights (not random_init's) are written there (:func:`save_probes`, format
    :data:`PROBE_FORMAT`) and the result gains ``"saved"``. ValueError, one line, for
    unusable input.
    """
    from agents.checkpoint import WEIGHTS, load, model_from_checkpoint, task_of, weights_of
    from othello_env import tokens as othello_tokens

    if isinstance(games, bool) or not isinstance(games, int) or games < 2:
        raise ValueError(f"--games must be at least 2 (half fit, half test), got {games}")
    if coding not in CODINGS:
        raise ValueError(f"--coding must be one of {', '.join(CODINGS)}, got {coding!r}")
    if fit_lengths not in FIT_LENGTHS:
        raise ValueError(f"--fit-lengths must be one of {', '.join(FIT_LENGTHS)}, "
                         f"got {fit_lengths!r}")
    ckpt = load(run)
    if task_of(ckpt) != "othello":
        raise ValueError(f"{run} is a set complement run; probes read the Othello board")
    available = weights_of(ckpt)
    names = list(weights) if weights else available
    for w in names:
        if w not in available:
            if w in WEIGHTS:
                raise ValueError(f"{run} holds no {w} weights (trained without --{w})")
            raise ValueError(f"unknown weights {w!r}; choose from {', '.join(available)}")
    cfg = ckpt["model_config"]
    layer_ids = parse_layers(layers, cfg["n_layer"])
    T = min(cfg["block_size"], 59)
    L = min(ckpt["config"].get("train_max_len") or T, T)

    g = probe_games(games, seed)
    y_all = torch.from_numpy(board_targets(g, coding)[:, :T])  # (n, T, 64)
    tokens = torch.from_numpy(othello_tokens.SQUARE_TO_TOKEN[np.where(g[:, :T] >= 0,
                                                                      g[:, :T], 0)])
    valid = torch.from_numpy(g[:, :T] >= 0)
    tokens[~valid] = othello_tokens.PAD
    lengths = torch.arange(1, T + 1).expand(games, T)
    n_fit = games // 2
    fit_sel = valid.clone()
    fit_sel[n_fit:] = False
    if fit_lengths == "seen":
        fit_sel &= lengths <= L
    test_sel = valid.clone()
    test_sel[:n_fit] = False
    if not fit_sel.any():
        raise ValueError("no fit positions (every game ended before it started?)")
    y_fit, y_test = y_all[fit_sel], y_all[test_sel]  # (N, 64)
    len_test = lengths[test_sel]
    occupied = y_test != 0

    models = {w: model_from_checkpoint(ckpt, w) for w in names}
    models["random_init"] = random_init_model(cfg, seed)
    out_probe, fitted = {}, {}
    for w, model in models.items():
        acts = residuals(model, tokens, layer_ids, chunk_size=chunk_size, device=device)
        out_probe[w], fitted[w] = {}, {}
        for li, layer in enumerate(layer_ids):
            x = acts[li]  # (n, T, C)
            probe = fit_probe(x[fit_sel], y_fit, max_iter=max_iter)
            res = summarise(probe.predict(x[test_sel]) == y_test, occupied, len_test, L)
            res["fit"] = float((probe.predict(x[fit_sel]) == y_fit).double().mean())
            out_probe[w][str(layer)] = res
            fitted[w][layer] = probe
    major = majority_classes(y_fit)
    maj = summarise(major.expand_as(y_test) == y_test, occupied, len_test, L)
    maj["fit"] = float((major.expand_as(y_fit) == y_fit).double().mean())
    out = {"run": str(run), "step": ckpt["step"], "train_max_len": L, "coding": coding,
           "fit_lengths": fit_lengths,
           "classes": list(CLASSES[coding]), "layers": layer_ids,
           "games": {"fit": n_fit, "test": games - n_fit}, "seed": seed, "solver": SOLVER,
           "probe": out_probe, "majority": maj}
    if save is not None:
        save_probes(save, {
            "format": PROBE_FORMAT, "version": PROBE_VERSION, "run": str(run),
            "step": int(ckpt["step"]), "checksum": str(ckpt.get("checksum") or ""),
            "model_config": dict(cfg), "train_max_len": int(L), "coding": coding,
            "classes": list(CLASSES[coding]), "fit_lengths": fit_lengths,
            "games": int(n_fit), "seed": int(seed), "solver": SOLVER, "l2": L2,
            "max_iter": int(max_iter), "layers": layer_ids,
            "probes": {w: {str(layer): {
                "mean": p.mean.contiguous(), "std": p.std.contiguous(),
                "weight": p.weight.contiguous(), "bias": p.bias.contiguous(),
                "acc_seen": out_probe[w][str(layer)]["seen"],
                "acc_seen_occupied": out_probe[w][str(layer)]["seen_occupied"],
                "acc_unseen": out_probe[w][str(layer)]["unseen"],
                "acc_unseen_occupied": out_probe[w][str(layer)]["unseen_occupied"]}
                for layer, p in by.items()} for w, by in fitted.items() if w != "random_init"},
        })
        out["saved"] = str(save)
    return out


# ---------------------------------------------------------------------------------------------
# The probe file


def save_probes(path, payload: dict) -> None:
    """Write a probe file (``torch.save`` of a plain dict, atomically); see :func:`load_probes`."""
    from train.atomic import atomic_path

    check_probes(payload, str(path))
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def check_probes(d, where: str = "probe file") -> dict:
    """Check a probe file's dict (:data:`PROBE_FORMAT` version 1); ValueError, one line, if bad.

    The layout (every tensor float32 on the CPU, C = n_embd, K = 3 classes)::

        {"format": "lgagent-probes", "version": 1,
         "run": str, "step": int, "checksum": str,   # the checkpoint the probes were fitted on
         "model_config": {...GPTConfig fields...},   # its model's shape
         "train_max_len": int, "coding": "mover" | "colour", "classes": [3 names],
         "fit_lengths": "seen" | "all", "games": int (fit games), "seed": int,
         "solver": str, "l2": float, "max_iter": int, "layers": [int, ...],
         "probes": {weights: {str(layer): {
             "mean": (C,), "std": (C,),              # the standardisation of the fit data
             "weight": (C, 64, K), "bias": (64, K),  # logits = ((x - mean) / std) @ W + b
             "acc_seen": float, "acc_seen_occupied": float | None,    # on the test games
             "acc_unseen": float | None, "acc_unseen_occupied": float | None}}}}
    """
    def need(ok, what):
        if not ok:
            raise ValueError(f"{where}: not a probe file of lgagent ({what})")

    need(isinstance(d, dict), "not a dict")
    need(d.get("format") == PROBE_FORMAT, f"format is not {PROBE_FORMAT!r}")
    if d.get("version") != PROBE_VERSION:
        raise ValueError(f"{where}: probe file version {d.get('version')!r}; this lgagent reads "
                         f"version {PROBE_VERSION}")
    for key, typ in (("run", str), ("step", int), ("checksum", str), ("model_config", dict),
                     ("train_max_len", int), ("coding", str), ("classes", list),
                     ("fit_lengths", str), ("layers", list), ("probes", dict)):
        need(isinstance(d.get(key), typ), f"{key} is missing or not a {typ.__name__}")
    need(d["coding"] in CODINGS, f"unknown coding {d['coding']!r}")
    cfg = d["model_config"]
    need(isinstance(cfg.get("n_embd"), int) and isinstance(cfg.get("n_layer"), int),
         "model_config lacks n_embd or n_layer")
    C, K = cfg["n_embd"], len(CLASSES[d["coding"]])
    need(bool(d["probes"]), "no probes")
    for w, by in d["probes"].items():
        need(isinstance(w, str) and isinstance(by, dict) and by, f"probes of {w!r}")
        for layer, p in by.items():
            need(isinstance(layer, str) and layer.isdigit() and int(layer) <= cfg["n_layer"],
                 f"layer {layer!r} of {w!r}")
            need(isinstance(p, dict), f"probe {w}/{layer}")
            for key, shape in (("mean", (C,)), ("std", (C,)), ("weight", (C, 64, K)),
                               ("bias", (64, K))):
                t = p.get(key)
                need(isinstance(t, torch.Tensor) and tuple(t.shape) == shape
                     and t.dtype == torch.float32 and bool(torch.isfinite(t).all()),
                     f"{w}/{layer}/{key} is not a finite float32 tensor of shape {shape}")
            need(bool((p["std"] > 0).all()), f"{w}/{layer}/std is not positive")
    return d


def load_probes(path) -> dict:
    """Read a probe file written by ``lgagent probe --save`` (``torch.load(weights_only=True)``)
    and :func:`check_probes` it. ValueError, one line, for a missing or foreign file."""
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"no probe file at {path}")
    try:
        d = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip or torch errors: one line
        raise ValueError(f"{path}: cannot read a probe file ({type(e).__name__})") from None
    return check_probes(d, str(path))


def probe_of(entry: dict) -> LinearProbe:
    """The :class:`LinearProbe` of one layer's entry of a probe file."""
    return LinearProbe(entry["mean"], entry["std"], entry["weight"], entry["bias"])


# ---------------------------------------------------------------------------------------------
# Output


def _num(v) -> str:
    return "   -  " if v is None else f"{v:6.3f}"


def format_probe(res: dict) -> list[str]:
    """Text table lines of :func:`probe_run`'s result: a row per weights and layer."""
    lines = [f"{res['run']}: step {res['step']}, seen lengths 1..{res['train_max_len']}, "
             f"{res['coding']} coding, {res['games']['fit']} fit + {res['games']['test']} "
             f"test games, fit at {res['fit_lengths']} lengths",
             f"{'weights':<12} {'layer':>5} {'fit':>6} {'seen':>6} {'unseen':>6} "
             f"{'seen_occ':>8} {'unseen_occ':>10}"]
    rows = [(w, layer, r) for w, by in res["probe"].items() for layer, r in by.items()]
    rows.append(("majority", "-", res["majority"]))
    for w, layer, r in rows:
        lines.append(f"{w:<12} {layer:>5} {_num(r['fit'])} {_num(r['seen'])} "
                     f"{_num(r['unseen'])} {_num(r['seen_occupied']):>8} "
                     f"{_num(r['unseen_occupied']):>10}")
    return lines


def probe_figure(res: dict):
    """Probe accuracy against length: a column per weights (all squares / occupied squares),
    one line per layer, the majority baseline dashed, the last trained length marked."""
    from matplotlib.figure import Figure

    ws = list(res["probe"])
    fig = Figure(figsize=(4.5 * len(ws), 7))
    axes = fig.subplots(2, len(ws), squeeze=False)
    for j, w in enumerate(ws):
        for row, key in enumerate(("acc", "acc_occupied")):
            ax = axes[row, j]
            for layer, r in res["probe"][w].items():
                pl = r["per_length"]
                ax.plot([e["length"] for e in pl],
                        [math.nan if e[key] is None else e[key] for e in pl],
                        marker=".", ms=3, label=f"layer {layer}")
            pl = res["majority"]["per_length"]
            ax.plot([e["length"] for e in pl], [math.nan if e[key] is None else e[key] for e in pl],
                    "k--", lw=1, label="majority")
            ax.axvline(res["train_max_len"], color="grey", lw=0.8, ls="-.")
            ax.set_title(f"{w}: {'all squares' if key == 'acc' else 'occupied squares'}",
                         fontsize=9)
            ax.set_xlabel("tokens seen (length)")
            ax.set_ylim(0, 1.02)
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("probe accuracy")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"linear board probes ({res['coding']} coding, fit at {res['fit_lengths']} "
                 f"lengths; dash-dot: last trained length)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig
