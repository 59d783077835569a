"""Evaluation: how well a model separates legal from illegal next tokens, and how it plays.

Legality metrics (:func:`legality_metrics`, :func:`evaluate_model`) are computed
at every position that has a target (a non-empty legal set), summarised by split:

* ``seen``: positions ``p < train_max_len`` (lengths the model trained on;
  position p has seen p + 1 tokens),
* ``unseen``: positions ``p >= train_max_len`` (absent when the model trained on
  full-length sequences),

and by length (``per_length``: one entry per length ``p + 1`` of the batch, from
the same per-position sums, so a split's value is the position-weighted mean of
its lengths' values).

Per position, with z the logits, L the legal set and I the illegal tokens
(PAD excluded from L, from I and from the argmax; PAD is never a move):

* ``top1_err``: argmax_{v != PAD} z_v is not in L. OthelloGPT's metric in its
  strict form (the true legal set). Lower is better.
* ``top1_err_lenient`` (Othello only): the argmax is neither in L nor legal for
  the opponent, as OthelloGPT's own checker counts (a move of the other side is
  accepted as a pass). Reported beside the strict one, which the tables use.
* ``loss``: the ``legal`` loss, -(1/|L|) sum_{v in L} log softmax(z)_v (softmax
  over the whole vocabulary). Equals KL(target || model) + log |L|.
* ``sep_acc``: min_{v in L} z_v > max_{v in I} z_v, the fraction of positions
  where every legal logit is above every illegal one (the paper's notion of
  precision: one threshold separates valid from invalid). A position with no
  illegal token counts as separated. Higher is better.
* ``margin``: min_{v in L} z_v - max_{v in I} z_v in logit units (positive =
  separated), averaged over positions with at least one illegal token.
* ``illegal_mass``: the probability the model puts outside L (PAD included).
* ``tv``: total variation distance to the uniform target, 0.5 sum_v |p_v - q_v|.
* ``displacement``: the mean legal logit minus the mean illegal logit,
  mean_{v in L} z_v - mean_{v in I} z_v (the logit displacement of the theory),
  averaged over positions with at least one illegal token.

Per length only (the mechanism of attention dispersion):

* ``margin_x_length``: ``margin`` times the length; flat when the margin decays
  as 1/length (the theory's 2/s).
* ``attn_entropy``: ``[layer][head]`` the entropy -sum_j a_j ln a_j (nats) of
  the attention row of a position over its ``length`` attended tokens, averaged
  over the positions of that length.
* ``attn_entropy_norm``: ``attn_entropy`` / ln(length), 1.0 = uniform
  attention, 0.0 = one token; NaN at length 1 (ln 1 = 0).

The attention comes from the forward pass that gives the logits
(``model(tokens, return_attn=True)``); a model without that argument gets no
attention entries.

Play (``play_games`` of :func:`evaluate_checkpoint`): each weights against a uniformly
random player through :func:`train.analysis.play.play_models`, the games of ``lgagent
play`` (alternating colours, seed :data:`train.analysis.PLAY_SEED` unless given); per
weights :func:`train.analysis.play.match`'s result (win/draw/loss counts, score and
interval, the rate at which the model's own first choice was legal).
"""

from __future__ import annotations

import contextlib
import inspect
import math

import torch
from torch.nn import functional as F

METRICS = ("top1_err", "loss", "sep_acc", "margin", "illegal_mass", "tv")
SPLITS = ("seen", "unseen")
LENIENT = "top1_err_lenient"  # Othello only (a batch with ``lenient`` masks)
# in seen/unseen and per length next to METRICS (and LENIENT when present)
MECHANISM = ("displacement",)
# averaged over the positions with at least one illegal token (else over every valid one)
_ON_ILLEGAL = ("margin", "displacement")


