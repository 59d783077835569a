"""`lgagent train` end to end (tiny preset, a few steps): files, TensorBoard, config precedence,
bad input, RUN_DIR safety, exact resume, Ctrl-C, atomic checkpoints."""

import os
import signal

import pytest
import torch
from click.testing import CliRunner

from agents import checkpoint as CK
from train.cli.main import main
from train.training import trainer as T
from train.training.assemble import lr_factor

# set complement with 8 tokens (block 7): no Numba, fast
FAST = ["--env", "setcomp", "--vocab-size", "8", "--preset", "tiny", "--batch-size", "8",
        "--eval-size", "16", "--log-every", "1", "--no-progress"]


def train(*args):
    return CliRunner().invoke(main, ["train", *map(str, args)])


def ckpt(out):
    return CK.load(os.path.join(out, "checkpoint.pt"))


def assert_one_line_error(result, match):
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    assert match in lines[0], lines[0]
    assert "Traceback" not in result.output


def events(out):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(out))
    ea.Reload()
    return ea


# ----------------------------------------------------------------------------------------------
# Smoke tests


def test_othello_run_writes_checkpoint_config_and_tensorboard(tmp_path):
    out = tmp_path / "run"
    r = train("--env", "othello", "--ema", "--bema", "--preset", "tiny", "--steps", 4,
              "--batch-size", 8, "--eval-size", 16, "--eval-every", 2, "--log-every", 2,
              "--train-max-len", 20, "--play-games", 2, "--no-progress", "--out", out)
    assert r.exit_code == 0, r.output + r.stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("events")) == [
        "checkpoint.pt", "config.toml"]
    assert not any(p.is_dir() for p in out.iterdir())  # hparams did not create a sub-run
    c = ckpt(out)
    assert set(CK.KEYS) <= set(c)
    assert c["step"] == 4 and c["config"]["env"] == "othello" and c["config"]["train_max_len"] == 20
    assert c["ema"]["kind"] == "ema" and c["bema"]["kind"] == "bema"
    assert c["data"]["step"] == 4 and c["model_config"]["n_layer"] == 2
    assert "play ema vs random (2 games)" in r.output
    assert "bema     unseen" in r.output

    ea = events(out)
    scalars = set(ea.Tags()["scalars"])
    for tag in ("loss/train", "charts/grad_norm", "charts/lr", "charts/tokens_per_s",
                "charts/data_share", "eval/raw/seen/top1_err", "eval/ema/unseen/top1_err",
                "eval/bema/unseen/sep_acc", "eval/raw/seen/margin", "eval/ema/play/win",
                "eval/bema/play/first_choice_legal"):
        assert tag in scalars, tag
    assert [e.step for e in ea.Scalars("loss/train")] == [2, 4]
    assert [e.step for e in ea.Scalars("eval/raw/seen/top1_err")] == [2, 4]
    lr = [e.value for e in ea.Scalars("charts/lr")]
    assert lr[0] > lr[-1]  # warmup 0 for 4 steps (min(1000, 4 // 10)): cosine decays
    assert "config/text_summary" in ea.Tags()["tensors"]
    hp = ea.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info",
            "_hparams_/session_end_info"} <= set(hp)


def test_setcomp_model_and_optimiser_flags_reach_the_run(tmp_path):
    out = tmp_path / "run"
    r = train(*FAST, "--steps", 3, "--n-layer", 1, "--n-head", 2, "--n-embd", 16, "--dropout",
              0.3, "--norm", "post", "--pos", "rope", "--loss", "next", "--lr", 1e-3,
              "--beta1", 0.8, "--beta2", 0.9, "--weight-decay", 0.05, "--grad-clip", 0,
              "--warmup", 1, "--min-lr-ratio", 0.5, "--ema-decay", 0.9, "--ema",
              "--bema", "--bema-ema-power", 0.4, "--bema-bias-power", 0.3, "--bema-lag", 5,
              "--bema-multiplier", 2, "--bema-burn-in", 1, "--bema-update-every", 2,
              "--seed", 3, "--num-threads", 1, "--device", "cpu", "--eval-every", 0,
              "--ckpt-every", 1, "--eval-seed", 9, "--out", out)
    assert r.exit_code == 0, r.output + r.stderr
    c = ckpt(out)
    mc = c["model_config"]
    assert (mc["n_layer"], mc["n_head"], mc["n_embd"], mc["dropout"], mc["norm"], mc["pos"]) == (
        1, 2, 16, 0.3, "post", "rope")
    assert (mc["vocab_size"], mc["block_size"]) == (9, 7)
    cfg = c["config"]
    assert (cfg["loss"], cfg["seed"], cfg["warmup"], cfg["grad_clip"]) == ("next", 3, 1, 0.0)
    groups = c["optimizer"]["param_groups"]
    assert groups[0]["betas"] == (0.8, 0.9) and groups[0]["weight_decay"] == 0.05
    assert groups[1]["weight_decay"] == 0.0  # biases, LayerNorms, embeddings
    # after 3 steps, lr = peak * lr_factor(3) (warmup 1, cosine to 0.5 of the peak at step 3)
    assert groups[0]["lr"] == pytest.approx(1e-3 * lr_factor(3, warmup=1, steps=3,
                                                                min_ratio=0.5))
    assert c["ema"]["decay"] == 0.9
    assert (c["bema"]["lag"], c["bema"]["multiplier"], c["bema"]["burn_in"],
            c["bema"]["update_every"]) == (5.0, 2.0, 1, 2)
    assert c["data"]["seed"] == 3


