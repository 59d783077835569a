"""`lgagent probe --save` (the probe file: format, round trip) and `lgagent intervene` (table,
JSON, plot, determinism, bad input: one line, exit 2, nothing written)."""

import json

import pytest
import torch

from tests.conftest import invoke, one_line_error
from train.analysis.probe import PROBE_FORMAT, check_probes, load_probes, probe_of

torch.set_num_threads(1)

PROBE = ["--games", "40", "--max-iter", "10", "--num-threads", "1"]
FAST = ["--games", "12", "--num-threads", "1"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_run):
    base = tmp_path_factory.mktemp("intervene")
    oth = tiny_run(base / "oth", "--env", "othello", "--ema", "--steps", 3, "--train-max-len", 8)
    full = tiny_run(base / "full", "--env", "othello", "--steps", 2)  # every length seen
    sc = tiny_run(base / "sc", "--env", "setcomp", "--vocab-size", 8, "--steps", 2)
    probes = base / "probes.pt"
    r = invoke("probe", oth, *PROBE, "--layers", "0,2", "--json", "--save", probes)
    assert r.exit_code == 0, r.output + r.stderr
    return {"oth": oth, "full": full, "sc": sc, "probes": probes,
            "probe_json": json.loads(r.stdout), "base": base}


def test_probe_file_round_trip(runs):
    raw = torch.load(runs["probes"], weights_only=True)  # the documented way to read it
    assert raw["format"] == PROBE_FORMAT and raw["version"] == 1
    assert raw["run"] == str(runs["oth"]) and raw["step"] == 3 and raw["coding"] == "mover"
    assert raw["layers"] == [0, 2] and raw["train_max_len"] == 8 and raw["games"] == 20
    assert raw["model_config"]["n_embd"] == 64 and raw["checksum"]
    assert list(raw["probes"]) == ["raw", "ema"]  # not random_init
    entry = raw["probes"]["raw"]["2"]
    assert entry["weight"].shape == (64, 64, 3) and entry["bias"].shape == (64, 3)
    assert entry["mean"].shape == entry["std"].shape == (64,)
    res = runs["probe_json"]
    assert res["saved"] == str(runs["probes"])
    assert entry["acc_seen"] == res["probe"]["raw"]["2"]["seen"]
    loaded = load_probes(runs["probes"])
    p = probe_of(loaded["probes"]["ema"]["0"])
    x = torch.randn(5, 64)
    assert p.predict(x).shape == (5, 64)
    assert torch.equal(p.weight, raw["probes"]["ema"]["0"]["weight"])
    bad = dict(raw, probes={"raw": {"2": dict(entry, weight=entry["weight"][:, :, :2])}})
    with pytest.raises(ValueError, match="weight"):
        check_probes(bad)
    with pytest.raises(ValueError, match="version"):
        check_probes(dict(raw, version=9))


