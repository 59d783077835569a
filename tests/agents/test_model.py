"""agents.model: shapes, causality, order invariance, norm placement, presets, init, optimizer,
attention probabilities (return_attn)."""

import dataclasses
import math

import pytest
import torch

from agents import GPT, PRESETS, GPTConfig, param_groups, preset
from agents.config import POSITIONS
from agents.losses import legal_loss, next_token_loss


def small(**kw) -> GPTConfig:
    base = dict(vocab_size=13, block_size=10, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
    return GPTConfig(**{**base, **kw})


ALL_SWITCHES = [
    dict(norm=n, pos=p, mlp=m)
    for n in ("pre", "post", "none")
    for p in POSITIONS  # learned, none, rope, alibi, learned-random, rope-random
    for m in (True, False)
]


@pytest.mark.parametrize(
    "kw", ALL_SWITCHES, ids=lambda kw: f"{kw['norm']}-{kw['pos']}-mlp{kw['mlp']}"
)
def test_shapes_and_causality_for_every_switch(kw):
    torch.manual_seed(0)
    model = GPT(small(**kw)).eval()
    x = torch.randint(0, 13, (3, 10))
    logits = model(x)
    assert logits.shape == (3, 10, 13) and logits.dtype == torch.float32
    # changing tokens after position 5 leaves logits at positions 0..5 unchanged
    y = x.clone()
    y[:, 6:] = (y[:, 6:] + 1) % 13
    other = model(y)
    torch.testing.assert_close(logits[:, :6], other[:, :6], rtol=0, atol=1e-6)
    assert not torch.allclose(logits[:, 6:], other[:, 6:])
    # shorter inputs work and equal the prefix of a longer one
    torch.testing.assert_close(model(x[:, :4]), logits[:, :4], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kw", ALL_SWITCHES, ids=lambda kw: f"{kw['norm']}-{kw['pos']}-mlp{kw['mlp']}"
)
def test_return_attn_gives_the_default_logits_and_causal_probabilities(kw):
    torch.manual_seed(10)
    model = _sharpen(GPT(small(**kw)).eval(), 5.0)  # attention far from uniform
    x = torch.randint(0, 13, (3, 10))
    with torch.no_grad():
        logits = model(x)
        got, attn = model(x, return_attn=True)
    torch.testing.assert_close(got, logits, rtol=1e-4, atol=1e-4)
    assert isinstance(attn, list) and len(attn) == 2
    upper = torch.ones(10, 10, dtype=torch.bool).triu(1)
    for att in attn:
        assert att.shape == (3, 2, 10, 10) and att.dtype == torch.float32
        torch.testing.assert_close(att.sum(-1), torch.ones(3, 2, 10))
        assert (att[..., upper] == 0).all() and (att[..., ~upper] > 0).all()
        assert att[..., ~upper].std() > 0.05  # not uniform: the comparison above means something
    # with targets: (logits, loss, attn), the loss that of the default path
    nxt = torch.randint(-1, 13, (3, 10))
    with torch.no_grad():
        _, loss = model(x, nxt)
        _, loss_attn, attn2 = model(x, nxt, return_attn=True)
    torch.testing.assert_close(loss_attn, loss, rtol=1e-4, atol=1e-5)
    assert len(attn2) == 2


@pytest.mark.parametrize("norm", ["pre", "post", "none"])
@pytest.mark.parametrize("mlp", [True, False])
def test_equal_keys_without_positions_attend_uniformly(norm, mlp):
    # one token repeated and no positions: every key is the same, so query t spreads
    # 1 / (t + 1) over keys 0..t, in every layer and head
    torch.manual_seed(11)
    model = _sharpen(GPT(small(norm=norm, pos="none", mlp=mlp)).eval(), 5.0)
    x = torch.full((2, 10), 4)
    with torch.no_grad():
        _, attn = model(x, return_attn=True)
    want = torch.ones(10, 10).tril() / torch.arange(1, 11)[:, None]  # (T, T)
    for att in attn:
        torch.testing.assert_close(att, want.expand(2, 2, 10, 10), rtol=1e-5, atol=1e-6)


def test_return_attn_is_the_closed_form_attention_of_the_1l_model():
    # the paper's a(t_s, t_i) = softmax_i(E[t_s] W_Q . E[t_i] W_K / sqrt(d)) is the last row
    torch.manual_seed(9)
    model = _sharpen(GPT(preset("setcomp-1l", vocab_size=9, block_size=8)), 10.0).eval()
    E = model.wte.weight
    W = model.blocks[0].attn.c_attn.weight.T
    C = E.shape[1]
    t = torch.tensor([4, 0, 7, 2, 5])
    a = torch.softmax((E[t[-1]] @ W[:, :C]) @ (E[t] @ W[:, C : 2 * C]).T / math.sqrt(C), dim=0)
    with torch.no_grad():
        _, attn = model(t[None], return_attn=True)
        torch.testing.assert_close(attn[0][0, 0, -1], a, rtol=1e-4, atol=1e-5)


def test_return_attn_in_train_mode_drops_out_but_returns_the_probabilities():
    torch.manual_seed(12)
    model = GPT(small(dropout=0.0, attn_dropout=0.5)).train()
    x = torch.randint(0, 13, (2, 10))
    (a, attn_a), (b, _) = model(x, return_attn=True), model(x, return_attn=True)
    assert not torch.allclose(a, b)  # attention dropout acts on the explicit path too
    for att in attn_a:  # probabilities before dropout: still distributions
        torch.testing.assert_close(att.sum(-1), torch.ones(2, 2, 10))
    a.sum().backward()  # and it trains (the explicit path is differentiable)
    assert model.blocks[0].attn.c_attn.weight.grad is not None


def test_return_attn_under_bfloat16_autocast():
    torch.manual_seed(13)
    model = GPT(small()).eval()
    x = torch.randint(0, 13, (2, 10))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
        got, attn = model(x, return_attn=True)
    torch.testing.assert_close(got.float(), logits.float(), rtol=0.05, atol=0.05)
    assert all(att.dtype == torch.float32 for att in attn)
    torch.testing.assert_close(attn[0].sum(-1), torch.ones(2, 2, 10))


def _sharpen(model, factor=30.0):
    # large weights make attention far from uniform, so order effects would show clearly
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(factor)
    return model


def test_one_attention_layer_without_positions_ignores_order():
    torch.manual_seed(1)
    model = _sharpen(GPT(preset("setcomp-1l", vocab_size=11, block_size=10)).eval())
    x = torch.tensor([[3, 7, 1, 9, 0, 4, 2, 5]])
    last = model(x)[0, -1]
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(7, generator=g)
        y = torch.cat([x[:, :7][:, perm], x[:, 7:]], dim=1)
        torch.testing.assert_close(model(y)[0, -1], last, rtol=1e-4, atol=1e-4)
    # with learned positions the order matters (the check above could fail)
    pos_model = _sharpen(
        GPT(preset("setcomp-1l", vocab_size=11, block_size=10, pos="learned")).eval()
    )
    y = torch.cat([x[:, :7].flip(1), x[:, 7:]], dim=1)
    assert (pos_model(y)[0, -1] - pos_model(x)[0, -1]).abs().max() > 1e-2


def _block_outputs(model, x):
    outs = []
    hooks = [b.register_forward_hook(lambda m, i, o: outs.append(o)) for b in model.blocks]
    model(x)
    for h in hooks:
        h.remove()
    return outs


def test_post_norm_normalises_every_block_output_and_pre_norm_does_not():
    torch.manual_seed(2)
    x = torch.randint(0, 13, (2, 10))
    post = GPT(small(norm="post", n_layer=3)).eval()
    assert isinstance(post.ln_f, torch.nn.Identity)  # GPT-1: no final LayerNorm
    for out in _block_outputs(post, x):  # (B, T, C)
        torch.testing.assert_close(out.mean(-1), torch.zeros(2, 10), atol=1e-5, rtol=0)
        torch.testing.assert_close(
            out.var(-1, unbiased=False), torch.ones(2, 10), atol=1e-3, rtol=0
        )
    pre = GPT(small(norm="pre", n_layer=3)).eval()
    assert isinstance(pre.ln_f, torch.nn.LayerNorm)
    for out in _block_outputs(pre, x):  # the residual stream is not normalised (std ~ 0.02)
        assert out.var(-1, unbiased=False).max() < 0.1
    none = GPT(small(norm="none"))
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in none.modules())


