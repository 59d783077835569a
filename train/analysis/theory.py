"""Balanced logit displacement at lengths 1 and 2: the hypothesis of the paper's theorem, measured.

The paper (arXiv 2510.08341) states that a one-layer attention-only model with *balanced
logit displacement* at lengths 1 and 2 generalizes to every length, with a precision that
decays roughly as 2/s. Its exact definition is not public; this module's, written down in
docs/THEORY.md, is operational and reads only the model's logits, exhaustively over the
v + v(v - 1) inputs of lengths 1 and 2:

* the displacement of a present token k at an input is the mean logit of the absent
  (valid) tokens minus k's logit, ``Delta(k) = mean_{j not in S} z_j - z_k`` (PAD left out);
* ``d1(t)``: at length 1, input (t), the displacement of t (v values);
* ``d2_first(k, l)`` and ``d2_last(k, l)``: at length 2, input (k, l), the displacements of
  the earlier token k (reached only through attention) and of the last token l
  (v (v - 1) values each).

If every present token's displacement times the length is the same number at lengths 1
and 2, the model is *balanced*: ``imbalance`` (the coefficient of variation of the pooled
``{d1} u {2 d2_first} u {2 d2_last}``) is 0, ``ratio_21`` (mean length-2 displacement over
mean length-1 displacement) is 1/2, and a model with uniform attention then has margin
``2 margin_2 / s`` at length s (the hand-built model of :mod:`agents.construct` with
beta = 0 is exactly that). ``d1_cv`` and ``d2_cv`` are the spreads at each length alone.
"""

from __future__ import annotations

import math

import torch

from agents.construct import last_logits


def is_minimal_shape(model_config: dict | None) -> bool:
    """Whether a GPTConfig dict is a one-layer attention-only model (the theorem's shape)."""
    return (isinstance(model_config, dict) and model_config.get("n_layer") == 1
            and model_config.get("mlp") is False)


def _cv(x: torch.Tensor) -> float:
    """Coefficient of variation std / |mean| (population std); NaN if empty or mean 0."""
    if x.numel() == 0:
        return math.nan
    mean = x.double().mean()
    return float(x.double().std(unbiased=False) / mean.abs()) if mean != 0 else math.nan


def _mean(x: torch.Tensor) -> float:
    return float(x.double().mean()) if x.numel() else math.nan


@torch.no_grad()
def logit_balance(model, v: int) -> dict:
    """The balance of ``model``'s logit displacement at lengths 1 and 2 over v set complement tokens.

    ``model`` maps tokens (B, T) to logits (B, T, >= v) with tokens 0..v-1 real (PAD = v is
    never read: it is not an input and is left out of every mean). Runs the v (v - 1)
    ordered pairs (k, l) once: position 0 is the length-1 input (k), position 1 the
    length-2 input {k, l} with l last. Returns floats:

    ``d1_mean``, ``d1_cv``; ``d2_mean`` (both roles pooled), ``d2_cv``, ``d2_first_mean``,
    ``d2_last_mean``; ``ratio_21`` = d2_mean / d1_mean (1/2 when balanced); ``imbalance``
    (0 = balanced, module docstring); ``margin_1``, ``margin_2`` (the worst margin, lowest
    valid minus highest invalid logit, over the inputs of that length); ``sep_1``,
    ``sep_2`` (the fraction of those inputs separated). Needs v >= 3 (length 2 exists).
    """
    if isinstance(v, bool) or not isinstance(v, int) or v < 3:
        raise ValueError(f"v must be an integer >= 3 (lengths 1 and 2 exist), got {v!r}")
    k, last = torch.meshgrid(torch.arange(v), torch.arange(v), indexing="ij")
    keep = k != last
    k, last = k[keep], last[keep]  # (v (v - 1),) each
    tokens = torch.stack([k, last], 1)  # (N, 2)
    n = len(tokens)
    rows = torch.arange(n)
    z1 = last_logits(model, tokens[:, :1], torch.ones(n, dtype=torch.long))[:, :v]  # (N, v)
    z2 = last_logits(model, tokens, torch.full((n,), 2, dtype=torch.long))[:, :v]  # (N, v)
    first = torch.arange(n)[torch.cat([torch.tensor([True]), k[1:] != k[:-1]])]  # one row per k
    z1, t = z1[first], k[first]  # (v, v): length-1 logits of token t
    present1 = torch.zeros(v, v, dtype=torch.bool)
    present1[torch.arange(v), t] = True
    valid1_mean = z1.masked_fill(present1, 0.0).sum(1) / (v - 1)
    d1 = valid1_mean - z1[torch.arange(v), t]  # (v,)
    margin1 = z1.masked_fill(present1, math.inf).amin(1) - z1[torch.arange(v), t]
    present2 = torch.zeros(n, v, dtype=torch.bool)
    present2[rows, k] = True
    present2[rows, last] = True
    valid2_mean = z2.masked_fill(present2, 0.0).sum(1) / (v - 2)
    d2_first = valid2_mean - z2[rows, k]  # (N,)
    d2_last = valid2_mean - z2[rows, last]
    margin2 = (z2.masked_fill(present2, math.inf).amin(1)
               - z2.masked_fill(~present2, -math.inf).amax(1))
    d2 = torch.cat([d2_first, d2_last])
    d1_mean, d2_mean = _mean(d1), _mean(d2)
    return {
        "d1_mean": d1_mean, "d1_cv": _cv(d1),
        "d2_mean": d2_mean, "d2_cv": _cv(d2),
        "d2_first_mean": _mean(d2_first), "d2_last_mean": _mean(d2_last),
        "ratio_21": d2_mean / d1_mean if d1_mean else math.nan,
        "imbalance": _cv(torch.cat([d1, 2 * d2])),
        "margin_1": float(margin1.min()), "margin_2": float(margin2.min()),
        "sep_1": float((margin1 > 0).float().mean()), "sep_2": float((margin2 > 0).float().mean()),
    }


def format_balance(balance: dict) -> str:
    """One line of a :func:`logit_balance` result."""
    def f(x, spec=".3f"):
        return "nan" if x is None or math.isnan(x) else format(x, spec)

    b = balance
    return (f"imbalance {f(b['imbalance'])} (0 = balanced), d1 {f(b['d1_mean'])} "
            f"(cv {f(b['d1_cv'])}), d2 {f(b['d2_mean'])} (cv {f(b['d2_cv'])}; first "
            f"{f(b['d2_first_mean'])}, last {f(b['d2_last_mean'])}), d2/d1 {f(b['ratio_21'])} "
            f"(1/2 = balanced), worst margin len 1 {f(b['margin_1'])}, len 2 {f(b['margin_2'])}")
