"""train.analysis.theory: the balance of logit displacement at lengths 1 and 2, and lgagent eval's report."""

import math

import pytest
import torch

from agents.construct import exhaustive_check, set_complement_model
from train.analysis import evaluate as ev
from train.analysis.theory import format_balance, logit_balance


class Functional(torch.nn.Module):
    """logits(t) = B[t_s] + mean_i D[t_i] (uniform attention), the minimal model's form; PAD -50."""

    def __init__(self, B, D):
        super().__init__()
        self.B, self.D = B, D
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, tokens):
        v = self.D.shape[0]
        T = tokens.shape[1]
        Dt = self.D[tokens.clamp(max=v - 1)]  # (N, T, v)
        mean = Dt.cumsum(1) / torch.arange(1, T + 1)[:, None]  # causal uniform average
        z = self.B[tokens.clamp(max=v - 1)] + mean
        return torch.cat([z, torch.full((*z.shape[:2], 1), -50.0)], -1)


def test_hand_built_model_is_perfectly_balanced():
    b = logit_balance(set_complement_model(8, c=2.0), 8)
    assert b["imbalance"] == pytest.approx(0.0, abs=1e-5)
    assert b["d1_mean"] == pytest.approx(2.0, abs=1e-5) and b["d2_mean"] == pytest.approx(1.0, abs=1e-5)
    assert b["ratio_21"] == pytest.approx(0.5, abs=1e-5)
    assert b["d1_cv"] == pytest.approx(0.0, abs=1e-5) and b["d2_cv"] == pytest.approx(0.0, abs=1e-5)
    assert b["margin_1"] == pytest.approx(2.0, abs=1e-5) and b["margin_2"] == pytest.approx(1.0, abs=1e-5)
    assert b["sep_1"] == b["sep_2"] == 1.0
    assert format_balance(b).startswith("imbalance 0.000 (0 = balanced)")


def test_a_scaled_token_row_is_unbalanced_and_the_last_token_push_shows_in_the_roles():
    v, c = 8, 2.0
    D = -c * (torch.eye(v) - 1 / v)
    D2 = D.clone()
    D2[0] *= 3.0  # token 0 displaces itself three times as much
    b = logit_balance(Functional(torch.zeros(v, v), D2), v)
    assert b["imbalance"] > 0.3 and b["d1_cv"] > 0.3
    assert logit_balance(Functional(torch.zeros(v, v), D), v)["imbalance"] == pytest.approx(0, abs=1e-6)
    # B = -beta (I - J/v) pushes only the last token: length 2's two roles differ
    b = logit_balance(Functional(-1.0 * (torch.eye(v) - 1 / v), D), v)
    assert b["d2_last_mean"] == pytest.approx(b["d2_first_mean"] + 1.0, abs=1e-5)
    assert b["imbalance"] > 0.1


def test_imbalance_that_separates_lengths_1_and_2_but_fails_longer():
    # every token but 0 raises token 0's logit by g: fine while (s - 1) g < c, so lengths 1, 2
    # separate, lengths s >= 1 + c/g do not; the balance measure sees it at lengths 1 and 2
    v, c, g = 8, 2.0, 0.8
    D = -c * (torch.eye(v) - 1 / v)
    D[1:, 0] += g
    model = Functional(torch.zeros(v, v), D)
    b = logit_balance(model, v)
    assert b["sep_1"] == b["sep_2"] == 1.0 and b["imbalance"] > 0.05
    res = exhaustive_check(model, v)
    sep = {e["length"]: e["sep_frac"] for e in res["per_length"]}
    assert sep[1] == sep[2] == 1.0 and sep[3] == 1.0 and sep[4] < 1.0  # (s - 1) g >= c at s = 4


def test_eval_reports_balance_for_one_layer_attention_only_runs_only(tiny_run, tmp_path):
    from tests.conftest import SETCOMP

    minimal = tiny_run(tmp_path / "minimal", *SETCOMP, "--preset", "setcomp-1l", "--n-embd", "16",
                       "--steps", "2", "--ema")
    res = ev.evaluate_checkpoint(minimal, eval_size=8)
    assert set(res["eval"]) == {"raw", "ema"}
    for w in ("raw", "ema"):
        b = res["eval"][w]["balance"]
        assert set(b) >= {"imbalance", "d1_mean", "d2_mean", "ratio_21", "margin_1", "margin_2"}
        assert not math.isnan(b["d1_mean"])
    lines = ev.format_results(res["eval"])
    assert any(line.startswith("balance raw: imbalance ") for line in lines)
    assert "eval/raw/balance" not in " ".join(ev.flat_scalars(res["eval"]))
    other = tiny_run(tmp_path / "tiny", *SETCOMP, "--steps", "2")  # 2 layers with MLPs
    assert "balance" not in ev.evaluate_checkpoint(other, eval_size=8)["eval"]["raw"]
