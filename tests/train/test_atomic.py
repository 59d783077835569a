"""train.atomic: a write replaces the file whole or not at all (or refuses an existing one when
told not to overwrite), leaves no temporary behind and follows the umask; stale temporaries of
dead writers are removed while a live writer's is kept."""

import os
import stat

import pytest

from train.atomic import atomic_path, atomic_write_text, remove_stale_temps, stale_temps


def test_write_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.txt"]


def test_failure_keeps_previous_file_and_removes_temporary(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    for exc in (RuntimeError, KeyboardInterrupt):
        with pytest.raises(exc):
            with atomic_path(target) as tmp:
                tmp.write_text("half-writ")
                raise exc()
        assert target.read_text() == "old"
        assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_no_overwrite_refuses_before_writing(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(FileExistsError):
        with atomic_path(target, overwrite=False):
            raise AssertionError("body must not run")
    assert target.read_text() == "old"


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o644


def test_stale_temps_are_removed_and_a_live_writers_temp_is_kept(tmp_path):
    target = tmp_path / "f.txt"
    dead = tmp_path / ".f.txt.abc123.tmp"
    dead.write_text("left by a SIGKILL")
    other = tmp_path / ".g.txt.abc123.tmp"  # another target's: not ours to remove
    other.write_text("x")
    with atomic_path(target) as tmp:
        tmp.write_text("being written")
        assert stale_temps(target) == [dead]  # the live temporary is locked by its writer
        assert remove_stale_temps(target) == [dead]
        assert tmp.exists() and not dead.exists()
    assert target.read_text() == "being written" and other.exists()
