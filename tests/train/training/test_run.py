"""train.training.run: the run directory (its lock against a second process, unusable --out
paths, a run finished under a waiting one) and the checks before anything is built (upper bounds
of the options, the memory estimate): each refusal is one line, exit 2, and writes nothing.

``lgagent train --resume`` on a run killed before its first checkpoint (the directory holds only
files a run writes (the checkpoint's temporary file, config.toml, events) and no checkpoint.pt):
--resume starts that run fresh from the options given, says so in one line and removes the dead
run's files; without the options it is one error line; a directory with any other file is still
refused. The kill is made by hand and by a real SIGKILL during the first checkpoint write."""

import os
import signal
import subprocess
import sys

import pytest

from agents import checkpoint as CK
from tests.conftest import KILL_DURING_SAVE, SETCOMP, hold_lock, invoke, one_line_error, temps


def test_a_second_train_in_a_locked_run_dir_exits_2_and_the_lock_dies_with_its_process(
        tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = hold_lock(out)
    try:
        r = invoke("train", *SETCOMP, "--steps", 1, "--out", out)
        one_line_error(r, f"another lgagent process is using {out}")
        assert list(out.iterdir()) == []  # nothing written
    finally:
        holder.kill()  # a SIGKILLed run: the OS drops its lock
        holder.wait()
    assert invoke("train", *SETCOMP, "--steps", 1, "--out", out).exit_code == 0
    # a run that finished between the second one's checks and its lock is not overwritten
    from train.training.distributed import Dist
    from train.training.run import prepare, run_training

    new = tmp_path / "new"
    prepared = prepare({**{"env": "setcomp", "vocab_size": 8, "preset": "tiny", "steps": 1,
                           "batch_size": 8, "eval_size": 16, "num_threads": 1},
                        "out": str(new)})
    assert invoke("train", *SETCOMP, "--steps", 1, "--out", new).exit_code == 0
    before = CK.load(new)["model"]
    with pytest.raises(Exception, match="is not empty"):
        run_training(*prepared, dist_info=Dist(), progress=False)
    assert all((before[k] == v).all() for k, v in CK.load(new)["model"].items())


@pytest.mark.parametrize("out, match", [
    ("", "--out is empty"),
    ("  ", "--out is empty"),
    ("x" * 300, "a name is longer than 255 bytes"),
    ("/proc/x/run", "cannot create files in /proc"),
    ("/".join(["y" * 200] * 21), "the path is longer than the file system allows"),
])
def test_unusable_run_directories_are_one_line(tmp_path, monkeypatch, out, match):
    monkeypatch.chdir(tmp_path)
    r = invoke("train", *SETCOMP, "--steps", 1, "--out", out)
    one_line_error(r, match)
    assert list(tmp_path.iterdir()) == []


def test_resume_of_an_overlong_path_is_one_line(tmp_path):
    one_line_error(invoke("train", "--resume", "--out", tmp_path / ("r" * 300)), "no checkpoint at")


@pytest.mark.parametrize("args, match", [
    (["--batch-size", 10**9], "'--batch-size': 1000000000 is not in the range 1<=x<=16777216"),
    (["--batch-size", 2**24], "this run needs about"),
    (["--n-embd", 10**6], "'--n-embd': 1000000 is not in the range 1<=x<=65536"),
    (["--n-embd", 60000], "this run needs about"),
    (["--vocab-size", 10**30], "--vocab-size must be at most 65536"),
    (["--vocab-size", 60000], "this run needs about"),
    (["--n-layer", 10**6], "'--n-layer': 1000000 is not in the range 1<=x<=1024"),
    (["--n-layer", 1024, "--n-embd", 8192], "this run needs about"),
    (["--eval-size", 10**12], "'--eval-size': 1000000000000 is not in the range 1<=x<=16777216"),
    (["--steps", 10**13], "--steps must be at most 1000000000000"),
    (["--play-games", 10**9], "'--play-games': 1000000000 is not in the range 0<=x<=10000000"),
])
def test_oversized_options_exit_2_at_once_writing_nothing(tmp_path, args, match):
    import time

    t0 = time.perf_counter()
    r = invoke("train", "--env", "setcomp", *args, "--out", tmp_path / "run")
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


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
NOTE = "holds no checkpoint (a run killed before its first save): starting it fresh"


def dead_run(out):
    """What a SIGKILL during the first checkpoint write leaves: its temporary file, the run's
    config.toml and a TensorBoard events file."""
    out.mkdir()
    (out / ".checkpoint.pt.k1ll3d00.tmp").write_bytes(b"half a checkpoint")
    (out / "config.toml").write_text('env = "setcomp"\n')
    (out / "events.out.tfevents.1700000000.host.123.0").write_bytes(b"old events")
    return sorted(p.name for p in out.iterdir())


def test_resume_of_a_run_killed_before_its_first_save_starts_it_fresh(tmp_path):
    out = tmp_path / "run"
    dead_run(out)
    r = invoke("train", "--resume", *SETCOMP, "--steps", 2, "--out", out)
    assert r.exit_code == 0, r.output + r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines[0] == f"{out} {NOTE}", r.stderr
    assert lines[1].startswith("lgagent train:") and "from step" not in lines[1]
    assert CK.load(out)["step"] == 2
    names = sorted(p.name for p in out.iterdir())
    assert temps(out) == [] and "events.out.tfevents.1700000000.host.123.0" not in names
    assert 'vocab_size = 8' in (out / "config.toml").read_text()  # the new run's config


def test_resume_of_a_killed_run_without_its_options_is_one_line_and_keeps_its_files(tmp_path):
    out = tmp_path / "run"
    before = dead_run(out)
    r = invoke("train", "--resume", "--out", out)
    one_line_error(r, f"{out} holds no checkpoint (a run killed before its first save) and "
                      "cannot start fresh: --env is required")
    bad = tmp_path / "bad.toml"  # a config file's values are checked by the run, not by click
    bad.write_text('env = "setcomp"\nsteps = 0\n')
    r = invoke("train", "--resume", "--config", bad, "--out", out)
    one_line_error(r, "cannot start fresh: --steps must be at least 1, got 0")
    assert sorted(p.name for p in out.iterdir()) == before


def test_resume_still_refuses_a_directory_with_files_no_run_writes(tmp_path):
    for extra in ("notes.txt", "subdir", None):
        out = tmp_path / f"run_{extra}"
        if extra is None:  # an empty directory: nothing says a run was ever there
            out.mkdir()
        else:
            dead_run(out)
            (out / extra).mkdir() if extra == "subdir" else (out / extra).write_text("mine")
        before = sorted(p.name for p in out.iterdir())
        r = invoke("train", "--resume", *SETCOMP, "--steps", 2, "--out", out)
        one_line_error(r, f"no checkpoint at {out}")
        assert sorted(p.name for p in out.iterdir()) == before


def test_a_real_sigkill_during_the_first_checkpoint_write_then_resume_starts_fresh(tmp_path):
    out = tmp_path / "run"
    args = [*map(str, SETCOMP), "--steps", "2", "--out", str(out)]
    p = subprocess.run([sys.executable, "-c", KILL_DURING_SAVE, "train", *args],
                       env={**ENV, "DIE": "1"}, capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert temps(out) and temps(out)[0].startswith(".checkpoint.pt.")
    assert not (out / "checkpoint.pt").exists()
    one_line_error(invoke("train", *args), "is not empty: --resume to continue it")
    r = invoke("train", "--resume", *args)
    assert r.exit_code == 0, r.output + r.stderr
    assert r.stderr.startswith(f"{out} {NOTE}\n"), r.stderr
    assert temps(out) == [] and CK.load(out)["step"] == 2
    assert len(list(out.glob("events.out.tfevents.*"))) == 1  # the dead run's events are gone