def position_metrics(logits: torch.Tensor, legal: torch.Tensor, pad_id: int,
                     lenient: torch.Tensor | None = None) -> dict:
    """Per-position metrics of ``logits`` (B, T, V) against ``legal`` (B, T, V) bool.

    Returns ``{metric: (B, T) float32 tensor}`` for every name in :data:`METRICS`
    and :data:`MECHANISM` (plus :data:`LENIENT` when ``lenient`` (B, T, V) bool,
    the set the lenient checker accepts, is given), and ``"valid"`` (B, T) bool
    (the position has a legal target) and ``"has_illegal"`` (B, T) bool
    (``margin`` and ``displacement`` are defined there). Values at invalid
    positions are meaningless; use :func:`legality_metrics` to average.
    """
    if logits.dim() != 3 or legal.shape != logits.shape:
        raise ValueError(f"logits (B, T, V) and legal of the same shape needed, "
                         f"got {tuple(logits.shape)} and {tuple(legal.shape)}")
    if legal.dtype != torch.bool:
        raise ValueError(f"legal must be a bool tensor, got {legal.dtype}")
    if lenient is not None and (lenient.shape != logits.shape or lenient.dtype != torch.bool):
        raise ValueError(f"lenient must be a bool tensor shaped like the logits, got "
                         f"{lenient.dtype} {tuple(lenient.shape)}")
    V = logits.shape[-1]
    if not 0 <= pad_id < V:
        raise ValueError(f"pad_id {pad_id} outside the vocabulary 0..{V - 1}")
    z = logits.float()
    is_pad = torch.zeros(V, dtype=torch.bool, device=z.device)
    is_pad[pad_id] = True
    legal = legal & ~is_pad  # PAD is never a move, whatever the mask says
    illegal = ~legal & ~is_pad  # (B, T, V)
    n_legal = legal.sum(-1)  # (B, T)
    n_illegal = illegal.sum(-1)  # (B, T)
    valid = n_legal > 0
    has_illegal = n_illegal > 0

    logp = F.log_softmax(z, dim=-1)  # (B, T, V)
    p = logp.exp()
    top1 = z.masked_fill(is_pad, -math.inf).argmax(-1, keepdim=True)  # (B, T, 1)
    top1_err = (~legal.gather(-1, top1).squeeze(-1)).float()
    loss = -torch.where(legal, logp, 0.0).sum(-1) / n_legal.clamp(min=1)
    min_legal = z.masked_fill(~legal, math.inf).amin(-1)  # (B, T)
    max_illegal = z.masked_fill(~illegal, -math.inf).amax(-1)  # (B, T); -inf if none
    sep_acc = (min_legal > max_illegal).float()
    margin = torch.where(has_illegal & valid, min_legal - max_illegal, 0.0)
    illegal_mass = 1.0 - torch.where(legal, p, 0.0).sum(-1)
    q = legal.float() / n_legal.clamp(min=1).unsqueeze(-1)  # uniform target (B, T, V)
    tv = 0.5 * (p - q).abs().sum(-1)
    mean_legal = torch.where(legal, z, 0.0).sum(-1) / n_legal.clamp(min=1)  # (B, T)
    mean_illegal = torch.where(illegal, z, 0.0).sum(-1) / n_illegal.clamp(min=1)
    displacement = torch.where(has_illegal & valid, mean_legal - mean_illegal, 0.0)
    out = {"top1_err": top1_err, "loss": loss, "sep_acc": sep_acc, "margin": margin,
           "illegal_mass": illegal_mass, "tv": tv, "displacement": displacement}
    if lenient is not None:
        accepted = (lenient | legal) & ~is_pad
        out[LENIENT] = (~accepted.gather(-1, top1).squeeze(-1)).float()
    out["valid"], out["has_illegal"] = valid, has_illegal
    return out


def attention_entropy(attn) -> torch.Tensor:
    """Entropy (nats) of every attention row: a list of n_layer (B, H, T, T) -> (n_layer, B, H, T).

    Row t of a causal attention covers keys 0..t; 0 ln 0 counts as 0 (``torch.special.entr``).
    """
    return torch.stack([torch.special.entr(a.float()).sum(-1) for a in attn])


