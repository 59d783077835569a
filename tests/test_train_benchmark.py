"""benchmarks/train.py runs and prints its JSON; its name does not hide the train package."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_script_prints_json():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train.py"), "--only",
                        "setcomp-1l", "--steps", "2", "--warmup", "1"],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    (case,) = out["cases"]
    assert case["preset"] == "setcomp-1l" and case["steps_timed"] == 2
    assert case["tokens_per_s"] > 0 and 0 < case["data_share"] < 1


def test_sibling_scripts_still_import_the_train_package():
    # a script in benchmarks/ has that folder first on sys.path, where train.py lives
    code = "import train, train.config; print(train.__file__)"
    r = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, "
                        f"{str(ROOT / 'benchmarks')!r}); {code}"],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()) == ROOT / "train" / "__init__.py"
