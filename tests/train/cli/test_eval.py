"""`lgagent eval` refusals and signals: oversized --eval-size/--eval-seed and an overlong run
path are one line and exit 2; SIGTERM while evaluating stops it with one line and exit 143,
writing no plot."""

import pytest

from tests.conftest import SETCOMP, invoke, one_line_error, sigterm_in_evaluation


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A one-step set-complement run; the tests here only read it."""
    out = tmp_path_factory.mktemp("eval") / "run"
    r = invoke("train", *SETCOMP, "--steps", 1, "--out", out)
    assert r.exit_code == 0, r.output + r.stderr
    return out


def test_eval_honours_sigterm(run, tmp_path, monkeypatch):
    sigterm_in_evaluation(monkeypatch)
    plot = tmp_path / "f.png"
    r = invoke("eval", run, "--plot", plot)
    assert r.exit_code == 143 and r.stderr.strip() == "lgagent eval: stopped by SIGTERM"
    assert not plot.exists()


def test_eval_refuses_oversized_values(run):
    # the ranges of lgagent train's options of the same names (click's message)
    one_line_error(invoke("eval", run, "--eval-size", 10**12),
                   "'--eval-size': 1000000000000 is not in the range 1<=x<=16777216")
    one_line_error(invoke("eval", run, "--eval-seed", 10**30),
                   f"'--eval-seed': {10**30} is not in the range 0<=x<=9223372036854775807")
    one_line_error(invoke("eval", run, "--play-games", -1),
                   "'--play-games': -1 is not in the range 0<=x<=10000000")


def test_eval_of_an_overlong_path_is_one_line(tmp_path):
    one_line_error(invoke("eval", tmp_path / ("r" * 300)), "no checkpoint at")
