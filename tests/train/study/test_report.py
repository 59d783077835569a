"""lgagent report: effects with intervals on synthetic trial results with known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from train.study import report as R

# The synthetic truth: Post-Norm adds 0.2 to unseen sep_acc, EMA adds 0.1 (paired, within a
# trial), attention dropout does nothing, BEMA does nothing.
POST, EMA_GAIN = 0.2, 0.1


def write_trials(root, n=150, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        norm = str(rng.choice(["pre", "post"]))
        drop = float(rng.choice([0.0, 0.1, 0.2]))
        L = int(rng.choice([2, 3, 4]))
        base = 0.5 + POST * (norm == "post") + rng.normal(0, 0.05)
        ev = {}
        for w, shift in (("raw", 0.0), ("ema", EMA_GAIN), ("bema", 0.0)):
            v = base + shift + rng.normal(0, 0.02)
            ev[w] = {"seen": {"top1_err": 0.0, "sep_acc": 1.0, "illegal_mass": 0.0},
                     "unseen": {"top1_err": 1 - v, "sep_acc": v, "illegal_mass": 1 - v}}
        d = root / f"trial_{i:04d}"
        d.mkdir(parents=True)
        cfg = {"norm": norm, "attn_dropout": drop, "train_max_len": L, "min_lr_ratio": 0.1,
               "loss": "next"}
        (d / "result.json").write_text(json.dumps({"name": d.name, "config": cfg, "eval": ev}))


@pytest.fixture(scope="module")
def rep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    write_trials(root, seed=1)
    return R.report(root), root


def test_known_effects_are_covered_and_significant(rep):
    r, _ = rep
    e = r["effects"]
    assert r["trials"] == 150 and r["failed"] == 0
    post = e["unseen.sep_acc: norm=post (vs pre)"]
    assert post["ci_low"] < POST < post["ci_high"] and post["p_holm"] < 1e-6
    ema = e["unseen.sep_acc: ema - raw"]
    assert ema["ci_low"] < EMA_GAIN < ema["ci_high"] and ema["p_holm"] < 1e-6
    assert ema["n"] == 150
    # the same effect on an error metric has the opposite sign
    assert e["unseen.top1_err: ema - raw"]["estimate"] == pytest.approx(-ema["estimate"])


def test_interval_coverage_over_replications(tmp_path):
    """A 95% interval covers the true effect in about 95% of replications (here >= 17 of 20)."""
    covered = 0
    for seed in range(20):
        root = tmp_path / str(seed)
        write_trials(root, n=40, seed=100 + seed)
        df = R.table(R.load_results(root))
        e = R.regression(df, "raw:unseen.sep_acc")["norm=post (vs pre)"]
        covered += e["ci_low"] < POST < e["ci_high"]
    assert covered >= 17


def test_null_factors_are_not_significant(rep):
    e = rep[0]["effects"]
    for name in ("unseen.sep_acc: attn_dropout (per +0.1)", "unseen.sep_acc: bema - raw",
                 "unseen.sep_acc: train_max_len (per token)"):
        assert e[name]["ci_low"] < 0 < e[name]["ci_high"], name
        assert e[name]["p_holm"] > 0.05, name


def test_subgroups_and_json_keys(rep):
    r, _ = rep
    e = r["effects"]
    assert "unseen.sep_acc: ema - raw | norm=post" in e
    for v in e.values():
        assert set(v) == {"estimate", "ci_low", "ci_high", "p_value", "n", "p_holm"}
    json.dumps(r, allow_nan=False)  # strict JSON: no NaN anywhere
    # a constant factor (loss, schedule) is not a regression term
    assert not any("loss=" in k and "|" not in k for k in e)


def test_paired_small_and_degenerate():
    assert R.paired(np.array([1.0, 2.0]), np.array([0.0, 1.0])) is None  # n < 3
    exact = R.paired(np.array([1.0, 2.0, 3.0]), np.array([0.5, 1.5, 2.5]))
    assert exact["estimate"] == 0.5 and exact["ci_low"] == exact["ci_high"] == 0.5
    nan = R.paired(np.array([1.0, math.nan, 3.0, 4.0]), np.array([0.0, 0.0, 2.0, 2.0]))
    assert nan["n"] == 3


def test_plot_and_empty(rep, tmp_path):
    r, root = rep
    out = tmp_path / "effects.png"
    R.plot(r, R.table(R.load_results(root)), out)
    assert out.stat().st_size > 10_000
    empty = R.report(tmp_path)
    assert empty == {"trials": 0, "failed": 0, "effects": {}, "means": {}, "curve": {},
                     "regression_note": None}


def write_small_sweep(root, n):
    """``n`` trials (n <= 5) in which norm and attention dropout vary: the regression has two
    coefficients and the intercept, so it needs 4 trials; the paired effects need 3."""
    for i in range(n):
        norm, drop = ("pre", "post")[i % 2], (0.0, 0.1, 0.2, 0.1, 0.0)[i]
        v = 0.5 + 0.2 * (norm == "post") + 0.01 * i
        ev = {w: {"unseen": {"top1_err": 1 - v - g, "sep_acc": v + g, "illegal_mass": 1 - v - g}}
              for w, g in (("raw", 0.0), ("ema", 0.05 + 0.001 * i * i), ("bema", 0.01 * i))}
        d = root / f"trial_{i}"
        d.mkdir(parents=True)
        cfg = {"norm": norm, "attn_dropout": drop, "train_max_len": 3, "min_lr_ratio": 0.1}
        (d / "result.json").write_text(json.dumps({"name": d.name, "config": cfg, "eval": ev}))


def test_too_few_trials_for_the_regression_say_how_many_it_needs(tmp_path):
    from click.testing import CliRunner

    from train.cli.main import main

    few, enough = tmp_path / "few", tmp_path / "enough"
    write_small_sweep(few, 3)
    write_small_sweep(enough, 4)
    note = ("factor effects left out: the regression on attn_dropout, norm needs at least 4 "
            "trials, there are 3")
    rep = R.report(few)
    assert rep["regression_note"] == note
    assert "unseen.sep_acc: ema - raw" in rep["effects"]  # the paired effects are there
    assert not any("norm=" in k or "dropout" in k for k in rep["effects"])
    assert R.regression_shortfall(R.table(R.load_results(few)), "raw:unseen.sep_acc") == {
        "factors": ["attn_dropout", "norm"], "needed": 4, "trials": 3}
    r = CliRunner().invoke(main, ["report", str(few)])
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines().count(note) == 1  # one line of the table
    r = CliRunner().invoke(main, ["report", str(few), "--json"])
    assert json.loads(r.stdout)["regression_note"] == note
    # one trial more: the regression runs and nothing is left out
    rep = R.report(enough)
    assert rep["regression_note"] is None
    assert "unseen.sep_acc: norm=post (vs pre)" in rep["effects"]
    assert not any(line.startswith("factor effects left out") for line in R.format_report(rep))
    # only seeds vary: there is no factor to leave out, and no note
    (tmp_path / "seeds").mkdir()
    for i in range(3):
        (tmp_path / "seeds" / f"s{i}").mkdir()
        src = json.loads((few / "trial_0" / "result.json").read_text())
        (tmp_path / "seeds" / f"s{i}" / "result.json").write_text(json.dumps(src))
    assert R.report(tmp_path / "seeds")["regression_note"] is None


def test_curve_from_real_runs_with_several_decays(tmp_path):
    """A real grid (3 seeds, EMA at two decays, evaluated every 2 steps): the report pairs
    every averaged weights with raw, overall and at each evaluation step."""
    from click.testing import CliRunner

    from train.cli.main import main

    out = tmp_path / "grid"
    r = CliRunner().invoke(main, [
        "sweep", "--env", "setcomp", "--out", str(out), "--grid", "norm=pre", "--seeds", "0,1,2",
        "--set", "vocab_size=6", "--set", "train_max_len=2", "--set", "steps=4",
        "--set", "eval_every=2", "--set", "eval_size=16", "--set", "batch_size=8",
        "--set", "ema_decay=0.5,0.9", "--set", "num_threads=1", "--no-progress"])
    assert r.exit_code == 0, r.stderr
    rep = R.report(out)
    assert rep["trials"] == 3
    for w in ("ema_0.5", "ema_0.9", "bema"):
        assert f"unseen.top1_err: {w} - raw" in rep["effects"]
        assert [p["step"] for p in rep["curve"][w]] == [2, 4]
        assert all(p["n"] == 3 for p in rep["curve"][w])
    # the last point of the curve is the final evaluation the paired effect uses
    assert rep["curve"]["bema"][-1]["estimate"] == pytest.approx(
        rep["effects"]["unseen.top1_err: bema - raw"]["estimate"], abs=1e-6)
    assert any(line.startswith("top1_err at unseen lengths") for line in R.format_report(rep))


def write_averages(root, n=40, seed=0):
    """Runs with averages.json records of known effects: ``ema:decay=0.9`` lowers the unseen
    error by 0.05 and the seen error by 0.05 (not length-specific), ``bema:phi=4`` lowers only
    the unseen error by 0.03 (length-specific), ``ema:decay=0.5`` does nothing; half the runs
    are ``preset=a``, half ``preset=b``."""
    from train.analysis.average import RECORD, RECORD_FORMAT

    rng = np.random.default_rng(seed)
    truth = {"raw": (0, 0), "ema:decay=0.9": (-0.05, -0.05), "ema:decay=0.5": (0, 0),
             "bema:phi=4": (-0.03, 0.0)}
    for i in range(n):
        d = root / f"trial_{i:04d}"
        d.mkdir(parents=True)
        cfg = {"preset": "ab"[i % 2], "norm": "pre", "loss": "next", "min_lr_ratio": 1.0}
        base_u, base_s = 0.3 + rng.normal(0, 0.05), 0.1 + rng.normal(0, 0.02)
        schemes = {}
        for label, (du, ds) in truth.items():
            u = base_u + du + (rng.normal(0, 0.005) if label != "raw" else 0)
            s = base_s + ds + (rng.normal(0, 0.005) if label != "raw" else 0)
            schemes[label] = {"kind": label.split(":")[0], "args": {}, "step": 100,
                              "held_out": {"eval_size": None},
                              "eval": {"seen": {"top1_err": s, "sep_acc": 1 - s},
                                       "unseen": {"top1_err": u, "sep_acc": 1 - u}}}
        (d / RECORD).write_text(json.dumps({"format": RECORD_FORMAT, "version": 1,
                                            "schemes": schemes}))
        ev = {"raw": {"seen": {"top1_err": base_s}, "unseen": {"top1_err": base_u}}}
        (d / "result.json").write_text(json.dumps({"name": d.name, "config": cfg, "eval": ev}))


def test_averages_recover_known_scheme_effects_and_their_length_specificity(tmp_path):
    write_averages(tmp_path)
    runs = sorted(p for p in tmp_path.iterdir())
    av = R.averages(runs)
    assert av["runs"] == 40 and av["best_ema"] == "ema:decay=0.9"
    s = av["schemes"]
    ema, bema, null = s["ema:decay=0.9"], s["bema:phi=4"], s["ema:decay=0.5"]
    for e, truth in ((ema["vs_raw"]["unseen.top1_err"], -0.05),
                     (ema["vs_raw"]["seen.top1_err"], -0.05),
                     (bema["vs_raw"]["unseen.top1_err"], -0.03), (bema["length_specific"], -0.03),
                     (ema["length_specific"], 0.0), (null["vs_raw"]["unseen.top1_err"], 0.0),
                     (bema["vs_best_ema"], 0.02)):
        assert e["ci_low"] <= truth <= e["ci_high"], (e, truth)
    assert bema["length_specific"]["p_holm"] < 1e-6 and ema["length_specific"]["p_holm"] > 0.05
    assert ema["vs_best_ema"] is None and s["raw"]["vs_raw"] == {}
    assert R.averages(runs, {"preset": "a"})["runs"] == 20
    assert R.averages(runs, {"preset": "c"})["runs"] == 0
    lines = R.format_averages(av)
    assert "best EMA: ema:decay=0.9" in lines[0] and any(x.startswith("bema:phi=4") for x in lines)


def test_averages_refuse_records_of_different_held_out_sets(tmp_path):
    from train.analysis.average import RECORD

    write_averages(tmp_path, n=4)
    path = tmp_path / "trial_0000" / RECORD
    data = json.loads(path.read_text())
    data["schemes"]["raw"]["held_out"] = {"eval_size": 64}
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="different held-out sets"):
        R.averages(sorted(tmp_path.iterdir()))
