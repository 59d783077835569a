"""--ema-decay 0.99,0.999: one EMA per decay on one trajectory, saved, resumed, evaluated."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from agents.checkpoint import averaged_states, load, model_from_checkpoint, weights_of
from train.cli.main import main
from train.training import config as C

BASE = ["train", "--env", "setcomp", "--vocab-size", "6", "--steps", "12", "--batch-size", "8",
        "--train-max-len", "3", "--eval-every", "0", "--eval-size", "16", "--num-threads", "1",
        "--no-progress", "--lr", "1e-2"]


def train(out, *args):
    r = CliRunner().invoke(main, [*BASE, "--out", str(out), *args])
    assert r.exit_code == 0, r.stderr
    return r


def test_each_decay_equals_its_own_single_run(tmp_path):
    train(tmp_path / "both", "--ema", "--ema-decay", "0.5,0.9", "--bema")
    train(tmp_path / "one", "--ema", "--ema-decay", "0.9")
    both, one = load(tmp_path / "both"), load(tmp_path / "one")
    assert weights_of(both) == ["raw", "ema_0.5", "ema_0.9", "bema"]
    assert weights_of(one) == ["raw", "ema"]  # one decay: the format of before, named "ema"
    a = model_from_checkpoint(both, "ema_0.9").state_dict()
    b = model_from_checkpoint(one, "ema").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = model_from_checkpoint(both, "ema_0.5").state_dict()
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert both["config"]["ema_decay"] == [0.5, 0.9]
    assert set(averaged_states(both)) == {"ema_0.5", "ema_0.9", "bema"}
    # a plain "ema" is ambiguous with several decays: the error names them
    with pytest.raises(ValueError, match=r"several EMA weights \(ema_0.5, ema_0.9\): name one"):
        model_from_checkpoint(both, "ema")


def test_resume_is_bitwise_with_several_decays(tmp_path):
    train(tmp_path / "full", "--ema", "--ema-decay", "0.5,0.9")
    train(tmp_path / "split", "--ema", "--ema-decay", "0.5,0.9", "--stop-at", "5")
    r = CliRunner().invoke(main, ["train", "--resume", "--out", str(tmp_path / "split"),
                                  "--no-progress"])
    assert r.exit_code == 0, r.stderr
    full, split = load(tmp_path / "full"), load(tmp_path / "split")
    for name in ("raw", "ema_0.5", "ema_0.9"):
        a = model_from_checkpoint(full, name).state_dict()
        b = model_from_checkpoint(split, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name


@pytest.mark.parametrize("value, msg", [
    ("0.9,0.9", "distinct"), ("0.9,abc", "expected"), ("0.9,1.5", "lie in [0, 1]"),
])
def test_bad_decay_lists(tmp_path, value, msg):
    r = CliRunner().invoke(main, [*BASE, "--out", str(tmp_path / "x"), "--ema",
                                  "--ema-decay", value])
    assert r.exit_code == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_toml_list_and_single_value(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("ema_decay = [0.99, 0.999]\n")
    assert C.load_toml(p)["ema_decay"] == [0.99, 0.999]
    p.write_text("ema_decay = [0.99]\n")
    assert C.load_toml(p)["ema_decay"] == 0.99
    p.write_text("ema_decay = ['a']\n")
    with pytest.raises(ValueError, match="list of numbers"):
        C.load_toml(p)
    p.write_text("batch_size = [1, 2]\n")
    with pytest.raises(ValueError, match="batch_size must be int"):
        C.load_toml(p)
