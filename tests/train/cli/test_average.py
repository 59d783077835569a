"""Snapshots (lgagent train --snapshot-every) and lgagent average: files, resume after a kill,
the disk check, the replay equal to the trainer's online averages, damaged and missing
snapshots, bad --scheme specs, --save then eval and play of the saved weights."""

import shutil

import pytest
import torch

from agents import snapshots
from agents.checkpoint import averaged_states, checksum, load, weights_of
from tests.conftest import SETCOMP, TINY, invoke, one_line_error

AVG = ["--ema", "--ema-decay", "0.9,0.99", "--bema", "--bema-burn-in", "2",
       "--bema-update-every", "3"]


def train(out, *args):
    r = invoke("train", *SETCOMP, *args, "--out", out)
    assert r.exit_code == 0, r.output + r.stderr
    return r


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    """12 steps with a snapshot at every step, two EMAs and a BEMA at cadence 3."""
    out = tmp_path_factory.mktemp("avg") / "dense"
    r = train(out, "--steps", 12, "--snapshot-every", 1, "--eval-every", 0, "--train-max-len", 4,
              *AVG)
    assert "snapshots: 13 of " in r.stderr
    return out


def test_snapshots_are_named_by_step_and_hold_the_weights(dense):
    assert list(snapshots.listing(dense)) == list(range(13))
    ckpt = load(dense)
    last = snapshots.read(dense / "snapshots" / "step_000000012.safetensors")
    assert all(torch.equal(last[k], ckpt["model"][k]) for k in ckpt["model"])


def test_replay_equals_the_trainers_online_averages_bitwise(dense):
    from train.analysis.average import compute, parse_scheme

    ckpt = load(dense)
    specs = {"ema:decay=0.9": "ema_0.9", "ema:decay=0.99": "ema_0.99", "bema-run": "bema",
             "bema:tau=2,phi=3": "bema"}
    _, _, got = compute(dense, [parse_scheme(s, ckpt["config"]) for s in specs])
    online = averaged_states(ckpt)
    for spec, name in specs.items():
        ref = online[name]["module"]
        assert all(torch.equal(got[spec][12][k], ref[k]) for k in ref), spec


def test_average_prints_eval_rows_and_a_curve(dense, tmp_path):
    r = invoke("average", dense, "--scheme", "raw", "--scheme", "bema-trl:phi=4",
               "--scheme", "uniform:from=6", "--curve", "--plot", tmp_path / "c.png")
    assert r.exit_code == 0, r.output + r.stderr
    assert "uniform:from=6  unseen" in r.output and "bema-trl:phi=4  len 5" in r.output
    assert "unseen top1_err by step:" in r.output and (tmp_path / "c.png").stat().st_size > 0
    r = invoke("average", dense, "--scheme", "raw", "--json")
    import json

    out = json.loads(r.stdout)
    ev = invoke("eval", dense, "--weights", "raw", "--json")
    assert out["eval"]["raw"] == json.loads(ev.stdout)["eval"]["raw"]  # the numbers of eval


@pytest.mark.parametrize("spec,match", [
    ("nosuch", "unknown scheme 'nosuch'"), ("ema:decay=2", "decay must lie in [0, 1]"),
    ("ema:decay", "expected key=value"), ("bema:phi=0", "phi) must be >= 1"),
    ("bema:clock=wall", "clock must be one of"), ("uniform", "uniform takes from=STEP"),
    ("bema:rho=0,gamma=0.5", "rho + gamma must be >= 1"), ("raw:x=1", "raw takes no settings"),
    ("bema:kappa=x", "kappa='x' is not a number"), ("bema:tau=1.5", "is not an integer")])
def test_bad_scheme_is_one_line(dense, spec, match):
    one_line_error(invoke("average", dense, "--scheme", spec), match)


