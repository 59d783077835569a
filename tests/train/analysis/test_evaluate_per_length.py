"""train.analysis.evaluate per length: the mechanism metrics, the lenient Othello error, plots.

Every metric is checked on hand-made logits and attention with known answers;
the per-length values must add up to the seen/unseen summaries; `lgagent eval`
--json/--plot with one and several runs, and its bad input.
"""

import json
import math

import pytest
import torch
from click.testing import CliRunner

from agents import GPT, preset
from train.analysis import evaluate as ev
from train.data.tasks import Batch, make_task

PAD = 0


def _one(logits, legal, lenient=None):
    out = (torch.tensor(logits, dtype=torch.float32)[None, None],
           torch.tensor(legal, dtype=torch.bool)[None, None])
    if lenient is not None:
        out += (torch.tensor(lenient, dtype=torch.bool)[None, None],)
    return out


# -- metrics on hand-made inputs ------------------------------------------------------------


def test_displacement_is_mean_legal_minus_mean_illegal_logit_without_pad():
    # PAD=0 has logit 9 (never counted); legal {1, 2}: mean 2.0; illegal {3, 4}: mean 0.5
    z, legal = _one([9.0, 3.0, 1.0, 2.0, -1.0], [False, True, True, False, False])
    pm = ev.position_metrics(z, legal, PAD)
    assert pm["displacement"].item() == pytest.approx(1.5)
    # no illegal token: displacement (like margin) is undefined and left out of the mean
    z, legal = _one([0.0, 1.0, 2.0], [False, True, True])
    assert math.isnan(ev.legality_metrics(z, legal, PAD)["displacement"])


def test_lenient_top1_error_accepts_an_opponent_move_but_not_pad():
    # argmax token 3 is illegal, but legal for the opponent: strict error 1, lenient 0
    z, legal, lenient = _one([0.0, 1.0, 0.0, 5.0], [False, True, False, False],
                             [False, True, False, True])
    pm = ev.position_metrics(z, legal, PAD, lenient)
    assert pm["top1_err"].item() == 1.0 and pm[ev.LENIENT].item() == 0.0
    # a token neither side may play stays an error; PAD marked lenient is still never a move
    z, legal, lenient = _one([9.0, 1.0, 5.0, 0.0], [False, True, False, False],
                             [True, True, False, True])
    pm = ev.position_metrics(z, legal, PAD, lenient)
    assert pm[ev.LENIENT].item() == 1.0
    assert ev.LENIENT not in ev.position_metrics(z, legal, PAD)
    with pytest.raises(ValueError, match="lenient"):
        ev.position_metrics(z, legal, PAD, lenient.float())


def test_attention_entropy_uniform_is_log_k_and_one_hot_is_zero():
    T = 5
    uniform = torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1)[:, None]  # row t: 1/(t+1)
    one_hot = torch.zeros(T, T)
    one_hot[:, 0] = 1.0
    ent = ev.attention_entropy([uniform[None, None], one_hot[None, None]])  # (2, 1, 1, T)
    assert ent.shape == (2, 1, 1, T)
    assert ent[0, 0, 0].tolist() == pytest.approx([math.log(k) for k in range(1, T + 1)])
    assert ent[1, 0, 0].tolist() == [0.0] * T


class _AttnModel(torch.nn.Module):
    """Given logits (token 1 best, legal) and given attention: layer 0 uniform (2 heads),
    layer 1 head 0 one-hot on the first token, head 1 half on the first, half on the last."""

    def __init__(self, V=4):
        super().__init__()
        self.V = V
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, tokens, return_attn=False):
        B, T = tokens.shape
        z = torch.zeros(B, T, self.V) + self.w
        z[..., 1] = 2.0
        uniform = torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1)[:, None]
        sharp = torch.zeros(T, T)
        sharp[:, 0] = 1.0
        half = torch.zeros(T, T)
        half[0, 0] = 1.0
        for t in range(1, T):
            half[t, 0] = half[t, t] = 0.5
        attn = [uniform.expand(B, 2, T, T), torch.stack([sharp, half]).expand(B, 2, T, T)]
        return (z, attn) if return_attn else z


