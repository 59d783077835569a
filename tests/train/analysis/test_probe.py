"""`lgagent probe` and train.analysis.probe: board targets (mover-relative, passes), the linear probe on
synthetic activations, GPT(return_resid=True), the command's JSON, plot and bad input."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from agents.config import preset
from agents.model import GPT
from othello_env.engine import legal_moves
from othello_env.games import board_states, generate_games, legal_move_masks
from train.analysis.probe import (
    board_targets,
    fit_probe,
    majority_classes,
    parse_layers,
    probe_run,
    summarise,
    to_move,
)
from train.cli.main import main

torch.set_num_threads(1)

# A random game whose move 7 (white, square 61) leaves black without a move: white moves again.
PASS_GAME = [44, 45, 19, 52, 60, 59, 46, 61, 20, 53]


def _grid(rows: str) -> np.ndarray:
    """8 rows of 8 characters ('.' empty, 'M' mine, 'T' theirs) -> classes (64,) 0/1/2."""
    chars = "".join(rows.split())
    assert len(chars) == 64
    return np.array([".MT".index(c) for c in chars])


# ----------------------------------------------------------------------------------------------
# Targets


def test_to_move_alternates_except_after_a_pass_and_at_the_end():
    g = np.array([PASS_GAME], dtype=np.int8)
    m = to_move(g, board_states(g))[0]
    # after black's move 0 white moves, ...; after white's move 7 black must pass: white again
    assert m[:9].tolist() == [-1, 1, -1, 1, -1, 1, -1, -1, 1]
    padded = np.full((1, 60), -1, dtype=np.int8)
    full = generate_games(1, seed=0)
    n = int((full[0] >= 0).sum())
    padded[0, :n] = full[0, :n]
    mp = to_move(padded, board_states(padded))[0]
    assert mp[n - 1] == -mp[n - 2] or n == 60  # nobody moves after the end: alternation
    assert (mp[n:] == 0).all()


def test_mover_coding_against_hand_written_boards():
    g = np.array([PASS_GAME], dtype=np.int8)
    y = board_targets(g, "mover")[0]  # (10, 64)
    # after black plays 44 (flipping 36): white to move, so white's 27 is "mine"
    assert y[0].tolist() == _grid("""
        ........
        ........
        ........
        ...MT...
        ...TT...
        ....T...
        ........
        ........""").tolist()
    # after white's 61 (flipping 60) black has no move: white moves again, white is still "mine"
    assert y[7].tolist() == _grid("""
        ........
        ........
        ...T....
        ...TT...
        ...TT...
        ....TTT.
        ....M...
        ...MMM..""").tolist()
    # white's second move in a row (20, flipping 28, 36, 44): now black is to move
    assert y[8].tolist() == _grid("""
        ........
        ........
        ...MT...
        ...MT...
        ...MT...
        ....TMM.
        ....T...
        ...TTT..""").tolist()
    colour = board_targets(g, "colour")[0]
    assert colour[8].tolist() == _grid("""
        ........
        ........
        ...MT...
        ...MT...
        ...MT...
        ....TMM.
        ....T...
        ...TTT..""").tolist()  # black (class 1) / white (class 2) here equals mine / theirs
    with pytest.raises(ValueError, match="coding"):
        board_targets(g, "relative")


def test_to_move_is_the_side_whose_legal_moves_the_replay_gives():
    g = generate_games(200, seed=5)
    boards = board_states(g)
    masks = legal_move_masks(g)
    m = to_move(g, boards)
    checked = passes = 0
    for i in range(g.shape[0]):
        for t in range(59):
            if g[i, t + 1] < 0:
                break
            black = sum(1 << s for s in range(64) if boards[i, t, s] == 1)
            white = sum(1 << s for s in range(64) if boards[i, t, s] == -1)
            me, opp = (black, white) if m[i, t] == 1 else (white, black)
            got = int(legal_moves(np.uint64(me), np.uint64(opp)))
            assert got == sum(1 << s for s in range(64) if masks[i, t, s])
            checked += 1
            passes += t > 0 and m[i, t] == m[i, t - 1]
    assert checked > 10000 and passes > 0  # random games do pass


# ----------------------------------------------------------------------------------------------
# The probe on synthetic activations


def _real_targets(n_games, seed, length=20):
    g = generate_games(n_games, seed=seed)
    y = torch.from_numpy(board_targets(g, "mover")[:, :length])
    return y[torch.from_numpy(g[:, :length] >= 0)]  # (N, 64)


def test_probe_recovers_a_linear_encoding_and_not_noise():
    gen = torch.Generator().manual_seed(0)
    y_fit, y_test = _real_targets(80, 1), _real_targets(40, 2)  # 1600 / 800 positions
    # a square's 3 classes need 2 dimensions: 128 dims of "mine", "theirs" indicators,
    # mixed into 144 "residual" dims
    proj = torch.randn(64 * 2, 144, generator=gen)

    def encode(y):
        onehot = torch.nn.functional.one_hot(y, 3)[:, :, 1:].reshape(len(y), -1).float()
        return onehot @ proj + 0.1 * torch.randn(len(y), 144, generator=gen)

    probe = fit_probe(encode(y_fit), y_fit, max_iter=50)
    acc = (probe.predict(encode(y_test)) == y_test).double().mean().item()
    assert acc > 0.97  # misses: classes a square never showed in the fit positions

    major = majority_classes(y_fit)
    maj_acc = (major.expand_as(y_test) == y_test).double().mean().item()
    noise = fit_probe(torch.randn(len(y_fit), 16, generator=gen), y_fit, max_iter=50)
    noise_acc = (noise.predict(torch.randn(len(y_test), 16, generator=gen)) == y_test)
    noise_acc = noise_acc.double().mean().item()
    assert abs(noise_acc - maj_acc) < 0.02 and maj_acc < 0.9 < acc


def test_fit_probe_is_deterministic_and_checks_shapes():
    y = _real_targets(20, 3)
    x = torch.randn(len(y), 8, generator=torch.Generator().manual_seed(1))
    a, b = fit_probe(x, y, max_iter=20), fit_probe(x, y, max_iter=20)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    with pytest.raises(ValueError, match="need x"):
        fit_probe(x[:3], y[:4])


def test_summarise_seen_unseen_per_length():
    correct = torch.tensor([[True, True], [True, False], [False, False]])
    occupied = torch.tensor([[True, False], [True, True], [False, False]])
    lengths = torch.tensor([1, 2, 3])
    s = summarise(correct, occupied, lengths, train_max_len=2)
    assert s["seen"] == pytest.approx(0.75) and s["unseen"] == 0.0
    assert s["seen_occupied"] == pytest.approx(2 / 3) and s["unseen_occupied"] is None
    assert [e["length"] for e in s["per_length"]] == [1, 2, 3]
    assert s["per_length"][1] == {"length": 2, "positions": 1, "acc": 0.5, "acc_occupied": 0.5}
    assert summarise(correct, occupied, lengths, 3)["unseen"] is None


def test_parse_layers():
    assert parse_layers("all", 2) == [0, 1, 2]
    assert parse_layers(" 2,0,2 ", 8) == [0, 2]
    for bad in ("", "x", "1,", "-1", "3"):
        with pytest.raises(ValueError, match="--layers"):
            parse_layers(bad, 2)


# ----------------------------------------------------------------------------------------------
# GPT(return_resid=True)


@pytest.mark.parametrize("norm", ["pre", "post", "none"])
def test_return_resid_is_the_residual_stream_of_the_same_pass(norm):
    torch.manual_seed(0)
    model = GPT(preset("tiny", norm=norm, dropout=0.0)).eval()
    x = torch.randint(1, 61, (3, 12))
    with torch.no_grad():
        logits = model(x)
        got, resid = model(x, return_resid=True)
        _, loss, attn, resid2 = model(x, x, return_attn=True, return_resid=True)
        emb = model.wte(x) + model.wpe(torch.arange(12))
        h = emb
        for i, block in enumerate(model.blocks):
            h = block(h)
            assert torch.allclose(resid[i + 1], h, atol=1e-6)
    assert torch.equal(got, logits) and isinstance(loss, torch.Tensor) and len(attn) == 2
    assert len(resid) == len(resid2) == 3 and resid[0].shape == (3, 12, 64)
    assert torch.allclose(resid[0], emb)
    assert torch.allclose(model.lm_head(model.ln_f(resid[-1])), logits, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(resid, resid2))


# ----------------------------------------------------------------------------------------------
# The command

PROBE = ["--games", "40", "--max-iter", "15", "--num-threads", "1"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_run):
    base = tmp_path_factory.mktemp("probe")
    return {
        "othello": tiny_run(base / "oth", "--env", "othello", "--ema", "--steps", 3,
                          "--train-max-len", 8),
        "setcomp": tiny_run(base / "sc", "--env", "setcomp", "--vocab-size", 8, "--steps", 2),
    }


def probe(*args):
    return CliRunner().invoke(main, ["probe", *map(str, args)])


def test_probe_json_plot_and_determinism(runs, tmp_path):
    png = tmp_path / "probe.png"
    r = probe(runs["othello"], *PROBE, "--layers", "0,2", "--json", "--plot", png)
    assert r.exit_code == 0, r.output + r.stderr
    res = json.loads(r.stdout)
    assert res["train_max_len"] == 8 and res["coding"] == "mover" and res["layers"] == [0, 2]
    assert res["games"] == {"fit": 20, "test": 20} and res["fit_lengths"] == "seen"
    assert list(res["probe"]) == ["raw", "ema", "random_init"]
    for by_layer in res["probe"].values():
        assert list(by_layer) == ["0", "2"]
        for entry in by_layer.values():
            for key in ("seen", "unseen", "fit", "seen_occupied", "unseen_occupied"):
                assert 0 <= entry[key] <= 1
            pl = entry["per_length"]
            assert [e["length"] for e in pl][:10] == list(range(1, 11))
            assert sum(e["positions"] for e in pl) == (entry["positions_seen"]
                                                       + entry["positions_unseen"])
            assert entry["positions_seen"] == 20 * 8  # every test game lasts 8 moves
    maj = res["majority"]
    assert 0 < maj["seen"] < 1 and maj["unseen"] < maj["seen"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = probe(runs["othello"], *PROBE, "--layers", "0,2", "--json")
    assert json.loads(again.stdout) == res  # same seed, same games, same probes


def test_probe_table_colour_coding_and_all_lengths(runs):
    r = probe(runs["othello"], *PROBE, "--layers", "1", "--weights", "ema", "--coding",
              "colour", "--fit-lengths", "all")
    assert r.exit_code == 0, r.output + r.stderr
    lines = r.stdout.strip().splitlines()
    assert "colour coding" in lines[0] and "fit at all lengths" in lines[0]
    assert [ln.split()[:2] for ln in lines[2:]] == [["ema", "1"], ["random_init", "1"],
                                                    ["majority", "-"]]
    res = probe_run(runs["othello"], weights=["raw"], layers="0", games=20, max_iter=5,
                    fit_lengths="all")
    assert res["probe"]["raw"]["0"]["unseen"] is not None


@pytest.mark.parametrize("args, message", [
    (["MISSING"], "no checkpoint"),
    (["SETCOMP"], "set complement run"),
    (["OTH", "--weights", "foo"], "unknown weights 'foo'"),
    (["OTH", "--weights", "bema"], "no bema weights"),
    (["OTH", "--games", "0"], "'--games': 0 is not in the range x>=2"),
    (["OTH", "--layers", "3"], "out of range 0..2"),
    (["OTH", "--layers", "0,x"], "--layers must be"),
    (["OTH", "--layers", ""], "--layers must be"),
])
def test_probe_bad_input_exits_2_with_one_line(runs, tmp_path, args, message):
    paths = {"MISSING": tmp_path / "nope", "SETCOMP": runs["setcomp"], "OTH": runs["othello"]}
    png = tmp_path / "out.png"
    argv = [paths.get(a, a) for a in args] + ["--plot", png, "--num-threads", "1"]
    r = probe(*argv)
    assert r.exit_code == 2, (r.exit_code, r.output, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], r.stderr
    assert "Traceback" not in r.output and r.stdout == "" and not png.exists()
