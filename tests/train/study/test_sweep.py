"""`lgagent sweep`: grid runs, the results table and file, skip and exact resume on rerun (also of
a run stopped by SIGTERM in its final evaluation), and one-line refusals that write nothing: bad,
oversized or contradictory input, and a second sweep in a directory already in use."""

import json

import pytest
import torch
from click.testing import CliRunner

from agents import checkpoint as CK
from train.cli.main import main

BASE = ["--env", "setcomp", "--set", "vocab_size=8", "--set", "preset=tiny",
        "--set", "train_max_len=4", "--set", "steps=6", "--set", "batch_size=8",
        "--set", "eval_size=16", "--set", "ckpt_every=3", "--no-progress"]


def sweep(*args):
    return CliRunner().invoke(main, ["sweep", *map(str, args)])


def test_grid_runs_every_point_and_seed_and_tabulates_raw_ema_bema(tmp_path):
    out = tmp_path / "sw"
    r = sweep(*BASE, "--grid", "dropout=0,0.1", "--seeds", "0,1", "--out", out)
    assert r.exit_code == 0, r.output + r.stderr
    names = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert names == ["dropout=0.0__seed=0", "dropout=0.0__seed=1", "dropout=0.1__seed=0",
                     "dropout=0.1__seed=1"]
    results = json.loads((out / "results.json").read_text())
    assert [x["name"] for x in results] == ["dropout=0.0__seed=0", "dropout=0.0__seed=1",
                                            "dropout=0.1__seed=0", "dropout=0.1__seed=1"]
    for x in results:
        assert x["step"] == 6 and x["config"]["ema"] and x["config"]["bema"]
        assert x["config"]["train_max_len"] == 4
        assert set(x["eval"]) == {"raw", "ema", "bema"}
        assert {"seen", "unseen"} <= set(x["eval"]["raw"])
        ck = CK.load(out / x["name"] / "checkpoint.pt")
        assert ck["step"] == 6 and ck["config"]["dropout"] == x["config"]["dropout"]
        assert ck["config"]["seed"] == int(x["name"][-1])
    lines = r.stdout.strip().splitlines()
    header = ["run", "weights", "seen_err", "unseen_err", "unseen_sep"]
    table = lines[[ln.split() for ln in lines].index(header):]
    assert len(table) == 1 + 4 * 3 + 1  # header, a line per run and weights, results path
    assert table[-1] == f"results: {out / 'results.json'}"


