"""train.analysis.intervene: the positions and squares it edits, the hooked edit of a GPT's
residual stream, the two edit methods, the read-out and the intervals, and a hand-built toy
model whose prediction is a read of a probe-readable board, where the answers are known."""

import numpy as np
import pytest
import torch
from torch import nn

from agents.config import preset
from agents.model import GPT
from othello_env import tokens as othello_tokens
from othello_env.games import legal_after_edits, legal_move_masks
from tests.othello_env.reference import ref_legal
from train.analysis.intervene import (
    choose_edits,
    edited_logits,
    gradient_delta,
    intervene,
    outcome,
    position_boards,
    probe_delta,
    sample_positions,
    summarise_interventions,
    top_k,
    wilson,
)
from train.analysis.probe import LinearProbe, board_targets

torch.set_num_threads(1)


# ----------------------------------------------------------------------------------------------
# Positions and squares


def test_sample_positions_bands_and_seed():
    g, plies, band = sample_positions(30, train_max_len=20, block=59, bands=("seen", "unseen"))
    assert g.shape[1] == 60 and len(g) == len(plies) == len(band)
    seen, unseen = plies[band == "seen"], plies[band == "unseen"]
    assert len(seen) == 30 and 0 < len(unseen) <= 30
    assert seen.max() <= 19 and unseen.min() >= 20 and unseen.max() <= 58  # tokens read: ply + 1
    assert (g[np.arange(len(g)), plies + 1] >= 0).all()  # the game goes on after each position
    again = sample_positions(30, 20, 59, ("seen", "unseen"))
    assert all(np.array_equal(a, b) for a, b in zip((g, plies, band), again))
    other = sample_positions(30, 20, 59, ("seen", "unseen"), seed=1)
    assert not np.array_equal(other[0], g)
    with pytest.raises(ValueError, match="unseen length band is empty"):
        sample_positions(5, 59, 59, ("unseen",))


def test_choose_edits_squares_change_or_keep_the_legal_set():
    g, plies, _ = sample_positions(40, 20, 59, ("seen", "unseen"), seed=2)
    board, legal = position_boards(g, plies)
    rows = np.arange(len(plies))
    assert np.array_equal(legal, legal_move_masks(g)[rows, plies])
    for i in range(len(rows)):  # the mover's board: its legal set is the mover's own
        assert set(np.flatnonzero(legal[i])) == ref_legal(list(board[i]), 1)
    e = choose_edits(board, legal, seed=0)
    sq, null = e["square"], e["null_square"]
    assert (sq >= 0).mean() > 0.8 and (null >= 0).mean() > 0.5
    for i in range(len(rows)):
        if sq[i] >= 0:
            assert board[i, sq[i]] != 0  # a disc, flipped
            cells = list(board[i])
            cells[sq[i]] = -cells[sq[i]]
            assert set(np.flatnonzero(e["legal_edited"][i])) == ref_legal(cells, 1)
            assert e["legal_edited"][i].any() and (e["legal_edited"][i] != legal[i]).any()
        else:
            assert np.array_equal(e["legal_edited"][i], legal[i])
        if null[i] >= 0:
            cells = list(board[i])
            cells[null[i]] = -cells[null[i]]
            assert board[i, null[i]] != 0 and ref_legal(cells, 1) == set(np.flatnonzero(legal[i]))


# ----------------------------------------------------------------------------------------------
# The read-out and the intervals


def test_top_k_outcome_and_follow():
    scores = np.full((1, 64), -1.0)
    scores[0, [10, 11, 12]] = [3.0, 2.0, 1.0]
    assert np.flatnonzero(top_k(scores, np.array([2]))[0]).tolist() == [10, 11]
    orig = np.zeros((1, 64), bool)
    orig[0, [11, 20]] = True  # the original board: 11 and 20 legal
    edited = np.zeros((1, 64), bool)
    edited[0, [10, 11]] = True  # the edit: 10 becomes legal, 20 illegal
    o = outcome(scores, orig, edited)
    assert o["err_edited"][0] == 0 and o["exact_edited"][0]
    assert o["err_original"][0] == 1  # top-2 = {10, 11}, 10 is not legal originally
    assert o["follow"][0] == 1.0  # 10 predicted, 20 not: both changed moves on the edited side
    assert np.isnan(outcome(scores, orig, orig)["follow"][0])