def _batch(B=3, T=4, V=4):
    legal = torch.zeros(B, T, V, dtype=torch.bool)
    legal[..., 1] = True
    legal[0, 3] = False  # one position without a target: not counted at length 4
    return Batch(torch.ones(B, T, dtype=torch.long), legal, torch.full((B, T), -1))


def test_per_length_attention_entropies_on_given_attention():
    res = ev.evaluate_model(_AttnModel(), _batch(), pad_id=PAD, train_max_len=2)
    per = res["per_length"]
    assert [e["length"] for e in per] == [1, 2, 3, 4]
    assert [e["positions"] for e in per] == [3, 3, 3, 2]
    for e in per:
        n = e["length"]
        assert e["attn_entropy"][0] == pytest.approx([math.log(n)] * 2)
        assert e["attn_entropy"][1] == pytest.approx([0.0, 0.0 if n == 1 else math.log(2)])
        if n == 1:
            assert all(math.isnan(x) for row in e["attn_entropy_norm"] for x in row)
        else:
            assert e["attn_entropy_norm"][0] == pytest.approx([1.0, 1.0])  # uniform
            assert e["attn_entropy_norm"][1] == pytest.approx([0.0, math.log(2) / math.log(n)])
        # logits: legal token 1 at 2.0, the two illegal tokens at 0 -> margin 2, displacement 2
        assert e["margin"] == pytest.approx(2.0) and e["displacement"] == pytest.approx(2.0)
        assert e["margin_x_length"] == pytest.approx(2.0 * n)
        assert e["top1_err"] == 0.0 and e["sep_acc"] == 1.0
    assert res["seen"]["displacement"] == pytest.approx(2.0)
    assert "attn_entropy" not in res["seen"]


def test_a_model_without_return_attn_gets_no_attention_entries():
    class Plain(_AttnModel):
        def forward(self, tokens):
            return super().forward(tokens)

    per = ev.evaluate_model(Plain(), _batch(), pad_id=PAD, train_max_len=2)["per_length"]
    assert per and all("attn_entropy" not in e and "top1_err" in e for e in per)


def test_the_model_runs_once_per_chunk():
    calls = []

    class Counting(_AttnModel):
        def forward(self, tokens, return_attn=False):
            calls.append(return_attn)
            return super().forward(tokens, return_attn)

    ev.evaluate_model(Counting(), _batch(B=5), pad_id=PAD, train_max_len=2, chunk_size=2)
    assert calls == [True, True, True]  # 3 chunks, one pass each, attention from that pass


# -- per length against the summaries, chance level, Othello's lenient error ---------------


def _weighted(per, lo, hi, metric):
    rows = [e for e in per if lo <= e["length"] <= hi and e["positions"]]
    n = sum(e["positions"] for e in rows)
    return sum(e[metric] * e["positions"] for e in rows) / n, n


@pytest.mark.parametrize("env", ["setcomp", "othello"])
def test_per_length_agrees_with_seen_and_unseen(env):
    task = make_task(env, vocab_size=10)
    batch = task.eval_batch(24, seed=5)
    torch.manual_seed(0)
    model = GPT(preset("tiny", vocab_size=task.vocab_size, block_size=task.block_size))
    L = 3
    res = ev.evaluate_model(model, batch, pad_id=task.pad_id, train_max_len=L, chunk_size=10)
    per = res["per_length"]
    assert len(per) == task.block_size
    keys = ev.METRICS + ev.MECHANISM + ((ev.LENIENT,) if env == "othello" else ())
    for split, lo, hi in (("seen", 1, L), ("unseen", L + 1, task.block_size)):
        for m in keys:
            mean, n = _weighted(per, lo, hi, m)
            assert res[split][m] == pytest.approx(mean, rel=1e-9), (split, m)
        assert res[split]["positions"] == n
    if env == "othello":
        assert batch.lenient is not None
        assert res["unseen"][ev.LENIENT] <= res["unseen"]["top1_err"]
        for e in per:
            assert len(e["attn_entropy"]) == model.config.n_layer
            assert len(e["attn_entropy"][0]) == model.config.n_head
    else:
        assert batch.lenient is None and ev.LENIENT not in res["seen"]


