"""Batches built ahead in a background thread (train.training.prefetch): the same stream as
the synchronous loop, exact resume, one-line errors and no thread left behind on errors and
Ctrl-C."""

import contextlib
import faulthandler
import os
import signal
import threading
import time

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from agents import checkpoint as CK
from train.cli.main import main
from train.data.tasks import Task, make_task
from train.training import trainer as T
from train.training.prefetch import THREAD_NAME, DataFailed, Prefetcher, pinned

# set complement with 8 tokens (block 7): no Numba, fast
FAST = ["--env", "setcomp", "--vocab-size", "8", "--preset", "tiny", "--batch-size", "8",
        "--eval-size", "16", "--log-every", "1", "--no-progress", "--num-threads", "1"]
RESUME = [*FAST, "--steps", 6, "--ema", "--bema", "--dropout", 0.2, "--eval-every", 2,
          "--ckpt-every", 0]


@contextlib.contextmanager
def deadline(seconds):
    """Fail loudly (every thread's traceback, process exit) instead of hanging."""
    faulthandler.dump_traceback_later(seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def producers():
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def train(*args):
    return CliRunner().invoke(main, ["train", *map(str, args)])


def same_batch(a, b):
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.legal, b.legal)
    assert torch.equal(a.next, b.next)


# ----------------------------------------------------------------------------------------------
# The stream


@pytest.mark.parametrize("name, rank", [("setcomp", 0), ("othello", 0), ("othello", 1)])
def test_prefetched_batches_are_the_synchronous_ones(name, rank):
    sync, ahead = (make_task(name, vocab_size=9, seed=7, rank=rank) for _ in range(2))
    for _ in range(2):  # a stream resumed at step 2
        sync.batch(4, max_len=6)
    ahead.load_state_dict(sync.state_dict())
    with deadline(60), Prefetcher(ahead, 4, 6, depth=2) as data:
        for k in range(5):
            same_batch(sync.batch(4, max_len=6), data.next())
            assert data.state_dict() == sync.state_dict()  # the position after batch k
            assert data.state_dict()["step"] == 3 + k
        time.sleep(0.2)  # the producer runs ahead of the consumer...
        assert ahead.step > sync.step
    assert ahead.state_dict() == sync.state_dict()  # ...and close() puts the task back
    assert producers() == []
    # a rank's stream is its own (DDP), with or without prefetching
    other = make_task(name, vocab_size=9, seed=7, rank=1 - rank)
    assert not torch.equal(other.batch(4, max_len=6).tokens, make_task(
        name, vocab_size=9, seed=7, rank=rank).batch(4, max_len=6).tokens)


def test_corpus_stream_offsets_and_limit(tmp_path):
    from othello_env.games import generate_games

    path = tmp_path / "games.npy"
    np.save(path, generate_games(10, seed=3))
    sync, ahead = (make_task("othello", data=path, seed=1) for _ in range(2))
    with deadline(60), Prefetcher(ahead, 4, limit=4) as data:  # 16 games: crosses an epoch
        for _ in range(4):
            same_batch(sync.batch(4), data.next())
            assert data.state_dict() == sync.state_dict()
        with pytest.raises(RuntimeError, match="past its limit of 4"):
            data.next()
    assert ahead.state_dict() == sync.state_dict() and ahead.offset == 16
    with pytest.raises(RuntimeError, match="after close"):
        data.next()
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="depth must be an integer >= 1"):
            Prefetcher(ahead, 4, depth=bad)
    with pytest.raises(ValueError, match="limit must be an integer >= 0"):
        Prefetcher(ahead, 4, limit=-1)
    assert producers() == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="page-locked memory needs CUDA")
def test_pinned_batches_are_equal_and_page_locked():
    b = make_task("setcomp", vocab_size=6).batch(3)
    p = pinned(b)
    assert p.tokens.is_pinned() and p.legal.is_pinned() and p.next.is_pinned()
    same_batch(b, p)