def test_config_file_and_command_line_precedence(tmp_path):
    conf = tmp_path / "run.toml"
    conf.write_text('env = "setcomp"\nvocab-size = 6\npreset = "tiny"\nsteps = 3\n'
                    'batch_size = 4\nlr = 0.01\neval_size = 8\n')
    out = tmp_path / "run"
    r = train("--config", conf, "--steps", 2, "--no-progress", "--out", out)
    assert r.exit_code == 0, r.output + r.stderr
    cfg = ckpt(out)["config"]
    assert (cfg["steps"], cfg["batch_size"], cfg["lr"], cfg["vocab_size"]) == (2, 4, 0.01, 6)
    # the saved config.toml reproduces the run's config
    from train.training import config as C

    assert C.merge(C.load_toml(out / "config.toml")).saved_dict() == cfg


def test_othello_corpus_file_is_used_and_its_position_saved(tmp_path):
    import numpy as np

    from othello_env.games import generate_games

    corpus = tmp_path / "games.npy"
    np.save(corpus, generate_games(50, seed=1))
    out = tmp_path / "run"
    r = train("--env", "othello", "--preset", "tiny", "--data", corpus, "--steps", 3,
              "--batch-size", 8, "--eval-size", 8, "--play-games", 0, "--no-progress",
              "--out", out)
    assert r.exit_code == 0, r.output + r.stderr
    c = ckpt(out)
    assert c["config"]["data"] == str(corpus)
    assert (c["data"]["offset"], c["data"]["corpus_games"]) == (24, 50)
    np.save(corpus, generate_games(40, seed=1))  # the corpus changed under the run
    assert_one_line_error(train("--resume", "--steps", 4, "--out", out),
                          "data stream state does not fit")


def test_compile_flag_calls_torch_compile(tmp_path, monkeypatch):
    calls = []

    def fake_compile(model, *a, **k):  # the real inductor compile takes a minute on a CPU
        calls.append(model)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    r = train(*FAST, "--steps", 2, "--compile", "--out", tmp_path / "run")
    assert r.exit_code == 0, r.output + r.stderr
    assert len(calls) == 1 and isinstance(calls[0], torch.nn.Module)
    assert ckpt(tmp_path / "run")["config"]["compile"] is True


@pytest.mark.slow
def test_compile_for_real(tmp_path):
    r = train(*FAST, "--steps", 2, "--compile", "--out", tmp_path / "run")
    assert r.exit_code == 0, r.output + r.stderr


# ----------------------------------------------------------------------------------------------
# Bad input: exit 2, one line, nothing written


