"""train.analysis.evaluate: legality metrics against hand-computed values, splits, play vs random."""

import math

import pytest
import torch

from agents import GPT, legal_loss, preset
from train.analysis import evaluate as ev
from train.data.tasks import Batch, make_task

PAD = 0


def _one(logits, legal):
    """Shape single-position inputs as (1, 1, V)."""
    return (torch.tensor(logits, dtype=torch.float32)[None, None],
            torch.tensor(legal, dtype=torch.bool)[None, None])


def test_position_metrics_hand_computed():
    # vocabulary: PAD=0, tokens 1..4; legal {1, 2}
    z, legal = _one([0.0, 3.0, 1.0, 2.0, -1.0], [False, True, True, False, False])
    pm = ev.position_metrics(z, legal, PAD)
    p = torch.softmax(z[0, 0], -1)
    assert pm["top1_err"].item() == 0.0  # argmax is token 1, legal
    assert pm["loss"].item() == pytest.approx(-(p[1].log() + p[2].log()).item() / 2, rel=1e-6)
    assert pm["sep_acc"].item() == 0.0  # min legal 1.0 < max illegal 2.0
    assert pm["margin"].item() == pytest.approx(1.0 - 2.0)
    assert pm["illegal_mass"].item() == pytest.approx((p[0] + p[3] + p[4]).item(), rel=1e-6)
    q = torch.tensor([0, 0.5, 0.5, 0, 0])
    assert pm["tv"].item() == pytest.approx(0.5 * (p - q).abs().sum().item(), rel=1e-6)
    assert pm["valid"].item() and pm["has_illegal"].item()


def test_pad_is_excluded_from_argmax_and_separation():
    # PAD has the largest logit: top-1 must skip it; it is not an illegal *move* either
    z, legal = _one([9.0, 2.0, 1.0, 0.0], [True, True, False, False])  # PAD marked legal: ignored
    pm = ev.position_metrics(z, legal, PAD)
    assert pm["top1_err"].item() == 0.0
    assert pm["sep_acc"].item() == 1.0 and pm["margin"].item() == pytest.approx(1.0)
    # PAD's probability counts as illegal mass
    assert pm["illegal_mass"].item() > 0.99


def test_top1_error_when_argmax_is_illegal():
    z, legal = _one([0.0, 1.0, 5.0, 0.0], [False, True, False, False])
    assert ev.position_metrics(z, legal, PAD)["top1_err"].item() == 1.0


def test_perfect_uniform_prediction_scores_perfectly():
    z, legal = _one([-50.0, 10.0, 10.0, -50.0, 10.0], [False, True, True, False, True])
    m = ev.legality_metrics(z, legal, PAD)
    assert m["top1_err"] == 0 and m["sep_acc"] == 1 and m["positions"] == 1
    assert m["tv"] < 1e-6 and m["illegal_mass"] < 1e-6  # float32
    assert m["loss"] == pytest.approx(math.log(3), rel=1e-6)  # the target's entropy


def test_position_without_illegal_token_counts_as_separated_and_has_no_margin():
    z, legal = _one([0.0, 1.0, 2.0], [False, True, True])
    m = ev.legality_metrics(z, legal, PAD)
    assert m["sep_acc"] == 1.0 and math.isnan(m["margin"])


def test_loss_matches_agents_legal_loss_and_positions_without_target_are_skipped():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 7, generator=g)
    legal = torch.rand(3, 5, 7, generator=g) < 0.4
    legal[..., PAD] = False
    legal[1, 2] = False  # no target here
    m = ev.legality_metrics(logits, legal, PAD)
    assert m["positions"] == int(legal.any(-1).sum())
    assert m["loss"] == pytest.approx(legal_loss(logits, legal).item(), rel=1e-5)


def test_no_position_gives_nan():
    m = ev.legality_metrics(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3, dtype=torch.bool), PAD)
    assert m["positions"] == 0 and math.isnan(m["top1_err"])


def test_position_metrics_rejects_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        ev.position_metrics(torch.zeros(1, 2, 3), torch.zeros(1, 2, 4, dtype=torch.bool), PAD)
    with pytest.raises(ValueError, match="bool"):
        ev.position_metrics(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3), PAD)
    with pytest.raises(ValueError, match="pad_id"):
        ev.position_metrics(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3, dtype=torch.bool), 3)


