"""agents.construct: the hand-built set complement model is exhaustively correct, with margin c/s."""

import math

import pytest
import torch

from agents.construct import all_inputs, exhaustive_check, last_logits, set_complement_model, simplex


def test_simplex_rows_are_a_centred_regular_simplex():
    P = simplex(6)
    assert torch.allclose(P @ P.T, torch.eye(6, dtype=torch.float64) - 1 / 6, atol=1e-12)


def test_all_inputs_counts_every_set_and_last_token():
    v = 5
    tokens, lengths, present = all_inputs(v)
    assert len(tokens) == sum(math.comb(v, s) * s for s in range(1, v))
    for t, n, p in zip(tokens, lengths, present):
        seq = t[:n].tolist()
        assert len(set(seq)) == n and set(seq) == set(torch.nonzero(p).flatten().tolist())
        assert (t[n:] == v).all()  # PAD after the set
    assert len({(tuple(p.tolist()), int(t[n - 1])) for t, n, p in zip(tokens, lengths, present)}) \
        == len(tokens)


@pytest.mark.parametrize("v", [3, 4, 6, 8])
@pytest.mark.parametrize("width", ["default", "2v-2", "v", "v-1"])
def test_construction_separates_every_input_with_margin_c_over_s(v, width):
    c = 3.0
    n = {"default": None, "2v-2": 2 * v - 2, "v": v, "v-1": v - 1}[width]
    model = set_complement_model(v, n_embd=n, c=c)
    cfg = model.config
    assert (cfg.vocab_size, cfg.block_size, cfg.n_layer, cfg.n_head, cfg.mlp, cfg.norm, cfg.pos,
            cfg.bias, cfg.tie_weights) == (v + 1, v - 1, 1, 1, False, "none", "none", False, False)
    res = exhaustive_check(model, v)
    assert res["separated"]
    beta = 0.0 if (n or 2 * v - 1) >= 2 * v - 2 else c
    for e in res["per_length"]:
        s = e["length"]
        want = c + beta if s == 1 else c / s  # beta = 0: exactly c/s at every length
        assert e["sep_frac"] == 1.0
        assert e["margin_min"] == pytest.approx(want, abs=1e-5)
        assert e["margin_max"] == pytest.approx(want, abs=1e-5)


def test_logits_depend_on_the_set_and_last_token_only_and_pad_is_never_preferred():
    v = 6
    model = set_complement_model(v, c=2.0, pad_logit=-30.0)
    t1, n1, p1 = all_inputs(v, order="sorted")
    t2, n2, p2 = all_inputs(v, order="random", seed=3)
    assert torch.equal(n1, n2) and torch.equal(p1, p2)
    assert not torch.equal(t1, t2)  # other orders of the earlier tokens
    z1, z2 = last_logits(model, t1, n1), last_logits(model, t2, n2)
    assert torch.allclose(z1, z2, atol=1e-5)
    assert torch.allclose(z1[:, v], torch.full((len(z1),), -30.0), atol=1e-4)  # PAD's own direction
    # no spare dimension (n_embd = 2v - 2): PAD's logit is the real logits' mean, below every valid one
    z = last_logits(set_complement_model(v, n_embd=2 * v - 2, c=2.0), t1, n1)
    valid_min = z[:, :v].masked_fill(p1, math.inf).amin(1)
    assert (z[:, v] < valid_min).all()


def test_construction_refuses_widths_below_the_bounds():
    with pytest.raises(ValueError, match="v - 1"):
        set_complement_model(6, n_embd=4)
    with pytest.raises(ValueError, match="2v - 2"):
        set_complement_model(6, n_embd=9, beta=0)
    with pytest.raises(ValueError, match="c must"):
        set_complement_model(6, c=0)
