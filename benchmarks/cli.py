"""How fast the command line answers: ``lgagent --help`` and ``lgagent X --help`` for every command.

Target: each answers in well under a second, because no command module imports torch, numba,
matplotlib, statsmodels, scipy, pandas or optuna before the command runs (tests/benchmarks/
test_cli.py checks the imports; this script measures the time). Each case runs in a fresh
subprocess of this interpreter, ``--repeats`` times; reported per case: the median wall time
and its ratio to the median of ``python -c pass`` (the interpreter's own start-up), measured
the same way. Prints one JSON object.

    python benchmarks/cli.py [--repeats 5] [--only train,eval]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

# the ``lgagent`` console script's entry, run by this interpreter (argv after -c is the command's)
ENTRY = "from train.cli.main import main; main()"


def wall(args: list[str], repeats: int) -> float:
    """Median wall seconds of ``python *args`` over ``repeats`` fresh processes."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *args], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    from train.cli.main import COMMANDS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5, help="processes per case (the median)")
    p.add_argument("--only", default=None, help="comma-separated commands (default: all)")
    a = p.parse_args()
    names = a.only.split(",") if a.only else sorted(COMMANDS)
    unknown = sorted(set(names) - set(COMMANDS))
    if unknown:
        p.error(f"unknown commands {', '.join(unknown)}; choose from {', '.join(sorted(COMMANDS))}")
    base = wall(["-c", "pass"], a.repeats)
    cases = {"lgagent": ["--help"], **{f"lgagent {n}": [n, "--help"] for n in names}}
    out = {}
    for case, argv in cases.items():
        s = wall(["-c", ENTRY, *argv], a.repeats)
        out[case] = {"median_s": round(s, 4), "ratio_to_python": round(s / base, 2)}
    print(json.dumps({
        "python": platform.python_version(), "cpu_count": os.cpu_count(),
        "repeats": a.repeats, "python_c_pass_s": round(base, 4), "help": out,
    }, indent=1))


if __name__ == "__main__":
    main()
