"""train.data.corpus: reading .npy/.parquet corpora and the torch Dataset over them."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import DataLoader

from othello_env import generate_games
from train.cli.main import main
from train.data.corpus import CorpusDataset, read_corpus
from train.data.tasks import make_task, othello_batch

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    for fmt in ("npy", "parquet"):
        r = CliRunner().invoke(main, ["datagen", "--games", "24", "--seed", "5", "--format", fmt,
                                      "--out", str(d / f"g.{fmt}")])
        assert r.exit_code == 0, r.output + r.stderr
    return d / "g.npy", d / "g.parquet"


def test_dataset_items_are_the_task_layer_rows(corpora):
    npy, parquet = corpora
    games = generate_games(24, seed=5)
    want = othello_batch(games, 59)
    for path in (npy, parquet):
        data = CorpusDataset(path)
        assert len(data) == 24
        for i in (0, 7, 23, -1):
            item = data[i]
            assert set(item) == {"tokens", "legal", "next"}
            assert torch.equal(item["tokens"], want.tokens[i]) and item["tokens"].dtype == torch.long
            assert torch.equal(item["legal"], want.legal[i]) and item["legal"].shape == (59, 61)
            assert torch.equal(item["next"], want.next[i])


def test_dataset_in_a_dataloader_matches_the_corpus_task(corpora):
    """A DataLoader in the corpus order gives what lgagent train's task builds from those rows."""
    npy, parquet = corpora
    task = make_task("othello", data=npy)
    for path in (npy, parquet):
        batch = next(iter(DataLoader(CorpusDataset(path, max_len=20), batch_size=24)))
        want = othello_batch(np.asarray(task.games), 20)
        assert batch["tokens"].shape == (24, 20) and batch["legal"].shape == (24, 20, 61)
        for k in ("tokens", "legal", "next"):
            assert torch.equal(batch[k], getattr(want, k))
        # targets agree with the trainer's own stream for the games it served
    b = task.batch(6)  # shuffled rows of the corpus: each equals some dataset item
    items = CorpusDataset(parquet)
    rows = {bytes(items[i]["tokens"].numpy()): i for i in range(len(items))}
    for j in range(6):
        i = rows[bytes(b.tokens[j].numpy())]
        assert torch.equal(items[i]["legal"], b.legal[j]) and torch.equal(items[i]["next"], b.next[j])


def test_read_corpus_parquet_handles_sliced_chunks(tmp_path):
    games = generate_games(30, seed=2)
    from train.data.datagen import parquet_table

    t = parquet_table(games)
    t = pa.concat_tables([t.slice(0, 11), t.slice(11, 7), t.slice(18)])  # several chunks
    pq.write_table(t, tmp_path / "c.parquet", row_group_size=8)
    np.testing.assert_array_equal(read_corpus(tmp_path / "c.parquet"), games)
    # a file holding only a moves column (any integer list type) reads the same
    lists = [[int(x) for x in g[g >= 0]] for g in games]
    pq.write_table(pa.table({"moves": pa.array(lists, pa.list_(pa.int64()))}),
                   tmp_path / "m.parquet")
    np.testing.assert_array_equal(read_corpus(tmp_path / "m.parquet"), games)


def _write_moves(path, lists, type_=None):
    pq.write_table(pa.table({"moves": pa.array(lists, type_)}), path)
    return path


@pytest.mark.parametrize("case, match", [
    ("suffix", "expected a .npy or .parquet file"),
    ("missing", "no such file"),
    ("directory", "not a regular file"),
    ("not_parquet", "not a readable parquet corpus"),
    ("no_moves", "not a readable parquet corpus with a moves column"),
    ("strings", "moves must be a list of integers"),
    ("null", "null rows"),
    ("empty", "holds no games"),
    ("too_long", "game 1 has 61 moves"),
    ("range", "squares must lie in 0..63"),
    ("illegal", "game 1, ply 1"),
])
def test_read_corpus_refuses_bad_files_with_one_line(tmp_path, case, match):
    p = tmp_path / "c.parquet"
    if case == "suffix":
        p = tmp_path / "c.csv"
        p.write_text("x")
    elif case == "missing":
        p = tmp_path / "nope.parquet"
    elif case == "directory":
        p.mkdir()
    elif case == "not_parquet":
        p.write_bytes(b"PAR1 not really")
    elif case == "no_moves":
        pq.write_table(pa.table({"game": [0, 1]}), p)
    elif case == "strings":
        _write_moves(p, [["d3"]])
    elif case == "null":
        _write_moves(p, [[19], None], pa.list_(pa.int8()))
    elif case == "empty":
        _write_moves(p, [], pa.list_(pa.int8()))
    elif case == "too_long":
        _write_moves(p, [[19], [19] * 61])
    elif case == "range":
        _write_moves(p, [[19, 64]])
    elif case == "illegal":
        g = generate_games(2, seed=0)
        _write_moves(p, [[int(x) for x in g[0][g[0] >= 0]], [19, 19]])
    with pytest.raises(ValueError, match=match) as e:
        read_corpus(p)
    assert "\n" not in str(e.value)


def test_dataset_arguments(corpora):
    npy, _ = corpora
    data = CorpusDataset(npy, max_len=5)
    assert data[0]["tokens"].shape == (5,) and "games=24" in repr(data)
    for bad in (0, 60, True, 2.5):
        with pytest.raises(ValueError, match="max_len must be"):
            CorpusDataset(npy, max_len=bad)
    with pytest.raises(IndexError):
        data[24]
    with pytest.raises(TypeError):
        data["0"]


def test_train_reads_a_parquet_corpus_as_its_npy_twin(corpora, tmp_path):
    """lgagent train --data games.parquet: the same stream, and the same weights, as the .npy."""
    npy, parquet = corpora
    a, b = make_task("othello", data=npy, seed=3), make_task("othello", data=parquet, seed=3)
    np.testing.assert_array_equal(np.asarray(a.games), b.games)
    for _ in range(3):
        x, y = a.batch(8, max_len=12), b.batch(8, max_len=12)
        assert all(torch.equal(getattr(x, k), getattr(y, k)) for k in ("tokens", "legal", "next"))

    from agents.checkpoint import load

    args = ["train", "--env", "othello", "--preset", "tiny", "--steps", "3", "--batch-size", "4",
            "--eval-every", "0", "--eval-size", "8", "--play-games", "0", "--num-threads", "1"]
    for path in (npy, parquet):
        r = CliRunner().invoke(main, [*args, "--data", str(path), "--out", str(tmp_path / path.suffix[1:])])
        assert r.exit_code == 0, r.output + r.stderr
    w1, w2 = load(tmp_path / "npy" / "checkpoint.pt")["model"], load(tmp_path / "parquet" / "checkpoint.pt")["model"]
    assert all(torch.equal(w1[k], w2[k]) for k in w1)

    bad = tmp_path / "g.csv"
    bad.write_text("1,2\n")
    r = CliRunner().invoke(main, [*args, "--data", str(bad), "--out", str(tmp_path / "bad")])
    assert r.exit_code == 2 and "expected a .npy or .parquet file" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()