def test_rerun_skips_finished_runs_and_resumes_a_stopped_one_exactly(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert sweep(*BASE, "--grid", "dropout=0.0", "--out", a).exit_code == 0
    # b's only run was stopped at step 3 (as a killed sweep leaves it), then the sweep reruns
    stopped = CliRunner().invoke(main, [
        "train", "--env", "setcomp", "--vocab-size", "8", "--preset", "tiny", "--train-max-len",
        "4", "--steps", "6", "--batch-size", "8", "--eval-size", "16", "--ckpt-every", "3",
        "--ema", "--bema", "--dropout", "0.0", "--seed", "0", "--stop-at", "3", "--no-progress",
        "--out", str(b / "dropout=0.0__seed=0")])
    assert stopped.exit_code == 0, stopped.output + stopped.stderr
    r = sweep(*BASE, "--grid", "dropout=0.0", "--out", b)
    assert r.exit_code == 0, r.output + r.stderr
    ca = CK.load(a / "dropout=0.0__seed=0" / "checkpoint.pt")
    cb = CK.load(b / "dropout=0.0__seed=0" / "checkpoint.pt")
    assert cb["step"] == 6
    for k in ca["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), k

    ckpt = a / "dropout=0.0__seed=0" / "checkpoint.pt"
    before = ckpt.stat().st_mtime_ns
    again = sweep(*BASE, "--grid", "dropout=0.0", "--out", a)
    assert again.exit_code == 0 and ckpt.stat().st_mtime_ns == before  # finished: not retrained
    assert again.stdout == sweep(*BASE, "--grid", "dropout=0.0", "--out", a).stdout


def test_a_run_killed_before_its_first_checkpoint_starts_over(tmp_path):
    out = tmp_path / "sw"
    run = out / "dropout=0.0__seed=0"
    run.mkdir(parents=True)
    (run / "config.toml").write_text("env = 'setcomp'\n")
    r = sweep(*BASE, "--grid", "dropout=0.0", "--out", out)
    assert r.exit_code == 0, r.output + r.stderr
    assert CK.load(run / "checkpoint.pt")["step"] == 6


@pytest.mark.parametrize("args, match", [
    (["--env", "setcomp", "--set", "steps=2"], "train_max_len"),
    ([*BASE, "--grid", "nosuch=1,2"], "not a training option"),
    ([*BASE, "--grid", "seed=1,2"], "--seeds"),
    ([*BASE, "--grid", "dropout=a,b"], "expected"),
    ([*BASE, "--grid", "dropout=0.1,0.1"], "repeated"),
    ([*BASE, "--grid", "steps=2,3"], "both fixed"),
    ([*BASE, "--grid", "dropout"], "KEY=VALUE"),
    ([*BASE, "--seeds", "0,x"], "--seeds"),
    ([*BASE, "--grid", "n_head=3,4"], "divisible"),  # checked before any run trains
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args, match):
    out = tmp_path / "sw"
    r = sweep(*args, "--out", out)
    assert r.exit_code == 2, (r.output, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and match in lines[0], r.stderr
    assert not out.exists()


# ----------------------------------------------------------------------------------------------
# Faults: SIGTERM, a second sweep, oversized and contradictory settings


def test_a_sweep_run_stopped_in_its_final_evaluation_is_finished_by_the_rerun(tmp_path,
                                                                              monkeypatch):
    from tests.conftest import sigterm_in_evaluation

    sigterm_in_evaluation(monkeypatch)
    # a sweep's run stopped in its final evaluation: saved, no result; the rerun finishes it
    out = tmp_path / "sweep"
    args = ["--env", "setcomp", "--out", out, "--grid", "dropout=0.0",
            "--no-averaging", "--no-progress", *[f"--set={k}={v}" for k, v in (
                ("vocab_size", 8), ("preset", "tiny"), ("batch_size", 8), ("eval_size", 16),
                ("steps", 2), ("train_max_len", 4), ("num_threads", 1))]]
    r = sweep(*args)
    assert r.exit_code == 143, (r.output, r.stderr)
    name = "dropout=0.0__seed=0"
    assert CK.load(out / name)["step"] == 2 and not (out / name / "result.json").exists()
    monkeypatch.undo()
    r = sweep(*args)
    assert r.exit_code == 0, (r.output, r.stderr)
    assert (out / name / "result.json").exists()


def test_a_second_sweep_in_the_same_directory_exits_2(tmp_path):
    from tests.conftest import hold_lock, one_line_error

    out = tmp_path / "sweep"
    out.mkdir()
    (out / ".sweep.lock").touch()
    holder = hold_lock(out / ".sweep.lock")
    try:
        r = sweep("--env", "setcomp", "--out", out, "--grid", "dropout=0.0",
                  "--set", "vocab_size=8", "--set", "preset=tiny", "--set", "steps=1",
                  "--set", "train_max_len=4", "--no-progress")
        one_line_error(r, f"another lgagent sweep is running in {out}")
        assert [p.name for p in out.iterdir()] == [".sweep.lock"]
    finally:
        holder.kill()
        holder.wait()


def test_oversized_and_contradictory_settings_are_one_line_and_write_nothing(tmp_path):
    from tests.conftest import one_line_error

    r = sweep("--env", "setcomp", "--out", tmp_path / "s", "--grid", "dropout=0.0",
              "--set", "eval_size=1000000000000", "--set", "train_max_len=4")
    one_line_error(r, "--eval-size must lie in 1..16777216")
    r = sweep("--env", "setcomp", "--out", tmp_path / "s", "--set", "env=othello",
              "--set", "train_max_len=4")
    one_line_error(r, "--env setcomp and --set env=othello disagree")
    assert list(tmp_path.iterdir()) == []