def test_damaged_missing_and_absent_snapshots_are_one_line(dense, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(dense, run)
    snap = run / "snapshots"
    one_line_error(invoke("average", run, "--at-steps", "99", "--scheme", "raw"),
                   "no snapshot at step 99")
    data = (snap / "step_000000005.safetensors").read_bytes()
    (snap / "step_000000005.safetensors").write_bytes(data[: len(data) // 2])
    one_line_error(invoke("average", run, "--scheme", "raw"), "is damaged")
    (snap / "step_000000005.safetensors").unlink()
    one_line_error(invoke("average", run, "--scheme", "raw"), "step_000000005.safetensors is "
                   "missing")
    shutil.rmtree(snap)
    one_line_error(invoke("average", run, "--scheme", "raw"), "holds no snapshots")


def test_resume_after_a_kill_rewrites_the_snapshots_after_the_checkpoint(tmp_path):
    whole, part = tmp_path / "whole", tmp_path / "part"
    train(whole, "--steps", 10, "--snapshot-every", 2, "--eval-every", 0)
    train(part, "--steps", 10, "--snapshot-every", 2, "--eval-every", 0, "--stop-at", 4)
    snap = part / "snapshots"
    # what a kill after step 6's snapshot and before its checkpoint leaves: a snapshot newer than
    # the checkpoint (here a wrong one) and a dead writer's temporary file
    shutil.copy(snap / "step_000000004.safetensors", snap / "step_000000006.safetensors")
    (snap / ".step_000000008.safetensors.abcd1234.tmp").write_bytes(b"half")
    r = invoke("train", "--resume", "--out", part, "--no-progress")
    assert r.exit_code == 0, r.stderr
    assert "snapshots: 3 of " in r.stderr  # 6, 8, 10
    assert sorted(p.name for p in snap.iterdir()) == [snapshots.file_name(s)
                                                      for s in (0, 2, 4, 6, 8, 10)]
    for s in (0, 2, 4, 6, 8, 10):  # the CPU resume is exact: the same files as one run
        a = snapshots.read(snap / snapshots.file_name(s))
        b = snapshots.read(whole / "snapshots" / snapshots.file_name(s))
        assert all(torch.equal(a[k], b[k]) for k in a), s


def test_last_step_is_snapshotted_and_force_removes_them(tmp_path):
    out = tmp_path / "r"
    train(out, "--steps", 7, "--snapshot-every", 3, "--eval-every", 0)
    assert list(snapshots.listing(out)) == [0, 3, 6, 7]
    train(out, "--steps", 2, "--force", "--eval-every", 0)
    assert not (out / "snapshots").exists()


def test_a_disk_too_small_for_the_snapshots_is_one_line(tmp_path, monkeypatch):
    import train.training.trainer as T

    monkeypatch.setattr(T.snapshots, "snapshot_bytes", lambda model: 10**15)
    r = invoke("train", *SETCOMP, "--steps", 5, "--snapshot-every", 1, "--out", tmp_path / "r")
    one_line_error(r, "not enough disk space")
    assert "6 snapshots of" in r.stderr
    assert not (tmp_path / "r").exists()


def test_saved_weights_evaluate_resume_and_refuse_run_names(dense, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(dense, run)
    r = invoke("average", run, "--scheme", "uniform:from=6", "--save", "tail6", "--json")
    assert r.exit_code == 0, r.stderr
    import json

    got = json.loads(r.stdout)["eval"]["uniform:from=6"]
    ev = json.loads(invoke("eval", run, "--weights", "tail6", "--json").stdout)["eval"]["tail6"]
    assert ev == got
    ckpt = load(run)
    assert weights_of(ckpt)[-1] == "tail6" and ckpt["checksum"] == checksum(ckpt)
    assert ckpt["saved_averages"]["tail6"]["step"] == 12
    one_line_error(invoke("average", run, "--scheme", "raw", "--save", "ema_0.9"),
                   "names weights the run keeps itself")
    one_line_error(invoke("average", run, "--scheme", "raw", "--scheme", "ema", "--save", "x"),
                   "--save needs one --scheme")
    r = invoke("train", "--resume", "--out", run, "--steps", 14, "--no-progress")
    assert r.exit_code == 0, r.stderr
    assert "tail6" in weights_of(load(run))  # kept by the resumed run


def test_saved_weights_play(tmp_path):
    out = tmp_path / "oth"
    r = invoke("train", "--env", "othello", *TINY, "--n-layer", 1, "--n-embd", 16, "--steps", 2,
               "--snapshot-every", 1, "--play-games", 0, "--eval-every", 0, "--out", out)
    assert r.exit_code == 0, r.stderr
    assert invoke("average", out, "--scheme", "ema:decay=0.5", "--save", "e5").exit_code == 0
    r = invoke("play", out, "--weights", "e5", "--games", 2)
    assert r.exit_code == 0, r.output + r.stderr
    assert "e5" in r.output


def test_a_run_saved_before_the_bema_anchor_option_resumes_as_it_was(tmp_path):
    # an old checkpoint: no bema_anchor in its config, no new keys in its BEMA state
    whole, part = tmp_path / "whole", tmp_path / "part"
    args = ("--steps", 8, "--bema", "--bema-burn-in", 2, "--eval-every", 0)
    train(whole, *args, "--bema-anchor", "tau+1")
    train(part, *args, "--bema-anchor", "tau+1", "--stop-at", 4)
    ckpt = torch.load(part / "checkpoint.pt", weights_only=True)
    del ckpt["config"]["bema_anchor"]
    for key in ("clock", "theta0_at", "anchor", "min_ema_multiplier"):
        del ckpt["bema"][key]
    ckpt["checksum"] = checksum(ckpt)
    torch.save(ckpt, part / "checkpoint.pt")
    r = invoke("train", "--resume", "--out", part, "--no-progress")
    assert r.exit_code == 0, r.stderr
    a, b = load(part), load(whole)
    assert a["config"]["bema_anchor"] == "tau+1"
    assert all(torch.equal(a["bema"]["module"][k], b["bema"]["module"][k])
               for k in b["bema"]["module"])


def test_record_merges_each_scheme_and_report_reads_it(dense, tmp_path):
    """--record writes RUN/averages.json with eval's numbers (per-length rows left out), a
    second call merges (a label given again is replaced), --schemes-file adds specs, and
    lgagent report --averages reads the runs; --record with --curve is refused."""
    import json

    sweep = tmp_path / "sweep"
    grid = tmp_path / "grid.txt"
    grid.write_text("# a grid\nraw\n\nema:decay=0.9  # the online one\n")
    for name in ("a", "b", "c"):
        run = sweep / name
        shutil.copytree(dense, run)
        (run / "result.json").write_text(json.dumps({"name": name, "config": {}, "eval": {}}))
        r = invoke("average", run, "--schemes-file", grid, "--record")
        assert r.exit_code == 0, r.output + r.stderr
        assert "recorded: 2 schemes at step 12" in r.stderr
        r = invoke("average", run, "--scheme", "bema-trl:phi=4", "--scheme", "raw", "--record")
        assert r.exit_code == 0, r.output + r.stderr
    rec = json.loads((sweep / "a" / "averages.json").read_text())["schemes"]
    assert list(rec) == ["raw", "ema:decay=0.9", "bema-trl:phi=4"]
    ev = json.loads(invoke("eval", dense, "--weights", "raw,ema_0.9", "--json").stdout)["eval"]
    assert rec["raw"]["eval"] == {k: v for k, v in ev["raw"].items() if k != "per_length"}
    assert rec["ema:decay=0.9"]["eval"]["unseen"] == ev["ema_0.9"]["unseen"]  # replay = online
    r = invoke("report", sweep, "--averages", "--json")
    assert r.exit_code == 0, r.output + r.stderr
    av = json.loads(r.stdout)
    assert av["runs"] == 3 and set(av["schemes"]) == set(rec) and av["best_ema"] == "ema:decay=0.9"
    one_line_error(invoke("average", sweep / "a", "--scheme", "raw", "--record", "--curve"),
                   "--record keeps one step")
    one_line_error(invoke("average", sweep / "a"), "give at least one --scheme")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    one_line_error(invoke("average", sweep / "a", "--schemes-file", empty), "no scheme in it")
    one_line_error(invoke("report", sweep, "--where", "preset=x"), "add --averages")
    one_line_error(invoke("report", sweep, "--averages", "--where", "preset=x"),
                   "matching --where")
