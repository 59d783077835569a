"""Training batches built ahead of the step, in a background thread.

    with Prefetcher(task, batch_size, max_len, depth=2, pin_memory=True) as data:
        batch = data.next()          # the task's next batch, as task.batch(...) returns it
        data.state_dict()            # the stream position after the last batch next() returned

One producer thread calls ``task.batch(batch_size, max_len=max_len)`` in a loop and
puts each batch into a queue of ``depth`` batches; the training step takes them with
:meth:`Prefetcher.next`. The stream is the task's own, drawn in the same order by one
thread, so the batches are bitwise those of the synchronous loop. The Othello
kernels (Numba) and NumPy release the GIL, so the producer runs beside the step; on
a GPU the step's kernels run asynchronously anyway.

Exact resume: the producer runs up to ``depth + 1`` batches ahead of the step, so
the task's own state is *not* the position to save. Each batch travels with the
task's ``state_dict()`` taken right after it was drawn; :meth:`Prefetcher.state_dict`
is that of the last batch consumed, and :meth:`Prefetcher.close` puts the task back
there (the producer has stopped by then), so a checkpoint written during or after
the loop resumes at the first batch the step never saw.

One rule for the caller: while the producer runs, no other thread may call Numba
``parallel=True`` kernels (game generation, legal-move masks). Numba's ``workqueue``
threading layer, the only one every install has (macOS without TBB, say), ends the
process on concurrent parallel launches. The trainer keeps to it: its evaluation
reads the held-out batch built before the loop, and play comes after :meth:`close`.

On CUDA (``pin_memory=True``) each batch is copied into page-locked memory by the
producer, so the step's ``batch.to(device, non_blocking=True)`` is an asynchronous
copy. An exception in the producer reaches the consumer's next :meth:`next` as
:class:`DataFailed` (one line; the original is its ``__cause__``); the thread has
ended by then. :meth:`close` (also on Ctrl-C, any exception, and the ``with``
block's end) stops the producer and joins it.
"""

from __future__ import annotations

import dataclasses
import queue
import threading

import torch

from agents.checkpoint import first_line

# the producer's thread name (tests look for leaked threads by it)
THREAD_NAME = "lgagent-prefetch"
# seconds between checks that the producer is alive while the step waits for a batch
_POLL_S = 0.05
# seconds between looks at a full queue (a batch takes far longer to use)
_FULL_POLL_S = 0.002
# seconds close() waits for the producer to finish the batch it is drawing
_JOIN_S = 60.0


class DataFailed(Exception):
    """The data producer raised; the message is one line (the original is ``__cause__``)."""


class _Failure:
    """What the producer puts into the queue when it raised."""

    def __init__(self, error: BaseException, index: int):
        self.error, self.index = error, index


def pinned(batch):
    """``batch`` (a :class:`train.data.tasks.Batch`) with every tensor in page-locked memory."""
    return dataclasses.replace(batch, **{
        f.name: getattr(batch, f.name).pin_memory() for f in dataclasses.fields(batch)
        if isinstance(getattr(batch, f.name), torch.Tensor)})


def one_line(e: BaseException) -> str:
    """``Type: first line of the message`` (at most 200 characters of it)."""
    return f"{type(e).__name__}: {first_line(e)}" if str(e).strip() else type(e).__name__


class Prefetcher:
    """The next ``limit`` batches of ``task``'s stream (None: without end), built ahead.

    ``depth`` (>= 1) batches wait in the queue at most. ``pin_memory`` puts each
    batch in page-locked memory (for a non-blocking copy to a CUDA device).
    ValueError (one line) for a bad ``depth`` or ``limit``. See the module docstring.
    """

    def __init__(self, task, batch_size: int, max_len: int | None = None, *, depth: int = 2,
                 pin_memory: bool = False, limit: int | None = None,
                 pos_range: int | None = None):
        for name, value, lo in (("depth", depth, 1), ("limit", limit, 0)):
            if value is None and name == "limit":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ValueError(f"Prefetcher {name} must be an integer >= {lo}, got {value!r}")
        self.task, self.batch_size, self.max_len = task, batch_size, max_len
        self.pos_range = pos_range  # task.batch's: randomized positions (None: none)
        self.pin_memory, self.limit = pin_memory, limit
        self.consumed = 0  # batches next() has returned
        self._state = task.state_dict()  # the position after the last consumed batch
        self._first = self._state.get("step")  # the stream index of the first batch
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._produce, name=THREAD_NAME, daemon=True)
        self._thread.start()

    # -- the producer thread ------------------------------------------------------------------

    def _produce(self) -> None:
        made = 0
        try:
            while not self._stop.is_set() and (self.limit is None or made < self.limit):
                batch = self.task.batch(self.batch_size, max_len=self.max_len,
                                        pos_range=self.pos_range)
                if self.pin_memory:
                    batch = pinned(batch)
                made += 1
                if not self._put((batch, self.task.state_dict())):
                    return
        except BaseException as e:  # every failure reaches the consumer, the thread ends
            self._put(_Failure(e, made))

    def _put(self, item) -> bool:
        """Put ``item`` into the queue unless the consumer stops first; False when it did.

        A full queue is polled, not waited on: a producer waiting on the queue's condition
        would be woken by every ``get`` and take the GIL from the consumer right there (on a
        busy machine that handoff alone cost the step milliseconds per batch).
        """
        while not self._stop.is_set():
            try:
                self._queue.put_nowait(item)
                return True
            except queue.Full:
                self._stop.wait(_FULL_POLL_S)
        return False

    # -- the consumer (the training loop) ----------------------------------------------------

    def next(self):
        """The next batch of the stream (waits for the producer). :class:`DataFailed` when the
        producer raised (the prefetcher is closed then); RuntimeError after :meth:`close` or
        past ``limit``."""
        if self._closed:
            raise RuntimeError("Prefetcher.next after close")
        if self.limit is not None and self.consumed >= self.limit:
            raise RuntimeError(f"Prefetcher.next past its limit of {self.limit} batches")
        while True:
            try:
                item = self._queue.get(timeout=_POLL_S)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():  # never silent
                    self.close()
                    raise DataFailed("the data producer stopped without a batch") from None
        if isinstance(item, _Failure):
            self.close()
            at = self._first + item.index if isinstance(self._first, int) else "?"
            raise DataFailed(f"building training batch {at} of the stream failed: "
                             f"{one_line(item.error)}") from item.error
        batch, self._state = item
        self.consumed += 1
        return batch

    def state_dict(self) -> dict:
        """The task's ``state_dict()`` after the last batch :meth:`next` returned (before any:
        the task's position when the prefetcher started)."""
        return dict(self._state)

    def close(self) -> None:
        """Stop and join the producer, drop the batches built ahead and put the task back at
        :meth:`state_dict`. Idempotent; safe at any moment (e.g. under Ctrl-C)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        while True:  # unblock a producer waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(_JOIN_S)
        if not self._thread.is_alive():  # only then is the task ours again
            self.task.load_state_dict(self._state)

    @property
    def alive(self) -> bool:
        """Whether the producer thread is still running."""
        return self._thread.is_alive()

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False
