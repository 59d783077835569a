"""agents.checkpoint: damaged checkpoints that unpickle fine (bad fields, a flipped weight bit, an
unknown version, a legacy non-zip file) are refused with one line by resume, eval and the weights'
readers, resume rewrites nothing, and checkpoints written before checksums still load."""

import copy
import warnings

import pytest
import torch

from agents import checkpoint as CK
from tests.conftest import SETCOMP, invoke, one_line_error


def _damage(good):
    def edit(f):
        c = copy.deepcopy(good)
        f(c)
        return c

    first_moment = next(iter(good["optimizer"]["state"]))
    return {
        "config.lr": (edit(lambda c: c["config"].update(lr="x")), "config is invalid"),
        "config list": (edit(lambda c: c.update(config=[1, 2])), "config is not a dict"),
        "step str": (edit(lambda c: c.update(step="5")), "step '5' is not an integer"),
        "step < 0": (edit(lambda c: c.update(step=-5)), "step -5 is not an integer"),
        "rng_ranks": (edit(lambda c: c.update(rng_ranks=[{}])), "rng_ranks[0]['torch'] is not"),
        "float rng": (edit(lambda c: c["rng"].update(torch=c["rng"]["torch"].float())),
                      "rng['torch'] is not a uint8 RNG state"),
        "moment shape": (edit(lambda c: c["optimizer"]["state"][first_moment].update(
            exp_avg=torch.zeros(3, 5, 7))), "holds a moment that fits no parameter"),
        "ema foo": (edit(lambda c: c.update(ema={"foo": 1})), "ema is not an EMA/BEMA state"),
        "n_embd": (edit(lambda c: c["model_config"].update(n_embd=2**40)),
                   "model_config.n_embd = 1099511627776 is not an integer in 1..65536"),
        "eval_size str": (edit(lambda c: c["config"].update(eval_size="big")),
                          "config.eval_size = 'big' is not int"),
    }


def test_damaged_checkpoint_fields_are_one_line_and_resume_rewrites_nothing(tmp_path):
    from agents.policies import ModelPolicy

    out = tmp_path / "run"
    assert invoke("train", *SETCOMP, "--steps", 1, "--ema", "--out", out).exit_code == 0
    path = out / "checkpoint.pt"
    good = torch.load(path, weights_only=True)
    assert "checksum" in good and CK.checksum(good) == good["checksum"]
    for name, (bad, match) in _damage(good).items():
        torch.save(bad, path)
        files = {p.name: p.read_bytes() for p in out.iterdir()}
        r = invoke("train", "--resume", "--steps", 2, "--out", out, "--no-progress")
        one_line_error(r, match)
        assert {p.name: p.read_bytes() for p in out.iterdir()} == files, name
        if name not in ("config.lr",):  # the weights' readers use the same checks
            with pytest.raises(ValueError, match="damaged checkpoint"):
                ModelPolicy(path, weights="raw", task="setcomp")
    torch.save({**good, "version": 99}, path)
    with pytest.raises(ValueError, match="version 99 is not supported"):
        ModelPolicy(path, weights="raw", task="setcomp")


def test_a_flipped_bit_in_the_weights_is_reported_and_old_checkpoints_still_load(tmp_path):
    out = tmp_path / "run"
    assert invoke("train", *SETCOMP, "--steps", 1, "--out", out).exit_code == 0
    path = out / "checkpoint.pt"
    good = torch.load(path, weights_only=True)
    w = good["model"]["wte.weight"]
    w.view(torch.int32)[0, 0] ^= 1 << 7  # one bit of one weight
    torch.save(good, path)
    with pytest.raises(ValueError, match="weights do not match their checksum"):
        CK.load(path)
    one_line_error(invoke("eval", out), "weights do not match their checksum")
    del good["checksum"]  # a checkpoint written before checksums: loads as before
    torch.save(good, path)
    assert CK.load(path)["step"] == 1
    assert invoke("train", "--resume", "--steps", 2, "--out", out, "--no-progress").exit_code == 0
    assert CK.load(path)["checksum"] == CK.checksum(CK.load(path))


def test_a_legacy_non_zip_checkpoint_is_one_line_without_torch_warnings(tmp_path):
    legacy = tmp_path / "run" / "checkpoint.pt"
    legacy.parent.mkdir()
    torch.save({"weights": torch.zeros(2)}, legacy, _use_new_zipfile_serialization=False)
    one_line_error(invoke("eval", legacy.parent), "not an lgagent checkpoint")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="not an lgagent checkpoint"):
            CK.load(legacy)
    assert caught == []