class _PositionModel(torch.nn.Module):
    """Logits right (legal token 1 highest) before position 2, wrong (token 2) from there on."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, tokens):
        B, T = tokens.shape
        z = torch.zeros(B, T, 4) + self.w
        z[:, :2, 1] = 5.0
        z[:, 2:, 2] = 5.0
        return z


def _batch(B=3, T=4):
    legal = torch.zeros(B, T, 4, dtype=torch.bool)
    legal[..., 1] = True
    return Batch(torch.ones(B, T, dtype=torch.long), legal, torch.full((B, T), -1))


def test_evaluate_model_splits_seen_and_unseen_and_restores_mode():
    model = _PositionModel().train()
    state = torch.get_rng_state()
    res = ev.evaluate_model(model, _batch(), pad_id=PAD, train_max_len=2, chunk_size=2)
    assert res["seen"]["top1_err"] == 0.0 and res["seen"]["positions"] == 6
    assert res["unseen"]["top1_err"] == 1.0 and res["unseen"]["positions"] == 6
    assert model.training
    assert torch.equal(torch.get_rng_state(), state)
    full = ev.evaluate_model(model, _batch(), pad_id=PAD, train_max_len=4)
    assert set(full) == {"seen", "per_length"} and full["seen"]["top1_err"] == 0.5


def test_evaluate_weights_and_flat_scalars_tags():
    res = ev.evaluate_weights({"raw": _PositionModel(), "ema": _PositionModel()}, _batch(),
                              pad_id=PAD, train_max_len=3)
    tags = ev.flat_scalars(res)
    assert {f"eval/{w}/{s}/{m}" for w in ("raw", "ema") for s in ev.SPLITS
            for m in ev.METRICS + ev.MECHANISM} == set(tags)
    assert tags["eval/ema/unseen/top1_err"] == 1.0


def test_evaluate_model_on_a_real_task_matches_direct_computation():
    task = make_task("setcomp", vocab_size=6)
    batch = task.eval_batch(8, seed=3)
    torch.manual_seed(0)
    model = GPT(preset("setcomp-1l", vocab_size=task.vocab_size, block_size=task.block_size))
    res = ev.evaluate_model(model, batch, pad_id=task.pad_id, train_max_len=3, chunk_size=3)
    with torch.no_grad():
        logits = model.eval()(batch.tokens)
    pos = torch.arange(task.block_size).expand(8, -1)
    direct = ev.legality_metrics(logits, batch.legal, task.pad_id, positions=pos >= 3)
    for m in ev.METRICS:
        assert res["unseen"][m] == pytest.approx(direct[m], rel=1e-5, abs=1e-7, nan_ok=True)


def test_evaluate_model_rejects_bad_arguments():
    with pytest.raises(ValueError, match="train_max_len"):
        ev.evaluate_model(_PositionModel(), _batch(), pad_id=PAD, train_max_len=0)
    with pytest.raises(ValueError, match="chunk_size"):
        ev.evaluate_model(_PositionModel(), _batch(), pad_id=PAD, train_max_len=1, chunk_size=0)


def test_play_models_is_reproducible_and_format_results_prints_its_counts():
    """The one model-vs-random player (train.analysis.play.play_models, as lgagent play) on an
    untrained GPT in train mode: the same seed, the same games; the mode is left as it was;
    format_results prints match's counts."""
    from train.analysis.play import play_models

    torch.manual_seed(0)
    model = GPT(preset("tiny")).train()
    a = play_models({"raw": model}, "random", 4, seed=5)
    assert a == play_models({"raw": model}, "random", 4, seed=5)
    r = a["raw"]
    assert r["games"] == 4 and r["wins"] + r["draws"] + r["losses"] == 4
    assert 0.0 <= r["first_choice_legal"] <= 1.0 and r["decisions"] >= 4 * 25
    assert model.training  # mode restored
    line = ev.format_results(None, a)[0]
    assert line.startswith("play raw vs random (4 games): W-D-L "
                           f"{r['wins']}-{r['draws']}-{r['losses']}, score {r['score']:.3f}")
    assert line.endswith(f"first choice legal {r['first_choice_legal']:.4f}")
    with pytest.raises(ValueError, match="games must be a positive integer"):
        play_models({"raw": model}, "random", 0)