class _Sums:
    """Per-position float64 sums of per-position metrics (and attention entropies), on device.

    ``add`` keeps (T,) sums over the batch; :meth:`result` reduces any set of
    positions (a split), :meth:`per_length` gives one entry per position. Both
    divide the same sums, so a split is the position-weighted mean of its lengths.
    """

    def __init__(self):
        self.count = None  # (T,) positions with a target
        self.count_margin = None  # (T,) of which with an illegal token
        self.sums = {}  # metric -> (T,)
        self.attn = None  # (n_layer, H, T) entropy sums over counted positions

    def add(self, pm: dict, where: torch.Tensor, attn=None) -> None:
        w = where & pm["valid"]  # (B, T)
        wm = w & pm["has_illegal"]
        first = self.count is None
        cnt, cnt_m = w.double().sum(0), wm.double().sum(0)
        self.count = cnt if first else self.count + cnt
        self.count_margin = cnt_m if first else self.count_margin + cnt_m
        for m, v in pm.items():
            if m in ("valid", "has_illegal"):
                continue
            s = torch.where(wm if m in _ON_ILLEGAL else w, v.double(), 0.0).sum(0)  # (T,)
            self.sums[m] = s if m not in self.sums else self.sums[m] + s
        if attn is not None:
            ent = torch.einsum("lbht,bt->lht", attention_entropy(attn).double(), w.double())
            self.attn = ent if self.attn is None else self.attn + ent

    def _means(self, count, count_margin, sums) -> dict:
        out = {}
        for m, s in sums.items():
            c = count_margin if m in _ON_ILLEGAL else count
            out[m] = s / c if c else math.nan
        return out

    def result(self, positions: torch.Tensor | None = None) -> dict:
        """Means over the positions ``positions`` (T,) bool (default: all); ``positions`` count."""
        if self.count is None:
            return {**{m: math.nan for m in METRICS + MECHANISM}, "positions": 0}
        sel = (torch.ones_like(self.count, dtype=torch.bool) if positions is None
               else positions.to(self.count.device))
        # one transfer for every sum
        keys = list(self.sums)
        vals = torch.stack([self.count[sel].sum(), self.count_margin[sel].sum()]
                           + [self.sums[m][sel].sum() for m in keys]).tolist()
        out = self._means(vals[0], vals[1], dict(zip(keys, vals[2:])))
        out["positions"] = int(vals[0])
        return out

    def per_length(self) -> list[dict]:
        """One entry per position p: ``length`` p + 1, ``positions``, every metric, the mechanism."""
        if self.count is None:
            return []
        keys = list(self.sums)
        count, count_m = self.count.tolist(), self.count_margin.tolist()
        sums = {m: self.sums[m].tolist() for m in keys}
        attn = None if self.attn is None else self.attn.permute(2, 0, 1).tolist()  # (T, L, H)
        out = []
        for p in range(len(count)):
            length = p + 1
            e = {"length": length, "positions": int(count[p]),
                 **self._means(count[p], count_m[p], {m: sums[m][p] for m in keys})}
            e["margin_x_length"] = e["margin"] * length
            if attn is not None:
                c = count[p]
                ent = [[h / c if c else math.nan for h in layer] for layer in attn[p]]
                e["attn_entropy"] = ent
                e["attn_entropy_norm"] = [[h / math.log(length) if length > 1 else math.nan
                                           for h in layer] for layer in ent]
            out.append(e)
        return out


def legality_metrics(logits: torch.Tensor, legal: torch.Tensor, pad_id: int,
                     positions: torch.Tensor | None = None,
                     lenient: torch.Tensor | None = None) -> dict:
    """Mean of each metric over positions with a target (and in ``positions`` (B, T) bool if given).

    Returns ``{metric: float, "positions": int}``; metrics are NaN when no position counts.
    """
    pm = position_metrics(logits, legal, pad_id, lenient)
    where = pm["valid"] if positions is None else positions.to(pm["valid"].device)
    sums = _Sums()
    sums.add(pm, where)
    return sums.result()


