"""Signal handlers installed for the length of a ``with`` block, then restored.

Every long piece of work of ``lgagent`` (the training loop, a sweep between its runs,
``lgagent eval``, a random search, datagen) turns SIGINT/SIGTERM into its own way
of stopping cleanly. Python runs handlers in the main thread only, and
``signal.signal`` refuses any other thread: there nothing is installed, and the
block runs with the process's handlers.
"""

from __future__ import annotations

import contextlib
import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def handling(handler, signals=STOP_SIGNALS):
    """Inside the block, ``handler(signum, frame)`` handles ``signals`` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
