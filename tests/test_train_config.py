"""train.config: TOML loading, precedence, validation, resolution, resume compatibility;
train.trainer.lr_factor: the learning-rate schedule."""

import math

import pytest

from train import config as C
from train.trainer import lr_factor


def test_merge_precedence_defaults_then_file_then_cli():
    cfg = C.merge({"env": "setcomp", "steps": 7, "lr": 1e-3}, {"steps": 9})
    assert cfg.env == "setcomp" and cfg.steps == 9 and cfg.lr == 1e-3
    assert cfg.batch_size == C.RunConfig().batch_size  # untouched default
    # None in a later layer does not erase an earlier value
    assert C.merge({"steps": 7}, {"steps": None}).steps == 7


def test_merge_unknown_field():
    with pytest.raises(ValueError, match="unknown config field"):
        C.merge({"nope": 1})


def test_load_toml_dashes_types_and_ints_as_floats(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('env = "othello"\nbatch-size = 32\nlr = 1\nema = true\n')
    got = C.load_toml(p)
    assert got == {"env": "othello", "batch_size": 32, "lr": 1.0, "ema": True}
    assert isinstance(got["lr"], float)


@pytest.mark.parametrize("text, match", [
    ("nope = 1\n", "unknown key 'nope'"),
    ('steps = "ten"\n', "steps must be int"),
    ("steps = 1.5\n", "steps must be int"),
    ("ema = 1\n", "ema must be bool"),
    ("lr = true\n", "lr must be int or float"),
    ("steps = \n", "not valid TOML"),
    ("stop_at = 3\n", "command-line option only"),
    ("[model]\nn_layer = 2\n", "unknown key 'model'"),
])
def test_load_toml_errors(tmp_path, text, match):
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(ValueError, match=match):
        C.load_toml(p)


def test_load_toml_missing_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        C.load_toml(tmp_path / "absent.toml")


@pytest.mark.parametrize("fields, match", [
    ({}, "--env is required"),
    ({"env": "chess"}, "unknown env"),
    ({"env": "othello", "loss": "mse"}, "unknown loss"),
    ({"env": "othello", "device": "tpu"}, "unknown device"),
    ({"env": "othello", "steps": 0}, "--steps must be at least 1"),
    ({"env": "othello", "batch_size": 0}, "--batch-size"),
    ({"env": "othello", "lr": 0.0}, "--lr must be a positive"),
    ({"env": "othello", "lr": math.nan}, "--lr must be a positive"),
    ({"env": "othello", "beta2": 1.0}, "--beta2"),
    ({"env": "othello", "weight_decay": -0.1}, "--weight-decay"),
    ({"env": "othello", "grad_clip": -1.0}, "--grad-clip"),
    ({"env": "othello", "steps": 10, "warmup": 11}, "--warmup"),
    ({"env": "othello", "dropout": 1.0}, "--dropout"),
    ({"env": "othello", "n_layer": 0}, "--n-layer"),
    ({"env": "othello", "train_max_len": 0}, "--train-max-len"),
    ({"env": "setcomp", "vocab_size": 1}, "--vocab-size must be at least 2"),
    ({"env": "setcomp", "data": "x.npy"}, "--data is an Othello corpus"),
    ({"env": "othello", "vocab_size": 20}, "setcomp only"),
    ({"env": "othello", "ema_decay": 1.0}, "--ema-decay"),
    ({"env": "othello", "bema_lag": 0.0}, "--bema-lag"),
    ({"env": "othello", "bema_update_every": 0}, "--bema-update-every"),
    ({"env": "othello", "eval_every": -1}, "--eval-every"),
    ({"env": "othello", "log_every": 0}, "--log-every"),
    ({"env": "othello", "eval_size": 0}, "--eval-size"),
    ({"env": "othello", "num_threads": 0}, "--num-threads"),
    ({"env": "othello", "seed": -1}, "--seed must lie in 0..2"),
    ({"env": "othello", "eval_seed": 2**63}, "--eval-seed must lie in 0..2"),
    ({"env": "othello", "steps": 5, "stop_at": 6}, "--stop-at"),
])
def test_validate_rejects(fields, match):
    with pytest.raises(ValueError, match=match):
        C.validate(C.merge(fields))


def test_validate_accepts_defaults_and_resolve_fills_env_defaults():
    for env in C.ENVS:
        cfg = C.merge({"env": env})
        C.validate(cfg)
        r = C.resolve(cfg)
        assert r.preset == C.DEFAULT_PRESET[env] and r.loss == C.DEFAULT_LOSS[env]
        assert r.warmup == min(C.WARMUP_CAP, cfg.steps // 10)
    assert C.resolve(C.merge({"env": "setcomp"})).vocab_size == C.DEFAULT_VOCAB
    assert C.resolve(C.merge({"env": "othello"})).vocab_size is None
    # explicit values survive resolution
    r = C.resolve(C.merge({"env": "othello", "preset": "tiny", "loss": "legal", "warmup": 0}))
    assert (r.preset, r.loss, r.warmup) == ("tiny", "legal", 0)


def test_othello_defaults_are_the_othellogpt_recipe():
    r = C.resolve(C.merge({"env": "othello", "ema": True}))
    assert (r.preset, r.lr, r.beta1, r.beta2, r.weight_decay, r.grad_clip, r.min_lr_ratio) == (
        "othello-gpt", 5e-4, 0.9, 0.95, 0.1, 1.0, 0.1)
    assert r.batch_size == 512 and r.loss == "next" and r.ema


def test_toml_round_trip_of_saved_config(tmp_path):
    cfg = C.resolve(C.merge({"env": "setcomp", "vocab_size": 8, "bema": True, "out": "x"}))
    saved = cfg.saved_dict()
    assert "out" not in saved and "stop_at" not in saved
    p = tmp_path / "config.toml"
    p.write_text(C.to_toml(saved))
    back = C.merge(C.load_toml(p))
    assert back.saved_dict() == saved


def test_incompatible_lists_only_non_resumable_changes():
    saved = C.resolve(C.merge({"env": "othello", "preset": "tiny"})).saved_dict()
    cfg = C.merge(saved, {"steps": 99, "preset": "othello-gpt", "lr": saved["lr"]})
    bad = C.incompatible(saved, cfg, {"steps", "preset", "lr"})
    assert bad == ["preset (saved 'tiny', given 'othello-gpt')"]
    assert C.incompatible(saved, C.merge(saved, {"steps": 5}), {"steps"}) == []


def test_lr_factor_warmup_then_cosine_to_min_ratio():
    kw = dict(warmup=10, steps=110, min_ratio=0.1)
    assert lr_factor(0, **kw) == pytest.approx(0.1)
    assert lr_factor(9, **kw) == pytest.approx(1.0)
    assert lr_factor(10, **kw) == pytest.approx(1.0)
    assert lr_factor(60, **kw) == pytest.approx(0.55)  # half way: the cosine's midpoint
    assert lr_factor(110, **kw) == pytest.approx(0.1)
    assert lr_factor(500, **kw) == pytest.approx(0.1)  # stays at the floor
    values = [lr_factor(s, **kw) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert lr_factor(0, warmup=0, steps=5, min_ratio=0.0) == pytest.approx(1.0)
