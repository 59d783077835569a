"""A hand-built solution of set complement, and an exhaustive check of any model on it.

:func:`set_complement_model` returns the paper's minimal model (preset ``setcomp-1l``'s
switches: one layer, one head, attention only, no LayerNorm, no positions, no biases,
untied) with weights set by a construction, not by training, that separates every valid
(absent) token from every invalid (present) one at every length 1..v-1. The derivation,
the margin law and the dimension bounds are in docs/THEORY.md; in short, with
``p_0..p_{v-1}`` the vertices of a regular simplex centred at the origin (rows of an
orthonormal basis of the sum-zero subspace of R^v, so ``p_t . p_j = [t = j] - 1/v``):

* W_Q = W_K = 0: every attention score is 0, so attention is uniform, ``a_i = 1/s``;
* E[t] = p_t, D = E W_V W_O U = -c (I - J/v) on the real tokens, B = E U = -beta (I - J/v);
* so at a set S of s tokens with last token l the logits are
  ``z_j = (c + beta)/v - beta [j = l] - (c/s) [j in S]``:
  every absent token has the same logit, every present one is at least c/s below it.
  The margin (lowest valid minus highest invalid logit) is exactly ``c/s`` for s >= 2
  and ``c + beta`` at s = 1.

``beta = 0`` (B = 0: the exact c/s law at every length) needs ``n_embd >= 2v - 2`` (E and U
in orthogonal blocks); ``beta > 0`` works down to ``n_embd = v - 1``, the proved lower bound
for any model whose logits are a linear map of an n_embd-dimensional vector. One more
dimension than the construction uses carries a constant direction that only the PAD
logit reads, so PAD's logit is exactly ``pad_logit``; without it PAD's logit is the mean
of the real logits, which is still below every valid one (by ``(c + beta)/v``). PAD is
never an input token nor a valid target of the task (train/data/tasks.py), and the
metrics leave it out of the argmax and the separation; only ``loss`` and
``illegal_mass`` see its probability.

:func:`all_inputs` enumerates every input that matters (with no positions the logits at
the last position depend only on the set and on the last token, never on the order of
the others), and :func:`exhaustive_check` runs a model on all of them.
"""

from __future__ import annotations

import math

import torch

from agents.config import preset
from agents.model import GPT


def simplex(v: int) -> torch.Tensor:
    """(v, v - 1) float64: row t is p_t, the Helmert basis of the sum-zero subspace of R^v.

    The rows are the vertices of a regular simplex centred at 0: ``p_t . p_j = [t = j] - 1/v``.
    """
    if isinstance(v, bool) or not isinstance(v, int) or v < 2:
        raise ValueError(f"v must be an integer >= 2, got {v!r}")
    P = torch.zeros(v, v - 1, dtype=torch.float64)
    for k in range(1, v):  # column k - 1: (1, ..., 1, -k, 0, ...) / sqrt(k (k + 1)), k ones
        P[:k, k - 1] = 1.0
        P[k, k - 1] = -float(k)
        P[:, k - 1] /= math.sqrt(k * (k + 1))
    return P


def min_n_embd(v: int, beta: float) -> int:
    """The smallest n_embd :func:`set_complement_model` builds for ``v`` tokens and ``beta``."""
    return 2 * v - 2 if beta == 0 else v - 1


