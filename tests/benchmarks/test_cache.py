"""benchmarks/cache.py runs in its smoke mode and prints its JSON (so it cannot rot)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cache_benchmark_smoke_prints_json():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cache.py"), "--smoke",
                        "--profile"], capture_output=True, text=True, timeout=300, check=False,
                       cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for case in ("vector", "single", "single_big", "play", "big"):
        assert out[case]["ratio"] > 0
    assert out["vector"]["num_envs"] == 8 and out["play"]["games"] == 4
    assert out["play"]["same_results"] and out["big"]["same_results"]
    assert set(out["profile"]) == {"vector", "single", "single_big", "play", "big"}
    assert all(len(top) > 0 for top in out["profile"].values())
