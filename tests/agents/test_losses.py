"""agents.losses: legal (uniform over the legal set) and next-token cross-entropy."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch.nn import functional as F

from agents.losses import LOSSES, legal_loss, loss, next_token_loss


def _random_case(seed=0, B=3, T=5, V=7):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, V, generator=g) * 3
    legal = torch.rand(B, T, V, generator=g) < 0.4
    legal[0, 0] = False  # a position with no target
    legal[-1, -1] = True  # every token legal
    return logits, legal


def test_legal_loss_is_kl_plus_target_entropy():
    logits, legal = _random_case()
    valid = legal.any(-1)
    target = legal.float() / legal.sum(-1, keepdim=True).clamp(min=1)  # (B, T, V)
    logp = F.log_softmax(logits, -1)
    terms = []
    for b, t in valid.nonzero().tolist():
        p = target[b, t]
        kl = F.kl_div(logp[b, t], p, reduction="sum")  # KL(p || softmax)
        entropy = math.log(int(legal[b, t].sum()))  # H(uniform over n) = log n
        terms.append(kl + entropy)
    expected = torch.stack(terms).mean()
    torch.testing.assert_close(legal_loss(logits, legal), expected, rtol=1e-5, atol=1e-6)


def test_legal_loss_by_hand_and_minimum():
    # V = 3, one position, legal {0, 2}: loss = -(log p0 + log p2) / 2
    logits = torch.tensor([[[1.0, 2.0, 0.5]]])
    legal = torch.tensor([[[True, False, True]]])
    z = math.log(math.exp(1.0) + math.exp(2.0) + math.exp(0.5))
    expected = -((1.0 - z) + (0.5 - z)) / 2
    assert legal_loss(logits, legal).item() == pytest.approx(expected, rel=1e-6)
    # the minimum, log n, is reached by uniform logits on the legal set and -inf elsewhere
    best = torch.tensor([[[0.0, -float("inf"), 0.0]]])
    assert legal_loss(best, legal).item() == pytest.approx(math.log(2), rel=1e-6)


def test_legal_loss_ignores_positions_without_target():
    logits, legal = _random_case(1)
    base = legal_loss(logits, legal)
    changed = logits.clone()
    changed[0, 0] += 100  # position with an empty legal set
    torch.testing.assert_close(legal_loss(changed, legal), base)
    # mean over valid positions only: duplicating with an empty row keeps the value
    wider = torch.cat([logits, torch.randn(3, 2, 7)], 1)
    wider_legal = torch.cat([legal, torch.zeros(3, 2, 7, dtype=torch.bool)], 1)
    torch.testing.assert_close(legal_loss(wider, wider_legal), base)
    # nothing legal anywhere: zero, finite gradient
    x = logits.clone().requires_grad_(True)
    out = legal_loss(x, torch.zeros_like(legal))
    out.backward()
    assert out.item() == 0.0 and torch.all(x.grad == 0)


def test_legal_loss_gradient_is_softmax_minus_target():
    logits, legal = _random_case(2, B=1, T=1)
    legal[0, 0] = torch.tensor([True, False, False, True, True, False, False])
    x = logits.clone().requires_grad_(True)
    legal_loss(x, legal).backward()
    target = legal.float() / legal.sum(-1, keepdim=True)
    torch.testing.assert_close(x.grad, torch.softmax(logits, -1) - target)


def test_legal_loss_accepts_bf16_logits():
    logits, legal = _random_case(3)
    out = legal_loss(logits.bfloat16(), legal)
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(
        legal_loss(logits.bfloat16().float(), legal).item(), rel=1e-6
    )


def test_next_token_loss_matches_cross_entropy_and_ignores_minus_one():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 4, 5, generator=g)
    nxt = torch.tensor([[1, 4, -1, 0], [-1, -1, 2, 3]])
    keep = nxt != -1
    expected = F.cross_entropy(logits[keep], nxt[keep])
    torch.testing.assert_close(next_token_loss(logits, nxt), expected)
    x = logits.clone().requires_grad_(True)
    out = next_token_loss(x, torch.full((2, 4), -1))
    out.backward()
    assert out.item() == 0.0 and torch.all(x.grad == 0)


def test_next_token_loss_is_an_unbiased_sample_of_the_legal_loss():
    # the expectation of next-token CE over a uniformly sampled legal token is the legal loss
    logits, legal = _random_case(5, B=1, T=1, V=6)
    legal[0, 0] = torch.tensor([True, False, True, True, False, False])
    values = [next_token_loss(logits, torch.tensor([[v]])) for v in (0, 2, 3)]
    torch.testing.assert_close(torch.stack(values).mean(), legal_loss(logits, legal))


def test_loss_dispatch_and_errors():
    logits, legal = _random_case(6)
    nxt = torch.randint(-1, 7, (3, 5))
    batch = SimpleNamespace(legal=legal, next=nxt)
    assert LOSSES == ("legal", "next")
    torch.testing.assert_close(loss("legal", logits, batch), legal_loss(logits, legal))
    torch.testing.assert_close(loss("next", logits, batch), next_token_loss(logits, nxt))
    with pytest.raises(ValueError, match="unknown loss"):
        loss("mse", logits, batch)
    with pytest.raises(ValueError):
        legal_loss(logits, legal[:, :, :3])
    with pytest.raises(ValueError, match="bool"):
        legal_loss(logits, legal.float())
    with pytest.raises(ValueError):
        next_token_loss(logits, nxt[:, :2])
    with pytest.raises(ValueError, match="-1..6"):
        next_token_loss(logits, torch.full((3, 5), 7))
    with pytest.raises(ValueError, match="integer"):
        next_token_loss(logits, nxt.float())