def test_othello_lenient_mask_is_legal_plus_the_opponents_moves():
    from othello_env.games import generate_games, opponent_legal_masks
    from othello_env.tokens import TOKEN_TO_SQUARE
    from train.data.tasks import othello_batch

    games = generate_games(4, 11)
    b = othello_batch(games, 59, lenient=True)
    opp = torch.from_numpy(opponent_legal_masks(games[:, :59]))  # (4, 59, 64) squares
    expected = b.legal.clone()
    for tok in range(1, 61):
        expected[..., tok] |= opp[..., int(TOKEN_TO_SQUARE[tok])]
    expected &= b.legal.any(-1, keepdim=True)  # no target: no lenient set either
    assert torch.equal(b.lenient, expected)
    assert (b.lenient & ~b.legal).any()  # the opponent's moves do add tokens
    assert othello_batch(games, 59).lenient is None
    assert b.to("cpu").lenient is not None


def test_an_untrained_model_scores_near_chance():
    # near-uniform logits at init: the argmax is illegal with probability n/v at length n and
    # the probability outside the legal set is about (n + 1)/(v + 1) (PAD included)
    v = 16
    task = make_task("setcomp", vocab_size=v)
    torch.manual_seed(0)
    model = GPT(preset("tiny", vocab_size=task.vocab_size, block_size=task.block_size))
    per = ev.evaluate_model(model, task.eval_batch(256, seed=1), pad_id=task.pad_id,
                            train_max_len=4)["per_length"]
    err = [e["top1_err"] - e["length"] / v for e in per]
    assert abs(sum(err) / len(err)) < 0.05
    for e in per:
        assert e["illegal_mass"] == pytest.approx((e["length"] + 1) / (v + 1), abs=0.03)
        assert e["length"] == 1 or min(min(r) for r in e["attn_entropy_norm"]) > 0.9


def test_table_lengths():
    assert ev.table_lengths(4, 15) == [1, 2, 3, 4, 5, 15]
    assert ev.table_lengths(1, 59) == [1, 2, 59]
    assert ev.table_lengths(59, 59) == [1, 2, 58, 59]


# -- lgagent eval --json / --plot, the training figure --------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from train.cli.main import main

    root = tmp_path_factory.mktemp("runs")
    for name, norm in (("pre", "pre"), ("post", "post")):
        r = CliRunner().invoke(main, ["train", "--env", "setcomp", "--vocab-size", "8",
                                      "--preset", "tiny", "--steps", "2", "--batch-size", "8",
                                      "--eval-size", "16", "--train-max-len", "3", "--ema",
                                      "--norm", norm, "--no-progress", "--out",
                                      str(root / name)])
        assert r.exit_code == 0, r.output + r.stderr
    return root


def _eval(*args):
    from train.cli.eval import eval_command

    return CliRunner().invoke(eval_command, [str(a) for a in args])