def test_evaluate_checkpoint_and_eval_command_match_the_runs_last_evaluation(tmp_path):
    import json

    from click.testing import CliRunner
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from train.cli.main import main

    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "--env", "setcomp", "--vocab-size", "8", "--preset",
                                  "tiny", "--steps", "3", "--batch-size", "8", "--eval-size",
                                  "16", "--train-max-len", "4", "--ema", "--no-progress",
                                  "--out", str(out)])
    assert r.exit_code == 0, r.output + r.stderr
    res = ev.evaluate_checkpoint(out)
    assert res["step"] == 3 and res["train_max_len"] == 4 and set(res["eval"]) == {"raw", "ema"}
    ea = EventAccumulator(str(out))
    ea.Reload()
    for tag, v in ev.flat_scalars(res["eval"]).items():
        if not math.isnan(v):
            assert ea.Scalars(tag)[-1].value == pytest.approx(v, rel=1e-6), tag

    only = ev.evaluate_checkpoint(out / "checkpoint.pt", weights=["ema"], eval_size=4,
                                  train_max_len=7)
    assert set(only["eval"]) == {"ema"} and set(only["eval"]["ema"]) == {"seen", "per_length"}
    with pytest.raises(ValueError, match="no bema weights"):
        ev.evaluate_checkpoint(out, weights=["bema"])
    with pytest.raises(ValueError, match="only Othello"):
        ev.evaluate_checkpoint(out, play_games=2)
    with pytest.raises(ValueError, match="play_games must be >= 0, got -1"):
        ev.evaluate_checkpoint(out, play_games=-1)
    with pytest.raises(ValueError, match="play_seed must be a non-negative integer, got -1"):
        ev.evaluate_checkpoint(out, play_seed=-1)
    with pytest.raises(ValueError, match="train_max_len must lie"):
        ev.evaluate_checkpoint(out, train_max_len=8)

    from train.cli.eval import eval_command

    runner = CliRunner()
    r = runner.invoke(eval_command, [str(out), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["eval"]["raw"]["unseen"]["positions"] == 16 * 3
    r = runner.invoke(eval_command, [str(out), "--weights", "raw"])
    assert r.exit_code == 0 and "raw      unseen" in r.output
    r = runner.invoke(eval_command, [str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "no checkpoint at" in r.output


def test_eval_command_on_a_checkpoint_whose_weights_do_not_fit_its_config(tmp_path):
    # a checkpoint that passes the format checks but whose model config was edited (or is
    # corrupted): exit 2 with one line, as for any unusable input, not a traceback
    from click.testing import CliRunner

    from train.cli.main import main

    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "--env", "setcomp", "--vocab-size", "6", "--preset",
                                  "tiny", "--steps", "1", "--batch-size", "4", "--eval-size",
                                  "4", "--ema", "--no-progress", "--out", str(out)])
    assert r.exit_code == 0, r.output + r.stderr
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    for edit, match in (({"n_embd": 32}, "do not fit its model config"),
                        ({"n_layers": 3}, "model_config is invalid"),
                        ({"norm": "sideways"}, "model_config is invalid")):
        bad = {**ckpt, "model_config": {**ckpt["model_config"], **edit}}
        path = tmp_path / "bad.pt"
        torch.save(bad, path)
        for weights in ("raw", "ema"):
            r = CliRunner().invoke(main, ["eval", str(path), "--weights", weights])
            assert r.exit_code == 2, (r.output, r.stderr)
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1 and match in lines[0], r.stderr


def test_a_run_without_an_eval_seed_is_evaluated_on_the_training_default(tmp_path):
    # regression: `lgagent eval` fell back to held-out seed 0 while training used 1234
    from click.testing import CliRunner

    from train.cli.main import main
    from train.training import config as C

    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "--env", "setcomp", "--vocab-size", "8", "--preset",
                                  "tiny", "--steps", "2", "--batch-size", "8", "--eval-size",
                                  "16", "--train-max-len", "4", "--no-progress", "--out",
                                  str(out)])
    assert r.exit_code == 0, r.output + r.stderr
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["config"]["eval_seed"] == C.FIELDS["eval_seed"].default == 1234
    del ckpt["config"]["eval_seed"]  # as a config saved before the field existed
    old = tmp_path / "old.pt"
    torch.save(ckpt, old)
    default = ev.evaluate_checkpoint(old)["eval"]
    assert default == ev.evaluate_checkpoint(out)["eval"]
    assert default == ev.evaluate_checkpoint(old, eval_seed=1234)["eval"]
    assert default != ev.evaluate_checkpoint(old, eval_seed=0)["eval"]


def test_reading_line_compares_each_average_with_raw_at_unseen_lengths():
    from train.analysis.evaluate import reading

    m = {"top1_err": 0.4, "sep_acc": 1.0, "margin": 1.0, "loss": 1.0, "illegal_mass": 0.0,
         "tv": 0.0}
    res = {"raw": {"seen": m, "unseen": m},
           "ema_0.99": {"seen": m, "unseen": {**m, "top1_err": 0.35}},
           "bema": {"seen": m, "unseen": {**m, "top1_err": 0.45}}}
    (line,) = reading(res)
    assert "raw 0.4000" in line and "ema_0.99 0.3500 (-0.0500)" in line
    assert "bema 0.4500 (+0.0500)" in line
    assert reading({"raw": res["raw"]}) == []  # nothing to compare
    assert reading({"raw": {"seen": m}, "ema": {"seen": m}}) == []  # no unseen lengths
