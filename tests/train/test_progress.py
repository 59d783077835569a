"""train.progress.progress_bar: tqdm's bar on a terminal, a few plain lines anywhere else."""

import io

from tqdm import tqdm

from tests.conftest import SETCOMP, invoke
from train.progress import LINE_INTERVAL_S, progress_bar


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _fake_clock(bar, seconds_per_update):
    """Replace the bar's clock: it advances ``seconds_per_update`` at each call of ``tick``."""
    now = [bar.start_t]
    bar._time = lambda: now[0]

    def tick():
        now[0] += seconds_per_update

    return tick


def _percentages(out):
    """The percentage of each line; the closing line (at 100%, maybe a new rate) counted once."""
    pcts = [ln.split()[1] for ln in out.getvalue().splitlines()]
    return pcts[:-1] if pcts[-2:] == ["100%", "100%"] else pcts


def test_off_a_terminal_many_fast_updates_write_two_plain_lines():
    out = io.StringIO()  # isatty() is False
    bar = progress_bar(total=10_000, file=out, desc="job", unit="step")
    for _ in range(10_000):
        bar.update(1)
    bar.set_postfix(loss="0.5", refresh=False)
    bar.close()
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert text.endswith("\n") and len(lines) == 2, lines  # opened, closed: < 10 s apart
    assert lines[0].startswith("job:   0% 0/10000 [")
    assert lines[1].startswith("job: 100% 10000/10000 [") and "step/s, loss=0.5]" in lines[1]
    assert "|" not in text  # no bar glyphs


def test_off_a_terminal_a_line_every_tenth_and_never_within_ten_seconds():
    # slow: a tenth of the total takes 100 s, so a line at each tenth
    out = io.StringIO()
    bar = progress_bar(total=1000, file=out, desc="slow")
    tick = _fake_clock(bar, 1.0)
    for _ in range(1000):
        tick()
        bar.update(1)
    bar.close()
    assert _percentages(out) == [f"{p}%" for p in range(0, 101, 10)]
    assert "\r" not in out.getvalue()

    # fast: a tenth takes 5 s, so a line every 10 s (each 20%), never sooner
    out = io.StringIO()
    bar = progress_bar(total=1000, file=out, desc="fast", mininterval=0)  # overridden off a tty
    tick = _fake_clock(bar, LINE_INTERVAL_S / 200)
    for _ in range(1000):
        tick()
        bar.update(1)
    bar.close()
    assert _percentages(out) == ["0%", "20%", "40%", "60%", "80%", "100%"]


def test_off_a_terminal_without_a_total_and_disabled():
    out = io.StringIO()
    bar = progress_bar(file=out, desc="n")
    for _ in range(5000):
        bar.update(1)
    bar.close()
    assert len(out.getvalue().splitlines()) == 2 and "\r" not in out.getvalue()
    out = io.StringIO()
    bar = progress_bar(total=10, file=out, disable=True)
    bar.update(10)
    bar.close()
    assert out.getvalue() == ""


def test_on_a_terminal_the_bar_is_tqdms_own():
    out = _Terminal()
    bar = progress_bar(total=100, file=out, desc="tty", mininterval=0, ascii=True, ncols=60)
    for _ in range(100):
        bar.update(1)
    bar.close()
    text = out.getvalue()
    assert text.count("\r") > 50  # redrawn in place, as tqdm draws it
    assert "100%|" in text and "##|" in text and "100/100" in text  # tqdm's ASCII bar
    # the same redraws as a plain tqdm with the same options: description and percentage (the
    # bar's width follows the length of the rate text, which differs between two runs)
    want = _Terminal()
    plain = tqdm(total=100, file=want, desc="tty", mininterval=0, ascii=True, ncols=60)
    for _ in range(100):
        plain.update(1)
    plain.close()
    assert [s.split("|")[0] for s in text.split("\r")] == [
        s.split("|")[0] for s in want.getvalue().split("\r")]


def test_a_piped_training_run_writes_a_few_progress_lines_and_no_carriage_return(tmp_path):
    r = invoke("train", *SETCOMP, "--steps", 300, "--log-every", 10, "--progress",
               "--out", tmp_path / "run")
    assert r.exit_code == 0, r.output + r.stderr
    assert "\r" not in r.stderr and "\r" not in r.stdout
    bar_lines = [ln for ln in r.stderr.splitlines() if ln.startswith("setcomp/tiny:")]
    assert 2 <= len(bar_lines) <= 12, r.stderr
    assert bar_lines[-1].startswith("setcomp/tiny: 100% 300/300 [")


def test_a_piped_datagen_writes_plain_lines(tmp_path):
    r = invoke("datagen", "--games", 3000, "--out", tmp_path / "g.npy")
    assert r.exit_code == 0, r.output + r.stderr
    assert "\r" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("datagen:")]
    assert 1 <= len(lines) <= 12 and lines[-1].startswith("datagen: 100% 3.00k/3.00k ["), r.stderr
