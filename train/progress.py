"""Progress bars: the one helper behind every long job's bar (training, ``lgagent datagen``).

:func:`progress_bar` returns a tqdm bar. On a terminal it is tqdm's usual bar, redrawn
in place with carriage returns, with the options the caller gives. Anywhere else (a
pipe, a file, a CI log, click's test runner) it writes plain lines instead: one when
it opens, then one each time another tenth of the total is done but never sooner than
10 s after the previous line (:data:`LINE_FRACTION`, :data:`LINE_INTERVAL_S`), and one
when it closes; no carriage return, no bar glyphs. A 3000-step run piped into a log
file therefore writes a handful of progress lines, not thousands of redraws.

Imports nothing from ``train``'s sub-packages (it is a base module), and tqdm only
when a bar is made (``--help`` and option errors never load it).
"""

from __future__ import annotations

import math
import sys

LINE_INTERVAL_S = 10.0  # off a terminal: at least this long between two lines
LINE_FRACTION = 0.1  # off a terminal: and at least this share of the total between two lines


def is_terminal(stream) -> bool:
    """Whether ``stream`` is a terminal (``isatty()``; False when it cannot say)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


class _Lines:
    """The stream a bar writes to off a terminal: each status tqdm draws (``"\\r" + text +
    padding``) becomes one line ``text + "\\n"``; what only clears (blanks, carriage returns,
    tqdm's final newline) and a status equal to the line before write nothing."""

    def __init__(self, stream):
        self.stream = stream
        self._last = None

    def write(self, s: str) -> int:
        text = str(s).replace("\r", "").strip()
        if text and text != self._last:
            self.stream.write(text + "\n")
            self._last = text
        return len(s)

    def flush(self) -> None:
        getattr(self.stream, "flush", lambda: None)()

    def isatty(self) -> bool:
        return False


def progress_bar(total=None, *, file=None, disable: bool = False, **options):
    """A tqdm bar over ``total`` units, written to ``file`` (default ``sys.stderr``, as tqdm).

    On a terminal (``file.isatty()``): ``tqdm.tqdm(total=total, file=file,
    disable=disable, **options)``, the bar as tqdm draws it. Off a terminal the same
    bar writes plain lines (module docstring): ``options`` (``desc``, ``initial``,
    ``unit``, ``unit_scale``, ``postfix``...) still apply, but the redraw options are
    replaced: ``mininterval`` :data:`LINE_INTERVAL_S`, ``miniters`` a tenth of
    ``total`` (1 without a total), ``maxinterval`` infinite (tqdm's monitor thread
    never forces a redraw), no screen width (``ncols``, ``dynamic_ncols``), ASCII,
    and a format without the bar glyphs: ``desc: 42% 420/1000 [00:10<00:14, 41.2it/s,
    postfix]``.
    """
    from tqdm import tqdm

    stream = sys.stderr if file is None else file
    if disable or is_terminal(stream):
        return tqdm(total=total, file=stream, disable=disable, **options)
    desc = options.get("desc")
    fmt = ("{percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
           if total else "{n_fmt} [{elapsed}, {rate_fmt}{postfix}]")
    options.update(
        mininterval=LINE_INTERVAL_S,
        miniters=max(1, math.ceil(total * LINE_FRACTION)) if total else 1,
        maxinterval=math.inf, ncols=None, dynamic_ncols=False, ascii=True, leave=True,
        bar_format=("{desc}: " if desc else "") + fmt)
    return tqdm(total=total, file=_Lines(stream), **options)