def set_complement_model(vocab_size: int, n_embd: int | None = None, c: float = 1.0,
                         beta: float | None = None, pad_logit: float = -30.0) -> GPT:
    """The hand-built minimal model for set complement over ``vocab_size`` = v tokens.

    ``vocab_size`` is the task's v (``--vocab-size``); the model's vocabulary is v + 1
    (PAD = v) and its block size v - 1, as ``lgagent train --env setcomp`` makes them.
    ``n_embd`` defaults to ``2v - 1`` (the exact c/s law with B = 0, plus PAD's own
    direction). ``c`` > 0 scales the displacement (the margin at length s >= 2 is c/s);
    ``beta`` >= 0 is the extra push of the last token's own logit through B = E U
    (default 0 when ``n_embd >= 2v - 2``, else ``c``); ``pad_logit`` is PAD's logit when
    ``n_embd`` has a dimension to spare (see the module docstring). Returns a GPT in eval
    mode. ValueError below the bounds: ``n_embd < v - 1`` (no model of that width solves
    the task, docs/THEORY.md), or ``beta = 0`` with ``n_embd < 2v - 2``.
    """
    v = vocab_size
    if isinstance(v, bool) or not isinstance(v, int) or v < 2:
        raise ValueError(f"vocab_size must be an integer >= 2, got {v!r}")
    if not (isinstance(c, (int, float)) and not isinstance(c, bool) and c > 0):
        raise ValueError(f"c must be a positive number, got {c!r}")
    if n_embd is None:
        n_embd = 2 * v - 1 if beta in (None, 0) else v
    if isinstance(n_embd, bool) or not isinstance(n_embd, int) or n_embd < v - 1:
        raise ValueError(f"n_embd must be an integer >= v - 1 = {v - 1} (no narrower model "
                         f"separates every set: docs/THEORY.md), got {n_embd!r}")
    if beta is None:
        beta = 0.0 if n_embd >= 2 * v - 2 else float(c)
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or beta < 0:
        raise ValueError(f"beta must be a number >= 0, got {beta!r}")
    if n_embd < min_n_embd(v, beta):
        raise ValueError(f"beta = 0 (B = 0) needs n_embd >= 2v - 2 = {2 * v - 2}, got "
                         f"{n_embd}; give beta > 0 for n_embd down to v - 1")
    cfg = preset("setcomp-1l", vocab_size=v + 1, block_size=v - 1, n_embd=n_embd,
                 tie_weights=False)
    model = GPT(cfg)
    C, P = n_embd, simplex(v)  # P: (v, v - 1)
    k = v - 1
    a = slice(0, k)  # where E puts the simplex
    o = slice(k, 2 * k) if beta == 0 else a  # where the attention output and U live
    spare = o.stop  # first unused dimension: PAD's constant direction, if it exists
    E = torch.zeros(v + 1, C, dtype=torch.float64)
    E[:v, a] = P
    Wv = torch.zeros(C, C, dtype=torch.float64)  # value = Wv x
    Wo = torch.zeros(C, C, dtype=torch.float64)  # output = Wo value
    U = torch.zeros(v + 1, C, dtype=torch.float64)  # logits = U x
    if beta == 0:
        Wv[o, a] = torch.eye(k, dtype=torch.float64)  # copy the simplex into the output block
        Wo[o, o] = c * torch.eye(k, dtype=torch.float64)
        U[:v, o] = -P  # B = E U^T = 0 (other block), D = -c P P^T = -c (I - J/v)
    else:
        Wv[a, a] = torch.eye(k, dtype=torch.float64)
        Wo[a, a] = (c / beta) * torch.eye(k, dtype=torch.float64)
        U[:v, a] = -beta * P  # B = -beta (I - J/v), D = -beta (c/beta) (I - J/v)
    if spare < C:  # a constant direction: in every real token's embedding, killed by Wv
        E[:v, spare] = 1.0
        U[v, spare] = float(pad_logit)
    state = model.state_dict()
    new = {
        "wte.weight": E,
        "blocks.0.attn.c_attn.weight": torch.cat([torch.zeros(2 * C, C, dtype=torch.float64), Wv]),
        "blocks.0.attn.c_proj.weight": Wo,
        "lm_head.weight": U,
    }
    if set(new) != set(state):
        raise RuntimeError(f"the GPT's parameters changed: {sorted(state)}; the construction "
                           f"sets {sorted(new)}")
    for name, value in new.items():
        if tuple(value.shape) != tuple(state[name].shape):
            raise RuntimeError(f"{name}: shape {tuple(state[name].shape)}, the construction "
                               f"has {tuple(value.shape)}")
    model.load_state_dict({n: t.to(state[n].dtype) for n, t in new.items()})
    return model.eval()


