"""`lgagent train --pos alibi | learned-random | rope-random` end to end: the switches train,
the checkpoint records them, the randomized draw is seeded and resumes bitwise, every position
up to --pos-range is trained, and eval, play and export read (or refuse) them."""


import pytest
import torch

from agents import checkpoint as CK
from agents.config import GPTConfig
from agents.model import GPT
from tests.conftest import SETCOMP, TINY, invoke, one_line_error, trained_checkpoint

SCHEMES = ("alibi", "learned-random", "rope-random")
# set complement over 8 tokens (block 7), trained on lengths 1..3
RUN = [*SETCOMP, "--train-max-len", 3, "--eval-every", 0, "--ckpt-every", 0]


def train(out, *args):
    return trained_checkpoint(out, *RUN, *args)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_each_scheme_trains_is_recorded_and_evaluates(tmp_path, scheme):
    ck = train(tmp_path / "run", "--pos", scheme, "--steps", 3)
    assert ck["model_config"]["pos"] == ck["config"]["pos"] == scheme
    want = 7 if scheme != "alibi" else None  # the default range: the task's block size
    assert ck["model_config"]["pos_range"] == ck["config"]["pos_range"] == want
    r = invoke("eval", tmp_path / "run", "--json")
    assert r.exit_code == 0, r.output + r.stderr


def test_randomized_runs_are_seeded_and_resume_bitwise(tmp_path):
    args = ["--pos", "learned-random", "--pos-range", 12, "--steps", 6, "--dropout", 0.1]
    full = train(tmp_path / "full", *args)
    assert torch.equal(train(tmp_path / "again", *args, "--prefetch", 0)["model"]["wpe.weight"],
                       full["model"]["wpe.weight"])  # same seed, same weights (prefetch or not)
    other = train(tmp_path / "other", *args, "--seed", 1)
    assert not torch.equal(other["model"]["wpe.weight"], full["model"]["wpe.weight"])
    train(tmp_path / "split", *args, "--stop-at", 3)
    r = invoke("train", "--resume", "--out", tmp_path / "split", "--no-progress")
    assert r.exit_code == 0, r.output + r.stderr
    split = CK.load(tmp_path / "split" / "checkpoint.pt")
    for key in ("model", "optimizer"):
        a, b = full[key], split[key]
        flat = (lambda d: d["state"]) if key == "optimizer" else (lambda d: {0: d})
        for i, sa in flat(a).items():
            for k, v in sa.items():
                if isinstance(v, torch.Tensor):
                    assert torch.equal(v, flat(b)[i][k]), (key, i, k)
    assert split["data"] == full["data"]


@pytest.mark.parametrize("scheme, trained_rows", [("learned-random", 12), ("learned", 3)])
def test_randomized_learned_positions_train_every_row_up_to_pos_range(tmp_path, scheme,
                                                                       trained_rows):
    extra = ["--pos-range", 12] if scheme == "learned-random" else []
    ck = train(tmp_path / "run", "--pos", scheme, *extra, "--steps", 20, "--seed", 4)
    torch.manual_seed(4)  # the trainer's init: seed_all(seed), then GPT(model config)
    init = GPT(GPTConfig(**ck["model_config"])).wpe.weight.detach()
    after = ck["model"]["wpe.weight"]
    changed = (after != init).any(dim=1)  # (rows,)
    assert changed[:trained_rows].all()
    assert not changed[trained_rows:].any()  # learned: rows >= --train-max-len never move


def test_bad_pos_range_is_one_line(tmp_path):
    one_line_error(invoke("train", *RUN, "--pos", "learned-random", "--pos-range", 5, "--out",
                          tmp_path / "a"), "pos_range must be an integer >= block_size")
    one_line_error(invoke("train", *RUN, "--pos", "rope", "--pos-range", 20, "--out",
                          tmp_path / "b"), "pos_range applies to pos in")


def test_othello_alibi_and_rope_random_play_and_export_or_refuse(tmp_path):
    pytest.importorskip("transformer_lens")
    for scheme in ("alibi", "rope-random"):
        out = tmp_path / scheme
        r = invoke("train", *TINY, "--env", "othello", "--pos", scheme, "--steps", 2,
                   "--train-max-len", 20, "--play-games", 2, "--eval-every", 0, "--out", out)
        assert r.exit_code == 0, r.output + r.stderr
        r = invoke("play", out, "--games", 2)
        assert r.exit_code == 0, r.output + r.stderr
        r = invoke("export", out, "--to", "transformer-lens", "--out", tmp_path / f"{scheme}.pt")
        if scheme == "alibi":
            one_line_error(r, "ALiBi model (pos='alibi') has no TransformerBridge")
        else:
            assert r.exit_code == 0, r.output + r.stderr
