"""train/data/tasks.py: one data interface for Othello and set complement."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from othello_env import tokens as T
from othello_env.games import generate_games
from tests.othello_env.reference import ref_game
from train.data import tasks
from train.data.tasks import Batch, load_corpus, make_task

# ---------------------------------------------------------------- a plain-Python Othello oracle


def oracle_legal_sets(game, passes=None):
    """Legal squares for the side to move after each move (empty once the game is over,
    and at the -1 padding after it). Appends to ``passes`` (a list) the ply after which a
    forced pass happened."""
    moves = [sq for sq in game if sq >= 0]
    _, legal, _ = ref_game(moves, passes)
    return legal + [set()] * (len(game) - len(moves))


def tokens_of(squares):
    return {int(T.SQUARE_TO_TOKEN[s]) for s in squares}


# ---------------------------------------------------------------- set complement


def test_setcomp_shapes_and_metadata():
    task = make_task("setcomp", vocab_size=10, seed=1)
    assert (task.name, task.vocab_size, task.block_size, task.pad_id) == ("setcomp", 11, 9, 10)
    b = task.batch(8)
    assert isinstance(b, Batch) and len(b) == 8
    assert b.tokens.dtype == torch.long and b.tokens.shape == (8, 9)
    assert b.legal.dtype == torch.bool and b.legal.shape == (8, 9, 11)
    assert b.next.dtype == torch.long and b.next.shape == (8, 9)
    b = task.batch(3, max_len=4)
    assert b.tokens.shape == (3, 4) and b.legal.shape == (3, 4, 11)


def test_setcomp_batch_content_brute_force():
    v = 8
    b = make_task("setcomp", vocab_size=v, seed=5).batch(16, max_len=6)
    tok = b.tokens.numpy()
    for i in range(16):
        assert len(set(tok[i].tolist())) == 6 and tok[i].max() < v  # distinct, no PAD
        for p in range(6):
            want = [k not in set(tok[i, : p + 1].tolist()) for k in range(v)] + [False]
            assert b.legal[i, p].tolist() == want
    assert torch.equal(b.next[:, :-1], b.tokens[:, 1:])
    assert (b.next[:, -1] >= 0).all()  # the last position has a next token too
    # the next token is always a legal target (so never a repeat, never PAD)
    assert b.legal.gather(2, b.next[:, :, None]).all()


def test_setcomp_full_length_next_is_the_one_missing_token():
    # T = block size v - 1: one token is left, and it is the last position's next token
    v = 6
    b = make_task("setcomp", vocab_size=v, seed=2).batch(20)
    assert b.tokens.shape == (20, v - 1)
    assert torch.equal(b.tokens.sum(1) + b.next[:, -1], torch.full((20,), v * (v - 1) // 2))
    assert (b.legal[:, -1].sum(-1) == 1).all()
    assert torch.equal(b.legal[:, -1].float().argmax(-1), b.next[:, -1])


def test_setcomp_tokens_and_legal_unchanged_by_the_extra_next_token():
    # the stream's tokens are the first T entries of each row's permutation, as before the
    # extra token was drawn: only next[:, T - 1] (was -1) changed
    from setcomp_env.core import complement_masks, sample_sequences

    b = make_task("setcomp", vocab_size=9, seed=7).batch(5, max_len=4)
    ss = np.random.SeedSequence(7, spawn_key=(0, 0, 0))
    want = sample_sequences(5, 4, 9, seed=ss)
    assert torch.equal(b.tokens, torch.from_numpy(want))
    assert torch.equal(b.legal[:, :, :9], torch.from_numpy(complement_masks(want, 9)))
    assert not b.legal[:, :, 9].any()


@pytest.mark.parametrize("name", ["setcomp", "othello"])
def test_next_loss_trains_the_position_that_has_seen_L_tokens(name):
    # Regression (an off-by-one): with --loss next and --train-max-len L, position
    # L - 1 (L tokens seen, counted as a seen length by evaluation) has a next target and
    # the next-token loss reaches its logits, for both tasks alike.
    from agents.losses import loss as loss_fn

    L = 4
    task = make_task(name, seed=1)
    b = task.batch(6, max_len=L)
    assert b.tokens.shape == (6, L)
    assert (b.next[:, L - 1] >= 0).all()
    assert b.legal[:, L - 1].gather(1, b.next[:, L - 1, None]).all()
    logits = torch.zeros(6, L, task.vocab_size, requires_grad=True)
    loss_fn("next", logits, b).backward()
    assert (logits.grad[:, L - 1].abs().sum(-1) > 0).all()


def test_setcomp_min_len_masks_early_positions():
    b = make_task("setcomp", vocab_size=8, seed=0).batch(4, max_len=7, min_len=4)
    assert not b.legal[:, :3].any() and (b.next[:, :3] == -1).all()
    assert (b.legal[:, 3:].sum(-1) == torch.tensor([4, 3, 2, 1])).all()
    assert torch.equal(b.next[:, 3:6], b.tokens[:, 4:7])


def test_fresh_stream_deterministic_resumable_and_rank_dependent():
    for name in ("setcomp", "othello"):
        a, b = make_task(name, seed=3), make_task(name, seed=3)
        for _ in range(3):
            x, y = a.batch(4, max_len=5), b.batch(4, max_len=5)
            assert torch.equal(x.tokens, y.tokens) and torch.equal(x.legal, y.legal)
        state = a.state_dict()
        assert state == {"task": name, "seed": 3, "rank": 0, "step": 3} | (
            {"vocab_size": 16} if name == "setcomp" else {})
        want = a.batch(4, max_len=5)
        c = make_task(name, seed=99)
        c.load_state_dict(state)
        got = c.batch(4, max_len=5)
        assert torch.equal(want.tokens, got.tokens) and torch.equal(want.next, got.next)
        r1 = make_task(name, seed=3, rank=1).batch(4, max_len=5)
        r0 = make_task(name, seed=3, rank=0).batch(4, max_len=5)
        assert not torch.equal(r0.tokens, r1.tokens)
        assert not torch.equal(r0.tokens, a.batch(4, max_len=5).tokens)  # later batches differ


def test_randomized_positions_sorted_distinct_in_range_seeded_and_resumable():
    task = make_task("setcomp", vocab_size=12, seed=5)
    plain = make_task("setcomp", vocab_size=12, seed=5).batch(64, max_len=6)
    b = task.batch(64, max_len=6, pos_range=40)
    assert plain.pos is None and b.pos.shape == (64, 6) and b.pos.dtype == torch.long
    assert torch.equal(b.tokens, plain.tokens)  # positions come from a branch of their own
    p = b.pos
    assert (p[:, 1:] > p[:, :-1]).all()  # sorted and distinct
    assert p.min() >= 0 and p.max() < 40
    assert len({tuple(row) for row in p.tolist()}) > 60  # a fresh sample per sequence
    assert p.max() >= 30 and p[:, 0].float().mean() < 10  # spread over the whole range
    # seeded: the same seed and step give the same positions; a checkpointed stream resumes
    state = task.state_dict()
    want = task.batch(64, max_len=6, pos_range=40).pos
    again = make_task("setcomp", vocab_size=12, seed=5)
    assert torch.equal(again.batch(64, max_len=6, pos_range=40).pos, p)
    other = make_task("setcomp", vocab_size=12, seed=99)
    other.load_state_dict(state)
    assert torch.equal(other.batch(64, max_len=6, pos_range=40).pos, want)
    assert not torch.equal(make_task("setcomp", vocab_size=12, seed=5, rank=1)
                           .batch(64, max_len=6, pos_range=40).pos, p)  # per rank
    # every subset equally likely: T = R - 1 leaves out each position about equally often
    left_out = tasks.random_positions(20000, 4, 5, np.random.SeedSequence(0))
    counts = np.bincount(10 - left_out.sum(1), minlength=5)  # 0+1+2+3+4 = 10
    assert counts.min() > 3700 and counts.max() < 4300
    with pytest.raises(ValueError, match="pos_range"):
        task.batch(4, max_len=6, pos_range=5)  # shorter than the sequences
    assert task.batch(2, max_len=3, pos_range=3).pos.tolist() == [[0, 1, 2], [0, 1, 2]]


def test_load_state_keeps_rank():
    a = make_task("setcomp", seed=1, rank=2)
    a.load_state_dict({"task": "setcomp", "seed": 4, "rank": 0, "step": 7, "vocab_size": 16})
    assert a.state_dict() == {"task": "setcomp", "seed": 4, "rank": 2, "step": 7, "vocab_size": 16}


@pytest.mark.parametrize("state,match", [
    ({"task": "othello", "seed": 0, "rank": 0, "step": 1, "vocab_size": 16}, "othello"),
    ({"task": "setcomp", "seed": 0, "rank": 0, "step": 1, "vocab_size": 8}, "vocab_size 8"),
    ({"task": "setcomp", "seed": 0, "rank": 0}, "step"),
    ({"task": "setcomp", "seed": 0, "rank": 0, "step": -1, "vocab_size": 16}, "step"),
    ([1, 2], "dict"),
])
def test_load_state_bad(state, match):
    with pytest.raises(ValueError, match=match):
        make_task("setcomp").load_state_dict(state)


def test_eval_batch_fixed_and_independent_of_stream():
    a = make_task("setcomp", vocab_size=12, seed=0)
    e1 = a.eval_batch(32, max_len=6)
    a.batch(32, max_len=6)
    assert a.state_dict()["step"] == 1  # eval does not advance the stream
    e2 = make_task("setcomp", vocab_size=12, seed=5).eval_batch(32, max_len=6)
    assert torch.equal(e1.tokens, e2.tokens)  # held-out set independent of the training seed
    assert not torch.equal(e1.tokens, a.eval_batch(32, max_len=6, seed=1).tokens)
    train = make_task("setcomp", vocab_size=12, seed=0).batch(32, max_len=6)
    assert not torch.equal(e1.tokens, train.tokens)
    o = make_task("othello").eval_batch(4, max_len=10, min_len=3)
    assert o.tokens.shape == (4, 10) and not o.legal[:, :2].any()
    assert torch.equal(o.tokens, make_task("othello", seed=9).eval_batch(4, max_len=10).tokens)


@pytest.mark.parametrize("call,match", [
    (lambda t: t.batch(0), "batch_size"),
    (lambda t: t.batch(2, max_len=16), "max_len"),
    (lambda t: t.batch(2, max_len=0), "max_len"),
    (lambda t: t.batch(2, max_len=4, min_len=5), "min_len"),
    (lambda t: t.batch(2, min_len=0), "min_len"),
    (lambda t: t.batch(2.0), "batch_size"),
    (lambda t: t.eval_batch(0), "n must"),
    (lambda t: t.eval_batch(2, seed=-1), "seed"),
])
def test_batch_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call(make_task("setcomp"))


@pytest.mark.parametrize("kwargs,match", [
    (dict(name="chess"), "unknown task"),
    (dict(name="setcomp", data="x.npy"), "no data file"),
    (dict(name="setcomp", vocab_size=1), "vocab_size"),
    (dict(name="setcomp", seed=-2), "seed"),
    (dict(name="othello", rank=-1), "rank"),
])
def test_make_task_bad_arguments(kwargs, match):
    name = kwargs.pop("name")
    with pytest.raises(ValueError, match=match):
        make_task(name, **kwargs)


# ---------------------------------------------------------------- Othello


def test_othello_shapes_and_metadata():
    task = make_task("othello", seed=0)
    assert (task.name, task.vocab_size, task.block_size, task.pad_id) == ("othello", 61, 59, 0)
    b = task.batch(5)
    assert b.tokens.shape == (5, 59) and b.legal.shape == (5, 59, 61) and b.next.shape == (5, 59)
    assert b.tokens.dtype == torch.long and b.next.dtype == torch.long
    assert b.legal.dtype == torch.bool
    assert not b.legal[:, :, T.PAD].any()
    b = task.batch(3, max_len=20)
    assert b.tokens.shape == (3, 20) and b.legal.shape == (3, 20, 61)


def _check_against_oracle(games, b, T_len):
    for i, game in enumerate(games):
        sets = oracle_legal_sets(game.tolist())
        for t in range(T_len):
            sq = int(game[t])
            assert b.tokens[i, t].item() == (T.PAD if sq < 0 else T.SQUARE_TO_TOKEN[sq])
            got = set(torch.nonzero(b.legal[i, t]).flatten().tolist())
            assert got == tokens_of(sets[t]), (i, t)
            nxt = int(game[t + 1])
            assert b.next[i, t].item() == (-1 if nxt < 0 else T.SQUARE_TO_TOKEN[nxt])


def test_othello_batch_matches_plain_python_oracle():
    games = generate_games(6, seed=17)
    b = tasks.othello_batch(games, 59)
    _check_against_oracle(games, b, 59)
    valid = b.next >= 0
    assert b.legal[valid.nonzero(as_tuple=True)].gather(1, b.next[valid][:, None]).all()


def test_othello_batch_short_games_and_passes():
    # find games that end early and games with a pass (same colour twice) among a small sample
    games = generate_games(3000, seed=2)
    lengths = (games >= 0).sum(1)
    short = games[lengths < 60][:2]
    assert len(short) >= 1
    b = tasks.othello_batch(short, 59)
    _check_against_oracle(short, b, 59)
    with_pass = []
    for g in games[:40]:
        passes = []
        oracle_legal_sets(g.tolist(), passes)
        if passes and passes[0] < 57:  # the pass shows within the 59 inputs
            with_pass.append(g)
    assert len(with_pass) >= 2  # a third of random games hold a pass, mostly near the end
    _check_against_oracle(np.array(with_pass), tasks.othello_batch(np.array(with_pass), 59), 59)
    for i, g in enumerate(short):
        n = int((g >= 0).sum())
        assert (b.tokens[i, n:] == T.PAD).all()
        assert not b.legal[i, n - 1 :].any()  # game over from the last move on
        assert (b.next[i, n - 1 :] == -1).all()


@pytest.mark.parametrize("args,match", [
    ((60,), "T must be in 1..59"),  # was accepted: tokens (n, 60) but next (n, 59)
    ((0,), "T must be in 1..59"),
    ((5, 0), "min_len must be in 1..5"),
    ((5, 6), "min_len must be in 1..5"),
])
def test_othello_batch_bad_lengths(args, match):
    with pytest.raises(ValueError, match=match):
        tasks.othello_batch(generate_games(2, seed=0), *args)


@pytest.mark.parametrize("games", [generate_games(2, seed=0)[0], generate_games(2, seed=0)[:, :30],
                                   generate_games(2, seed=0).astype(np.float32)])
def test_othello_batch_bad_games(games):
    with pytest.raises(ValueError, match=r"integer array \(n, 60\)"):
        tasks.othello_batch(games, 5)


def test_othello_truncation_keeps_true_next_move():
    task = make_task("othello", seed=4)
    full = make_task("othello", seed=4).batch(3)
    cut = task.batch(3, max_len=10)
    assert torch.equal(cut.tokens, full.tokens[:, :10])
    assert torch.equal(cut.legal, full.legal[:, :10])
    assert torch.equal(cut.next, full.next[:, :10])


def test_othello_fresh_stream_uses_engine_games():
    task = make_task("othello", seed=8)
    ss = np.random.SeedSequence(8, spawn_key=(0, 0, 0))
    games = generate_games(4, seed=tasks._int_seed(ss))
    b = task.batch(4)
    assert torch.equal(b.tokens, tasks.othello_batch(games, 59).tokens)


# ---------------------------------------------------------------- Othello corpus


@pytest.fixture
def corpus(tmp_path):
    games = generate_games(10, seed=5)
    path = tmp_path / "games.npy"
    np.save(path, games)
    return path, games


def test_corpus_epochs_cover_every_game_once(corpus):
    path, games = corpus
    task = make_task("othello", data=path, seed=1)
    seen = [task.batch(5).tokens for _ in range(4)]  # two epochs of 10 games
    want = {tuple(r) for r in tasks.othello_batch(games, 59).tokens.tolist()}
    ep1 = [tuple(r) for r in torch.cat(seen[:2]).tolist()]
    ep2 = [tuple(r) for r in torch.cat(seen[2:]).tolist()]
    assert sorted(ep1) == sorted(want) and sorted(ep2) == sorted(want)
    assert ep1 != ep2  # a new order each epoch


def test_corpus_resume_and_ranks(corpus):
    path, _ = corpus
    a = make_task("othello", data=path, seed=2)
    a.batch(3)
    a.batch(4)  # varying batch sizes; the next batch crosses the epoch boundary
    state = a.state_dict()
    assert state["offset"] == 7 and state["corpus_games"] == 10 and state["step"] == 2
    want = a.batch(6)
    b = make_task("othello", data=path, seed=0)
    b.load_state_dict(state)
    assert torch.equal(b.batch(6).tokens, want.tokens)
    r0 = make_task("othello", data=path, seed=2, rank=0).batch(10)
    r1 = make_task("othello", data=path, seed=2, rank=1).batch(10)
    assert not torch.equal(r0.tokens, r1.tokens)
    assert sorted(r0.tokens.tolist()) == sorted(r1.tokens.tolist())  # same games, another order


def test_corpus_state_from_another_corpus(corpus, tmp_path):
    path, games = corpus
    other = tmp_path / "other.npy"
    np.save(other, games[:7])
    state = make_task("othello", data=path).state_dict()
    with pytest.raises(ValueError, match="10 games"):
        make_task("othello", data=other).load_state_dict(state)
    # a fresh-stream state lacks the corpus position
    with pytest.raises(ValueError, match="offset"):
        make_task("othello", data=path).load_state_dict(make_task("othello").state_dict())


def test_corpus_state_on_fresh_task_and_bad_state_changes_nothing(corpus):
    path, _ = corpus
    c = make_task("othello", data=path, seed=2)
    c.batch(3)
    state = c.state_dict()
    fresh = make_task("othello", seed=5)
    with pytest.raises(ValueError, match="corpus of 10 games.*fresh"):
        fresh.load_state_dict(state)  # would silently switch the run's data source
    assert fresh.state_dict() == {"task": "othello", "seed": 5, "rank": 0, "step": 0}
    # a bad field found late must not leave the corpus position half restored
    with pytest.raises(ValueError, match="seed"):
        c.load_state_dict({**state, "offset": 9, "step": 8, "seed": -1})
    assert c.state_dict() == state


def test_corpus_missing_file_and_directory(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_corpus(tmp_path / "absent.npy")
    with pytest.raises(ValueError, match="not a regular file"):
        load_corpus(tmp_path)  # exists: "no such file" would send the user looking elsewhere


def test_corpus_is_memory_mapped(corpus):
    path, games = corpus
    loaded = load_corpus(path)
    assert isinstance(loaded, np.memmap) and np.array_equal(loaded, games)


def test_corpus_wrong_dtype(tmp_path):
    path = tmp_path / "g.npy"
    np.save(path, generate_games(3, seed=0).astype(np.int16))
    with pytest.raises(ValueError, match="dtype must be int8, got int16"):
        make_task("othello", data=path)


def test_corpus_wrong_shape(tmp_path):
    path = tmp_path / "g.npy"
    np.save(path, generate_games(3, seed=0)[:, :59])
    with pytest.raises(ValueError, match=r"shape must be \(n, 60\)"):
        make_task("othello", data=path)
    np.save(path, np.zeros((0, 60), dtype=np.int8))
    with pytest.raises(ValueError, match="no games"):
        make_task("othello", data=path)


def test_corpus_illegal_game(tmp_path):
    games = generate_games(5, seed=0)
    games[3, 0] = 0  # a1 is not a legal first move
    path = tmp_path / "g.npy"
    np.save(path, games)
    with pytest.raises(ValueError, match=r"g\.npy: game 3, ply 0: square 0 is not a legal move"):
        make_task("othello", data=path)


def test_corpus_out_of_range_value(tmp_path):
    games = generate_games(5, seed=0)
    games[1, 7] = 64
    path = tmp_path / "g.npy"
    np.save(path, games)
    with pytest.raises(ValueError, match=r"-1\.\.63"):
        make_task("othello", data=path)


def test_corpus_truncated_and_garbage_files(tmp_path):
    path = tmp_path / "g.npy"
    np.save(path, generate_games(20, seed=0))
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        make_task("othello", data=path)
    path.write_bytes(data[:50])  # the header itself is cut
    with pytest.raises(ValueError, match="truncated or corrupt"):
        make_task("othello", data=path)
    path.write_bytes(b"not an npy file at all")
    with pytest.raises(ValueError, match="truncated or corrupt"):
        make_task("othello", data=path)
    with pytest.raises(ValueError, match="no such file"):
        make_task("othello", data=tmp_path / "missing.npy")


def test_corpus_is_validated_whole_before_training(tmp_path):
    # an illegal game anywhere in the file is found on load, named by its index in the file
    games = generate_games(70_000, seed=1)  # more than one validation chunk (65536 games)
    path = tmp_path / "g.npy"
    for bad in (2, 40_000, 69_999):
        broken = games.copy()
        broken[bad, 0] = 0
        np.save(path, broken)
        with pytest.raises(ValueError, match=f"game {bad}, ply 0"):
            make_task("othello", data=path)
    np.save(path, games)
    assert make_task("othello", data=path).games.shape == (70_000, 60)


def test_corpus_with_a_huge_header_is_one_line(tmp_path):
    path = tmp_path / "g.npy"
    header = "{'descr': '|i1', 'fortran_order': False, 'shape': (1, 60), " + " " * 60_000 + "}"
    header = header.ljust(((len(header) + 11) // 64 + 1) * 64 - 11) + "\n"
    path.write_bytes(b"\x93NUMPY\x02\x00" + len(header).to_bytes(4, "little")
                     + header.encode("latin1") + bytes(60))
    with pytest.raises(ValueError, match="not a readable .npy file") as e:
        make_task("othello", data=path)
    assert len(str(e.value).splitlines()) == 1


def test_documented_othello_token_mapping():
    # the ranges spelled out in train/data/tasks.py's module docstring
    for squares, tokens_ in ((range(0, 27), range(1, 28)), (range(29, 35), range(28, 34)),
                             (range(37, 64), range(34, 61))):
        assert T.SQUARE_TO_TOKEN[list(squares)].tolist() == list(tokens_)
    assert "squares 29..34 -> tokens 28..33" in tasks.__doc__


# ---------------------------------------------------------------- benchmark and threads

ROOT = Path(__file__).resolve().parents[3]


def test_data_benchmark_prints_json():
    """benchmarks/data.py (target: a fresh batch under 5% of a training step) runs end to end;
    its figures are not checked."""
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "data.py"), "--batch-size", "8",
                        "--repeats", "1", "--corpus-games", "20", "--device", "cpu"],
                       capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out["tasks"]) == {"othello", "setcomp"} and out["batch_size"] == 8
    for entry in out["tasks"].values():
        assert entry["fresh_batch_s"] > 0
        for st in entry["steps"]:
            assert st["step_s"] > 0 and st["fresh_share"] == entry["fresh_batch_s"] / st["step_s"]
            assert st["under_target"] == (st["fresh_share"] < out["target_share"])
    assert [s["preset"] for s in out["tasks"]["setcomp"]["steps"]] == ["tiny", "setcomp-1l"]
    assert out["tasks"]["othello"]["corpus_games"] == 20


def test_fresh_streams_same_whatever_the_thread_count():
    code = ("import hashlib; from train.data.tasks import make_task; h = hashlib.sha256()\n"
            "for name in ('othello', 'setcomp'):\n"
            "    t = make_task(name, seed=7, rank=1)\n"
            "    for b in (t.batch(16, max_len=12), t.eval_batch(16)):\n"
            "        h.update(b.tokens.numpy().tobytes() + b.legal.numpy().tobytes())\n"
            "print(h.hexdigest())")
    digests = set()
    for threads in ("1", "2"):
        env = {**os.environ, "NUMBA_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=300, check=False, env=env)
        assert r.returncode == 0, r.stderr
        digests.add(r.stdout.strip())
    assert len(digests) == 1
