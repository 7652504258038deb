"""Batching for the log's sequencer: concurrent submissions become one transaction per batch.

A single thread takes submissions from a queue. When the first one arrives it lets more collect
for ``max_wait`` seconds, then takes up to ``max_batch`` of those waiting and hands the batch to
``commit`` (which assigns contiguous indexes, writes entries, node hashes and the new signed
checkpoint in one database transaction). While a batch commits, the next one accumulates, so the
throughput grows with concurrency while a lone submission waits at most ``max_wait`` plus one
commit. ``commit`` resolves (or fails) each submission's ``Pending``: a thread's
``concurrent.futures.Future`` at once, and a coroutine's asyncio future on its own event loop
after the batch, with one ``call_soon_threadsafe`` per batch and loop.

Trillian's log signer and Tessera's integrator batch the same way (sequence many, sign once).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

from safeguard.core.errors import SafeguardError, Unreachable

log = logging.getLogger("safeguard.tlog")

T = TypeVar("T")
R = TypeVar("R")


class Pending(Generic[T, R]):
    """One submission: its item and where its outcome goes.

    A thread waits on ``future`` (a ``concurrent.futures.Future``, set at once). A coroutine
    waits on ``waiter``, an asyncio future of its own event loop: its outcome is recorded here
    and handed over by ``Batcher`` with one thread-safe wake-up per batch and loop, rather than
    a Future, a lock and a wake-up per entry.
    """

    __slots__ = ("_done", "error", "future", "item", "loop", "value", "waiter")

    def __init__(
        self,
        item: T,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        waiter: asyncio.Future[R] | None = None,
    ) -> None:
        self.item = item
        self.loop = loop
        self.waiter = waiter
        self.future: Future[R] | None = Future() if waiter is None else None
        self.value: R | None = None
        self.error: BaseException | None = None
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, value: R) -> None:
        self._done = True
        if self.future is not None:
            self.future.set_result(value)
        else:
            self.value = value

    def set_exception(self, exc: BaseException) -> None:
        self._done = True
        if self.future is not None:
            self.future.set_exception(exc)
        else:
            self.error = exc


def _settle(pendings: list[Pending[Any, Any]]) -> None:
    """On the waiters' event loop: hand each its outcome (a cancelled waiter is left alone)."""
    for pending in pendings:
        waiter = pending.waiter
        if waiter is None or waiter.done():
            continue
        if pending.error is not None:
            waiter.set_exception(pending.error)
        else:
            waiter.set_result(pending.value)


class SequencerStopped(Unreachable):
    code = "TLOG_SEQUENCER_STOPPED"


class Batcher(Generic[T, R]):
    """Runs ``commit(batch)`` on a dedicated thread for batches of queued submissions."""

    def __init__(
        self,
        commit: Callable[[Sequence[Pending[T, R]]], None],
        *,
        max_batch: int = 1024,
        max_wait: float = 0.002,
        name: str = "tlog-sequencer",
    ) -> None:
        self._commit = commit
        self._max_batch = max(1, max_batch)
        self._max_wait = max(0.0, max_wait)
        self._queue: queue.SimpleQueue[Pending[T, R] | None] = queue.SimpleQueue()
        self._stopped = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self.batches = 0
        self.items = 0

    def submit(self, item: T) -> Future[R]:
        """Queue ``item`` for a thread: the future resolves once its batch has committed."""
        pending: Pending[T, R] = Pending(item)
        assert pending.future is not None
        self._enqueue(pending)
        return pending.future

    async def submit_async(self, item: T) -> R:
        """Queue ``item`` and wait for its batch on the running event loop."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[R] = loop.create_future()
        self._enqueue(Pending(item, loop=loop, waiter=waiter))
        return await waiter

    def _enqueue(self, pending: Pending[T, R]) -> None:
        with self._lock:
            if not self._stopped:
                self._queue.put(pending)
                return
        pending.set_exception(SequencerStopped("the log is shutting down"))
        self._deliver([pending])

    @staticmethod
    def _deliver(batch: Sequence[Pending[T, R]]) -> None:
        """Wake the event loops that wait on this batch, once each."""
        by_loop: dict[asyncio.AbstractEventLoop, list[Pending[T, R]]] = {}
        for pending in batch:
            if pending.loop is not None:
                by_loop.setdefault(pending.loop, []).append(pending)
        for loop, pendings in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, pendings)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                continue

    def _collect(self) -> tuple[list[Pending[T, R]], bool]:
        first = self._queue.get()
        if first is None:
            return [], True
        if self._max_wait > 0 and self._max_batch > 1:
            # Sleep through the window, then take what came: cheaper than waking per arrival.
            time.sleep(self._max_wait)
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                return batch, True
            batch.append(nxt)
        return batch, False

    def _run(self) -> None:
        stop = False
        while not stop:
            batch, stop = self._collect()
            if not batch:
                continue
            try:
                self._commit(batch)
            except SafeguardError as exc:
                self._fail(batch, exc)
            except Exception as exc:  # a database failure: every submitter must hear of it
                log.exception("sequencing a batch of %d entries failed", len(batch))
                self._fail(batch, Unreachable(f"the log could not store the batch: {exc}"))
            else:
                self.batches += 1
                self.items += len(batch)
            for pending in batch:
                if not pending.done():
                    pending.set_exception(Unreachable("the entry was not sequenced"))
            self._deliver(batch)
        self._drain()

    @staticmethod
    def _fail(batch: Sequence[Pending[T, R]], exc: BaseException) -> None:
        for pending in batch:
            if not pending.done():
                pending.set_exception(exc)

    def _drain(self) -> None:
        while True:
            try:
                pending = self._queue.get_nowait()
            except queue.Empty:
                return
            if pending is not None and not pending.done():
                pending.set_exception(SequencerStopped("the log is shutting down"))
                self._deliver([pending])

    def close(self, timeout: float = 30.0) -> None:
        """Finish the batch in progress and what is queued, then stop the thread."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            self._queue.put(None)
        self._thread.join(timeout)