def test_pin_memory_pins_every_tensor_in_the_producer(monkeypatch):
    """The pinning path without CUDA: Tensor.pin_memory is replaced by a recording copy."""
    pinned_by = []

    def pin(self):
        pinned_by.append(threading.current_thread().name)
        return self.clone()

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin)
    sync, ahead = (make_task("setcomp", vocab_size=6, seed=2) for _ in range(2))
    with deadline(60), Prefetcher(ahead, 3, pin_memory=True, limit=2) as data:
        for _ in range(2):
            same_batch(sync.batch(3), data.next())
    assert pinned_by == [THREAD_NAME] * 6  # tokens, legal, next of each batch; lenient is None


def test_the_training_loop_reads_through_the_prefetcher(tmp_path, monkeypatch):
    """Guards against a loop that silently bypasses the prefetcher: the batches the step gets
    come from it (the default --prefetch 2) and not with --prefetch 0."""
    seen = []
    original = Prefetcher.next

    def spy(self):
        seen.append(self.consumed)
        return original(self)

    monkeypatch.setattr(Prefetcher, "next", spy)
    assert train(*FAST, "--steps", 3, "--out", tmp_path / "a").exit_code == 0
    assert seen == [0, 1, 2]
    assert train(*FAST, "--steps", 3, "--prefetch", 0, "--out", tmp_path / "b").exit_code == 0
    assert seen == [0, 1, 2]
    for key in ("model", "data"):  # the same run either way
        a, b = CK.load(tmp_path / "a")[key], CK.load(tmp_path / "b")[key]
        assert a.keys() == b.keys() and all(
            torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a)


# ----------------------------------------------------------------------------------------------
# Exact resume with prefetching (the checkpoint holds the position of the last batch *used*)


def same_weights(a, b):
    for key in ("model", "optimizer", "ema", "bema"):
        flat_a, flat_b = _tensors(a[key]), _tensors(b[key])
        assert len(flat_a) == len(flat_b) and all(torch.equal(x, y) for x, y in
                                                  zip(flat_a, flat_b)), key
    assert a["data"] == b["data"] and a["step"] == b["step"]


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for k in sorted(obj, key=str) for t in _tensors(obj[k])]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _tensors(v)]
    return []


def test_resume_with_prefetch_is_bitwise_the_synchronous_run(tmp_path, monkeypatch):
    ref, split, crash = tmp_path / "ref", tmp_path / "split", tmp_path / "crash"
    with deadline(300):
        assert train(*RESUME, "--prefetch", 0, "--out", ref).exit_code == 0
        reference = CK.load(ref)

        r = train(*RESUME, "--stop-at", 3, "--prefetch", 3, "--out", split)
        assert r.exit_code == 0 and CK.load(split)["data"]["step"] == 3
        assert train("--resume", "--out", split, "--no-progress").exit_code == 0
        same_weights(reference, CK.load(split))

        # a periodic checkpoint written while the producer is ahead, then a crash
        original = T.Trainer.train_step

        def crash_at_step_5(self, batch):
            if self.step == 4:
                time.sleep(0.2)  # let the producer run ahead (it may build steps 5..6)
                raise RuntimeError("out of memory")
            return original(self, batch)

        monkeypatch.setattr(T.Trainer, "train_step", crash_at_step_5)
        r = train(*RESUME, "--ckpt-every", 2, "--out", crash)
        assert isinstance(r.exception, RuntimeError) and producers() == []
        c = CK.load(crash)
        assert c["step"] == 4 and c["data"]["step"] == 4  # not where the producer had got to
        monkeypatch.setattr(T.Trainer, "train_step", original)
        assert train("--resume", "--out", crash, "--no-progress").exit_code == 0
    same_weights(reference, CK.load(crash))


# ----------------------------------------------------------------------------------------------
# Errors in the producer, Ctrl-C


def failing_on_call(k):
    """A Task.batch that raises on its k-th call (1-based)."""
    original, calls = Task.batch, []

    def batch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == k:
            raise ValueError("injected failure\nsecond line")
        return original(self, *args, **kwargs)

    return batch


