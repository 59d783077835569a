"""Faults a careful user can provoke (issue 13): leftover temporary files, signals during the
final evaluation, full disks, two processes in one directory, oversized inputs, bad paths,
damaged checkpoints. Signals and crashes run in real subprocesses or hit this process with a
real signal; every case ends in one line and exit 2 (or the promised signal exit)."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

import train.data.datagen
from agents import checkpoint as CK
from train.atomic import atomic_path, remove_stale_temps, stale_temps
from train.cli.main import main
from train.training import trainer as T

# set complement with 8 tokens (block 7): no Numba, fast
FAST = ["--env", "setcomp", "--vocab-size", "8", "--preset", "tiny", "--batch-size", "8",
        "--eval-size", "16", "--log-every", "1", "--no-progress", "--num-threads", "1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def cli(*args):
    return CliRunner().invoke(main, list(map(str, args)))


def one_line_error(result, match, code=2):
    assert result.exit_code == code, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    assert match in lines[0], lines[0]
    assert "Traceback" not in result.output


def error_after_start(result, match):
    """A run that started (its announcement line) and then failed: exit 2, one error line."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("lgagent train:"), result.stderr
    assert lines[1].startswith("Error:") and match in lines[1], lines[1]


def temps(d):
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".tmp"))


# ----------------------------------------------------------------------------------------------
# 1. Leftover temporary files


def test_stale_temps_are_removed_and_a_live_writers_temp_is_kept(tmp_path):
    target = tmp_path / "f.txt"
    dead = tmp_path / ".f.txt.abc123.tmp"
    dead.write_text("left by a SIGKILL")
    other = tmp_path / ".g.txt.abc123.tmp"  # another target's: not ours to remove
    other.write_text("x")
    with atomic_path(target) as tmp:
        tmp.write_text("being written")
        assert stale_temps(target) == [dead]  # the live temporary is locked by its writer
        assert remove_stale_temps(target) == [dead]
        assert tmp.exists() and not dead.exists()
    assert target.read_text() == "being written" and other.exists()


KILL_DURING_SAVE = textwrap.dedent("""
    import os, signal, sys
    import torch
    from train.training import trainer as T
    from train.cli.main import main

    def dying_save(state, path):
        with open(path, "wb") as f:
            f.write(b"half a checkpoint")
            f.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    T.torch.save = dying_save if os.environ.get("DIE") else T.torch.save
    main(sys.argv[1:])
""")


def test_sigkill_during_a_checkpoint_write_then_resume_leaves_no_temp(tmp_path):
    out = tmp_path / "run"
    # a first checkpoint at step 2, then a SIGKILL while writing the one of step 4
    args = ["train", *FAST, "--steps", 6, "--ckpt-every", 2, "--stop-at", 2, "--out", out]
    assert cli(*args).exit_code == 0
    p = subprocess.run([sys.executable, "-c", KILL_DURING_SAVE, "train", "--resume", "--out",
                        str(out), "--no-progress"], env={**ENV, "DIE": "1"},
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert temps(out) and temps(out)[0].startswith(".checkpoint.pt.")
    assert CK.load(out)["step"] == 2  # the previous checkpoint is intact
    r = cli("train", "--resume", "--out", out, "--no-progress")
    assert r.exit_code == 0, r.output + r.stderr
    assert temps(out) == [] and CK.load(out)["step"] == 6


def test_datagen_sigterm_removes_its_temp_and_a_rerun_removes_a_stale_one(tmp_path,
                                                                          monkeypatch):
    out = tmp_path / "games.npy"
    stale = tmp_path / ".games.npy.dead1234.tmp"  # what a SIGKILLed run left
    stale.write_bytes(b"\0" * 1000)

    def terminated(arr, seed, offset):
        assert not stale.exists()  # removed before this run wrote anything
        assert len(temps(tmp_path)) == 1  # this run's own
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr("othello_env.games.generate_into", terminated)
    r = CliRunner().invoke(main, ["datagen", "--games", "10", "--out", str(out)])
    assert r.exit_code == 143, (r.output, r.stderr)
    assert r.stderr.strip().splitlines()[-1] == (
        f"datagen stopped by SIGTERM; {out} was not written")  # after the progress bar
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is restored


# ----------------------------------------------------------------------------------------------
# 2. Signals during the final evaluation and play

TERM_DURING_EVAL = textwrap.dedent("""
    import os, signal, sys
    from train.training import trainer as T
    from train.cli.main import main

    original = T.Trainer.evaluate

    def evaluate(self):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the final evaluation runs
        return original(self)

    T.Trainer.evaluate = evaluate
    main(sys.argv[1:])
""")


def test_sigterm_during_the_final_evaluation_saves_the_last_step_and_exits_143(tmp_path):
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, "-c", TERM_DURING_EVAL, "train", *map(str, FAST),
                        "--steps", "3", "--eval-every", "0", "--out", str(out)],
                       env=ENV, capture_output=True, text=True, timeout=120)
    assert p.returncode == 143, p.stderr
    assert "Traceback" not in p.stderr
    assert "step 3/3" in p.stdout and "stopped by SIGTERM" in p.stdout
    assert f"evaluate with: lgagent eval {out}" in p.stdout
    assert CK.load(out)["step"] == 3 and temps(out) == []
    r = cli("train", "--resume", "--out", out, "--no-progress")  # evaluates, trains nothing
    assert r.exit_code == 0, r.output + r.stderr
    assert "raw      seen" in r.output and CK.load(out)["step"] == 3