def test_wilson():
    lo, hi = wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    assert wilson(0, 10)[0] == 0 and wilson(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)


# ----------------------------------------------------------------------------------------------
# The edit


def _one_hot_probe(n_embd=192):
    """A probe reading square s, class k from dimension 3 s + k of the residual."""
    w = torch.zeros(n_embd, 64, 3)
    for s in range(64):
        for k in range(3):
            w[3 * s + k, s, k] = 1.0
    return LinearProbe(torch.zeros(n_embd), torch.ones(n_embd), w, torch.zeros(64, 3))


@pytest.mark.parametrize("method", [probe_delta, gradient_delta])
def test_both_methods_reach_the_margin(method):
    gen = torch.Generator().manual_seed(0)
    probe = LinearProbe(torch.randn(32, generator=gen), torch.rand(32, generator=gen) + 0.5,
                        torch.randn(32, 64, 3, generator=gen) * 0.3, torch.zeros(64, 3))
    x = torch.randn(50, 32, generator=gen)
    sq = torch.randint(0, 64, (50,), generator=gen)
    sq[0] = -1  # no square: no edit
    target = torch.randint(1, 3, (50,), generator=gen)
    d = method(probe, x, sq, target, 2.0)
    assert torch.equal(d[0], torch.zeros(32))
    lg = probe.logits(x + d)[torch.arange(50), sq.clamp_min(0)]  # (50, 3)
    others = lg.clone()
    others[torch.arange(50), target] = -1e9
    gap = lg[torch.arange(50), target] - others.max(-1).values
    # margin: exact; gradient: a penalty, a little short where not every read can hold
    assert (gap[1:] > (1.99 if method is probe_delta else 1.8)).all()
    if method is gradient_delta:  # it also holds the other squares' reads
        before, after = probe.predict(x), probe.predict(x + d)
        keep = torch.ones(50, 64, dtype=torch.bool)
        keep[torch.arange(50), sq.clamp_min(0)] = False
        assert (before[keep] == after[keep]).float().mean() > 0.97  # 32 dims: not all can


def test_edited_logits_hook_edits_one_position_of_one_layer_of_a_gpt():
    torch.manual_seed(0)
    model = GPT(preset("tiny", dropout=0.0)).eval()
    tokens = torch.randint(1, 61, (3, 10))
    plies = torch.tensor([2, 5, 9])
    rows = torch.arange(3)
    with torch.no_grad():
        plain = model(tokens)[rows, plies]
        assert torch.allclose(edited_logits(model, tokens, plies, 1, torch.zeros(3, 64)), plain)
        delta = torch.randn(3, 64)
        for layer in (0, 1, 2):
            got = edited_logits(model, tokens, plies, layer, delta)
            # by hand: the residual after `layer` blocks, plus delta at each row's position
            x = model.wte(tokens) + model.wpe(torch.arange(10))
            for i, block in enumerate(model.blocks):
                if i == layer:
                    x = x.clone()
                    x[rows, plies] += delta
                x = block(x)
            if layer == 2:
                x = x.clone()
                x[rows, plies] += delta
            want = model.lm_head(model.ln_f(x))[rows, plies]
            assert torch.allclose(got, want, atol=1e-5), layer
            assert not torch.allclose(got, plain, atol=1e-3)
        # the hooks are gone
        assert all(not b._forward_pre_hooks and not b._forward_hooks for b in model.blocks)
        assert torch.equal(model(tokens)[rows, plies], plain)
        with pytest.raises(ValueError, match="out of range"):
            edited_logits(model, tokens, plies, 3, delta)


# ----------------------------------------------------------------------------------------------
# A toy model where the answer is known


class _WriteBoard(nn.Module):
    """Block 0: ignores its input, writes the true board one-hot (3 s + class) from the tokens."""

    def __init__(self, owner):
        super().__init__()
        self.owner = [owner]

    def forward(self, x):
        tokens = self.owner[0].tokens
        squares = othello_tokens.TOKEN_TO_SQUARE[tokens.numpy()].astype(np.int8)
        classes = torch.from_numpy(board_targets(squares, "mover"))  # (B, T, 64)
        return nn.functional.one_hot(classes, 3).float().flatten(2)  # (B, T, 192)