def test_an_error_in_the_producer_is_one_line_and_leaves_no_thread(monkeypatch):
    monkeypatch.setattr(Task, "batch", failing_on_call(3))
    task = make_task("setcomp", vocab_size=6)
    with deadline(60):
        data = Prefetcher(task, 2, depth=2)
        data.next(), data.next()
        with pytest.raises(DataFailed) as e:
            data.next()
    assert str(e.value) == ("building training batch 2 of the stream failed: ValueError: "
                            "injected failure")
    assert isinstance(e.value.__cause__, ValueError)
    assert not data.alive and producers() == []
    assert task.state_dict()["step"] == 2  # the two batches consumed


def test_cli_error_in_the_producer_exits_2_with_one_line(tmp_path, monkeypatch):
    out = tmp_path / "run"
    with deadline(120):
        assert train(*FAST, "--steps", 6, "--stop-at", 2, "--out", out).exit_code == 0
        monkeypatch.setattr(Task, "batch", failing_on_call(3))  # stream batch 4 (step 5)
        r = train("--resume", "--out", out, "--no-progress")
    assert r.exit_code == 2, (r.output, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("lgagent train:"), r.stderr
    assert lines[1] == ("Error: building training batch 4 of the stream failed: ValueError: "
                        "injected failure; the checkpoint at step 2 is intact")
    assert "Traceback" not in r.output and producers() == []
    assert CK.load(out)["step"] == 2


def test_ctrl_c_with_prefetch_saves_the_step_used_and_stops_the_thread(tmp_path, monkeypatch):
    ref, intr = tmp_path / "ref", tmp_path / "intr"
    original = T.Trainer.train_step

    def step_with_sigint(self, batch):
        out = original(self, batch)
        if self.step == 2:  # the 3rd step: the producer is ahead by now
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGINT)
        return out

    with deadline(300):
        assert train(*RESUME, "--prefetch", 0, "--out", ref).exit_code == 0
        monkeypatch.setattr(T.Trainer, "train_step", step_with_sigint)
        r = train(*RESUME, "--out", intr)
        assert r.exit_code == 130, r.output + r.stderr
        assert producers() == []
        c = CK.load(intr)
        assert c["step"] == 3 and c["data"]["step"] == 3
        monkeypatch.setattr(T.Trainer, "train_step", original)
        assert train("--resume", "--out", intr, "--no-progress").exit_code == 0
    same_weights(CK.load(ref), CK.load(intr))


def test_a_keyboard_interrupt_while_waiting_for_a_batch_stops_the_producer(monkeypatch):
    original = Task.batch

    def slow(self, *args, **kwargs):
        time.sleep(0.5)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Task, "batch", slow)
    task = make_task("setcomp", vocab_size=6)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    with deadline(60):
        t0 = time.perf_counter()
        with pytest.raises(KeyboardInterrupt), Prefetcher(task, 2) as data:
            timer.start()
            data.next()  # blocked here when the interrupt comes
        assert time.perf_counter() - t0 < 5
    timer.join()
    assert producers() == [] and task.state_dict()["step"] == 0  # nothing was consumed


def test_a_keyboard_interrupt_in_the_step_leaves_no_thread(tmp_path, monkeypatch):
    def interrupted(self, batch):  # a second Ctrl-C raises in the step
        raise KeyboardInterrupt

    monkeypatch.setattr(T.Trainer, "train_step", interrupted)
    with deadline(60):
        r = train(*FAST, "--steps", 4, "--out", tmp_path / "run")
    assert r.exit_code != 0 and producers() == []


def test_training_with_prefetch_under_numbas_workqueue_layer(tmp_path):
    """Numba's workqueue threading layer (the only one guaranteed, e.g. on macOS without TBB) ends
    the process when two Python threads run parallel kernels at once. With prefetch only the
    producer may: evaluation uses the cached held-out batch, play runs after the producer stops."""
    import subprocess
    import sys

    code = ("import numba, numpy as np; from othello_env import generate_games; generate_games(2, seed=0); "
            "assert numba.threading_layer() == 'workqueue'; from train.cli.main import main; main()")
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", code, "train", "--env", "othello", "--preset", "tiny",
                        "--steps", "12", "--batch-size", "32", "--eval-every", "2", "--eval-size", "64",
                        "--play-games", "4", "--num-threads", "1", "--no-progress",
                        "--out", str(tmp_path / "run")], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "play raw vs random (4 games)" in r.stdout