def test_sigint_during_play_and_a_signal_after_the_loop_stop_at_once(tmp_path, monkeypatch):
    original_play = T.Trainer.play

    def play(self):
        os.kill(os.getpid(), signal.SIGINT)
        return original_play(self)

    monkeypatch.setattr(T.Trainer, "play", play)
    out = tmp_path / "run"
    r = cli("train", *FAST, "--steps", 2, "--out", out)
    assert r.exit_code == 130, (r.output, r.stderr)
    assert "Aborted" not in r.stderr and CK.load(out)["step"] == 2

    # a signal while the last checkpoint is written: saved, then no evaluation at all
    original_save = T.Trainer.save

    def save(self):
        original_save(self)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(T.Trainer, "play", original_play)
    monkeypatch.setattr(T.Trainer, "save", save)
    monkeypatch.setattr(T.Trainer, "evaluate", lambda self: pytest.fail("evaluated"))
    r = cli("train", *FAST, "--steps", 2, "--eval-every", 0, "--out", tmp_path / "b")
    assert r.exit_code == 143 and CK.load(tmp_path / "b")["step"] == 2


def test_eval_and_sweep_honour_sigterm(tmp_path, monkeypatch):
    import train.analysis.evaluate as E

    run = tmp_path / "run"
    assert cli("train", *FAST, "--steps", 1, "--out", run).exit_code == 0
    original = E.evaluate_weights

    def evaluate_weights(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        return original(*a, **k)

    monkeypatch.setattr(E, "evaluate_weights", evaluate_weights)
    plot = tmp_path / "f.png"
    r = cli("eval", run, "--plot", plot)
    assert r.exit_code == 143 and r.stderr.strip() == "lgagent eval: stopped by SIGTERM"
    assert not plot.exists()

    # a sweep's run stopped in its final evaluation: saved, no result; the rerun finishes it
    sweep = tmp_path / "sweep"
    args = ["sweep", "--env", "setcomp", "--out", sweep, "--grid", "dropout=0.0",
            "--no-averaging", "--no-progress", *[f"--set={k}={v}" for k, v in (
                ("vocab_size", 8), ("preset", "tiny"), ("batch_size", 8), ("eval_size", 16),
                ("steps", 2), ("train_max_len", 4), ("num_threads", 1))]]
    r = cli(*args)
    assert r.exit_code == 143, (r.output, r.stderr)
    name = "dropout=0.0__seed=0"
    assert CK.load(sweep / name)["step"] == 2 and not (sweep / name / "result.json").exists()
    monkeypatch.setattr(E, "evaluate_weights", original)
    r = cli(*args)
    assert r.exit_code == 0, (r.output, r.stderr)
    assert (sweep / name / "result.json").exists()


# ----------------------------------------------------------------------------------------------
# 4. Two processes, one run directory

HOLD_LOCK = textwrap.dedent("""
    import fcntl, os, sys, time
    path = sys.argv[1]
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if os.path.isdir(path) else 0))
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("locked", flush=True)
    time.sleep(120)
""")


def hold_lock(path):
    """Another process holding the advisory lock of ``path`` (as a running train/sweep would)."""
    p = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path)], stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_a_second_train_in_a_locked_run_dir_exits_2_and_the_lock_dies_with_its_process(
        tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = hold_lock(out)
    try:
        r = cli("train", *FAST, "--steps", 1, "--out", out)
        one_line_error(r, f"another lgagent process is using {out}")
        assert list(out.iterdir()) == []  # nothing written
    finally:
        holder.kill()  # a SIGKILLed run: the OS drops its lock
        holder.wait()
    assert cli("train", *FAST, "--steps", 1, "--out", out).exit_code == 0
    # a run that finished between the second one's checks and its lock is not overwritten
    from train.training.distributed import Dist
    from train.training.run import prepare, run_training

    new = tmp_path / "new"
    prepared = prepare({**{"env": "setcomp", "vocab_size": 8, "preset": "tiny", "steps": 1,
                           "batch_size": 8, "eval_size": 16, "num_threads": 1},
                        "out": str(new)})
    assert cli("train", *FAST, "--steps", 1, "--out", new).exit_code == 0
    before = CK.load(new)["model"]
    with pytest.raises(Exception, match="is not empty"):
        run_training(*prepared, dist_info=Dist(), progress=False)
    assert all((before[k] == v).all() for k, v in CK.load(new)["model"].items())


def test_a_second_sweep_in_the_same_directory_exits_2(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / ".sweep.lock").touch()
    holder = hold_lock(sweep / ".sweep.lock")
    try:
        r = cli("sweep", "--env", "setcomp", "--out", sweep, "--grid", "dropout=0.0",
                "--set", "vocab_size=8", "--set", "preset=tiny", "--set", "steps=1",
                "--set", "train_max_len=4", "--no-progress")
        one_line_error(r, f"another lgagent sweep is running in {sweep}")
        assert [p.name for p in sweep.iterdir()] == [".sweep.lock"]
    finally:
        holder.kill()
        holder.wait()


# ----------------------------------------------------------------------------------------------
# 3. Disk full


def _enospc_on_save(monkeypatch, ok_saves):
    import errno

    calls, original = [], T.torch.save

    def save(state, path):
        calls.append(path)
        if len(calls) > ok_saves:
            with open(path, "wb") as f:
                f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        original(state, path)

    monkeypatch.setattr(T.torch, "save", save)


def test_full_disk_during_a_checkpoint_write_is_one_line_and_keeps_the_previous(
        tmp_path, monkeypatch):
    out = tmp_path / "run"
    _enospc_on_save(monkeypatch, ok_saves=1)
    r = cli("train", *FAST, "--steps", 3, "--ckpt-every", 1, "--out", out)
    error_after_start(r, f"no space left on device writing {out}/checkpoint.pt; the previous "
                      "checkpoint at step 1 is intact")
    assert CK.load(out)["step"] == 1 and temps(out) == []

    # a fresh run whose first checkpoint fails leaves nothing (no config.toml, no events)
    _enospc_on_save(monkeypatch, ok_saves=0)
    r = cli("train", *FAST, "--steps", 2, "--out", tmp_path / "fresh")
    error_after_start(r, "no space left on device writing")
    assert "no checkpoint was written" in r.stderr and not (tmp_path / "fresh").exists()


def test_a_disk_too_small_for_a_checkpoint_is_refused_before_writing(tmp_path, monkeypatch):
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(T.shutil, "disk_usage", lambda p: usage(2**20, 2**20 - 1000, 1000))
    r = cli("train", *FAST, "--steps", 2, "--out", tmp_path / "run")
    one_line_error(r, "not enough disk space for")
    assert list(tmp_path.iterdir()) == []


def test_datagen_full_disk_while_reserving_is_one_line(tmp_path, monkeypatch):
    import errno

    def no_space(fd, offset, size):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(train.data.datagen.os, "posix_fallocate", no_space)
    r = CliRunner().invoke(main, ["datagen", "--games", "100", "--out", str(tmp_path / "g.npy")])
    one_line_error(r, f"no space left on device writing {tmp_path / 'g.npy'} (6 kB)")
    assert list(tmp_path.iterdir()) == []
    assert train.data.datagen.human_bytes(10_000_000) == "10 MB"
    assert train.data.datagen.human_bytes(12_345_678) != train.data.datagen.human_bytes(12_000_000)


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 1 MiB file system (tmpfs; needs root and mount rights, else skipped)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs",
                                            str(mnt)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_real_full_disk_for_datagen_and_train(tiny_disk):
    # two datagen runs on one small disk: each checked and reserved, no bus error
    r = CliRunner().invoke(main, ["datagen", "--games", "20000", "--out",
                                  str(tiny_disk / "a.npy")])
    one_line_error(r, "not enough disk space")
    assert list(tiny_disk.iterdir()) == []
    filler = tiny_disk / "filler"
    filler.write_bytes(b"\0" * (1 << 19))
    r = cli("train", *FAST, "--n-embd", 64, "--steps", 1, "--out", tiny_disk / "run")
    one_line_error(r, "not enough disk space for")
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler"]


# ----------------------------------------------------------------------------------------------
# 6. Paths


@pytest.mark.parametrize("out, match", [
    ("", "--out is empty"),
    ("  ", "--out is empty"),
    ("x" * 300, "a name is longer than 255 bytes"),
    ("/proc/x/run", "cannot create files in /proc"),
    ("/".join(["y" * 200] * 21), "the path is longer than the file system allows"),
])
def test_unusable_run_directories_are_one_line(tmp_path, monkeypatch, out, match):
    monkeypatch.chdir(tmp_path)
    r = cli("train", *FAST, "--steps", 1, "--out", out)
    one_line_error(r, match)
    assert list(tmp_path.iterdir()) == []


def test_resume_and_eval_of_an_overlong_path_are_one_line(tmp_path):
    long = tmp_path / ("r" * 300)
    one_line_error(cli("train", "--resume", "--out", long), "no checkpoint at")
    one_line_error(cli("eval", long), "no checkpoint at")


def test_unusable_datagen_outputs_are_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for out, match in (("", "--out . is a directory"), ("g" * 250 + ".npy", "file name is longer"),
                       ("/proc/games.npy", "cannot create files in /proc")):
        one_line_error(CliRunner().invoke(main, ["datagen", "--games", "5", "--out", out]),
                       match)
    assert list(tmp_path.iterdir()) == []
    # a name that fits with the temporary's suffix is accepted
    name = "g" * (255 - 14)
    r = CliRunner().invoke(main, ["datagen", "--games", "5", "--out", name])
    assert r.exit_code == 0, r.output
    assert [p.name for p in tmp_path.iterdir()] == [name]


# ----------------------------------------------------------------------------------------------
# 5. Inputs that exhaust memory or time


@pytest.mark.parametrize("args, match", [
    (["--batch-size", 10**9], "--batch-size must lie in 1..16777216"),
    (["--batch-size", 2**24], "this run needs about"),
    (["--n-embd", 10**6], "--n-embd must lie in 1..65536"),
    (["--n-embd", 60000], "this run needs about"),
    (["--vocab-size", 10**30], "--vocab-size must be at most 65536"),
    (["--vocab-size", 60000], "this run needs about"),
    (["--n-layer", 10**6], "--n-layer must lie in 1..1024"),
    (["--n-layer", 1024, "--n-embd", 8192], "this run needs about"),
    (["--eval-size", 10**12], "--eval-size must lie in 1..16777216"),
    (["--steps", 10**13], "--steps must be at most 1000000000000"),
    (["--play-games", 10**9], "--play-games must lie in 0..10000000"),
])
def test_oversized_options_exit_2_at_once_writing_nothing(tmp_path, args, match):
    import time

    t0 = time.perf_counter()
    r = cli("train", "--env", "setcomp", *args, "--out", tmp_path / "run")
    assert time.perf_counter() - t0 < 5  # no model or batch was built
    one_line_error(r, match)
    assert list(tmp_path.iterdir()) == []


def test_memory_estimate_counts_the_model_and_scales_with_the_batch():
    from agents.model import GPT
    from train.training import config as C
    from train.training.assemble import build
    from train.training.run import memory_estimate, memory_total, model_params

    for env in ("othello", "setcomp"):
        cfg, _, m = build(C.resolve(C.merge({"env": env, "preset": "tiny"})))
        # exact but for the output head's bias, which GPT may not have
        assert abs(model_params(m) - sum(p.numel() for p in GPT(m).parameters())) <= \
            m.vocab_size
    small = memory_estimate(cfg, m)
    big = memory_estimate(C.RunConfig(**{**cfg.to_dict(), "batch_size": cfg.batch_size * 4}), m)
    assert big["activations"] > 3.9 * small["activations"] and big["state"] == small["state"]
    assert memory_total(big) > memory_total(small)


def test_sweep_set_and_eval_and_envs_refuse_oversized_values(tmp_path):
    r = cli("sweep", "--env", "setcomp", "--out", tmp_path / "s", "--grid", "dropout=0.0",
            "--set", "eval_size=1000000000000", "--set", "train_max_len=4")
    one_line_error(r, "--eval-size must lie in 1..16777216")
    assert list(tmp_path.iterdir()) == []
    run = tmp_path / "run"
    assert cli("train", *FAST, "--steps", 1, "--out", run).exit_code == 0
    one_line_error(cli("eval", run, "--eval-size", 10**12), "--eval-size must lie in 1..16777216")
    one_line_error(cli("eval", run, "--eval-seed", 10**30), "--eval-seed must lie in 0..2**63-1")

    from othello_env.vector import OthelloVectorEnv
    from setcomp_env.env import SetComplementEnv
    from setcomp_env.vector import SetComplementVectorEnv

    with pytest.raises(ValueError, match="num_envs must be at most"):
        OthelloVectorEnv(num_envs=10**13)
    with pytest.raises(ValueError, match="vocab_size must lie in 1..65536"):
        SetComplementEnv(vocab_size=10**12)
    with pytest.raises(ValueError, match="num_envs x vocab_size must be at most"):
        SetComplementVectorEnv(num_envs=10**6, vocab_size=60000)


# ----------------------------------------------------------------------------------------------
# 7. Damaged checkpoints that pass the loader


def _damage(good):
    import copy

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


import torch  # noqa: E402  (the damaged checkpoints below are made with it)


def test_damaged_checkpoint_fields_are_one_line_and_resume_rewrites_nothing(tmp_path):
    from agents.policies import ModelPolicy

    out = tmp_path / "run"
    assert cli("train", *FAST, "--steps", 1, "--ema", "--out", out).exit_code == 0
    path = out / "checkpoint.pt"
    good = torch.load(path, weights_only=True)
    assert "checksum" in good and CK.checksum(good) == good["checksum"]
    for name, (bad, match) in _damage(good).items():
        torch.save(bad, path)
        files = {p.name: p.read_bytes() for p in out.iterdir()}
        r = cli("train", "--resume", "--steps", 2, "--out", out, "--no-progress")
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
    assert cli("train", *FAST, "--steps", 1, "--out", out).exit_code == 0
    path = out / "checkpoint.pt"
    good = torch.load(path, weights_only=True)
    w = good["model"]["wte.weight"]
    w.view(torch.int32)[0, 0] ^= 1 << 7  # one bit of one weight
    torch.save(good, path)
    with pytest.raises(ValueError, match="weights do not match their checksum"):
        CK.load(path)
    one_line_error(cli("eval", out), "weights do not match their checksum")
    del good["checksum"]  # a checkpoint written before checksums: loads as before
    torch.save(good, path)
    assert CK.load(path)["step"] == 1
    assert cli("train", "--resume", "--steps", 2, "--out", out, "--no-progress").exit_code == 0
    assert CK.load(path)["checksum"] == CK.checksum(CK.load(path))


# ----------------------------------------------------------------------------------------------
# 9. Small ones


def test_bool_actions_unknown_options_and_small_cli_cases(tmp_path):
    import gymnasium as gym

    import othello_env  # noqa: F401  (registers Othello-v0)
    from setcomp_env import SetComplementEnv

    o = gym.make("othello_env:Othello-v0").unwrapped
    o.reset(seed=0)
    # refused by the check itself, not by NumPy (NumPy < 2 lets operator.index take np.bool_)
    for a in (True, np.bool_(True), np.array(True)):
        with pytest.raises(ValueError, match="action must be an integer in 0..64"):
            o.step(a)
    from othello_env.arguments import call_policy

    with pytest.raises(ValueError, match="the opponent policy returned .*True.*, not an integer"):
        call_policy(lambda obs, info: np.bool_(True), None, np.ones(65, bool), None)
    s = SetComplementEnv(vocab_size=4)
    s.reset(seed=0)
    for a in (True, np.bool_(True)):
        with pytest.raises(ValueError, match="action must be a token"):
            s.step(a)
    with pytest.raises(ValueError, match=r"unknown reset option\(s\) \['foo'\]"):
        s.reset(options={"foo": 1})

    r = cli("sweep", "--env", "setcomp", "--out", tmp_path / "s", "--set", "env=othello",
            "--set", "train_max_len=4")
    one_line_error(r, "--env setcomp and --set env=othello disagree")
    assert list(tmp_path.iterdir()) == []

    # a legacy (non-zip) checkpoint: one line, no torch warning on extra lines
    legacy = tmp_path / "run" / "checkpoint.pt"
    legacy.parent.mkdir()
    torch.save({"weights": torch.zeros(2)}, legacy, _use_new_zipfile_serialization=False)
    r = cli("eval", legacy.parent)
    one_line_error(r, "not an lgagent checkpoint")
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="not an lgagent checkpoint"):
            CK.load(legacy)
    assert caught == []
