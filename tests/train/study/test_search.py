"""lgagent sweep --trials: random search end to end, resume, failed trials, bad spaces."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from tests.conftest import start_and_kill
from train.cli.main import main
from train.study import search as S

SMALL = ["--set", "vocab_size=6", "--set", "eval_size=32", "--set", "num_threads=1"]


def space_file(tmp_path, text):
    p = tmp_path / "space.toml"
    p.write_text(text)
    return p


def run(args):
    r = CliRunner().invoke(main, args)
    return r


def test_draws_depend_only_on_seed_and_trial_number():
    dists, fixed = S.parse_space({"lr": {"low": 1e-3, "high": 1e-1, "scale": "log"},
                                  "norm": ["pre", "post"], "steps": 5,
                                  "train_max_len": {"low": 1, "high": 4}})
    assert fixed == {"steps": 5}
    a = S.preview(dists, seed=3, n=6)
    assert S.preview(dists, seed=3, n=3) == a[:3]  # a longer sweep starts the same
    assert S.preview(dists, seed=4, n=6) != a
    assert all(1e-3 <= t["lr"] <= 1e-1 and t["norm"] in ("pre", "post")
               and isinstance(t["train_max_len"], int) and 1 <= t["train_max_len"] <= 4
               for t in a)


@pytest.mark.parametrize("text, msg", [
    ("lr = [", "not valid TOML"),
    ("nope = [1, 2]", "'nope' is not a training option"),
    ("out = ['a']", "set by the sweep itself"),
    ("norm = ['pre', 'sideways']", "must be one of"),
    ("weight_decay = {low = 0.0, high = 1.0, scale = 'log'}", "log scale needs low > 0"),
    ("lr = {low = 1.0, high = 0.1}", "need finite low < high"),
    ("lr = {low = 0.1, high = 1.0, scale = 'cubic'}", "scale must be log or linear"),
    ("norm = {low = 1, high = 2}", "give a list of choices"),
    ("steps = []", "empty list"),
    ("steps = [0, 5]", "must be at least 1"),
    ("batch_size = ['64']", "takes int values"),
    ("", "is empty"),
])
def test_bad_space_files_exit_2_with_one_line(tmp_path, text, msg):
    out = tmp_path / "sweep"
    r = run(["sweep", "--env", "setcomp", "--trials", "2", "--out", str(out),
             "--space", str(space_file(tmp_path, text)), *SMALL])
    assert r.exit_code == 2, r.output
    assert msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not out.exists()


@pytest.mark.parametrize("args, msg", [
    (["--trials", "0"], "'--trials': 0 is not in the range x>=1"),
    (["--trials", "2", "--workers", "0"], "'--workers': 0 is not in the range x>=1"),
    (["--trials", "2", "--search-seed", "-1"], "'--search-seed': -1 is not in the range x>=0"),
    (["--trials", "2", "--grid", "norm=pre,post"], "--grid and --seeds belong to a grid"),
    (["--workers", "2", "--set", "train_max_len=2"], "apply to a random search"),
])
def test_bad_options_exit_2(tmp_path, args, msg):
    r = run(["sweep", "--env", "setcomp", "--out", str(tmp_path / "s"), *args])
    assert r.exit_code == 2 and msg in r.stderr, r.stderr


def test_a_space_value_that_makes_an_invalid_run_is_refused_up_front(tmp_path):
    sp = space_file(tmp_path, "n_head = [1, 3]\nn_embd = 8\ntrain_max_len = 2\nsteps = 2\n")
    r = run(["sweep", "--env", "setcomp", "--trials", "2", "--out", str(tmp_path / "s"),
             "--space", str(sp), *SMALL])
    assert r.exit_code == 2 and "n_head=3" in r.stderr, r.stderr


def test_random_sweep_two_workers_with_a_failed_trial_then_report(tmp_path):
    # n_embd 12 with 8 heads is not divisible: only that combination fails (inside its trial)
    text = ("n_embd = [8, 12]\nn_head = [1, 8]\ntrain_max_len = [2, 3]\nsteps = 4\n"
            "ckpt_every = 2\neval_every = 0\n")
    dists, _ = S.parse_space(json_free(text))
    seed = next(s for s in range(100)
                if sum((t["n_embd"], t["n_head"]) == (12, 8) for t in S.preview(dists, s, 4)) == 1)
    out = tmp_path / "sweep"
    args = ["sweep", "--env", "setcomp", "--trials", "4", "--workers", "2", "--out", str(out),
            "--space", str(space_file(tmp_path, text)), "--search-seed", str(seed), *SMALL]
    r = run(args)
    assert r.exit_code == 0, r.stderr
    assert "3 trials complete, 1 failed" in r.output
    results = sorted(out.glob("trial_*/result.json"))
    assert len(results) == 3
    for p in results:
        res = json.loads(p.read_text())
        assert set(res["eval"]) == {"raw", "ema", "bema"} and res["step"] == 4
    assert "FAILED" in r.stderr and "divisible" in r.stderr
    # a rerun retrains nothing: finished and failed trials stay as they are
    mtimes = {p: p.stat().st_mtime_ns for p in results}
    r = run(args)
    assert r.exit_code == 0 and "3 trials complete, 1 failed" in r.output
    assert {p: p.stat().st_mtime_ns for p in results} == mtimes
    rep = run(["report", str(out), "--json"])
    assert rep.exit_code == 0, rep.stderr
    data = json.loads(rep.output)
    assert data["trials"] == 3 and data["failed"] == 1


def json_free(text):
    import tomllib

    return tomllib.loads(text)


def test_a_killed_sweep_resumes_its_trials(tmp_path):
    """The same command claims its RUNNING trials before it looks for lost ones (whose
    heartbeat stopped: 4 x --heartbeat 1 s, long past when it reruns), and resumes them."""
    out = tmp_path / "sweep"
    sp = space_file(tmp_path, "norm = ['pre', 'post']\ntrain_max_len = 2\nsteps = 300\n"
                              "ckpt_every = 10\neval_every = 0\n")
    cmd = [sys.executable, "-m", "train.cli.main", "sweep", "--env", "setcomp", "--trials", "2",
           "--out", str(out), "--space", str(sp), "--heartbeat", "1", *SMALL]
    start_and_kill(cmd, out)
    time.sleep(4.5)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "2 trials complete, 0 failed, 0 left running" in r.stdout and "lost" not in r.stderr
    # resumed, not restarted: the TensorBoard events of the first start are still there
    assert len(list((out / "trial_0000").glob("events.out.tfevents.*"))) == 2
    for k in (0, 1):
        assert json.loads((out / f"trial_000{k}" / "result.json").read_text())["step"] == 300


def test_report_bad_input(tmp_path):
    r = run(["report", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "not a sweep directory" in r.stderr
    r = run(["report", str(tmp_path)])
    assert r.exit_code == 2 and "no finished run" in r.stderr


def test_env_and_set_env_must_agree(tmp_path):
    r = run(["sweep", "--env", "setcomp", "--trials", "2", "--set", "env=othello",
             "--out", str(tmp_path / "s")])
    assert r.exit_code == 2 and "disagree" in r.stderr
    assert not (tmp_path / "s").exists()


def test_a_signal_between_grid_runs_stops_before_the_next_one(tmp_path, monkeypatch):
    """SIGTERM after a grid run finished: the sweep stops with 143 and one line, the
    finished run is kept, the next one not started; the same command goes on."""
    import train.study.sweep as sweep_mod

    real = sweep_mod.run_to_result
    calls = []

    def run_then_signal(values, out, config_file, progress):
        result = real(values, out, config_file, progress)
        calls.append(out.name)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return result

    monkeypatch.setattr(sweep_mod, "run_to_result", run_then_signal)
    args = ["sweep", "--env", "setcomp", "--out", str(tmp_path / "g"), "--grid", "norm=pre,post",
            "--set", "steps=2", "--set", "train_max_len=2", *SMALL, "--no-averaging"]
    r = run(args)
    assert r.exit_code == 143, r.stderr
    assert "sweep stopped by SIGTERM after 1 of 2 runs" in r.stderr
    assert calls == ["norm=pre__seed=0"]
    assert not (tmp_path / "g" / "norm=post__seed=0").exists()
    r = run(args)
    assert r.exit_code == 0, r.stderr
    assert calls[-1] == "norm=post__seed=0"