def autocast(device: torch.device):
    """bf16 autocast on CUDA; a no-op context on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _returns_attention(model: torch.nn.Module) -> bool:
    """Whether ``model``'s forward takes ``return_attn`` (the project's GPT does)."""
    try:
        return "return_attn" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, batch, *, pad_id: int, train_max_len: int,
                   chunk_size: int = 512, device=None) -> dict:
    """Legality metrics of ``model`` on a held-out ``batch`` (a train.data.tasks Batch), by split and length.

    Returns ``{"seen": {...}, "unseen": {...}, "per_length": [...]}`` (see the
    module docstring); ``unseen`` is left out when ``train_max_len`` covers
    every position of the batch. ``top1_err_lenient`` appears when the batch
    has ``lenient`` masks (Othello's held-out batch). The model is run in eval
    mode (no dropout) in chunks of ``chunk_size`` sequences, under bf16
    autocast on CUDA, once per chunk (the attention entropies come from that
    same pass); its train/eval mode is restored afterwards. Sums stay on the
    device until the end. Does not touch any random number generator.
    """
    if train_max_len < 1:
        raise ValueError(f"train_max_len must be at least 1, got {train_max_len}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    T = batch.tokens.shape[1]
    pos = torch.arange(T, device=device)
    lenient = getattr(batch, "lenient", None)
    with_attn = _returns_attention(model)
    sums = _Sums()
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(batch.tokens), chunk_size):
            tokens = batch.tokens[start:start + chunk_size].to(device)
            legal = batch.legal[start:start + chunk_size].to(device)
            len_ = None if lenient is None else lenient[start:start + chunk_size].to(device)
            attn = None
            with autocast(device):
                out = model(tokens, return_attn=True) if with_attn else model(tokens)
            if with_attn:
                logits, attn = out[0], out[-1]
            else:
                logits = out[0] if isinstance(out, tuple) else out
            pm = position_metrics(logits, legal, pad_id, len_)
            sums.add(pm, pm["valid"], attn)
    finally:
        model.train(was_training)
    out = {"seen": sums.result(pos < train_max_len)}
    if train_max_len < T:
        out["unseen"] = sums.result(pos >= train_max_len)
    out["per_length"] = sums.per_length()
    return out


def evaluate_weights(models: dict, batch, *, pad_id: int, train_max_len: int,
                     chunk_size: int = 512, device=None) -> dict:
    """:func:`evaluate_model` for each of ``{weights name: module}`` (raw, ema, bema, ...).

    Returns ``{weights: {"seen" | "unseen": {metric: value}, "per_length": [...]}}``.
    """
    return {name: evaluate_model(m, batch, pad_id=pad_id, train_max_len=train_max_len,
                                 chunk_size=chunk_size, device=device)
            for name, m in models.items()}


def flat_scalars(results: dict, prefix: str = "eval") -> dict:
    """``{weights: {split: {metric: v}}}`` -> ``{"eval/<weights>/<split>/<metric>": v}``.

    Only the seen/unseen summaries: ``per_length`` goes into the end-of-training
    figure, not into scalars. The ``positions`` count is left out (it is a
    property of the batch, not the model).
    """
    return {f"{prefix}/{w}/{s}/{m}": v
            for w, splits in results.items() for s, ms in splits.items() if s in SPLITS
            for m, v in ms.items() if m != "positions"}


def table_lengths(train_max_len: int, max_len: int) -> list[int]:
    """The lengths the terminal table shows: 1, 2, L - 1, L, L + 1 and the maximum (in range)."""
    L = train_max_len
    return sorted({n for n in (1, 2, L - 1, L, L + 1, max_len) if 1 <= n <= max_len})


def _mean_nested(v) -> float:
    """Mean of a [layer][head] list, skipping NaN (NaN if nothing is left)."""
    flat = [x for row in v for x in row if x is not None and not math.isnan(x)]
    return sum(flat) / len(flat) if flat else math.nan


def reading(results: dict) -> list[str]:
    """One line saying how each averaged weights changes the unseen-length top-1 error
    against the raw weights (absolute difference; one evaluation, no interval)."""
    raw = (results.get("raw") or {}).get("unseen")
    if not raw or len(results) < 2:
        return []
    parts = []
    for w, res in results.items():
        u = res.get("unseen")
        if w != "raw" and u and not math.isnan(u["top1_err"]):
            parts.append(f"{w} {u['top1_err']:.4f} ({u['top1_err'] - raw['top1_err']:+.4f})")
    if not parts:
        return []
    return [f"reading: unseen-length top-1 error raw {raw['top1_err']:.4f}; " + ", ".join(parts)
            + " (lower is better; one run, one held-out set: see docs/RESULTS.md for intervals)"]


def format_results(results: dict | None, play: dict | None = None,
                   lengths: list[int] | None = None) -> list[str]:
    """Human-readable lines: one per (weights, split), one per (weights, length) in ``lengths``
    (from ``per_length``), one per play result.

    Columns: the main metrics, ``displacement``, ``top1_err_lenient`` when present, and on
    length rows the mean normalised attention entropy over layers and heads.
    """
    def num(v, spec):
        return "nan" if v is None or math.isnan(v) else format(v, spec)

    lines = []
    if results:
        width = max([8] + [len(w) + 1 for w in results])
        rows = []  # (weights, label, metrics dict)
        for w, res in results.items():
            rows += [(w, s, res[s]) for s in SPLITS if s in res]
            by_len = {e["length"]: e for e in res.get("per_length") or []}
            rows += [(w, f"len {n}", by_len[n]) for n in lengths or () if n in by_len]
        lenient = any(LENIENT in m for _, _, m in rows)
        attn = any("attn_entropy_norm" in m for _, _, m in rows)
        lines.append(f"{'weights':{width}} {'split':7} {'top1_err':>9} "
                     + (f"{'lenient':>8} " if lenient else "")
                     + f"{'sep_acc':>8} {'margin':>8} {'displ':>8} {'loss':>8} "
                     f"{'illegal_mass':>12} {'tv':>7}" + (f" {'attn_H/ln':>9}" if attn else ""))
        for w, label, m in rows:
            line = (f"{w:{width}} {label:7} {num(m['top1_err'], '9.4f'):>9} "
                    + (f"{num(m.get(LENIENT), '8.4f'):>8} " if lenient else "")
                    + f"{num(m['sep_acc'], '8.4f'):>8} {num(m['margin'], '.3f'):>8} "
                    f"{num(m.get('displacement'), '.3f'):>8} {num(m['loss'], '8.4f'):>8} "
                    f"{num(m['illegal_mass'], '12.4f'):>12} {num(m['tv'], '7.4f'):>7}")
            if attn:
                h = _mean_nested(m["attn_entropy_norm"]) if "attn_entropy_norm" in m else None
                line += f" {'-' if h is None else num(h, '9.3f'):>9}"
            lines.append(line)
        for w, res in results.items():
            if res.get("balance"):  # one-layer attention-only set complement models
                from train.analysis.theory import format_balance

                lines.append(f"balance {w}: {format_balance(res['balance'])}")
        lines += reading(results)
    for w, r in (play or {}).items():  # train.analysis.play.match results
        fcl = r["first_choice_legal"]
        lines.append(f"play {w} vs random ({r['games']} games): W-D-L {r['wins']}-{r['draws']}-"
                     f"{r['losses']}, score {r['score']:.3f} [{r['score_ci_low']:.3f}, "
                     f"{r['score_ci_high']:.3f}], first choice legal "
                     + ("n/a" if fcl is None else f"{fcl:.4f}"))
    return lines


def evaluate_checkpoint(path, *, weights=None, eval_size: int | None = None,
                        eval_seed: int | None = None, train_max_len: int | None = None,
                        play_games: int = 0, play_seed: int | None = None, device="cpu",
                        with_config: bool = False) -> dict:
    """Evaluate a saved run standalone: its checkpoint's weights on a fresh held-out batch.

    ``path`` is a checkpoint file or a RUN_DIR holding ``checkpoint.pt``.
    ``weights``: names among raw/ema/bema (default: every one the checkpoint holds).
    ``eval_size``, ``eval_seed``, ``train_max_len`` default to the run's own
    (so the numbers match the run's last evaluation). ``play_games`` > 0 plays
    Othello against a random player (:func:`train.analysis.play.play_models`) with seed
    ``play_seed`` (default :data:`train.analysis.PLAY_SEED`, never the held-out seed):
    the same games and results as ``lgagent play RUN --games N --seed S`` and, with the
    default, as the run's own end-of-run play. Returns ``{"step", "env", "train_max_len",
    "eval", "play"}`` (and the run's ``"config"`` with ``with_config``). For a set
    complement model of one attention-only layer (the paper's minimal model's shape), each
    weights' ``eval`` entry also holds ``"balance"``: the logit displacement at lengths 1
    and 2 (:func:`train.analysis.theory.logit_balance`, docs/THEORY.md); other models have
    no ``balance`` key. ValueError for an unusable checkpoint or argument.
    """
    from pathlib import Path

    from agents.checkpoint import CHECKPOINT, WEIGHTS, load, model_from_checkpoint, weights_of
    from train.analysis import PLAY_SEED
    from train.analysis.play import play_models

    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    ckpt = load(path)
    cfg = ckpt["config"]
    available = weights_of(ckpt)
    weights = list(weights) if weights else available
    for w in weights:
        if w not in WEIGHTS and w not in available:
            raise ValueError(f"unknown weights {w!r}; choose from {', '.join(available)}")
        if w not in available:
            raise ValueError(f"{path} holds no {w} weights (trained without --{w})")
    env = cfg.get("env")
    task, L = held_out_task(cfg, train_max_len, where=path)
    if play_games < 0:
        raise ValueError(f"play_games must be >= 0, got {play_games}")
    if play_games and env != "othello":
        raise ValueError("play_games: only Othello models play games")
    play_seed = PLAY_SEED if play_seed is None else play_seed
    if isinstance(play_seed, bool) or not isinstance(play_seed, int) or play_seed < 0:
        raise ValueError(f"play_seed must be a non-negative integer, got {play_seed!r}")
    batch = held_out_batch(task, cfg, eval_size, eval_seed)
    device = torch.device(device)
    models = {w: model_from_checkpoint(ckpt, w).to(device) for w in weights}
    results = evaluate_weights(models, batch, pad_id=task.pad_id, train_max_len=L,
                               chunk_size=cfg.get("batch_size") or 512,
                               device=device)
    if env == "setcomp" and task.v >= 3:
        from train.analysis.theory import is_minimal_shape, logit_balance

        if is_minimal_shape(ckpt.get("model_config")):  # one layer, attention only
            for w, m in models.items():
                results[w]["balance"] = logit_balance(m, task.v)
    play = play_models(models, "random", play_games, play_seed) if play_games else None
    out = {"step": ckpt["step"], "env": env, "train_max_len": L, "eval": results, "play": play}
    if with_config:
        out["config"] = cfg
    return out


def held_out_task(cfg: dict, train_max_len: int | None = None, where="checkpoint"):
    """``(task, train_max_len)`` of a saved run's config (``checkpoint["config"]``): its task
    and seen/unseen boundary (``train_max_len`` when given). ValueError when unusable."""
    from train.data import DEFAULT_VOCAB
    from train.data.tasks import make_task

    env = cfg.get("env")
    if env == "setcomp":
        task = make_task("setcomp", vocab_size=cfg.get("vocab_size") or DEFAULT_VOCAB)
    elif env == "othello":
        task = make_task("othello")
    else:
        raise ValueError(f"{where}: unknown env {env!r} in the checkpoint config")
    L = train_max_len if train_max_len is not None else cfg.get("train_max_len") or task.block_size
    if not 1 <= L <= task.block_size:
        raise ValueError(f"train_max_len must lie in 1..{task.block_size}, got {L}")
    return task, L


def held_out_batch(task, cfg: dict, eval_size: int | None = None, eval_seed: int | None = None):
    """The run's held-out batch: its own ``eval_size`` and ``eval_seed`` unless given, else the
    training defaults (a config may predate a field)."""
    from train.data import EVAL_SEED, EVAL_SIZE

    n = eval_size if eval_size is not None else cfg.get("eval_size", EVAL_SIZE)
    seed = eval_seed if eval_seed is not None else cfg.get("eval_seed", EVAL_SEED)
    return task.eval_batch(n, seed=seed)