def test_eval_json_has_per_length_for_each_weights(runs):
    r = _eval(runs / "pre", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert set(out) == {"step", "env", "train_max_len", "eval", "play"}
    for w in ("raw", "ema"):
        assert set(out["eval"][w]) == {"seen", "unseen", "per_length"}
        per = out["eval"][w]["per_length"]
        assert [e["length"] for e in per] == list(range(1, 8))
        assert set(per[1]) == {"length", "positions", *ev.METRICS, *ev.MECHANISM,
                               "margin_x_length", "attn_entropy", "attn_entropy_norm"}
        # tiny: 2 layers, 4 heads; length 1: ln 1 = 0, JSON null
        assert per[0]["attn_entropy_norm"] == [[None] * 4] * 2
        assert per[1]["attn_entropy_norm"][0][0] == pytest.approx(1.0, abs=0.05)


def test_eval_several_runs_json_and_overlaid_plot(runs, tmp_path):
    png = tmp_path / "cmp.png"
    r = _eval(runs / "pre", runs / "post", "--json", "--plot", png)
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert set(out) == {str(runs / "pre"), str(runs / "post")}
    assert out[str(runs / "pre")]["eval"]["raw"]["per_length"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000

    from train.cli.eval import run_labels

    cfgs = {run: {"norm": n, "seed": 0, "out": run} for run, n in (("a/x", "pre"), ("b/y", "post"))}
    assert run_labels(cfgs) == {"a/x": "norm=pre", "b/y": "norm=post"}
    assert run_labels({"runs/x": {"norm": "pre"}}) == {"runs/x": "x"}
    same = {"a/x": {"norm": "pre"}, "b/y": {"norm": "pre"}}
    assert run_labels(same) == {"a/x": "x", "b/y": "y"}


def test_eval_plot_one_run_and_table_shows_a_few_lengths(runs, tmp_path):
    png = tmp_path / "one.png"
    r = _eval(runs / "pre" / "checkpoint.pt", "--plot", png)
    assert r.exit_code == 0, r.output
    assert png.stat().st_size > 10_000
    rows = [line.split() for line in r.output.splitlines() if line.startswith("raw ")]
    labels = [f"len {p[2]}" if p[1] == "len" else p[1] for p in rows]
    # L = 3, longest 7: lengths 1, 2, L - 1, L, L + 1 and the maximum
    assert labels == ["seen", "unseen", "len 1", "len 2", "len 3", "len 4", "len 7"]


@pytest.mark.parametrize("case", ["missing run", "unknown weights", "missing dir", "a dir",
                                  "one of several missing"])
def test_eval_bad_input_exits_2_with_one_line_and_writes_nothing(runs, tmp_path, case):
    args = {
        "missing run": [tmp_path / "nothing", "--plot", tmp_path / "p.png"],
        "unknown weights": [runs / "pre", "--weights", "swa", "--plot", tmp_path / "p.png"],
        "missing dir": [runs / "pre", "--plot", tmp_path / "no" / "p.png"],
        "a dir": [runs / "pre", "--plot", tmp_path],
        "one of several missing": [runs / "pre", tmp_path / "nothing", "--plot",
                                   tmp_path / "p.png"],
    }[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    r = _eval(*args)
    assert r.exit_code == 2, r.output
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_training_writes_the_per_length_figure_into_tensorboard(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(runs / "pre"), size_guidance={"images": 0})
    ea.Reload()
    images = ea.Images("eval/per_length")
    assert len(images) == 1 and images[0].step == 2
    assert images[0].encoded_image_string[:4] == b"\x89PNG"


@pytest.mark.slow
def test_evaluating_1024_othello_games_costs_less_than_10_training_steps(tmp_path):
    # cheap enough to run during training: tiny preset, batch 64 (the trainer evaluates in
    # chunks of the batch size), every length with attention entropies; medians of interleaved
    # repetitions (busy machines)
    import statistics
    import time

    from train.training import config as C
    from train.training.assemble import build
    from train.training.trainer import Trainer

    cfg = C.merge({"env": "othello", "preset": "tiny", "batch_size": 64, "eval_every": 0,
                   "ckpt_every": 0, "play_games": 0, "device": "cpu", "steps": 100,
                   "num_threads": 1})
    C.validate(cfg)
    cfg, task, model_cfg = build(C.resolve(cfg))
    tr = Trainer(cfg, task, model_cfg, tmp_path, progress=False)
    batches = [task.batch(64) for _ in range(10)]
    held_out = task.eval_batch(1024, seed=cfg.eval_seed)
    tr.train_step(batches[0])
    steps, evals = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        for b in batches:
            float(tr.train_step(b)[0])
        t1 = time.perf_counter()
        res = ev.evaluate_model(tr.model, held_out, pad_id=task.pad_id,
                                train_max_len=cfg.train_max_len, chunk_size=64)
        evals.append(time.perf_counter() - t1)
        steps.append((t1 - t0) / 10)
    assert len(res["per_length"]) == 59 and "attn_entropy" in res["per_length"][1]
    ratio = statistics.median(evals) / statistics.median(steps)
    assert ratio < 10, f"evaluation costs {ratio:.1f} training steps"
