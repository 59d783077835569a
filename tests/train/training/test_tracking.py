"""--track: a run's logs in Weights & Biases, offline (WANDB_MODE=offline, no network).

The checks read the offline run files under RUN_DIR/wandb/: each ``run-<id>.wandb`` is
wandb's record log (LevelDB's log format: 32 KiB blocks of chunks with a 7-byte header,
after a 7-byte ``:W&B`` file header), each record a ``wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SETCOMP, invoke, one_line_error

BLOCK, HEADER = 32768, 7


def records(path: Path):
    """The protobuf records of an offline W&B run file."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, buf = HEADER, b""
    while pos + HEADER <= len(data):
        room = BLOCK - pos % BLOCK
        if room < HEADER:  # the block's tail: padding
            pos += room
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        chunk, pos = data[pos + HEADER:pos + HEADER + length], pos + HEADER + length
        if kind == 0:
            continue
        buf += chunk
        if kind in (1, 4):  # FULL, LAST
            r = pb.Record()
            r.ParseFromString(buf)
            yield r
            buf = b""


def offline_run(d: Path) -> dict:
    """An offline run directory's id, name, project, config and history ({step: {key: value}})."""
    (f,) = d.glob("run-*.wandb")
    out = {"history": {}, "config": {}}
    for r in records(f):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            out.update(id=r.run.run_id, name=r.run.display_name, project=r.run.project)
            out["config"].update({i.key: json.loads(i.value_json) for i in r.run.config.update})
        elif kind == "config":
            out["config"].update({i.key: json.loads(i.value_json) for i in r.config.update})
        elif kind == "history":  # a logged dict (an image) comes as items of nested keys
            row = {}
            for i in r.history.item:
                keys = [i.key] if i.key else list(i.nested_key)
                into = row
                for k in keys[:-1]:
                    into = into.setdefault(k, {})
                into[keys[-1]] = json.loads(i.value_json)
            out["history"].setdefault(int(row.pop("_step")), {}).update(row)
    return out


@pytest.fixture
def offline(monkeypatch):
    pytest.importorskip("wandb", reason="the track extra: pip install -e '.[track]'")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_PROJECT", raising=False)


def test_track_offline_then_resume_continues_the_same_run(offline, tmp_path):
    out = tmp_path / "my_run"
    args = [*SETCOMP, "--steps", "4", "--eval-every", "2", "--ckpt-every", "2", "--track",
            "--out", out]
    r = invoke("train", *args, "--stop-at", "2")
    assert r.exit_code == 0, r.stderr
    run_id = (out / "wandb" / "lgagent-run-id").read_text().strip()
    (first,) = (out / "wandb").glob(f"offline-run-*-{run_id}")
    r = invoke("train", *args, "--resume")
    assert r.exit_code == 0, r.stderr
    assert (out / "wandb" / "lgagent-run-id").read_text().strip() == run_id
    runs = sorted((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(p.name.endswith(f"-{run_id}") for p in runs)
    a, b = offline_run(first), offline_run(next(p for p in runs if p != first))
    for run in (a, b):
        assert run["id"] == run_id and run["name"] == "my_run" and run["project"] == "lgagent"
        assert run["config"]["env"] == "setcomp" and run["config"]["steps"] == 4
        assert run["config"]["vocab_size"] == 8 and "out" not in run["config"]
    # the scalars of TensorBoard, at its steps: training every step, evaluation every 2
    assert sorted(a["history"]) == [1, 2] and sorted(b["history"]) == [3, 4]
    for row in {**a["history"], **b["history"]}.values():
        assert {"loss/train", "charts/lr", "charts/grad_norm", "charts/tokens_per_s"} <= set(row)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out), size_guidance={"scalars": 0})
    acc.Reload()
    tb = {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}
    wb = {**a["history"], **b["history"]}
    assert {t for t in tb if t.startswith("eval/")} == {
        k for row in wb.values() for k in row if k.startswith("eval/") and k != "eval/per_length"}
    for tag, by_step in tb.items():
        for step, v in by_step.items():
            assert wb[step][tag] == pytest.approx(v, rel=1e-6), (tag, step)
    # the per-length figure of each invocation's last evaluation (as in TensorBoard): an image
    assert sorted(acc.Tags()["images"]) == ["eval/per_length"]
    for run, d, step in ((a, first, 2), (b, next(p for p in runs if p != first), 4)):
        image = run["history"][step]["eval/per_length"]
        assert image["_type"] == "image-file" and (d / "files" / image["path"]).is_file()


def test_track_needs_wandb_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    out = tmp_path / "run"
    r = invoke("train", *SETCOMP, "--steps", "2", "--track", "--out", out)
    one_line_error(r, 'pip install "lgagent[track]"')
    assert not out.exists()


def test_without_track_wandb_is_never_imported(tmp_path):
    code = ("import sys; from train.cli.main import main\n"
            f"main(['train', *{SETCOMP!r}, '--steps', '2', '--out', {str(tmp_path / 'r')!r}],"
            " standalone_mode=False)\n"
            "assert 'wandb' not in sys.modules\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def test_wandb_files_are_the_runs_files(tmp_path):
    """A run killed before its first checkpoint with --track left events and wandb/: --resume
    starts it fresh; clearing the directory (--force, a sweep's restart) removes wandb/ too."""
    from train.training.run import clear_run_dir, killed_before_first_save

    out = tmp_path / "run"
    (out / "wandb" / "offline-run-x").mkdir(parents=True)
    (out / "wandb" / "lgagent-run-id").write_text("abc\n")
    (out / "events.out.tfevents.1.host.2.0").write_bytes(b"")
    assert killed_before_first_save(out)
    (out / "notes.txt").write_text("mine")
    assert not killed_before_first_save(out)
    clear_run_dir(out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
