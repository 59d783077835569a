"""TransformerLens and safetensors interop (agents.interop, lgagent export/import).

The tests that need transformer_lens or safetensors skip without the ``interop`` extra;
nothing here downloads. Importing transformer_lens takes seconds: every test shares one
import and tiny random models.
"""

from __future__ import annotations

import itertools
import json
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from agents import interop
from agents.config import GPTConfig
from agents.model import GPT
from train.cli.main import main

V, T = 13, 11  # a set complement over 12 tokens: vocabulary 13 (PAD = 12), context 11


def random_gpt(seed=0, std=0.3, **kw) -> GPT:
    """A tiny GPT with every parameter random (biases and LayerNorms too)."""
    torch.manual_seed(seed)
    cfg = GPTConfig(**{"vocab_size": V, "block_size": T, "n_layer": 2, "n_head": 4, "n_embd": 16,
                       "dropout": 0.0, **kw})
    model = GPT(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, std)
    return model.eval()


def tokens(n=3, seed=1, vocab=V, length=T):
    return torch.randint(vocab, (n, length), generator=torch.Generator().manual_seed(seed))


def same_weights(a: GPT, b: GPT) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def close(a, b, tol=1e-5) -> bool:
    """Equal logits in float32: |a - b| <= tol x max(1, |a|max)."""
    return float((a - b).abs().max()) <= tol * max(1.0, float(a.abs().max()))


def one_line_error(r) -> str:
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), r.stderr
    assert "Traceback" not in r.output
    return lines[0]


# ---------------------------------------------------------------------------------------------
# lgagent -> TransformerLens -> lgagent


STRUCTURE = list(itertools.product(("pre", "none"), ("learned", "none", "rope"), (True, False)))


def test_round_trip_every_supported_switch_combination():
    """norm x pos x mlp x bias x tie_weights: 48 models. bias and tie_weights leave the
    TransformerLens config unchanged, so one bridge per structure is reloaded with each
    variant's weights (booting a bridge is the slow part)."""
    pytest.importorskip("transformer_lens")
    for i, (norm, pos, mlp) in enumerate(STRUCTURE):
        bridge = None
        for j, (bias, tie) in enumerate(itertools.product((True, False), (False, True))):
            case = (norm, pos, mlp, bias, tie)
            model = random_gpt(4 * i + j, norm=norm, pos=pos, mlp=mlp, bias=bias, tie_weights=tie)
            if bridge is None:
                bridge = interop.to_hooked_transformer(model)
            else:  # what to_hooked_transformer does, minus the boot
                bridge.load_state_dict(interop.tl_state_dict(model))
                bridge.cfg.lgagent = interop.meta_of(model.config)
            x = tokens(seed=i)
            with torch.no_grad():
                assert close(model(x), bridge(x)), case
            back = interop.from_hooked_transformer(bridge)
            assert back.config == model.config, case
            assert same_weights(back, model), case
            with torch.no_grad():
                assert torch.equal(back(x), model(x)), case


def test_round_trip_restores_flags_the_weights_cannot_tell():
    """A fresh model with bias=True has all-zero biases: the export's metadata keeps the flag
    (and the dropout); a bare state dict and config give the weights' reading."""
    pytest.importorskip("transformer_lens")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=1, n_head=2, n_embd=8,
                          dropout=0.2, rope_base=500.0, pos="rope")).eval()
    bridge = interop.to_hooked_transformer(model)
    assert interop.from_hooked_transformer(bridge).config == model.config
    payload = interop.transformer_lens_payload(model)
    bare = interop.from_hooked_transformer((payload["state_dict"], payload["config"]))
    assert bare.config.bias is False and bare.config.dropout == 0.0
    x = tokens()
    with torch.no_grad():
        assert close(bare(x), model(x))


def test_rotary_convention_is_checked_numerically_on_long_sequences():
    """Rotary angles grow with position: a different pairing or frequency would show at
    position 63 if not at 3."""
    pytest.importorskip("transformer_lens")
    model = random_gpt(3, pos="rope", block_size=64, norm="pre", std=0.5)
    bridge = interop.to_hooked_transformer(model)
    x = tokens(2, length=64)
    with torch.no_grad():
        assert close(model(x), bridge(x))
        swapped = bridge(x.flip(1))  # not a tautology: order matters to a rotary model
        assert not close(model(x), swapped)


# ---------------------------------------------------------------------------------------------
# TransformerLens -> lgagent