class BoardToy(nn.Module):
    """Prediction = the legal moves of the board the residual stream holds (argmax per
    square of its one-hot code): whatever the probe reads, the model uses."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([_WriteBoard(self), nn.Identity()])

    def forward(self, tokens, return_resid=False):
        self.tokens = tokens
        x = torch.zeros(*tokens.shape, 192)
        resid = [x]
        for block in self.blocks:
            x = block(x)
            resid.append(x)
        B, T = tokens.shape
        cls = x.view(B, T, 64, 3).argmax(-1).reshape(-1, 64).numpy()
        board = np.where(cls == 1, 1, np.where(cls == 2, -1, 0)).astype(np.int8)
        legal = legal_after_edits(board, np.zeros(len(board), np.int64), cls[:, 0])
        logits = torch.zeros(B * T, 61)
        logits[:, 1:] = torch.from_numpy(legal[:, othello_tokens.TOKEN_TO_SQUARE[1:]]).float()
        logits = logits.view(B, T, 61)
        return (logits, resid) if return_resid else logits


@pytest.mark.parametrize("method", ["gradient", "margin"])
def test_toy_model_follows_edits_after_the_board_is_written_and_not_before(method):
    g, plies, band = sample_positions(60, 20, 59, ("seen", "unseen"), seed=4)
    keep = plies < 57
    g, plies, band = g[keep], plies[keep], band[keep]
    probe = _one_hot_probe()
    res = intervene(BoardToy(), {0: probe, 1: probe, 2: probe}, g, plies, method=method)
    pos = res["positions"]
    e = pos["has_edit"]
    n = res["none"]
    assert (n["err_original"] == 0).all()  # the unedited toy is exact
    # layer 0: block 0 overwrites the residual, so the edit changes nothing
    for key in ("err_edited", "err_original"):
        assert np.array_equal(res["layers"][0]["edit"][key], n[key])
    for layer in (1, 2):
        by = res["layers"][layer]
        assert by["edit"]["probe_target"][e].all()
        assert (by["edit"]["err_edited"][e] == 0).all() and (by["edit"]["follow"][e] == 1).all()
        assert by["edit"]["exact_edited"][e].all()
        assert (by["null"]["err_original"][pos["has_null"]] == 0).all()  # changes nothing
        assert np.nanmean(by["sham"]["follow"][e]) < 0.6  # a random direction: no following
        assert np.nanmean(n["follow"][e]) < 0.6
    summary = summarise_interventions(res, band)
    assert set(summary) == {"seen", "unseen"}
    s = summary["seen"]["layers"]["2"]
    assert s["edit"]["follow"]["value"] == 1.0 and s["edit"]["exact_edited"]["ci"][1] == 1.0
    assert s["effects"]["follow_edit_minus_sham"]["value"] > 0.4
    lo, hi = s["effects"]["follow_edit_minus_sham"]["ci"]
    assert 0 < lo <= hi
    assert summary["seen"]["layers"]["0"]["effects"]["follow_edit_minus_none"]["value"] == 0


def test_intervene_on_a_gpt_and_bad_positions():
    torch.manual_seed(0)
    model = GPT(preset("tiny", dropout=0.0)).eval()
    g, plies, band = sample_positions(12, 10, 59, ("seen", "unseen"))
    gen = torch.Generator().manual_seed(0)
    probes = {la: LinearProbe(torch.zeros(64), torch.ones(64),
                              torch.randn(64, 64, 3, generator=gen) * 0.1, torch.zeros(64, 3))
              for la in (0, 2)}
    res = intervene(model, probes, g, plies, method="margin")
    assert sorted(res["layers"]) == [0, 2]
    assert res["layers"][2]["edit"]["delta_norm"].shape == (len(plies),)
    summary = summarise_interventions(res, band)
    assert summary["seen"]["positions"] == 12 and summary["seen"]["none"]["n"] > 0
    with pytest.raises(ValueError, match="followed by a move"):
        intervene(model, probes, g, np.full(len(g), 59))
    with pytest.raises(ValueError, match="method"):
        intervene(model, probes, g, plies, method="magic")
    with pytest.raises(ValueError, match="out of range"):
        intervene(model, {5: probes[0]}, g, plies)
