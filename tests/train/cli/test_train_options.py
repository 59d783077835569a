"""Training options derived from RunConfig reach the run: the three dropout placements,
their record in config.toml and the checkpoint, resume checks, sweep parsing."""

import os

import pytest
import torch
from click.testing import CliRunner

from train.cli.main import main
from train.errors import BadInput
from train.training import config as C

# set complement with 8 tokens (block 7): no Numba, fast
FAST = ["--env", "setcomp", "--vocab-size", "8", "--preset", "tiny", "--batch-size", "4",
        "--eval-size", "8", "--steps", "1", "--no-progress", "--num-threads", "1"]


def train(*args):
    return CliRunner().invoke(main, ["train", *map(str, args)])


def read_checkpoint(out):
    return torch.load(os.path.join(out, "checkpoint.pt"), weights_only=True)


def test_attn_dropout_with_dropout_0_reaches_the_model_and_the_saved_config(tmp_path):
    from agents.config import GPTConfig
    from agents.model import GPT

    out = tmp_path / "run"
    r = train(*FAST, "--attn-dropout", 0.1, "--dropout", 0, "--out", out)
    assert r.exit_code == 0, r.output + r.stderr
    c = read_checkpoint(out)
    mc = GPTConfig(**c["model_config"])
    assert (mc.attn_dropout, mc.dropout) == (0.1, 0.0)
    assert (mc.drop("attn"), mc.drop("resid"), mc.drop("embd")) == (0.1, 0.0, 0.0)
    model = GPT(mc)  # the rates the modules actually apply
    rates = sorted({m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)})
    assert rates == [0.0]
    assert {blk.attn.attn_dropout for blk in model.blocks} == {0.1}
    assert c["config"]["attn_dropout"] == 0.1 and c["config"]["dropout"] == 0.0
    saved = C.load_toml(out / "config.toml")
    assert saved["attn_dropout"] == 0.1 and saved["dropout"] == 0.0
    assert "resid_dropout" not in saved and "embd_dropout" not in saved  # None: use dropout
    # the placement is part of the experiment: a resume may not change it
    r = train("--resume", "--out", out, "--attn-dropout", 0.2)
    assert r.exit_code == 2 and "attn_dropout (saved 0.1, given 0.2)" in r.stderr


def test_resid_and_embd_dropout_from_a_config_file(tmp_path):
    conf = tmp_path / "run.toml"
    conf.write_text("resid-dropout = 0.2\nembd_dropout = 0.3\n")
    out = tmp_path / "run"
    r = train(*FAST, "--config", conf, "--out", out)
    assert r.exit_code == 0, r.output + r.stderr
    mc = read_checkpoint(out)["model_config"]
    assert (mc["resid_dropout"], mc["embd_dropout"], mc["attn_dropout"]) == (0.2, 0.3, None)
    assert mc["dropout"] == 0.1  # tiny preset's: still the attention rate


@pytest.mark.parametrize("args, match", [
    (["--attn-dropout", 1], "'--attn-dropout': 1.0 is not in the range 0<=x<1"),
    (["--embd-dropout", "x"], "'x' is not a valid float"),
    (["--bema-lag", 0.5, "--bema-multiplier", 0.25], "--bema-lag + --bema-multiplier must be >= 1"),
    (["--ema-decay", 1.01], "--ema-decay must lie in [0, 1], got 1.01"),
    (["--norm", "sideways"], "'sideways' is not one of 'pre', 'post', 'none'"),
])
def test_bad_values_exit_2_with_one_line(tmp_path, args, match):
    out = tmp_path / "run"
    r = train(*FAST, *args, "--out", out)
    assert r.exit_code == 2, (r.output, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and match in lines[0], r.stderr
    assert not out.exists()


def test_sweep_parses_values_by_the_field_type():
    from train.study.sweep import parse_assignment

    assert parse_assignment("attn-dropout=0,0.1", multi=True) == ("attn_dropout", [0.0, 0.1])
    assert parse_assignment("ema=true", multi=False) == ("ema", [True])
    assert parse_assignment("steps=3", multi=False) == ("steps", [3])
    with pytest.raises(BadInput, match="ema='yes': expected bool"):
        parse_assignment("ema=yes", multi=False)
    with pytest.raises(BadInput, match="expected int or float"):
        parse_assignment("lr=fast", multi=False)


def test_learned_positions_past_the_training_length_are_named_untrained(tmp_path):
    from click.testing import CliRunner

    from train.cli.main import main

    args = ["train", "--env", "setcomp", "--vocab-size", "6", "--steps", "1", "--batch-size",
            "4", "--eval-size", "8", "--num-threads", "1", "--no-progress", "--train-max-len", "3"]
    r = CliRunner().invoke(main, [*args, "--pos", "learned", "--out", str(tmp_path / "a")])
    assert r.exit_code == 0, r.stderr
    assert "position embeddings 3 and beyond are never trained" in r.stderr
    for extra in (["--pos", "none"], ["--pos", "learned", "--train-max-len", "5"]):
        r = CliRunner().invoke(main, [*args, *extra, "--out", str(tmp_path / extra[-1])])
        assert r.exit_code == 0, r.stderr
        assert "never trained" not in r.stderr
