"""GPTConfig.head_dim: an attention head size (and value dimension n_head x head_dim)
independent of n_embd. The default (None) is today's model, shape for shape; with head_dim
set, the cached logits equal the full pass, TransformerLens round-trips it and Hugging Face
GPT-2 refuses it in one line."""

import itertools

import pytest
import torch

from agents import interop
from agents.config import POSITIONS, GPTConfig, preset
from agents.model import GPT, KVCache

SHAPES_BEFORE = {  # preset tiny's attention, as it was before head_dim existed
    "blocks.0.attn.c_attn.weight": (192, 64), "blocks.0.attn.c_attn.bias": (192,),
    "blocks.0.attn.c_proj.weight": (64, 64), "blocks.0.attn.c_proj.bias": (64,)}


def small(**kw) -> GPTConfig:
    base = dict(vocab_size=13, block_size=10, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
    return GPTConfig(**{**base, **kw})


def test_default_is_unchanged_and_head_dim_sets_the_attention_width():
    sd = GPT(preset("tiny")).state_dict()
    assert {k: tuple(sd[k].shape) for k in SHAPES_BEFORE} == SHAPES_BEFORE
    assert preset("tiny").head_dim is None and preset("tiny").head_size == 16
    # an explicit head_dim equal to the default builds the very same shapes
    same = GPT(preset("tiny", head_dim=16)).state_dict()
    assert {k: v.shape for k, v in same.items()} == {k: v.shape for k, v in sd.items()}
    m = GPT(small(n_head=3, head_dim=5)).state_dict()
    assert tuple(m["blocks.0.attn.c_attn.weight"].shape) == (45, 16)  # q, k, v: 3 x 5 each
    assert tuple(m["blocks.0.attn.c_proj.weight"].shape) == (16, 15)  # value dim 15 -> width
    # n_embd need not be divisible by n_head once head_dim is given
    assert GPT(small(n_embd=15, n_head=2, head_dim=4)).config.head_size == 4


def test_bad_head_dim_is_one_line():
    for kw, what in [(dict(head_dim=0), "head_dim must be a positive integer"),
                     (dict(head_dim=True), "head_dim must be a positive integer"),
                     (dict(head_dim=3, pos="rope"), "even head size"),
                     (dict(n_embd=15), "divisible by n_head")]:
        with pytest.raises(ValueError, match=what) as e:
            small(**kw)
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("norm, pos", list(itertools.product(("pre", "none"), POSITIONS)))
def test_kv_cache_logits_equal_the_full_pass_with_head_dim(norm, pos):
    torch.manual_seed(0)
    model = GPT(small(n_head=3, head_dim=6, norm=norm, pos=pos, dropout=0.1)).eval()
    x = torch.randint(12, (2, 10), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(x)
        cache = KVCache(model, 2)
        assert cache.k[0].shape == (2, 3, 10, 6)
        steps = torch.cat([model(x[:, :4], cache=cache)]
                          + [model(x[:, t:t + 1], cache=cache) for t in range(4, 10)], 1)
    torch.testing.assert_close(steps, full, rtol=0, atol=1e-5)


def test_return_attn_path_equals_the_fused_path_with_head_dim():
    torch.manual_seed(0)
    model = GPT(small(n_head=2, head_dim=3)).eval()
    x = torch.randint(12, (3, 10))
    with torch.no_grad():
        torch.testing.assert_close(model(x, return_attn=True)[0], model(x), rtol=0, atol=1e-5)


def test_transformerlens_round_trip_and_hf_refusal():
    pytest.importorskip("transformer_lens")
    torch.manual_seed(0)
    for kw in (dict(n_head=1, head_dim=5, mlp=False, norm="none", pos="none", bias=False),
               dict(n_head=2, head_dim=6, pos="rope"),
               dict(n_head=2, head_dim=8)):  # = n_embd // n_head, given explicitly
        model = GPT(small(**kw))
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, 0.3)
        model.eval()
        bridge = interop.to_hooked_transformer(model)
        assert bridge.cfg.d_head == kw["head_dim"]
        x = torch.randint(12, (3, 10), generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            assert float((bridge(x) - model(x)).abs().max()) <= 1e-4
        back = interop.from_hooked_transformer(bridge)
        assert back.config == model.config, kw
        with torch.no_grad():
            assert torch.equal(back(x), model(x))
        # a bare config and state dict (no lgagent metadata) give the same head size
        payload = interop.transformer_lens_payload(model)
        bare = interop.from_hooked_transformer((payload["state_dict"], payload["config"]))
        assert bare.config.head_size == kw["head_dim"]
    with pytest.raises(ValueError, match="head_dim 6 x n_head 2 != n_embd 16") as e:
        interop.hf_config(small(head_dim=6))
    assert "\n" not in str(e.value)
    interop.hf_config(small(head_dim=8))  # the default head size, given explicitly: fine
