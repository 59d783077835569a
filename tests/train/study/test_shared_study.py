"""One random search shared by several sweep processes through a real PostgreSQL server.

A throwaway server (PostgreSQL's initdb + pg_ctl on a temporary directory, a free port on
127.0.0.1; as the ``postgres`` user when the tests run as root, since initdb refuses root)
starts once for this module and stops at its end; each test gets its own database. The
sweeps run as separate processes with their own ``--out``, as two machines would. Skipped
only where no PostgreSQL server binary exists, or without the driver (the ``sweep-db``
extra, which the README's test command installs).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import invoke, one_line_error, start_and_kill

SMALL = ["--set", "vocab_size=6", "--set", "eval_size=32", "--set", "num_threads=1",
         "--no-progress"]


def server_bin() -> str | None:
    """The directory of PostgreSQL's initdb/pg_ctl (PATH, then Debian's versioned folders)."""
    found = shutil.which("initdb") and shutil.which("pg_ctl")
    if found:
        return str(Path(found).parent)
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(f"{d}/initdb", os.X_OK) and os.access(f"{d}/pg_ctl", os.X_OK):
            return d
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A PostgreSQL server in a temporary directory; superuser ``lgagent``, trust auth on
    127.0.0.1 only; fsync off (a test server)."""

    def __init__(self, bindir: str):
        self.bindir = bindir
        self.root = tempfile.mkdtemp(prefix="lgagent-pg-")  # /tmp: the postgres user reaches it
        self.as_user = []
        if os.geteuid() == 0:
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data = os.path.join(self.root, "data")
        self.port = free_port()

    def _run(self, *cmd):
        r = subprocess.run([*self.as_user, *cmd], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            log = Path(self.root, "log")
            raise RuntimeError(f"{cmd[0]} failed: {r.stderr}{log.read_text() if log.exists() else ''}")

    def start(self):
        self._run(f"{self.bindir}/initdb", "-D", self.data, "-U", "lgagent", "--auth=trust",
                  "-E", "UTF8", "--no-sync")
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off")
        self._run(f"{self.bindir}/pg_ctl", "-D", self.data, "-o", opts,
                  "-l", os.path.join(self.root, "log"), "-w", "-t", "60", "start")
        return self

    def stop(self):
        try:
            if os.path.exists(os.path.join(self.data, "postmaster.pid")):
                self._run(f"{self.bindir}/pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def database(self, name: str) -> str:
        """A new empty database; its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="lgagent", dbname="postgres",
                             autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}"')
            c.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://lgagent@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def postgres():
    bindir = server_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binary (initdb, pg_ctl) on this machine")
    pytest.importorskip("psycopg", reason="the PostgreSQL driver: pip install -e '.[sweep-db]'")
    t = time.time()
    server = Server(bindir).start()
    print(f"postgresql server up in {time.time() - t:.1f} s on port {server.port}")
    try:
        yield server
    finally:
        server.stop()


def sweep_cmd(url, out, space, trials, *extra):
    return [sys.executable, "-m", "train.cli.main", "sweep", "--env", "setcomp", "--trials",
            str(trials), "--out", str(out), "--space", str(space), "--storage", url, *SMALL,
            *map(str, extra)]


def study_of(url):
    import optuna

    from train.study.report import STUDY_NAME

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=STUDY_NAME, storage=url)


def finished(out: Path) -> set[int]:
    return {int(p.parent.name.split("_")[1]) for p in out.glob("trial_*/result.json")}


def test_two_sweeps_share_one_study(postgres, tmp_path):
    """Two sweep processes, started together on a new database (both create the tables),
    each with its own --out: every trial number trains in exactly one of them, together
    they finish N, and lgagent report --storage reads the whole study (the curves from the
    directories given beside it)."""
    url = postgres.database("two_sweeps")
    space = tmp_path / "space.toml"
    space.write_text("norm = ['pre', 'post']\nlr = {low = 1e-3, high = 1e-2, scale = 'log'}\n"
                     "train_max_len = 2\nsteps = 20\neval_every = 10\nckpt_every = 20\n")
    n = 6
    outs = [tmp_path / "machine_a", tmp_path / "machine_b"]
    t = time.time()
    procs = [subprocess.Popen(sweep_cmd(url, out, space, n), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for out in outs]
    res = [p.communicate(timeout=300) for p in procs]
    print(f"two sweeps of {n} trials: {time.time() - t:.1f} s")
    for p, (stdout, stderr) in zip(procs, res):
        assert p.returncode == 0, stderr
        assert f"{n} trials complete, 0 failed" in stdout, stdout + stderr
    a, b = finished(outs[0]), finished(outs[1])
    assert a | b == set(range(n)) and not a & b, (a, b)
    assert a and b, "both sweeps should have trained trials"
    # no trial was even started in both places
    started = [{p.name for p in out.glob("trial_*")} for out in outs]
    assert not started[0] & started[1]
    study = study_of(url)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert sorted(t.number for t in complete) == list(range(n))
    for t in complete:
        out = outs[0] if t.number in a else outs[1]
        assert t.user_attrs["out"] == str(out.absolute())
        saved = json.loads((out / f"trial_{t.number:04d}" / "result.json").read_text())
        assert t.user_attrs["run_result"]["eval"] == saved["eval"]
    # a rerun of either finds the study full and trains nothing
    r = subprocess.run(sweep_cmd(url, outs[0], space, n), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and f"{n} trials complete" in r.stdout, r.stderr
    assert finished(outs[0]) == a
    # the report, on a third machine: from the storage alone (the results), then with the
    # two directories copied there (their runs' training curves too)
    copies = [tmp_path / "copied" / out.name for out in outs]
    for out, copy in zip(outs, copies):
        shutil.move(out, copy)
    r = invoke("report", "--storage", url, "--json")
    assert r.exit_code == 0, r.stderr
    alone = json.loads(r.stdout)
    assert alone["trials"] == n and alone["failed"] == 0 and alone["curve"] == {}
    r = invoke("report", "--storage", url, *copies, "--json")
    assert r.exit_code == 0, r.stderr
    both = json.loads(r.stdout)
    assert both["trials"] == n and both["effects"] == alone["effects"]
    assert {p["step"] for p in both["curve"]["ema"]} == {10, 20}


KILL_SPACE = "norm = ['pre', 'post']\ntrain_max_len = 2\nsteps = 100\nckpt_every = 10\neval_every = 0\n"


def test_a_killed_sweeps_trial_is_retrained_by_another_sweep(postgres, tmp_path):
    """SIGKILL leaves trial 0 RUNNING; once it has missed its heartbeats (4 x 1 s), another
    machine's sweep takes it as lost: Optuna fails it, a new trial with the same options
    trains in its place, and the study still ends with N finished trials."""
    url = postgres.database("killed_other")
    space = tmp_path / "space.toml"
    space.write_text(KILL_SPACE)
    a, b = tmp_path / "machine_a", tmp_path / "machine_b"
    start_and_kill(sweep_cmd(url, a, space, 2, "--heartbeat", 1), a)
    study = study_of(url)
    assert study.trials[0].state.name == "RUNNING"
    time.sleep(4.5)  # trial 0's last heartbeat is over 4 s old when the next sweep looks: lost
    t = time.time()
    r = subprocess.run(sweep_cmd(url, b, space, 2, "--heartbeat", 1), capture_output=True,
                       text=True, timeout=300)
    print(f"the second sweep: {time.time() - t:.1f} s")
    assert r.returncode == 0, r.stderr
    assert "2 trials complete, 0 failed (1 lost with a dead worker and retried)" in r.stdout, \
        r.stdout + r.stderr
    assert "trial 0: lost" in r.stderr and "retry of lost trial 0" in r.stderr
    trials = {t.number: t for t in study_of(url).trials}
    assert trials[0].state.name == "FAIL"
    retry = next(t for t in trials.values() if t.user_attrs.get("retry_of") == 0)
    assert retry.state.name == "COMPLETE" and retry.params == trials[0].params
    # A never started trial 1: the retry took number 1, trial 2 was drawn as usual
    assert retry.number == 1 and finished(b) == {1, 2} and finished(a) == set()
    assert trials[2].state.name == "COMPLETE" and "retry_of" not in trials[2].user_attrs
    rep = invoke("report", "--storage", url, "--json")
    assert rep.exit_code == 0, rep.stderr
    assert json.loads(rep.stdout)["trials"] == 2 and json.loads(rep.stdout)["failed"] == 0


def closed_port_url(password="hunter2"):
    return f"postgresql+psycopg://lgagent:{password}@127.0.0.1:{free_port()}/db"


@pytest.mark.parametrize("url, match", [
    ("not a url", "not a database URL"),
    ("nosuchdb://u@h/db", "no database dialect 'nosuchdb'"),
    ("closed", "cannot open the database"),
])
def test_a_bad_storage_is_one_line(tmp_path, url, match):
    if url == "closed":
        pytest.importorskip("psycopg", reason="the PostgreSQL driver: pip install -e '.[sweep-db]'")
        url = closed_port_url()
    out = tmp_path / "s"
    r = invoke("sweep", "--env", "setcomp", "--trials", "2", "--out", out, "--storage", url,
               "--set", "train_max_len=2", *SMALL)
    one_line_error(r, match)
    assert "hunter2" not in r.stderr and not out.exists()
    one_line_error(invoke("report", "--storage", url), match)


def test_a_missing_driver_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg raises ImportError
    out = tmp_path / "s"
    r = invoke("sweep", "--env", "setcomp", "--trials", "2", "--out", out, "--storage",
               closed_port_url(), "--set", "train_max_len=2", *SMALL)
    one_line_error(r, "database driver is not installed")
    assert "sweep-db" in r.stderr and "hunter2" not in r.stderr and not out.exists()


def test_a_missing_database_and_an_empty_one(postgres):
    url = postgres.database("empty")
    one_line_error(invoke("report", "--storage", url), "holds no lgagent sweep")
    missing = url.rsplit("/", 1)[0] + "/no_such_db"
    one_line_error(invoke("report", "--storage", missing), 'database "no_such_db" does not exist')