def test_post_norm_ln_follows_the_residual_add():
    # one post-norm block equals LN(x + attn(x)) then LN(. + mlp(.)), computed by hand
    torch.manual_seed(3)
    model = GPT(small(norm="post", n_layer=1)).eval()
    b = model.blocks[0]
    x = torch.randn(2, 10, 16)
    h = b.ln_1(x + b.attn(x))
    torch.testing.assert_close(b(x), b.ln_2(h + b.mlp(h)))
    pre = GPT(small(norm="pre", n_layer=1)).eval().blocks[0]
    h = x + pre.attn(pre.ln_1(x))
    torch.testing.assert_close(pre(x), h + pre.mlp(pre.ln_2(h)))


def test_attention_only_blocks_have_no_mlp():
    model = GPT(small(mlp=False))
    assert all(b.mlp is None for b in model.blocks)
    assert not any(isinstance(m, torch.nn.GELU) for m in model.modules())


def test_presets_build_with_documented_sizes():
    big = GPT(preset("othello-gpt"))
    c = big.config
    assert (c.n_layer, c.n_head, c.n_embd, c.mlp_ratio * c.n_embd) == (8, 8, 512, 2048)
    assert (c.vocab_size, c.block_size, c.norm, c.pos, c.dropout, c.mlp) == (
        61,
        59,
        "pre",
        "learned",
        0.1,
        True,
    )
    # 8 * (4*512^2 + 4*512 attn + 2*512*2048 + 2048 + 512 mlp + 4*512 LN) + embeddings + head
    per_layer = 4 * 512 * 512 + 4 * 512 + 2 * 512 * 2048 + 2048 + 512 + 4 * 512
    expected = 8 * per_layer + 61 * 512 + 59 * 512 + 2 * 512 + 512 * 61
    assert big.num_params() == expected and 25e6 < expected < 25.5e6
    assert isinstance(big.blocks[0].mlp.gelu, torch.nn.GELU)
    tiny = preset("tiny")
    assert (tiny.vocab_size, tiny.block_size, tiny.n_layer, tiny.n_head, tiny.n_embd) == (
        61,
        59,
        2,
        4,
        64,
    )
    one = preset("setcomp-1l", vocab_size=33, block_size=31)
    assert (one.n_layer, one.n_head, one.mlp, one.norm, one.pos) == (1, 1, False, "none", "none")
    assert (one.vocab_size, one.block_size) == (33, 31)
    assert set(PRESETS) == {"othello-gpt", "tiny", "setcomp-1l"}
    # presets are not mutated by overrides
    assert PRESETS["setcomp-1l"]["vocab_size"] == 17