@pytest.mark.parametrize("args, match", [
    (["--env", "chess"], "'chess' is not one of"),
    (["--env", "othello", "--preset", "huge"], "unknown model preset 'huge'"),
    (["--env", "othello", "--steps", 0], "'--steps': 0 is not in the range x>=1"),
    (["--env", "othello", "--batch-size", -1], "--batch-size"),
    (["--env", "othello", "--train-max-len", 60], "exceeds the block size 59"),
    (["--env", "setcomp", "--vocab-size", 8, "--train-max-len", 8], "exceeds the block size 7"),
    (["--env", "othello", "--data", "/nonexistent/games.npy"], "no such file"),
    (["--env", "setcomp", "--vocab-size", 1], "'--vocab-size': 1 is not in the range x>=2"),
    (["--env", "othello", "--vocab-size", 20], "setcomp only"),
    (["--env", "othello", "--norm", "sideways"], "norm"),
    (["--env", "othello", "--n-embd", 30, "--n-head", 4], "divisible"),
    (["--env", "othello", "--lr", 0], "'--lr': 0.0 is not in the range x>0"),
    (["--env", "othello", "--lr", "nan"], "--lr must be a positive"),  # passes click's range
    (["--env", "othello", "--steps", "ten"], "'ten' is not a valid integer"),
    (["--env", "setcomp", "--eval-seed", -1, "--steps", 1],
     "'--eval-seed': -1 is not in the range 0<=x<=9223372036854775807"),
    (["--env", "setcomp", "--seed", 2**63, "--steps", 1],
     f"'--seed': {2**63} is not in the range 0<=x<=9223372036854775807"),
    (["--env", "othello", "--resume"], "--resume needs --out"),
    (["--env", "othello", "--resume", "--force"], "exclude each other"),
    ([], "--env is required"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args, match):
    out = tmp_path / "run"
    r = train(*args, "--out", out) if "--resume" not in args else train(*args)
    assert_one_line_error(r, match)
    assert not out.exists()


def test_unreadable_data_and_config_files(tmp_path):
    junk = tmp_path / "games.npy"
    junk.write_bytes(b"not numpy at all")
    out = tmp_path / "run"
    assert_one_line_error(train("--env", "othello", "--data", junk, "--out", out),
                          "not a readable .npy")
    bad = tmp_path / "c.toml"
    bad.write_text("steps = [\n")
    assert_one_line_error(train("--config", bad, "--out", out), "not valid TOML")
    assert_one_line_error(train("--config", tmp_path / "none.toml", "--out", out), "none.toml")
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_bad_input(tmp_path):
    assert_one_line_error(train(*FAST, "--device", "cuda", "--out", tmp_path / "r"), "no CUDA")
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------------------------
# RUN_DIR safety


def test_non_empty_run_dir_is_refused_and_force_starts_over(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    r = train(*FAST, "--steps", 2, "--out", out)
    assert_one_line_error(r, "is not empty")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]

    assert train(*FAST, "--steps", 2, "--force", "--out", out).exit_code == 0
    first = ckpt(out)
    r = train(*FAST, "--steps", 3, "--force", "--seed", 1, "--out", out)
    assert r.exit_code == 0, r.output + r.stderr
    c = ckpt(out)
    assert c["step"] == 3 and c["config"]["seed"] == 1 and first["step"] == 2
    assert (out / "notes.txt").read_text() == "mine"  # --force removes only run files
    assert len(list(out.glob("events.out.tfevents.*"))) == 1  # the old events are gone
    assert_one_line_error(train(*FAST, "--steps", 2, "--out", out), "is not empty")


def test_refused_forced_run_leaves_the_previous_run_intact(tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert train(*FAST, "--steps", 1, "--out", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def too_big(self, n, *a, **k):
        raise MemoryError

    from train.data.tasks import Task

    monkeypatch.setattr(Task, "eval_batch", too_big)
    r = train(*FAST, "--steps", 1, "--eval-size", 10**6, "--force", "--out", out)
    assert_one_line_error(r, "--eval-size 1000000: the held-out batch does not fit")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_out_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert_one_line_error(train(*FAST, "--out", f), "not a directory")
    assert f.read_text() == "x"
    # a RUN_DIR that would have to be created below a file
    for out in (f / "run", f / "deeper" / "run"):
        assert_one_line_error(train(*FAST, "--steps", 1, "--out", out), "is not a directory")
    assert f.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["file"]


# ----------------------------------------------------------------------------------------------
# Exact resume, Ctrl-C


RESUME = [*FAST, "--steps", 6, "--ema", "--bema", "--dropout", 0.2, "--eval-every", 2,
          "--ckpt-every", 0, "--bema-update-every", 2]


def _assert_same_state(a, b):
    def same(x, y, path):
        if isinstance(x, torch.Tensor):
            assert torch.equal(x, y), path
        elif isinstance(x, dict):
            assert set(x) == set(y), path
            for k in x:
                if k not in ("stop_at",):
                    same(x[k], y[k], f"{path}.{k}")
        elif isinstance(x, (list, tuple)):
            assert len(x) == len(y), path
            for i, (u, v) in enumerate(zip(x, y)):
                same(u, v, f"{path}[{i}]")
        else:
            assert x == y, (path, x, y)

    for key in ("step", "model", "optimizer", "scheduler", "ema", "bema", "data", "rng"):
        same(a[key], b[key], key)


def test_resume_is_bitwise_exact_after_stop_at_and_after_ctrl_c(tmp_path, monkeypatch):
    full, split, intr = tmp_path / "full", tmp_path / "split", tmp_path / "intr"
    assert train(*RESUME, "--out", full).exit_code == 0
    reference = ckpt(full)

    r = train(*RESUME, "--stop-at", 3, "--out", split)
    assert r.exit_code == 0 and ckpt(split)["step"] == 3
    assert "resume with: lgagent train --resume" in r.output
    r = train("--resume", "--out", split, "--no-progress")
    assert r.exit_code == 0, r.output + r.stderr
    _assert_same_state(reference, ckpt(split))

    # Ctrl-C during step 4: the step completes, a checkpoint is saved, exit code 130
    original = T.Trainer.train_step

    def step_with_sigint(self, batch):
        out = original(self, batch)
        if self.step == 3:  # the 4th step (self.step counts completed steps)
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(T.Trainer, "train_step", step_with_sigint)
    r = train(*RESUME, "--out", intr)
    assert r.exit_code == 130, r.output + r.stderr
    assert "stopped by SIGINT" in r.output and ckpt(intr)["step"] == 4
    monkeypatch.setattr(T.Trainer, "train_step", original)
    assert train("--resume", "--out", intr, "--no-progress").exit_code == 0
    _assert_same_state(reference, ckpt(intr))

    # TensorBoard after a resume: one value per step, none duplicated
    steps = [e.step for e in events(intr).Scalars("loss/train")]
    assert sorted(steps) == [1, 2, 3, 4, 5, 6]


def test_crash_then_resume_discards_events_logged_after_the_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    original = T.Trainer.train_step

    def crash_at_step_6(self, batch):
        if self.step == 5:
            raise RuntimeError("out of memory")
        return original(self, batch)

    monkeypatch.setattr(T.Trainer, "train_step", crash_at_step_6)
    r = train(*FAST, "--steps", 8, "--ckpt-every", 2, "--eval-every", 0, "--out", out)
    assert isinstance(r.exception, RuntimeError)
    assert ckpt(out)["step"] == 4  # the last periodic checkpoint
    assert sorted(e.step for e in events(out).Scalars("loss/train")) == [1, 2, 3, 4, 5]
    monkeypatch.setattr(T.Trainer, "train_step", original)
    assert train("--resume", "--out", out, "--no-progress").exit_code == 0
    steps = [e.step for e in events(out).Scalars("loss/train")]
    assert sorted(steps) == list(range(1, 9))  # step 5 of the crashed run was purged


def test_sigterm_saves_and_exits_143(tmp_path, monkeypatch):
    original = T.Trainer.train_step

    def step_with_sigterm(self, batch):
        out = original(self, batch)
        if self.step == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(T.Trainer, "train_step", step_with_sigterm)
    r = train(*FAST, "--steps", 5, "--out", tmp_path / "run")
    assert r.exit_code == 143 and ckpt(tmp_path / "run")["step"] == 2


def test_stop_flag_second_sigint_aborts_and_handlers_are_restored():
    before = signal.getsignal(signal.SIGINT)
    with T.StopFlag() as flag:
        os.kill(os.getpid(), signal.SIGINT)
        assert flag.signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_resume_refuses_incompatible_config_and_allows_more_steps(tmp_path):
    out = tmp_path / "run"
    assert train(*FAST, "--steps", 2, "--out", out).exit_code == 0
    before = (out / "checkpoint.pt").read_bytes()
    for args, match in ((["--n-embd", 32], "n_embd (saved 64, given 32)"),
                        (["--env", "othello"], "env (saved 'setcomp', given 'othello')"),
                        (["--ema"], "ema (saved False, given True)"),
                        (["--steps", 1], "below the checkpoint's step 2"),
                        (["--stop-at", 2, "--steps", 4], "not after the checkpoint's step 2")):
        assert_one_line_error(train("--resume", "--out", out, *args), match)
    assert (out / "checkpoint.pt").read_bytes() == before
    # repeating an unchanged option is fine; --steps may grow
    r = train("--resume", "--out", out, "--vocab-size", 8, "--steps", 4, "--no-progress")
    assert r.exit_code == 0, r.output + r.stderr
    assert ckpt(out)["step"] == 4 and ckpt(out)["config"]["steps"] == 4


def test_resume_from_missing_corrupted_or_foreign_checkpoint(tmp_path):
    out = tmp_path / "run"
    assert_one_line_error(train("--resume", "--out", out), "no checkpoint at")
    assert train(*FAST, "--steps", 1, "--out", out).exit_code == 0
    path = out / "checkpoint.pt"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert_one_line_error(train("--resume", "--out", out), "not a readable checkpoint")
    torch.save({"weights": torch.zeros(2)}, path)
    assert_one_line_error(train("--resume", "--out", out), "not an lgagent checkpoint")
    path.write_bytes(b"\x00" * 100)
    assert_one_line_error(train("--resume", "--out", out), "not a readable checkpoint")


def test_resume_from_checkpoint_whose_states_do_not_fit(tmp_path):
    # right format and model config, but a state inside is damaged: one line, exit 2
    out = tmp_path / "run"
    assert train(*FAST, "--steps", 1, "--ema", "--out", out).exit_code == 0
    path = out / "checkpoint.pt"
    good = torch.load(path, weights_only=True)
    damaged = {  # the reader's schema check finds the first two, the restore the third
        "damaged checkpoint: model weights do not fit its model config: missing 'wte.weight'":
            {**good, "model": {k: v for k, v in good["model"].items() if k != "wte.weight"}},
        "checkpoint's optimizer state does not fit":
            {**good, "optimizer": {"state": {}, "param_groups": []}},
        "damaged checkpoint: ema.module weights do not fit its model config: missing":
            {**good, "ema": {**good["ema"], "module": {}}},
    }
    for match, ckpt_ in damaged.items():
        torch.save(ckpt_, path)
        before = path.read_bytes()
        assert_one_line_error(train("--resume", "--steps", 2, "--out", out), match)
        assert path.read_bytes() == before


# ----------------------------------------------------------------------------------------------
# Checkpoint files


def test_failed_save_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    good = {"format": CK.FORMAT, "version": CK.VERSION, "step": 1, **{
        k: None for k in CK.KEYS if k not in ("format", "version", "step")}}
    T.save_checkpoint(path, good)

    def dying_save(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"PK\x03\x04 half a zip")  # the process dies mid-write
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(T.WriteFailed, match="disk full writing .*; the previous checkpoint at "
                       "step 1 is intact"):
        T.save_checkpoint(path, {**good, "step": 2}, previous_step=1)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary left


def test_load_checkpoint_rejects_other_versions_and_missing_keys(tmp_path):
    path = tmp_path / "c.pt"
    torch.save({"format": CK.FORMAT, "version": 99}, path)
    with pytest.raises(ValueError, match="version 99 is not supported"):
        CK.load(path)
    torch.save({"format": CK.FORMAT, "version": CK.VERSION, "step": 0}, path)
    with pytest.raises(ValueError, match="lacks config"):
        CK.load(path)


def test_model_from_checkpoint_holds_each_weights(tmp_path):
    out = tmp_path / "run"
    assert train(*FAST, "--steps", 3, "--ema", "--out", out).exit_code == 0
    c = ckpt(out)
    ema = CK.model_from_checkpoint(out / "checkpoint.pt", "ema")
    raw = CK.model_from_checkpoint(c, "raw")
    assert not ema.training
    for k, v in ema.state_dict().items():
        assert torch.equal(v, c["ema"]["module"][k])
    assert any(not torch.equal(raw.state_dict()[k], ema.state_dict()[k]) for k in c["model"])
    with pytest.raises(ValueError, match="no BEMA weights"):
        CK.model_from_checkpoint(c, "bema")


def test_gpu_sized_model_on_the_cpu_gets_a_hint_and_tiny_does_not(tmp_path):
    big = train("--env", "othello", "--steps", 1, "--batch-size", 2, "--eval-size", 2, "--play-games", 0,
                "--eval-every", 0, "--no-progress", "--device", "cpu", "--out", tmp_path / "big")
    assert big.exit_code == 0, big.output + big.stderr
    assert "sized for a GPU" in big.stderr and "--preset tiny" in big.stderr
    small = train(*FAST, "--steps", 1, "--out", tmp_path / "small")
    assert small.exit_code == 0 and "sized for a GPU" not in small.stderr