def native(seed=0, b_u=True, **kw):
    """A TransformerLens native model (TransformerBridge) from its own config, every parameter
    random (with ``b_u`` the unembedding bias, a buffer, too)."""
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge.sources.native import boot

    cfg = TransformerBridgeConfig(**{"d_model": 16, "d_head": 4, "n_heads": 4, "n_layers": 2,
                                     "n_ctx": T, "d_vocab": V, "act_fn": "gelu",
                                     "device": "cpu", "seed": seed, **kw})
    bridge = boot(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in bridge.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    if b_u:
        bridge.load_state_dict({**bridge.state_dict(),
                                "unembed.bias": torch.randn(V, generator=g)})
    return bridge.eval()


@pytest.mark.parametrize("kw", [
    dict(normalization_type="LN"),
    dict(normalization_type="LNPre"),
    dict(normalization_type=None),
    dict(normalization_type="LN", positional_embedding_type="rotary"),
    dict(normalization_type="LN", attn_only=True),
    dict(normalization_type="LN", d_mlp=32),
])
def test_a_transformerlens_model_from_its_own_config_converts_with_equal_logits(kw):
    pytest.importorskip("transformer_lens")
    # without a final LayerNorm nothing absorbs an unembedding bias (refused below)
    bridge = native(1, b_u=kw["normalization_type"] is not None, **kw)
    assert bool(bridge.state_dict()["unembed.bias"].any()) is (kw["normalization_type"] is not None)
    model = interop.from_hooked_transformer(bridge)
    assert model.config.norm == ("none" if kw["normalization_type"] is None else "pre")
    assert model.config.pos == ("rope" if "positional_embedding_type" in kw else "learned")
    assert model.config.mlp is not kw.get("attn_only", False)
    x = tokens(4, seed=7)
    with torch.no_grad():
        assert close(bridge(x), model(x))


@pytest.mark.parametrize("norm", ["LN", "LNPre"])
def test_a_hookedtransformer_state_dict_converts(norm):
    """TransformerLens < 4 saved ``HookedTransformer.state_dict()`` with per-head W_Q keys and a
    HookedTransformerConfig; TransformerLens's own converter reads them. LNPre with a nonzero
    b_U is the layout of the TransformerLens demo's synthetic_model.pth (folded LayerNorms)."""
    pytest.importorskip("transformer_lens")
    import einops

    bridge = native(2, normalization_type=norm)
    sd, H = bridge.state_dict(), 4
    legacy = {"embed.W_E": sd["embed.weight"], "pos_embed.W_pos": sd["pos_embed.weight"],
              "unembed.W_U": sd["unembed.weight"].T, "unembed.b_U": sd["unembed.bias"]}
    if norm == "LN":
        legacy["ln_final.w"], legacy["ln_final.b"] = sd["ln_final.weight"], sd["ln_final.bias"]
    for i in range(2):
        p = f"blocks.{i}."
        for n in "QKV":
            legacy[f"{p}attn.W_{n}"] = einops.rearrange(
                sd[f"{p}attn.{n.lower()}.weight"], "(h d) m -> h m d", h=H)
            legacy[f"{p}attn.b_{n}"] = einops.rearrange(sd[f"{p}attn.{n.lower()}.bias"],
                                                        "(h d) -> h d", h=H)
        legacy[f"{p}attn.W_O"] = einops.rearrange(sd[f"{p}attn.o.weight"], "m (h d) -> h d m", h=H)
        legacy[f"{p}attn.b_O"] = sd[f"{p}attn.o.bias"]
        legacy[f"{p}attn.mask"] = torch.ones(T, T).tril().bool()  # a buffer, dropped
        legacy[f"{p}mlp.W_in"], legacy[f"{p}mlp.b_in"] = sd[f"{p}mlp.in.weight"].T, sd[
            f"{p}mlp.in.bias"]
        legacy[f"{p}mlp.W_out"], legacy[f"{p}mlp.b_out"] = sd[f"{p}mlp.out.weight"].T, sd[
            f"{p}mlp.out.bias"]
        for ln in ("ln1", "ln2") if norm == "LN" else ():
            legacy[f"{p}{ln}.w"], legacy[f"{p}{ln}.b"] = sd[f"{p}{ln}.weight"], sd[f"{p}{ln}.bias"]
    assert legacy["unembed.b_U"].abs().max() > 0
    cfg = {"d_model": 16, "d_head": 4, "n_heads": 4, "n_layers": 2, "n_ctx": T, "d_vocab": V,
           "act_fn": "gelu", "normalization_type": norm, "d_mlp": 64}
    model = interop.from_hooked_transformer({"config": cfg, "state_dict": legacy})
    x = tokens(seed=3)
    with torch.no_grad():
        assert close(bridge(x), model(x))


@pytest.mark.parametrize("kw, what", [
    (dict(act_fn="gelu_new"), "act_fn='gelu_new'"),
    (dict(act_fn="relu"), "act_fn='relu'"),
    (dict(parallel_attn_mlp=True), "parallel_attn_mlp"),
    (dict(gated_mlp=True, act_fn="silu"), "gated_mlp"),
    (dict(normalization_type="RMS"), "normalization_type='RMS'"),
    (dict(n_key_value_heads=2), "grouped-query"),
    (dict(positional_embedding_type="rotary", rotary_dim=2), "partial rotary"),
    (dict(attn_scale=3.0), "attention scale"),
    (dict(eps=1e-6), "eps"),
])
def test_configs_lgagent_cannot_represent_are_refused_in_one_line(kw, what):
    pytest.importorskip("transformer_lens")
    cfg = {"d_model": 16, "d_head": 4, "n_heads": 4, "n_layers": 1, "n_ctx": T, "d_vocab": V,
           "act_fn": "gelu", **kw}
    with pytest.raises(ValueError) as e:
        interop.from_hooked_transformer({"config": cfg, "state_dict": {}})
    msg = str(e.value)
    assert what in msg and "\n" not in msg and "no lgagent equivalent" in msg, msg


def test_unembedding_bias_without_final_layernorm_is_refused():
    pytest.importorskip("transformer_lens")
    with pytest.raises(ValueError, match="unembedding bias"):
        interop.from_hooked_transformer(native(4, normalization_type=None))


def test_post_norm_export_is_refused_in_one_line():
    model = random_gpt(norm="post")
    for f in (interop.to_hooked_transformer, interop.transformer_lens_payload):
        with pytest.raises(ValueError, match="Post-Norm .* no HookedTransformer") as e:
            f(model)
        assert "\n" not in str(e.value)


def test_alibi_export_is_refused_in_one_line():
    model = random_gpt(pos="alibi")
    for f in (interop.to_hooked_transformer, interop.transformer_lens_payload):
        with pytest.raises(ValueError, match="ALiBi .* no TransformerBridge equivalent") as e:
            f(model)
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("pos, pos_range, back", [
    ("rope-random", 30, "rope-random"),  # rotary: nothing but the draw differs
    ("learned-random", T, "learned-random"),  # the table fits n_ctx: read back as itself
    ("learned-random", 30, "learned"),  # rows 0..T-1 of 30: its evaluation model
])
def test_randomized_schemes_export_as_their_evaluation_model(pos, pos_range, back):
    pytest.importorskip("transformer_lens")
    model = random_gpt(3, pos=pos, pos_range=pos_range)
    bridge = interop.to_hooked_transformer(model)
    x = tokens()
    with torch.no_grad():
        assert close(model(x), bridge(x))  # positions 0..T-1 on both sides
    got = interop.from_hooked_transformer(bridge)
    assert got.config.pos == back
    assert got.config.pos_range == (pos_range if back != "learned" else None)
    with torch.no_grad():
        assert torch.equal(got(x), model(x))


# ---------------------------------------------------------------------------------------------
# TransformerLens hooks see lgagent's activations


class CachedAttention(torch.nn.Module):
    """A TransformerLens model behind lgagent's forward interface: ``return_attn`` gives the
    attention patterns TransformerLens's hooks cached (``run_with_cache``)."""

    def __init__(self, bridge):
        super().__init__()
        self.bridge = bridge

    def forward(self, tokens, return_attn: bool = False):
        logits, cache = self.bridge.run_with_cache(tokens)
        if not return_attn:
            return logits
        L = self.bridge.cfg.n_layers
        return logits, [cache[f"blocks.{layer}.attn.hook_pattern"] for layer in range(L)]


def test_run_with_cache_attention_entropy_per_length_equals_lgagents():
    pytest.importorskip("transformer_lens")
    from train.analysis.evaluate import evaluate_model
    from train.data.tasks import make_task

    task = make_task("othello")
    model = random_gpt(5, vocab_size=61, block_size=59, std=0.2)
    bridge = interop.to_hooked_transformer(model)
    batch = task.eval_batch(8, seed=0)
    ours = evaluate_model(model, batch, pad_id=task.pad_id, train_max_len=20)
    theirs = evaluate_model(CachedAttention(bridge), batch, pad_id=task.pad_id, train_max_len=20)
    assert len(ours["per_length"]) == 59
    for a, b in zip(ours["per_length"], theirs["per_length"]):
        assert a["length"] == b["length"]
        np.testing.assert_allclose(np.array(b["attn_entropy"]), np.array(a["attn_entropy"]),
                                   rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b["top1_err"], a["top1_err"])
    # not flat: the entropy grows with the number of attended tokens
    assert ours["per_length"][30]["attn_entropy"][0][0] > ours["per_length"][1]["attn_entropy"][0][0]


# ---------------------------------------------------------------------------------------------
# safetensors


@pytest.mark.parametrize("kw", [dict(), dict(norm="post", tie_weights=True, bias=False)])
def test_safetensors_round_trip(tmp_path, kw):
    pytest.importorskip("safetensors")
    model = random_gpt(6, **kw)
    path = tmp_path / "m.safetensors"
    path.write_bytes(interop.safetensors_payload(model))
    got = interop.read_interop_file(path)  # vocabulary 13: a set complement over 12 tokens
    assert got.model.config == model.config and same_weights(got.model, model)
    assert got.task == "setcomp" and got.source == "safetensors"
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        md, keys = f.metadata(), set(f.keys())
    assert md["format"] == interop.ST_FORMAT and md["weights"] == "raw"
    assert json.loads(md["model_config"])["norm"] == model.config.norm
    assert ("lm_head.weight" in keys) is not model.config.tie_weights  # a tied head is left out
    path.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="neither a readable torch file nor a safetensors"):
        interop.read_interop_file(path)


