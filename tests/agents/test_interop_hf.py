"""Hugging Face transformers interop: lgagent export --to hf, lgagent import DIR.

Skips without transformers (the ``hf`` extra; the ``interop`` extra pulls it in too).
Nothing downloads: every load is from a local directory, with HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import json

import pytest
import torch

from agents import interop
from agents.config import GPTConfig
from agents.model import GPT
from tests.conftest import invoke, one_line_error

pytest.importorskip("transformers", reason="the hf extra: pip install -e '.[hf]'")

# The exported model's logits against lgagent's: max |difference| <= ATOL x max(1, max |logit|)
# (interop.ATOL = 1e-4, the bound the export itself checks; measured: exactly 0 on CPU float32,
# both sides run the same operations).
ATOL = interop.ATOL


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def random_gpt(seed=0, **kw) -> GPT:
    """A tiny Othello-sized GPT with every parameter random (biases and LayerNorms too)."""
    torch.manual_seed(seed)
    cfg = GPTConfig(**{"vocab_size": 61, "block_size": 59, "n_layer": 2, "n_head": 4,
                       "n_embd": 16, "dropout": 0.0, **kw})
    model = GPT(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model.eval()


def random_games(n=8, seed=3) -> torch.Tensor:
    """Tokens of ``n`` random Othello games, the model's 59 inputs (PAD after a game ends)."""
    from othello_env.games import generate_games
    from othello_env.tokens import squares_to_tokens

    return torch.as_tensor(squares_to_tokens(generate_games(n, seed)[:, :59]))


def same_weights(a: GPT, b: GPT) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("kw", [{}, {"bias": False}, {"tie_weights": True},
                                {"mlp_ratio": 2, "dropout": 0.1, "attn_dropout": 0.2}])
def test_gpt2_logits_equal_lgagents_on_random_games_and_import_gives_the_weights(tmp_path, kw):
    from transformers import AutoModelForCausalLM, GPT2LMHeadModel

    model = random_gpt(**kw)
    interop.save_hf(model, tmp_path)
    hf = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(hf) is GPT2LMHeadModel and hf.config.activation_function == "gelu"
    assert hf.config.layer_norm_epsilon == 1e-5 and hf.config.n_positions == 59
    assert hf.config.tie_word_embeddings == model.config.tie_weights
    assert (hf.lm_head.weight is hf.transformer.wte.weight) == model.config.tie_weights
    games = random_games()
    with torch.no_grad():
        ours, theirs = model(games), hf(input_ids=games).logits
    assert float((ours - theirs).abs().max()) <= ATOL * max(1.0, float(ours.abs().max()))
    back = interop.read_hf_dir(tmp_path, "othello")
    assert back.model.config == model.config and same_weights(back.model, model)


def test_what_gpt2_cannot_express_is_refused_in_one_line():
    for kw, what in [({"norm": "post"}, "Post-Norm"), ({"norm": "none"}, "no LayerNorm"),
                     ({"pos": "rope"}, "rotary"), ({"pos": "none"}, "no positions"),
                     ({"pos": "rope-random"}, "rotary"), ({"pos": "alibi"}, "ALiBi"),
                     ({"mlp": False}, "attention-only")]:
        with pytest.raises(ValueError, match=what) as e:
            interop.to_hf(random_gpt(**kw))
        assert "\n" not in str(e.value)


@pytest.fixture(scope="module")
def trained(tiny_run, tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("hf") / "run", "--env", "othello", "--ema",
                    "--steps", 3, "--play-games", 0)


