"""train.training.config: TOML loading, precedence, validation, resolution, resume compatibility;
train.training.assemble.lr_factor: the learning-rate schedule."""

import math
import re

import pytest

from train.training import config as C
from train.training.assemble import lr_factor


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
    ({"env": "othello", "ema_decay": 1.5}, "--ema-decay must lie in [0, 1], got 1.5"),
    ({"env": "othello", "ema_decay": -0.1}, "--ema-decay must lie in [0, 1]"),
    ({"env": "othello", "ema_decay": math.nan}, "--ema-decay must lie in [0, 1]"),
    ({"env": "othello", "bema_lag": -1.0}, "--bema-lag must be >= 0"),
    ({"env": "othello", "bema_multiplier": -0.5}, "--bema-multiplier must be >= 0"),
    ({"env": "othello", "bema_lag": 0.5, "bema_multiplier": 0.4},
     "--bema-lag + --bema-multiplier must be >= 1"),
    ({"env": "othello", "bema_lag": math.inf}, "--bema-lag must be finite"),
    ({"env": "othello", "lr": math.inf}, "--lr must be finite"),
    ({"env": "othello", "attn_dropout": 1.0}, "--attn-dropout must lie in [0, 1), got 1.0"),
    ({"env": "othello", "resid_dropout": -0.1}, "--resid-dropout must lie in [0, 1)"),
    ({"env": "othello", "embd_dropout": 1.5}, "--embd-dropout must lie in [0, 1)"),
    ({"env": "othello", "norm": "sideways"}, "unknown norm 'sideways'; choose from pre, post"),
    ({"env": "othello", "pos": "sinus"}, "unknown pos 'sinus'"),
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
    with pytest.raises(ValueError, match=re.escape(match)):
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


# ----------------------------------------------------------------------------------------------
# RunConfig is the one source: everything below is derived from its fields' metadata


def test_every_field_has_help_and_a_known_type():
    for name, o in C.OPTS.items():
        assert o.help and C.TYPES[name] in (int, float, str, bool), name
        if o.choices:
            assert C.TYPES[name] is str and (C.FIELDS[name].default in o.choices + (None,))
    assert set(C.MODEL_FIELDS) == {"n_layer", "n_head", "n_embd", "dropout", "attn_dropout",
                                   "resid_dropout", "embd_dropout", "norm", "pos", "pos_range",
                                   "head_dim"}
    assert C.RUNTIME_ONLY == ("track", "out", "stop_at")
    assert {"steps", "device", "out", "stop_at"} <= C.RESUMABLE and "lr" not in C.RESUMABLE


def test_model_fields_are_gptconfig_fields_and_the_shared_lists_have_one_home():
    import dataclasses

    from agents import config, losses
    from train.data import tasks

    assert set(C.MODEL_FIELDS) <= {f.name for f in dataclasses.fields(config.GPTConfig)}
    assert C.LOSSES is losses.LOSSES and C.ENVS is tasks.TASKS
    assert C.OPTS["norm"].choices is config.NORMS and C.OPTS["pos"].choices is config.POSITIONS
    assert C.OPTS["device"].choices is C.DEVICES and C.OPTS["env"].choices is C.ENVS


def test_model_overrides_passes_only_the_fields_given():
    cfg = C.merge({"env": "setcomp", "attn_dropout": 0.1, "dropout": 0.0, "n_layer": 2})
    assert C.model_overrides(cfg) == {"attn_dropout": 0.1, "dropout": 0.0, "n_layer": 2}


def test_help_text_shows_the_dataclass_default_once():
    assert C.help_text("steps") == "Optimizer steps (default: 50000)."
    assert C.help_text("ema").endswith("(default: off).")
    assert C.help_text("attn_dropout").endswith("(default: --dropout).")
    assert C.help_text("vocab_size").endswith(f"(default: {C.DEFAULT_VOCAB}).")
    assert "default" not in C.help_text("env") and "default" not in C.help_text("stop_at")


def test_train_help_is_generated_from_the_fields():
    from click.testing import CliRunner

    from train.cli.main import main

    r = CliRunner().invoke(main, ["train", "--help"])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())  # undo click's line wrapping
    for name in C.FIELDS:
        assert C.flag(name) in text, name
    for flags in ("--ema / --no-ema", "--bema / --no-bema", "--compile / --no-compile",
                  "--env [othello|setcomp]", "--loss [legal|next]", "--device [auto|cpu|cuda]",
                  "--norm [pre|post|none]"):
        assert flags in text, flags
    assert text.count("(default: 50000)") == 1 and "(default: 0.0005)" in text


@pytest.mark.parametrize("name, text, value", [
    ("steps", "7", 7), ("lr", "1e-3", 1e-3), ("lr", "2", 2.0), ("ema", "True", True),
    ("bema", "false", False), ("norm", "post", "post"), ("attn_dropout", "0.1", 0.1),
])
def test_parse_text_uses_the_field_type(name, text, value):
    got = C.parse_text(name, text)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("name, text, match", [
    ("steps", "1.5", "expected int"), ("lr", "fast", "expected int or float"),
    ("ema", "1", "expected bool"),
])
def test_parse_text_errors(name, text, match):
    with pytest.raises(ValueError, match=match):
        C.parse_text(name, text)


def test_load_toml_checks_the_new_dropout_fields(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("attn-dropout = 0\nembd_dropout = 0.25\n")
    assert C.load_toml(p) == {"attn_dropout": 0.0, "embd_dropout": 0.25}
    p.write_text('resid_dropout = "high"\n')
    with pytest.raises(ValueError, match="resid_dropout must be int or float"):
        C.load_toml(p)


# ----------------------------------------------------------------------------------------------
# The averaging ranges: the config and agents.averaging accept exactly the same values


@pytest.mark.parametrize("decay, ok", [
    (0.0, True), (0.5, True), (0.999, True), (1.0, True), (-1e-9, False), (1.0 + 1e-9, False),
    (math.nan, False),
])
def test_ema_decay_range_agrees_with_agents_averaging(decay, ok):
    import torch

    from agents.averaging import EMA

    cfg = C.merge({"env": "othello", "ema_decay": decay})
    model = torch.nn.Linear(2, 2)
    if ok:
        C.validate(cfg)
        EMA(model, decay=decay)
    else:
        with pytest.raises(ValueError, match="--ema-decay"):
            C.validate(cfg)
        with pytest.raises(ValueError, match="decay"):
            EMA(model, decay=decay)


@pytest.mark.parametrize("lag, multiplier, ok", [
    (0.0, 1.0, True), (1.0, 0.0, True), (10.0, 1.0, True), (0.3, 0.7, True),
    (0.0, 0.0, False), (0.5, 0.4, False), (-0.5, 2.0, False), (2.0, -0.5, False),
    (math.inf, 1.0, False),
])
def test_bema_lag_range_agrees_with_agents_averaging(lag, multiplier, ok):
    import torch

    from agents.averaging import BEMA

    cfg = C.merge({"env": "othello", "bema_lag": lag, "bema_multiplier": multiplier})
    model = torch.nn.Linear(2, 2)
    if ok:
        C.validate(cfg)
        bema = BEMA(model, lag=lag, multiplier=multiplier)
        beta, alpha = bema.coefficients(1)
        assert 0 < beta <= 1 and 0 < alpha <= 1
    else:
        with pytest.raises(ValueError, match="--bema-"):
            C.validate(cfg)
        with pytest.raises(ValueError, match="BEMA"):
            BEMA(model, lag=lag, multiplier=multiplier)