def all_inputs(v: int, max_len: int | None = None, order: str = "sorted", seed: int = 0):
    """Every (set S, last token l in S) with 1 <= |S| <= ``max_len`` (default v - 1).

    Returns ``(tokens, lengths, present)``: tokens (N, max_len) long, the tokens of S with
    l last (the others ``"sorted"`` increasingly or in a seeded ``"random"`` order), then
    PAD (= v) up to max_len (a causal model's position s - 1 never sees it); lengths (N,)
    long = |S|; present (N, v) bool, the set S. N = sum_s C(v, s) s.
    """
    if isinstance(v, bool) or not isinstance(v, int) or v < 2:
        raise ValueError(f"v must be an integer >= 2, got {v!r}")
    max_len = v - 1 if max_len is None else max_len
    if not 1 <= max_len <= v - 1:
        raise ValueError(f"max_len must lie in 1..{v - 1}, got {max_len}")
    if order not in ("sorted", "random"):
        raise ValueError(f"order must be 'sorted' or 'random', got {order!r}")
    g = torch.Generator().manual_seed(seed)
    bits = torch.arange(1, 2 ** v, dtype=torch.long)  # every non-empty subset as a bit mask
    members = (bits[:, None] >> torch.arange(v)) & 1  # (2^v - 1, v)
    sizes = members.sum(1)
    members = members[sizes <= max_len].bool()
    rows, lengths, present = [], [], []
    for m in members:
        S = torch.nonzero(m).flatten()
        for last in S.tolist():
            others = S[S != last]
            if order == "random" and len(others) > 1:
                others = others[torch.randperm(len(others), generator=g)]
            seq = torch.full((max_len,), v, dtype=torch.long)
            seq[: len(S)] = torch.cat([others, torch.tensor([last])])
            rows.append(seq)
            lengths.append(len(S))
            present.append(m)
    return torch.stack(rows), torch.tensor(lengths), torch.stack(present)


@torch.no_grad()
def last_logits(model, tokens: torch.Tensor, lengths: torch.Tensor,
                chunk_size: int = 4096) -> torch.Tensor:
    """(N, V) float32: the model's logits at position ``lengths - 1`` of each row of ``tokens``."""
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    out = []
    try:
        for i in range(0, len(tokens), chunk_size):
            t = tokens[i:i + chunk_size].to(dev)
            n = lengths[i:i + chunk_size].to(dev)
            z = model(t)
            z = z[0] if isinstance(z, tuple) else z
            out.append(z[torch.arange(len(t), device=dev), n - 1].float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)


def exhaustive_check(model, v: int, max_len: int | None = None, order: str = "sorted") -> dict:
    """Run ``model`` on every input of :func:`all_inputs` and summarise by length.

    Returns ``{"inputs": N, "separated": bool (every input, every length), "per_length":
    [{"length", "inputs", "sep_frac", "margin_min", "margin_max", "margin_mean"}]}``,
    margin = lowest valid (absent) logit minus highest invalid (present) logit over the v
    real tokens (PAD left out, as in train.analysis.evaluate).
    """
    tokens, lengths, present = all_inputs(v, max_len, order)
    z = last_logits(model, tokens, lengths)[:, :v]
    margin = (z.masked_fill(present, math.inf).amin(1)
              - z.masked_fill(~present, -math.inf).amax(1))  # (N,)
    per = []
    for s in range(1, int(lengths.max()) + 1):
        m = margin[lengths == s]
        per.append({"length": s, "inputs": int(m.numel()), "sep_frac": float((m > 0).float().mean()),
                    "margin_min": float(m.min()), "margin_max": float(m.max()),
                    "margin_mean": float(m.mean())})
    return {"inputs": int(len(tokens)), "separated": bool((margin > 0).all()), "per_length": per}
