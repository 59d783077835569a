"""benchmarks/training.py runs and prints its JSON; no benchmark script shadows a package."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# the project's import packages (pyproject.toml [tool.setuptools.packages.find])
PACKAGES = ("agents", "othello_env", "setcomp_env", "train")


def test_benchmark_script_prints_json():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "training.py"), "--only",
                        "setcomp-1l", "--steps", "2", "--warmup", "1"],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    (case,) = out["cases"]
    assert case["preset"] == "setcomp-1l" and case["steps_timed"] == 2
    assert case["tokens_per_s"] > 0 and 0 < case["data_share"] < 1


def test_no_benchmark_script_is_named_like_a_package():
    # `python benchmarks/x.py` puts benchmarks/ first on sys.path: a benchmarks/train.py
    # would then be what `import train` finds
    scripts = {p.stem for p in (ROOT / "benchmarks").glob("*.py")}
    assert scripts and not scripts & set(PACKAGES)
    assert all((ROOT / p / "__init__.py").is_file() for p in PACKAGES)
