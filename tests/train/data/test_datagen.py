"""`lgagent datagen` through click's CliRunner: the corpus it writes (.npy and parquet), chunking,
one-line refusals (bad arguments, unusable paths, too little disk), and atomicity: Ctrl-C,
SIGTERM or a full disk leave the previous file and no temporary behind."""

import os

import numpy as np
import pytest
from click.testing import CliRunner

import train.data.datagen
from othello_env import generate_games, validate_games
from train.cli.main import main


def run(args):
    return CliRunner().invoke(main, ["datagen", *args])


def one_line_error(result, match):
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and match in lines[0], lines
    assert "Traceback" not in result.output


def test_datagen_writes_the_generate_games_corpus(tmp_path, monkeypatch):
    monkeypatch.setattr(train.data.datagen, "CHUNK_GAMES", 7)  # several chunks, one ragged
    out = tmp_path / "sub" / "games.npy"  # parent directory is created
    r = run(["--env", "othello", "--games", "50", "--seed", "4", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "wrote 50 games" in r.stdout
    g = np.load(out)
    assert g.shape == (50, 60) and g.dtype == np.int8
    validate_games(g)
    np.testing.assert_array_equal(g, generate_games(50, seed=4))
    assert sorted(p.name for p in out.parent.iterdir()) == ["games.npy"]  # no temp files left


def test_datagen_refuses_to_overwrite_without_force(tmp_path):
    out = tmp_path / "games.npy"
    assert run(["--games", "20", "--seed", "1", "--out", str(out)]).exit_code == 0
    before = out.read_bytes()
    one_line_error(run(["--games", "30", "--seed", "2", "--out", str(out)]), "--force")
    assert out.read_bytes() == before
    r = run(["--games", "30", "--seed", "2", "--out", str(out), "--force"])
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(np.load(out), generate_games(30, seed=2))


@pytest.mark.parametrize(
    "args, match",
    [
        (["--games", "0"], "'--games': 0 is not in the range x>=1"),
        (["--games", "-5"], "'--games': -5 is not in the range x>=1"),
        (["--games", "x"], "'--games'"),
        (["--games", "5", "--env", "chess"], "unknown --env 'chess'"),
        (["--games", "5", "--seed", "-1"], f"'--seed': -1 is not in the range 0<=x<={2**64 - 1}"),
        (["--games", "5", "--seed", str(2**64)],
         f"'--seed': {2**64} is not in the range 0<=x<={2**64 - 1}"),
    ],
)
def test_datagen_bad_arguments(tmp_path, args, match):
    out = tmp_path / "games.npy"
    one_line_error(run([*args, "--out", str(out)]), match)
    assert list(tmp_path.iterdir()) == []


def test_datagen_bad_output_paths(tmp_path):
    one_line_error(run(["--games", "5", "--out", str(tmp_path)]), "is a directory")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    one_line_error(run(["--games", "5", "--out", str(a_file / "g.npy")]), "is not a directory")
    one_line_error(run(["--games", "5"]), "--out")
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_datagen_unwritable_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        one_line_error(run(["--games", "5", "--out", str(locked / "g.npy")]), "permission denied")
    finally:
        locked.chmod(0o700)


def test_datagen_interrupted_run_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "games.npy"
    out.write_bytes(b"previous")
    calls = []

    def interrupted(arr, seed, offset):
        calls.append(offset)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the corpus
        arr[:] = -1

    monkeypatch.setattr(train.data.datagen, "CHUNK_GAMES", 4)
    monkeypatch.setattr("othello_env.games.generate_into", interrupted)
    r = run(["--games", "10", "--out", str(out), "--force"])
    assert r.exit_code == 130
    assert calls == [0, 4]
    assert out.read_bytes() == b"previous"  # the old file survives, no partial file
    assert [p.name for p in tmp_path.iterdir()] == ["games.npy"]


def test_datagen_checks_disk_space_first(tmp_path, monkeypatch):
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    full = usage(10**6, 10**6 - 100, 100)
    monkeypatch.setattr(train.data.datagen.shutil, "disk_usage", lambda p: full)
    r = run(["--games", "1000", "--out", str(tmp_path / "g.npy")])
    one_line_error(r, "not enough disk space")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------
# --format parquet


def test_datagen_parquet_round_trip_equals_the_npy_corpus(tmp_path, monkeypatch):
    pq = pytest.importorskip("pyarrow.parquet")
    from train.data.corpus import corpus_metadata, read_corpus

    monkeypatch.setattr(train.data.datagen, "CHUNK_GAMES", 13)  # several row groups, one ragged
    npy, parquet = tmp_path / "g.npy", tmp_path / "g.parquet"
    assert run(["--games", "40", "--seed", "9", "--out", str(npy)]).exit_code == 0
    r = run(["--games", "40", "--seed", "9", "--out", str(parquet), "--format", "parquet"])
    assert r.exit_code == 0, r.output + r.stderr
    assert "wrote 40 games" in r.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.npy", "g.parquet"]
    want = np.load(npy)
    np.testing.assert_array_equal(read_corpus(parquet), want)
    np.testing.assert_array_equal(read_corpus(npy), want)
    # one row per game, the documented columns, one row group per chunk
    f = pq.ParquetFile(parquet)
    assert f.metadata.num_rows == 40 and f.metadata.num_row_groups == 4
    t = f.read().to_pydict()
    assert tuple(t) == train.data.datagen.PARQUET_COLUMNS
    assert t["game"] == list(range(40))
    assert all(m == [int(x) for x in g[g >= 0]] for m, g in zip(t["moves"], want))
    assert t["length"] == (want >= 0).sum(axis=1).tolist()
    assert corpus_metadata(parquet) == {"format": "lgagent-othello-corpus", "version": 1,
                                        "seed": 9, "games": 40}
    # final discs and winner against a replay
    from othello_env import board_states

    final = board_states(want)[:, -1]
    black, white = (final == 1).sum(1), (final == -1).sum(1)
    assert t["black_discs"] == black.tolist() and t["white_discs"] == white.tolist()
    assert t["winner"] == ["black" if b > w else "white" if w > b else "draw"
                           for b, w in zip(black, white)]
    assert set(t["winner"]) >= {"black", "white"}


@pytest.mark.parametrize("args, match", [
    (["--format", "csv"], "'--format'"),
    (["--format", "parquet", "--out", "g.npy"], "ends in .npy but --format is parquet"),
    (["--out", "g.parquet"], "ends in .parquet but --format is npy"),
])
def test_datagen_format_refusals(tmp_path, monkeypatch, args, match):
    monkeypatch.chdir(tmp_path)
    if "--out" not in args:
        args = [*args, "--out", "g.npy"]
    one_line_error(run(["--games", "5", *args]), match)
    assert list(tmp_path.iterdir()) == []


def test_datagen_parquet_without_pyarrow_says_what_to_install(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name == "pyarrow" or name.startswith("pyarrow."):
            raise ImportError("No module named 'pyarrow'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    one_line_error(run(["--games", "5", "--format", "parquet", "--out",
                        str(tmp_path / "g.parquet")]), "pip install pyarrow")
    assert list(tmp_path.iterdir()) == []


def test_datagen_parquet_interrupted_leaves_the_old_file(tmp_path, monkeypatch):
    pytest.importorskip("pyarrow")
    out = tmp_path / "g.parquet"
    out.write_bytes(b"previous")
    calls = []

    def interrupted(arr, seed, offset):
        calls.append(offset)
        if len(calls) == 2:
            raise KeyboardInterrupt
        arr[:] = generate_games(len(arr), seed=seed)

    monkeypatch.setattr(train.data.datagen, "CHUNK_GAMES", 4)
    monkeypatch.setattr("othello_env.games.generate_into", interrupted)
    r = run(["--games", "10", "--format", "parquet", "--out", str(out), "--force"])
    assert r.exit_code == 130 and calls == [0, 4]
    assert out.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["g.parquet"]


def test_parquet_table_refuses_an_unfinished_or_illegal_game():
    pytest.importorskip("pyarrow")
    games = generate_games(5, seed=0)
    t = train.data.datagen.parquet_table(games, first=100)
    assert t.column("game").to_pylist() == [100, 101, 102, 103, 104]
    unfinished = games.copy()
    unfinished[3, 40:] = -1
    with pytest.raises(ValueError, match="game 103 is not a legal, finished game"):
        train.data.datagen.parquet_table(unfinished, first=100)
    illegal = games.copy()
    illegal[1, 0] = 0  # a1 is not a first move
    with pytest.raises(ValueError, match="game 1 is not"):
        train.data.datagen.parquet_table(illegal)


# ----------------------------------------------------------------------------------------------
# Faults: SIGTERM, a full disk, unusable output paths


def test_datagen_sigterm_removes_its_temp_and_a_rerun_removes_a_stale_one(tmp_path,
                                                                          monkeypatch):
    import signal

    from tests.conftest import temps

    out = tmp_path / "games.npy"
    stale = tmp_path / ".games.npy.dead1234.tmp"  # what a SIGKILLed run left
    stale.write_bytes(b"\0" * 1000)

    def terminated(arr, seed, offset):
        assert not stale.exists()  # removed before this run wrote anything
        assert len(temps(tmp_path)) == 1  # this run's own
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr("othello_env.games.generate_into", terminated)
    r = run(["--games", "10", "--out", str(out)])
    assert r.exit_code == 143, (r.output, r.stderr)
    assert r.stderr.strip().splitlines()[-1] == (
        f"datagen stopped by SIGTERM; {out} was not written")  # after the progress bar
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is restored


def test_datagen_full_disk_while_reserving_is_one_line(tmp_path, monkeypatch):
    import errno

    def no_space(fd, offset, size):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(train.data.datagen.os, "posix_fallocate", no_space)
    r = run(["--games", "100", "--out", str(tmp_path / "g.npy")])
    one_line_error(r, f"no space left on device writing {tmp_path / 'g.npy'} (6 kB)")
    assert list(tmp_path.iterdir()) == []
    assert train.data.datagen.human_bytes(10_000_000) == "10 MB"
    assert train.data.datagen.human_bytes(12_345_678) != train.data.datagen.human_bytes(12_000_000)


def test_datagen_on_a_real_small_disk_is_refused_before_reserving(tiny_disk):
    # checked and reserved up front: one line, nothing written, no bus error
    r = run(["--games", "20000", "--out", str(tiny_disk / "a.npy")])
    one_line_error(r, "not enough disk space")
    assert list(tiny_disk.iterdir()) == []


def test_unusable_datagen_outputs_are_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for out, match in (("", "--out . is a directory"), ("g" * 250 + ".npy", "file name is longer"),
                       ("/proc/games.npy", "cannot create files in /proc")):
        one_line_error(run(["--games", "5", "--out", out]), match)
    assert list(tmp_path.iterdir()) == []
    # a name that fits with the temporary's suffix is accepted
    name = "g" * (255 - 14)
    r = run(["--games", "5", "--out", name])
    assert r.exit_code == 0, r.output
    assert [p.name for p in tmp_path.iterdir()] == [name]