def test_bad_config_and_preset_raise_value_error():
    with pytest.raises(ValueError, match="unknown model preset"):
        preset("gpt-5")
    with pytest.raises(ValueError, match="unknown GPTConfig field"):
        preset("tiny", n_layers=3)
    for bad in (
        dict(norm="middle"),
        dict(pos="fire"),
        dict(pos="learned", pos_range=20),  # pos_range is the randomized schemes' only
        dict(pos="learned-random", pos_range=5),  # shorter than block_size 10
        dict(pos="rope-random", n_embd=6, n_head=2),
        dict(n_embd=15, n_head=2),
        dict(n_layer=0),
        dict(dropout=1.0),
        dict(attn_dropout=-0.1),
        dict(mlp="yes"),
        dict(vocab_size=2.5),
        dict(pos="rope", n_embd=6, n_head=2),
    ):
        with pytest.raises(ValueError):
            small(**bad)
    with pytest.raises(ValueError, match="exceeds block_size"):
        GPT(small())(torch.zeros(1, 11, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        GPT(small())(torch.zeros(11, dtype=torch.long))
    with pytest.raises(ValueError):
        GPT(dataclasses.asdict(small()))


def test_config_round_trips_through_asdict():
    cfg = preset("tiny", norm="post", attn_dropout=0.2)
    assert GPTConfig(**dataclasses.asdict(cfg)) == cfg
    assert cfg.drop("attn") == 0.2 and cfg.drop("resid") == 0.1 and cfg.drop("embd") == 0.1


def test_dropout_is_off_in_eval_mode_and_on_in_train_mode():
    torch.manual_seed(4)
    model = GPT(small(dropout=0.5))
    x = torch.randint(0, 13, (2, 10))
    model.eval()
    torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)
    model.train()
    assert not torch.allclose(model(x), model(x))
    # a separate rate: only attention dropout on
    only_attn = GPT(small(dropout=0.0, attn_dropout=0.5)).train()
    assert not torch.allclose(only_attn(x), only_attn(x))
    assert only_attn.drop.p == 0.0 and only_attn.blocks[0].attn.resid_dropout.p == 0.0


def test_nanogpt_init():
    torch.manual_seed(5)
    model = GPT(small(n_layer=4, n_embd=64, n_head=4, vocab_size=200, block_size=64))
    assert abs(model.wte.weight.std().item() - 0.02) < 0.002
    assert abs(model.blocks[0].attn.c_attn.weight.std().item() - 0.02) < 0.002
    scaled = 0.02 / math.sqrt(2 * 4)  # 2 residual branches per layer
    assert abs(model.blocks[0].attn.c_proj.weight.std().item() - scaled) < 0.001
    assert abs(model.blocks[0].mlp.c_proj.weight.std().item() - scaled) < 0.001
    assert torch.all(model.blocks[0].attn.c_attn.bias == 0)
    attn_only = GPT(small(n_layer=4, n_embd=64, n_head=4, mlp=False))
    assert abs(attn_only.blocks[0].attn.c_proj.weight.std().item() - 0.02 / 2) < 0.001


def test_untied_by_default_and_tied_on_request():
    model = GPT(small())
    assert model.lm_head.weight is not model.wte.weight
    tied = GPT(small(tie_weights=True))
    assert tied.lm_head.weight is tied.wte.weight
    assert tied.num_params() == model.num_params() - 13 * 16


def test_targets_return_logits_and_loss():
    torch.manual_seed(6)
    model = GPT(small()).eval()
    x = torch.randint(0, 13, (2, 10))
    nxt = torch.randint(-1, 13, (2, 10))
    logits, loss = model(x, nxt)
    torch.testing.assert_close(loss, next_token_loss(logits, nxt))
    legal = torch.rand(2, 10, 13) < 0.3
    logits, loss = model(x, legal)
    torch.testing.assert_close(loss, legal_loss(logits, legal))


def test_param_groups_decay_linear_weights_only():
    model = GPT(small())
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    decay_ids = {id(p) for p in decay["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in decay_ids}
    assert "lm_head.weight" in names and "blocks.0.attn.c_attn.weight" in names
    assert "blocks.1.mlp.c_fc.weight" in names
    assert "wte.weight" not in names and "wpe.weight" not in names
    assert not any(n.endswith("bias") or ".ln_" in n for n in names)
    assert all(p.dim() == 2 for p in decay["params"])
    total = len(decay["params"]) + len(no_decay["params"])
    assert total == len(list(model.parameters()))
    with pytest.raises(ValueError):
        param_groups(model, -1.0)
    # tied: the shared matrix appears once, decayed
    tied = GPT(small(tie_weights=True))
    d, nd = param_groups(tied, 0.1)
    assert sum(p is tied.wte.weight for p in d["params"]) == 1
    assert not any(p is tied.wte.weight for p in nd["params"])


def test_rope_scores_depend_on_the_offset_only():
    # the same query and key vectors at every position: rotated q.k depends on i - j only
    from agents.model import apply_rope, rope_cos_sin

    torch.manual_seed(7)
    q = torch.randn(1, 1, 1, 8).expand(1, 1, 6, 8)
    k = torch.randn(1, 1, 1, 8).expand(1, 1, 6, 8)
    cos, sin = rope_cos_sin(6, 8, 10000.0, "cpu")
    scores = apply_rope(q, cos, sin)[0, 0] @ apply_rope(k, cos, sin)[0, 0].T  # (6, 6)
    torch.testing.assert_close(scores[3, 1], scores[4, 2])
    torch.testing.assert_close(scores[5, 5], scores[0, 0])
    assert not torch.allclose(scores[2, 0], scores[2, 2])
    # rotation preserves norms
    torch.testing.assert_close(apply_rope(q, cos, sin).norm(dim=-1), q.norm(dim=-1))


def test_backward_reaches_every_parameter():
    torch.manual_seed(8)
    model = GPT(small(norm="post"))
    x = torch.randint(0, 13, (2, 10))
    _, loss = model(x, torch.randint(0, 13, (2, 10)))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_setcomp_1l_is_the_papers_closed_form():
    # logits(t) = B[t_s] + sum_i a(t_s, t_i) D[t_i], B = E U, D = E W_V W_O U,
    # a = softmax_i(E[t_s] W_Q . E[t_i] W_K / sqrt(d)) over i <= s
    torch.manual_seed(9)
    model = _sharpen(GPT(preset("setcomp-1l", vocab_size=9, block_size=8)), 10.0).eval()
    assert all(not n.endswith("bias") for n, _ in model.named_parameters())
    E, U = model.wte.weight, model.lm_head.weight.T  # (V, C), (C, V)
    W = model.blocks[0].attn.c_attn.weight.T  # (C, 3C): x @ W = [q | k | v]
    C = E.shape[1]
    W_q, W_k, W_v = W[:, :C], W[:, C : 2 * C], W[:, 2 * C :]
    W_o = model.blocks[0].attn.c_proj.weight.T  # (C, C)
    t = torch.tensor([4, 0, 7, 2, 5])
    s = t[-1]
    a = torch.softmax((E[s] @ W_q) @ (E[t] @ W_k).T / math.sqrt(C), dim=0)  # (len,)
    B, D = E @ U, E @ W_v @ W_o @ U  # (V, V)
    expected = B[s] + a @ D[t]
    with torch.no_grad():
        torch.testing.assert_close(model(t[None])[0, -1], expected, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------------------------
# ALiBi and the randomized position schemes


def test_alibi_slopes_are_the_papers():
    from agents.model import alibi_slopes

    # H = 8: 2^-1 .. 2^-8 (Press et al. 2022); H = 6 (not a power of two): those of 4 heads,
    # then every other one of 8 heads' (the paper's interpolation)
    assert alibi_slopes(8).tolist() == [2.0 ** -(h + 1) for h in range(8)]
    assert alibi_slopes(1).tolist() == [2.0 ** -8]
    assert alibi_slopes(6).tolist() == [2.0 ** -2, 2.0 ** -4, 2.0 ** -6, 2.0 ** -8,
                                        2.0 ** -1, 2.0 ** -3]


def _reference_attention_logits(model, tokens, bias_of):
    """The forward pass in plain Python loops over heads, queries and keys: score(h, i, j) =
    q_i . k_j / sqrt(D) + bias_of(h, i, j) over keys j <= i (norm none, no MLP, one layer)."""
    cfg = model.config
    attn = model.blocks[0].attn
    H, D = cfg.n_head, cfg.n_embd // cfg.n_head
    x = model.wte(tokens)  # (B, T, C)
    q, k, v = attn.c_attn(x).split(cfg.n_embd, dim=2)
    B, T, _ = x.shape
    y = torch.zeros(B, T, cfg.n_embd)
    for b in range(B):
        for h in range(H):
            s = slice(h * D, (h + 1) * D)
            for i in range(T):
                scores = [float(q[b, i, s] @ k[b, j, s]) / math.sqrt(D) + bias_of(h, i, j)
                          for j in range(i + 1)]  # keys j > i are masked out
                m = max(scores)
                w = [math.exp(sc - m) for sc in scores]
                y[b, i, s] = sum(wj / sum(w) * v[b, j, s] for j, wj in enumerate(w))
    x = x + attn.c_proj(y)
    return model.lm_head(x)


@pytest.mark.parametrize("n_head", [2, 3, 4])
def test_alibi_logits_equal_a_plain_python_attention_bias_reference(n_head):
    torch.manual_seed(3)
    model = _sharpen(GPT(small(pos="alibi", n_layer=1, n_head=n_head, n_embd=12 * n_head,
                               norm="none", mlp=False)).eval(), 3.0)
    slopes = [2.0 ** (-8.0 * (h + 1) / n_head) for h in range(n_head)] if n_head != 3 else \
        [2.0 ** -4, 2.0 ** -8, 2.0 ** -2]  # 3 heads: 2 heads' slopes, then 4 heads' first
    x = torch.randint(0, 13, (2, 7))
    with torch.no_grad():
        model.lm_head.weight.mul_(10.0)  # logits of order 1: the bias's effect well above atol
        want = _reference_attention_logits(model, x, lambda h, i, j: -slopes[h] * (i - j))
        got = model(x)
        got_attn, att = model(x, return_attn=True)
        plain = _reference_attention_logits(model, x, lambda h, i, j: 0.0)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    torch.testing.assert_close(got_attn, want, rtol=0, atol=1e-5)
    assert (got - plain).abs().max() > 1e-3  # the bias matters here
    upper = torch.ones(7, 7, dtype=torch.bool).triu(1)
    assert (att[0][..., upper] == 0).all()  # causal: no weight on later keys


def test_alibi_bias_in_a_hand_computed_case():
    # zero queries and keys: the scores are the bias alone, so query i's attention over keys
    # 0..i is softmax(-m (i - j)); one head: m = 2^-8
    torch.manual_seed(0)
    model = GPT(small(pos="alibi", n_layer=1, n_head=1, norm="none", mlp=False)).eval()
    with torch.no_grad():
        model.blocks[0].attn.c_attn.weight[: 2 * 16].zero_()  # q = k = 0
        _, att = model(torch.zeros(1, 3, dtype=torch.long), return_attn=True)
    m = 2.0 ** -8
    e = [math.exp(-m * d) for d in (2, 1, 0)]  # query 2 over keys 0, 1, 2
    want = torch.tensor([[1, 0, 0], [math.exp(-m) / (math.exp(-m) + 1), 1 / (math.exp(-m) + 1), 0],
                         [w / sum(e) for w in e]])
    torch.testing.assert_close(att[0][0, 0], want.float(), rtol=0, atol=1e-6)


def test_alibi_has_no_position_weights_and_no_saved_buffer():
    model = GPT(small(pos="alibi"))
    assert model.wpe is None and "alibi_slopes" not in model.state_dict()
    assert GPT(small(pos="none")).state_dict().keys() == model.state_dict().keys()


@pytest.mark.parametrize("scheme", ["learned-random", "rope-random", "alibi", "learned", "rope"])
def test_given_positions_replace_0_to_T_minus_1(scheme):
    torch.manual_seed(4)
    model = _sharpen(GPT(small(pos=scheme, **({"pos_range": 30} if "random" in scheme else {})))
                     .eval(), 5.0)  # attention far from uniform: positions matter
    x = torch.randint(0, 13, (2, 6))
    with torch.no_grad():
        default = model(x)
        same = model(x, pos=torch.arange(6).expand(2, 6))
        shifted = model(x, pos=torch.arange(6).expand(2, 6) + 3)
        spread = model(x, pos=torch.tensor([[0, 2, 5, 7, 8, 9], [1, 3, 4, 6, 8, 9]]))
    torch.testing.assert_close(same, default, rtol=0, atol=1e-5)
    if scheme in ("rope", "rope-random", "alibi"):  # relative: a common shift changes nothing
        torch.testing.assert_close(shifted, default, rtol=0, atol=1e-4)
    else:
        assert (shifted - default).abs().max() > 1e-4
    assert (spread - default).abs().max() > 1e-4  # other gaps, other logits
    with pytest.raises(ValueError, match="pos must have"):
        model(x, pos=torch.arange(6))


def test_learned_random_table_has_pos_range_rows_and_the_config_records_it():
    cfg = small(pos="learned-random")
    assert cfg.pos_range == cfg.block_size == 10  # default: the block size
    assert GPT(small(pos="learned-random", pos_range=40)).wpe.weight.shape == (40, 16)
    assert GPTConfig(**dataclasses.asdict(small(pos="rope-random", pos_range=25))).pos_range == 25
