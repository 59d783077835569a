"""The command line answers at once: ``lgagent X --help`` and option errors of every command
import none of the heavy modules (torch alone takes seconds); benchmarks/cli.py prints its JSON.

A test on imports, not on time: which modules a command loads is exact, its wall time is not.
"""

import json
import subprocess
import sys
from pathlib import Path

from train.cli.main import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "numba", "matplotlib", "statsmodels", "scipy", "pandas", "optuna", "numpy",
         "pyarrow", "tqdm", "tensorboard", "transformer_lens", "safetensors")

# each invocation runs in turn in one fresh interpreter; after each, the heavy modules loaded
# so far are printed (the first invocation that loads one is the one to blame)
PROBE = """
import json, sys
from click.testing import CliRunner
from train.cli.main import main
heavy, cases, out = json.loads(sys.argv[1]), json.loads(sys.argv[2]), []
for args in cases:
    r = CliRunner().invoke(main, args)
    out.append([args, r.exit_code, sorted(m for m in heavy if m in sys.modules),
                (r.stderr or "").strip()])
print(json.dumps(out))
"""


def loaded(cases: list[list[str]]) -> list:
    r = subprocess.run([sys.executable, "-c", PROBE, json.dumps(HEAVY), json.dumps(cases)],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_help_of_every_command_imports_no_heavy_module():
    cases = [["--help"]] + [[name, "--help"] for name in sorted(COMMANDS)]
    for args, code, heavy, _ in loaded(cases):
        assert code == 0, args
        assert heavy == [], f"lgagent {' '.join(args)} imports {', '.join(heavy)}"


def test_option_errors_of_every_command_import_no_heavy_module(tmp_path):
    missing = str(tmp_path / "none")
    bad = tmp_path / "bad.toml"  # values from a config file are checked by the command
    bad.write_text('env = "setcomp"\nsteps = 0\n')
    cases = [
        ["datagen", "--games", "lots", "--out", "x.npy"],
        ["datagen", "--games", "1", "--out", "x.npy", "--format", "csv"],
        ["train", "--env", "nosuch"],
        ["train", "--env", "othello", "--steps", "0"],
        ["train", "--config", str(bad)],
        ["train", "--env", "setcomp", "--vocab-size", "10000000"],  # checked by the command
        ["train", "--resume"],
        ["train", "--out", missing],  # no --env
        ["sweep", "--out", missing, "--grid", "bad"],
        ["sweep", "--out", missing, "--env", "setcomp", "--seeds", "a"],
        ["report", missing],
        ["report", missing, "--nosuch"],
        ["average", missing, "--scheme", "bema:phi=0"],
        ["average", missing, "--scheme", "nosuch"],
        ["eval", missing, "--weights"],
        ["eval", missing, "--device", "tpu"],
        ["eval", missing, "--eval-size", "0"],
        ["play", missing, "--color", "red"],
        ["play", missing, "--games", "0"],
        ["probe", missing, "--coding", "x"],
        ["probe", missing, "--games", "1"],
        ["probe", missing, "--save", ""],
        ["intervene", missing],  # no --probe
        ["intervene", missing, "--probe", missing, "--lengths", "long"],
        ["intervene", missing, "--probe", missing, "--margin", "0"],
        ["export", missing, "--to", "onnx"],
        ["export", missing],  # no --to: click lists the choices, on one line here
        ["import", missing],
    ]
    assert {args[0] for args in cases} == set(COMMANDS)
    for args, code, heavy, err in loaded(cases):
        assert code == 2, (args, err)
        assert heavy == [], f"lgagent {' '.join(args)} imports {', '.join(heavy)}"


def test_option_errors_are_one_line_in_the_console_script():
    r = subprocess.run([sys.executable, "-m", "train.cli.main", "export", "run"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2
    assert r.stderr.strip() == ("Error: Missing option '--to'. Choose from: transformer-lens, "
                                "safetensors, hf")


def test_benchmark_script_prints_json():
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "cli.py"), "--repeats", "1",
                        "--only", "eval,train"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out["help"]) == {"lgagent", "lgagent eval", "lgagent train"}
    assert out["python_c_pass_s"] > 0
    for case in out["help"].values():
        assert case["median_s"] > 0 and case["ratio_to_python"] > 0