def test_missing_extra_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "transformer_lens", None)
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    model = random_gpt()
    for f in (interop.to_hooked_transformer, interop.safetensors_payload):
        with pytest.raises(interop.MissingExtra, match=r'pip install "lgagent\[interop\]"'):
            f(model)


# ---------------------------------------------------------------------------------------------
# The commands, end to end on a trained run


@pytest.fixture(scope="module")
def trained(tiny_run, tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("interop") / "run", "--env", "othello", "--ema",
                    "--ema-decay", "0.9,0.99", "--steps", 3, "--play-games", 0)


def test_export_import_eval_play_probe_end_to_end(trained, tmp_path):
    pytest.importorskip("transformer_lens")
    pytest.importorskip("safetensors")
    from agents.checkpoint import load, model_from_checkpoint
    from agents.policies import ModelPolicy

    run = CliRunner()
    tl, st = tmp_path / "m.tl.pt", tmp_path / "m.safetensors"
    r = run.invoke(main, ["export", str(trained), "--to", "transformer-lens", "--weights",
                          "ema_0.9", "--out", str(tl)])
    assert r.exit_code == 0, r.output + r.stderr
    r = run.invoke(main, ["export", str(trained), "--to", "safetensors", "--out", str(st)])
    assert r.exit_code == 0, r.output + r.stderr
    # the TransformerLens file loads in TransformerLens alone, with the run's logits
    from transformer_lens.model_bridge.sources.native import boot

    d = torch.load(tl, weights_only=True)
    bridge = boot(d["config"], device="cpu")
    bridge.load_state_dict(d["state_dict"])
    ema = model_from_checkpoint(load(trained), "ema_0.9")
    x = tokens(2, vocab=61, length=59)
    with torch.no_grad():
        assert close(ema(x), bridge(x))
    # no overwrite without --force; --force overwrites
    before = st.read_bytes()
    assert "already exists; pass --force" in one_line_error(
        run.invoke(main, ["export", str(trained), "--to", "safetensors", "--out", str(st)]))
    r = run.invoke(main, ["export", str(trained), "--to", "safetensors", "--weights", "ema_0.99",
                          "--out", str(st), "--force"])
    assert r.exit_code == 0 and st.read_bytes() != before
    assert "no 'bema' weights" in one_line_error(
        run.invoke(main, ["export", str(trained), "--to", "safetensors", "--weights", "bema",
                          "--out", str(tmp_path / "x")]))
    # import both; the imported runs evaluate, play and probe like the source's weights
    for src, weights in ((tl, "ema_0.9"), (st, "ema_0.99")):
        out = tmp_path / f"imp_{src.suffix[1:]}"
        r = run.invoke(main, ["import", str(src), "--out", str(out)])
        assert r.exit_code == 0, r.output + r.stderr
        assert ": othello model," in r.output
        assert "already exists" in one_line_error(
            run.invoke(main, ["import", str(src), "--out", str(out)]))
        got = run.invoke(main, ["eval", str(out), "--json"])
        want = run.invoke(main, ["eval", str(trained), "--weights", weights, "--json"])
        assert got.exit_code == 0 and want.exit_code == 0, got.stderr + want.stderr
        g, w = json.loads(got.output), json.loads(want.output)
        assert g["eval"]["raw"]["seen"] == w["eval"][weights]["seen"]
        assert g["train_max_len"] == w["train_max_len"]
    r = run.invoke(main, ["play", str(out), "--games", 2, "--json"])
    assert r.exit_code == 0, r.stderr
    r = run.invoke(main, ["probe", str(out), "--games", 6, "--layers", "1", "--max-iter", 2,
                          "--json"])
    assert r.exit_code == 0, r.stderr
    policy = ModelPolicy(str(out), weights="raw")
    mask = np.zeros(65, dtype=np.int8)
    mask[[18, 20, 34]] = 1  # white's replies after black plays 19 (d3)
    assert policy.act(None, {"action_mask": mask, "moves": np.array([19])}) in (18, 20, 34)


