"""Shared test helpers: a tiny training run, the CLI invoked in-process, the one-line error
check, temporary-file listing, another process holding a run's lock, a small real disk, and
a SIGTERM that lands in an evaluation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from train.cli.main import main

# A run that trains in a second: tiny preset, small batches, one thread.
TINY = ["--preset", "tiny", "--batch-size", "8", "--eval-size", "16", "--no-progress",
        "--num-threads", "1", "--log-every", "1"]


@pytest.fixture(scope="session")
def tiny_run():
    """``tiny_run(out, *options)``: ``lgagent train`` a tiny model into ``out``; returns ``out``."""
    def train(out, *args):
        r = CliRunner().invoke(main, ["train", *TINY, *map(str, args), "--out", str(out)])
        assert r.exit_code == 0, r.output + r.stderr
        return out

    return train


# Set complement with 8 tokens (block 7): no Numba, trains in a second.
SETCOMP = ["--env", "setcomp", "--vocab-size", "8", *TINY]


def invoke(*args):
    """``lgagent *args`` in this process (click's CliRunner; stdout and stderr apart)."""
    return CliRunner().invoke(main, list(map(str, args)))


def trained_checkpoint(out, *args):
    """``lgagent train *args --out out``, which must succeed; its checkpoint, loaded."""
    from agents import checkpoint

    r = invoke("train", *args, "--out", out)
    assert r.exit_code == 0, r.output + r.stderr
    return checkpoint.load(os.path.join(out, checkpoint.CHECKPOINT))


def one_line_error(result, match, code=2):
    """The command failed with exit ``code`` and exactly one ``Error:`` line containing ``match``."""
    assert result.exit_code == code, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    assert match in lines[0], lines[0]
    assert "Traceback" not in result.output


def temps(d):
    """The names of the temporary files (``*.tmp``) left in directory ``d``."""
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".tmp"))


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


def sigterm_in_evaluation(monkeypatch):
    """Every evaluation of weights (``train.analysis.evaluate.evaluate_weights``) first sends
    this process SIGTERM, as a kill landing mid-evaluation would; ``monkeypatch.undo()`` ends it."""
    import train.analysis.evaluate as E

    original = E.evaluate_weights

    def evaluate_weights(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        return original(*a, **k)

    monkeypatch.setattr(E, "evaluate_weights", evaluate_weights)


# ``python -c KILL_DURING_SAVE train ...``: lgagent in a process that SIGKILLs itself halfway
# through its first checkpoint write (with DIE=1 in its environment; without, a plain run).
KILL_DURING_SAVE = textwrap.dedent("""
    import os, signal, sys
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


def start_and_kill(cmd, out: Path):
    """Start a sweep, SIGKILL it (and its trial's worker) once trial 0 has a checkpoint."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 120
        while not (out / "trial_0000" / "checkpoint.pt").exists():
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / "trial_0000" / "result.json").exists()
