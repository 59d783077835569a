"""`lgagent train --head-dim` end to end: it trains, the checkpoint records it, a stopped run
resumes bitwise, eval reads it, TransformerLens export round-trips it and Hugging Face export
refuses it in one line; without it the run is what it always was."""


import pytest
import torch

from agents import checkpoint as CK
from tests.conftest import SETCOMP, invoke, one_line_error, trained_checkpoint

# the minimal model on set complement over 8 tokens, value dimension 3 at width 8
RUN = [*SETCOMP, "--preset", "setcomp-1l", "--n-embd", 8, "--eval-every", 0, "--ckpt-every", 0]


def train(out, *args):
    return trained_checkpoint(out, *RUN, *args)


def test_head_dim_trains_is_recorded_and_resumes_bitwise(tmp_path):
    full = train(tmp_path / "full", "--head-dim", 3, "--steps", 6)
    assert full["model_config"]["head_dim"] == full["config"]["head_dim"] == 3
    assert tuple(full["model"]["blocks.0.attn.c_attn.weight"].shape) == (9, 8)
    assert tuple(full["model"]["blocks.0.attn.c_proj.weight"].shape) == (8, 3)
    train(tmp_path / "split", "--head-dim", 3, "--steps", 6, "--stop-at", 3)
    r = invoke("train", "--resume", "--out", tmp_path / "split", "--no-progress")
    assert r.exit_code == 0, r.output + r.stderr
    split = CK.load(tmp_path / "split" / "checkpoint.pt")
    for k, v in full["model"].items():
        assert torch.equal(v, split["model"][k]), k
    for i, state in full["optimizer"]["state"].items():
        for k, v in state.items():
            if isinstance(v, torch.Tensor):
                assert torch.equal(v, split["optimizer"]["state"][i][k]), (i, k)
    # a resume may not change it
    one_line_error(invoke("train", "--resume", "--out", tmp_path / "split", "--head-dim", 4,
                          "--steps", 8, "--no-progress"), "head_dim")
    r = invoke("eval", tmp_path / "full", "--json")
    assert r.exit_code == 0, r.output + r.stderr


def test_without_head_dim_the_model_is_unchanged(tmp_path):
    ck = train(tmp_path / "run", "--steps", 1)
    assert ck["model_config"]["head_dim"] is None
    assert tuple(ck["model"]["blocks.0.attn.c_attn.weight"].shape) == (24, 8)
    assert tuple(ck["model"]["blocks.0.attn.c_proj.weight"].shape) == (8, 8)


def test_bad_head_dim_is_one_line(tmp_path):
    one_line_error(invoke("train", *RUN, "--head-dim", 0, "--out", tmp_path / "a"), "--head-dim")
    one_line_error(invoke("train", *RUN, "--pos", "rope", "--head-dim", 3, "--out",
                          tmp_path / "b"), "even head size")


def test_export_round_trips_to_transformer_lens_and_hf_refuses(tmp_path):
    pytest.importorskip("transformer_lens")
    train(tmp_path / "run", "--head-dim", 3, "--steps", 2)
    # GPT-2's shape otherwise (pre-norm, learned positions, MLP): only head_dim is refused
    train(tmp_path / "gpt2", "--preset", "tiny", "--head-dim", 4, "--steps", 1)
    one_line_error(invoke("export", tmp_path / "gpt2", "--to", "hf", "--out", tmp_path / "hf"),
                   "head_dim 4 x n_head 4 != n_embd 8")
    assert not (tmp_path / "hf").exists()
    r = invoke("export", tmp_path / "run", "--to", "transformer-lens", "--out", tmp_path / "m.pt")
    assert r.exit_code == 0, r.output + r.stderr
    r = invoke("import", tmp_path / "m.pt", "--out", tmp_path / "back")
    assert r.exit_code == 0, r.output + r.stderr
    back = CK.load(tmp_path / "back" / "checkpoint.pt")
    src = CK.load(tmp_path / "run" / "checkpoint.pt")
    assert back["model_config"] == src["model_config"]
    for k, v in src["model"].items():
        assert torch.equal(v, back["model"][k]), k