def test_intervene_json_table_plot_and_determinism(runs, tmp_path):
    png = tmp_path / "i.png"
    args = ["intervene", runs["oth"], "--probe", runs["probes"], *FAST]
    r = invoke(*args, "--json", "--plot", png)
    assert r.exit_code == 0, r.output + r.stderr
    res = json.loads(r.stdout)
    assert res["weights"] == "raw" and res["layers"] == [0, 2] and res["train_max_len"] == 8
    assert res["probe_same_checkpoint"] and res["method"] == "gradient"
    assert list(res["bands"]) == ["seen", "unseen"]
    for band in res["bands"].values():
        assert band["positions"] == 12
        assert list(band["layers"]) == ["0", "2"]
        for by in band["layers"].values():
            for cond in ("edit", "sham", "null"):
                for key in ("err_edited", "exact_edited", "exact_original"):
                    v = by[cond][key]
                    assert v is None or v["ci"][0] <= v["value"] <= v["ci"][1]
            assert by["edit"]["n"] == band["edit_positions"]
            assert 0 <= by["edit"]["follow"]["value"] <= 1
            assert set(by["effects"]) == {"follow_edit_minus_sham", "follow_edit_minus_none",
                                          "err_edited_edit_minus_sham",
                                          "null_err_original_minus_none"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(invoke(*args, "--json").stdout)["bands"] == res["bands"]
    t = invoke(*args, "--lengths", "seen", "--layers", "2", "--weights", "ema", "--method",
               "margin", "--margin", "1")
    assert t.exit_code == 0, t.output + t.stderr
    lines = t.stdout.splitlines()
    assert "ema weights" in lines[0] and "margin 1" in lines[0]
    assert lines[1].startswith("seen band: 12 positions")
    assert [ln.split()[:2] for ln in lines[3:7]] == [["-", "none"], ["2", "edit"],
                                                     ["2", "sham"], ["2", "null"]]
    assert not any(ln.startswith("unseen") for ln in lines)


def test_intervene_all_lengths_of_a_run_trained_on_every_length_is_the_seen_band(runs):
    r = invoke("intervene", runs["full"], "--probe", runs["probes"], "--games", "4",
               "--layers", "2", "--num-threads", "1", "--json")
    assert r.exit_code == 0, r.output + r.stderr
    res = json.loads(r.stdout)
    assert list(res["bands"]) == ["seen"] and not res["probe_same_checkpoint"]
    assert res["train_max_len"] == 59


def test_probe_save_bad_path_writes_nothing(runs, tmp_path):
    (tmp_path / "file").write_text("x")
    r = invoke("probe", runs["oth"], *PROBE, "--save", tmp_path / "file" / "p.pt")
    one_line_error(r, "--save")


@pytest.fixture(scope="module")
def other_shape(runs):
    raw = torch.load(runs["probes"], weights_only=True)
    raw["model_config"] = dict(raw["model_config"], n_layer=4)
    path = runs["base"] / "other_shape.pt"
    torch.save(raw, path)
    return path


@pytest.mark.parametrize("args, message", [
    (["OTH", "--probe", "MISSING"], "no probe file"),
    (["MISSING", "--probe", "PROBES"], "no checkpoint"),
    (["OTH", "--probe", "OTHER_SHAPE"], "another shape than"),
    (["OTH", "--probe", "CKPT"], "not a probe file"),
    (["SC", "--probe", "PROBES"], "set complement run"),
    (["FULL", "--probe", "PROBES", "--lengths", "unseen"], "unseen length band is empty"),
    (["OTH", "--probe", "PROBES", "--layers", "1"], "has no probe of layer 1"),
    (["OTH", "--probe", "PROBES", "--layers", "5"], "out of range"),
    (["OTH", "--probe", "PROBES", "--weights", "bema"], "holds no probes of 'bema'"),
    (["OTH", "--probe", "PROBES", "--weights", "raw,ema"], "one name"),
    (["OTH", "--probe", "PROBES", "--games", "0"], "'--games': 0 is not in the range"),
    (["OTH", "--probe", "PROBES", "--margin", "0"], "--margin"),
    (["OTH", "--probe", "PROBES", "--lengths", "long"], "--lengths"),
    (["OTH"], "Missing option '--probe'"),
])
def test_intervene_bad_input_exits_2_with_one_line(runs, other_shape, tmp_path, args, message):
    paths = {"OTH": runs["oth"], "FULL": runs["full"], "SC": runs["sc"],
             "PROBES": runs["probes"], "OTHER_SHAPE": other_shape,
             "CKPT": runs["oth"] / "checkpoint.pt", "MISSING": tmp_path / "nope"}
    png = tmp_path / "out.png"
    argv = [paths.get(a, a) for a in args] + ["--plot", png, "--num-threads", "1"]
    if "--games" not in args:
        argv += ["--games", "4"]
    r = invoke("intervene", *argv)
    one_line_error(r, message)
    assert r.stdout == "" and not png.exists()
