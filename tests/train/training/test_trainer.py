"""train.training.trainer under faults: a SIGKILL while a checkpoint is written, SIGTERM or
SIGINT during the final evaluation, play or last save, a full disk during a checkpoint write and
a disk too small for one. The previous checkpoint stays intact, no temporary file is left after a
resume, and every case ends in the promised signal exit or one error line and exit 2. Signals and
crashes run in real subprocesses or hit this process with a real signal."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from agents import checkpoint as CK
from tests.conftest import KILL_DURING_SAVE, SETCOMP, invoke, one_line_error, temps
from train.training import trainer as T

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def error_after_start(result, match):
    """A run that started (its announcement line) and then failed: exit 2, one error line."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("lgagent train:"), result.stderr
    assert lines[1].startswith("Error:") and match in lines[1], lines[1]


def test_sigkill_during_a_checkpoint_write_then_resume_leaves_no_temp(tmp_path):
    out = tmp_path / "run"
    # a first checkpoint at step 2, then a SIGKILL while writing the one of step 4
    args = ["train", *SETCOMP, "--steps", 6, "--ckpt-every", 2, "--stop-at", 2, "--out", out]
    assert invoke(*args).exit_code == 0
    p = subprocess.run([sys.executable, "-c", KILL_DURING_SAVE, "train", "--resume", "--out",
                        str(out), "--no-progress"], env={**ENV, "DIE": "1"},
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert temps(out) and temps(out)[0].startswith(".checkpoint.pt.")
    assert CK.load(out)["step"] == 2  # the previous checkpoint is intact
    r = invoke("train", "--resume", "--out", out, "--no-progress")
    assert r.exit_code == 0, r.output + r.stderr
    assert temps(out) == [] and CK.load(out)["step"] == 6


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
    p = subprocess.run([sys.executable, "-c", TERM_DURING_EVAL, "train", *map(str, SETCOMP),
                        "--steps", "3", "--eval-every", "0", "--out", str(out)],
                       env=ENV, capture_output=True, text=True, timeout=120)
    assert p.returncode == 143, p.stderr
    assert "Traceback" not in p.stderr
    assert "step 3/3" in p.stdout and "stopped by SIGTERM" in p.stdout
    assert f"evaluate with: lgagent eval {out}" in p.stdout
    assert CK.load(out)["step"] == 3 and temps(out) == []
    r = invoke("train", "--resume", "--out", out, "--no-progress")  # evaluates, trains nothing
    assert r.exit_code == 0, r.output + r.stderr
    assert "raw      seen" in r.output and CK.load(out)["step"] == 3


def test_sigint_during_play_and_a_signal_after_the_loop_stop_at_once(tmp_path, monkeypatch):
    original_play = T.Trainer.play

    def play(self):
        os.kill(os.getpid(), signal.SIGINT)
        return original_play(self)

    monkeypatch.setattr(T.Trainer, "play", play)
    out = tmp_path / "run"
    r = invoke("train", *SETCOMP, "--steps", 2, "--out", out)
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
    r = invoke("train", *SETCOMP, "--steps", 2, "--eval-every", 0, "--out", tmp_path / "b")
    assert r.exit_code == 143 and CK.load(tmp_path / "b")["step"] == 2


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
    r = invoke("train", *SETCOMP, "--steps", 3, "--ckpt-every", 1, "--out", out)
    error_after_start(r, f"no space left on device writing {out}/checkpoint.pt; the previous "
                      "checkpoint at step 1 is intact")
    assert CK.load(out)["step"] == 1 and temps(out) == []

    # a fresh run whose first checkpoint fails leaves nothing (no config.toml, no events)
    _enospc_on_save(monkeypatch, ok_saves=0)
    r = invoke("train", *SETCOMP, "--steps", 2, "--out", tmp_path / "fresh")
    error_after_start(r, "no space left on device writing")
    assert "no checkpoint was written" in r.stderr and not (tmp_path / "fresh").exists()


def test_a_disk_too_small_for_a_checkpoint_is_refused_before_writing(tmp_path, monkeypatch):
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(T.shutil, "disk_usage", lambda p: usage(2**20, 2**20 - 1000, 1000))
    r = invoke("train", *SETCOMP, "--steps", 2, "--out", tmp_path / "run")
    one_line_error(r, "not enough disk space for")
    assert list(tmp_path.iterdir()) == []


def test_a_real_disk_too_small_for_a_checkpoint_is_refused_before_writing(tiny_disk):
    filler = tiny_disk / "filler"
    filler.write_bytes(b"\0" * (1 << 19))
    r = invoke("train", *SETCOMP, "--n-embd", 64, "--steps", 1, "--out", tiny_disk / "run")
    one_line_error(r, "not enough disk space for")
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler"]
