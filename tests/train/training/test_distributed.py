"""`lgagent train` under torchrun: 2 CPU processes (gloo), end to end, stop and resume."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agents import checkpoint as CK

# the console script installed next to this interpreter (pip install -e .)
LGAGENT = shutil.which("lgagent", path=str(Path(sys.executable).parent)) or "lgagent"
ARGS = ["--env", "setcomp", "--vocab-size", "8", "--preset", "tiny", "--steps", "4",
        "--batch-size", "8", "--eval-size", "16", "--dropout", "0.2", "--ema",
        "--eval-every", "0", "--no-progress", "--device", "cpu", "--num-threads", "1"]


def torchrun(*args, nproc=2, cwd=None):
    """The README's DDP line: ``torchrun --nproc_per_node K --no-python lgagent train ...``.

    ``--no-python`` runs the installed ``lgagent`` console script, so no ``train``
    module is looked up from the working directory (where a ``train.py`` would shadow
    the package). torchrun is started as ``python -m torch.distributed.run`` only to
    use this interpreter's torch.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("RANK", None), env.pop("WORLD_SIZE", None), env.pop("LOCAL_RANK", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
           "--standalone", "--no-python", LGAGENT, "train", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180, check=False,
                          cwd=cwd)


def test_two_cpu_processes_train_stop_and_resume(tmp_path):
    # launched from a folder whose train.py would shadow the package for `-m train...`
    (tmp_path / "train.py").write_text("raise SystemExit('the train package was shadowed')\n")
    out = tmp_path / "run"
    r = torchrun(*ARGS, "--stop-at", 2, "--out", out, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 processes on cpu" in r.stderr
    assert "parameters identical on all ranks" in r.stdout
    assert r.stdout.count("checkpoint:") == 1  # only rank 0 reports (and writes)
    c = CK.load(out / "checkpoint.pt")
    assert c["step"] == 2
    assert [d["rank"] for d in c["data_ranks"]] == [0, 1]  # each rank its own stream
    assert [d["step"] for d in c["data_ranks"]] == [2, 2]
    rng0, rng1 = (s["torch"] for s in c["rng_ranks"])
    assert not torch.equal(rng0, rng1)  # dropout differs across ranks

    r = torchrun("--resume", "--out", out, "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "parameters identical on all ranks" in r.stdout
    assert CK.load(out / "checkpoint.pt")["step"] == 4
    assert len(list(out.glob("events.out.tfevents.*"))) == 2  # one per launch, rank 0 only


@pytest.mark.slow
def test_ddp_resume_is_bitwise_exact(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert torchrun(*ARGS, "--out", a).returncode == 0
    assert torchrun(*ARGS, "--stop-at", 2, "--out", b).returncode == 0
    assert torchrun("--resume", "--out", b, "--no-progress").returncode == 0
    ca, cb = CK.load(a / "checkpoint.pt"), CK.load(b / "checkpoint.pt")
    for k in ca["model"]:
        assert torch.equal(ca["model"][k], cb["model"][k]), k
    for k in ca["ema"]["module"]:
        assert torch.equal(ca["ema"]["module"][k], cb["ema"]["module"][k]), k