def test_cli_refusals_are_one_line(trained, tmp_path, tiny_run, monkeypatch):
    pytest.importorskip("transformer_lens")
    run = CliRunner()
    post = tiny_run(tmp_path / "post", "--env", "setcomp", "--vocab-size", 6, "--norm", "post",
                    "--steps", 1)
    err = one_line_error(run.invoke(main, ["export", str(post), "--to", "transformer-lens",
                                           "--out", str(tmp_path / "p.pt")]))
    assert "Post-Norm" in err and "no HookedTransformer" in err
    assert not (tmp_path / "p.pt").exists()
    # a config lgagent cannot represent, saved by TransformerLens
    bridge = native(0, act_fn="gelu_new")
    bad = tmp_path / "gelu_new.pt"
    torch.save({"config": {"d_model": 16, "d_head": 4, "n_heads": 4, "n_layers": 2, "n_ctx": T,
                           "d_vocab": V, "act_fn": "gelu_new"}, "state_dict": bridge.state_dict()},
               bad)
    err = one_line_error(run.invoke(main, ["import", str(bad), "--out", str(tmp_path / "r1")]))
    assert "act_fn='gelu_new'" in err
    assert not (tmp_path / "r1").exists()
    # a pickled model object is not unpickled
    pickled = tmp_path / "pickled.pt"
    torch.save(torch.nn.Linear(2, 2), pickled)
    err = one_line_error(run.invoke(main, ["import", str(pickled), "--out", str(tmp_path / "r2")]))
    assert "pickled Python object" in err
    # the file's own task wins over a conflicting --task
    st = tmp_path / "m.st"
    st.write_bytes(interop.safetensors_payload(trained))
    err = one_line_error(run.invoke(main, ["import", str(st), "--task", "setcomp",
                                           "--out", str(tmp_path / "r3")]))
    assert "othello model, not setcomp" in err
    # the extra missing: how to install it
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "transformer_lens", None)
        err = one_line_error(run.invoke(main, ["export", str(trained), "--to",
                                               "transformer-lens", "--out",
                                               str(tmp_path / "t.pt")]))
    assert 'pip install "lgagent[interop]"' in err and not (tmp_path / "t.pt").exists()


def test_import_of_a_bridge_config_and_state_dict_saved_by_transformerlens(tmp_path):
    """``cfg.to_dict()`` holds NumPy scalars (initializer_range) and a torch dtype: the file
    still loads with weights_only, and the imported run evaluates with the bridge's logits."""
    pytest.importorskip("transformer_lens")
    from agents.checkpoint import model_from_checkpoint

    bridge = native(8, normalization_type="LN")
    f = tmp_path / "bridge.pt"
    torch.save({"config": bridge.cfg.to_dict(), "state_dict": bridge.state_dict()}, f)
    run = CliRunner()
    r = run.invoke(main, ["import", str(f), "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output + r.stderr
    assert ": setcomp model," in r.output  # vocabulary 13: set complement over 12 tokens
    model = model_from_checkpoint(tmp_path / "run", "raw")
    x = tokens(seed=9)
    with torch.no_grad():
        assert close(bridge(x), model(x))
    r = run.invoke(main, ["eval", str(tmp_path / "run"), "--eval-size", 8, "--json"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.output)["env"] == "setcomp"