def test_export_to_hf_then_pipeline_tokenizer_and_import_end_to_end(trained, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agents.checkpoint import load, model_from_checkpoint

    out = tmp_path / "othello-hf"
    r = invoke("export", trained, "--to", "hf", "--weights", "ema", "--out", out)
    assert r.exit_code == 0, r.stderr
    assert "GPT2LMHeadModel" in r.stdout and r.stderr == ""
    assert {"config.json", "model.safetensors", "lgagent_tokens.json", "tokenizer.json"} <= {
        p.name for p in out.iterdir()}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
    ema = model_from_checkpoint(load(trained), "ema")
    hf = AutoModelForCausalLM.from_pretrained(out).eval()
    games = random_games()
    with torch.no_grad():
        assert float((ema(games) - hf(input_ids=games).logits).abs().max()) <= ATOL
    # the token map and the tokenizer: 0 = <pad>, 1..60 the non-centre squares in order
    tokens = json.loads((out / "lgagent_tokens.json").read_text())
    assert tokens["task"] == "othello" and tokens["pad_id"] == 0
    assert tokens["tokens"][:4] == ["<pad>", "a1", "b1", "c1"] and tokens["tokens"][-1] == "h8"
    assert "d4" not in tokens["tokens"] and len(tokens["tokens"]) == 61
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok("d3 c5 f6")["input_ids"]
    assert ids == [tokens["tokens"].index(s) for s in ("d3", "c5", "f6")]
    assert tok.decode(ids) == "d3 c5 f6" and tok.pad_token_id == 0
    assert hf.config.pad_token_id == 0 and hf.config.lgagent["weights"] == "ema"
    # import back: a run whose checkpoint holds the same weights, evaluated like any run
    run = tmp_path / "imported"
    r = invoke("import", out, "--out", run)
    assert r.exit_code == 0, r.stderr
    assert "(hf): othello model" in r.stdout
    assert same_weights(model_from_checkpoint(load(run), "raw"), ema)
    r = invoke("eval", run, "--json")
    assert r.exit_code == 0, r.stderr
    # --force replaces the directory; without it, a non-empty one is refused
    one_line_error(invoke("export", trained, "--to", "hf", "--out", out), "not empty")
    r = invoke("export", trained, "--to", "hf", "--out", out, "--force")
    assert r.exit_code == 0, r.stderr
    assert AutoModelForCausalLM.from_pretrained(out).config.lgagent["weights"] == "raw"


def test_transformerlens_loads_the_exported_directory(tmp_path):
    pytest.importorskip("transformer_lens", reason="the interop extra")
    from transformer_lens.model_bridge import TransformerBridge

    model = random_gpt()
    interop.save_hf(model, tmp_path)
    bridge = TransformerBridge.boot_transformers(str(tmp_path), device="cpu")
    games = random_games()
    with torch.no_grad():
        logits, cache = bridge.run_with_cache(games)
        assert float((logits - model(games)).abs().max()) <= ATOL
    assert cache["blocks.1.hook_resid_post"].shape == (8, 59, 16)


def test_cli_refusals_are_one_line(tmp_path, tiny_run, monkeypatch):
    post = tiny_run(tmp_path / "post", "--env", "setcomp", "--vocab-size", 8, "--preset", "tiny",
                    "--norm", "post", "--steps", 1)
    one_line_error(invoke("export", post, "--to", "hf", "--out", tmp_path / "x"), "Post-Norm")
    assert not (tmp_path / "x").exists()
    (tmp_path / "file").write_text("")
    one_line_error(invoke("export", post, "--to", "hf", "--out", tmp_path / "file"), "is a file")
    one_line_error(invoke("import", tmp_path / "nothing_here", "--out", tmp_path / "r"), "no file")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text(json.dumps(
        {"model_type": "gpt2", "activation_function": "gelu_new", "n_embd": 8}))
    (tmp_path / "bad" / "model.safetensors").write_bytes(b"")
    one_line_error(invoke("import", tmp_path / "bad", "--out", tmp_path / "r"), "gelu_new")
    import sys

    monkeypatch.setitem(sys.modules, "transformers", None)
    pre = tiny_run(tmp_path / "pre", "--env", "setcomp", "--vocab-size", 8, "--preset", "tiny",
                   "--steps", 1)
    one_line_error(invoke("export", pre, "--to", "hf", "--out", tmp_path / "y"),
                   'pip install "lgagent[hf]"')


def test_learned_random_positions_export_as_their_evaluation_time_model(tmp_path):
    """pos='learned-random' has pos_range rows of position embeddings; evaluation, play and
    GPT-2 read positions 0..block_size-1, so the export keeps the first block_size rows."""
    from transformers import AutoModelForCausalLM

    model = random_gpt(pos="learned-random", pos_range=80)
    interop.save_hf(model, tmp_path)
    hf = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert hf.config.n_positions == 59
    games = random_games()
    with torch.no_grad():
        ours, theirs = model(games), hf(input_ids=games).logits
    assert float((ours - theirs).abs().max()) <= ATOL * max(1.0, float(ours.abs().max()))
    back = interop.read_hf_dir(tmp_path, "othello").model
    with torch.no_grad():
        assert torch.allclose(back(games), ours, atol=1e-6)
