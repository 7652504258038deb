"""Batching for the log's sequencer: concurrent submissions become one transaction per batch.

A single thread takes submissions from a queue. When the first one arrives it keeps collecting
for up to ``max_wait`` seconds or until ``max_batch`` are waiting, then hands the whole batch to
``commit`` (which assigns contiguous indexes, writes entries, node hashes and the new signed
checkpoint in one database transaction). While a batch commits, the next one accumulates, so the
throughput grows with concurrency while a lone submission waits at most ``max_wait`` plus one
commit. Each submission has a ``concurrent.futures.Future`` that ``commit`` resolves (or fails);
async callers await it with ``asyncio.wrap_future``, which works from any event loop.

Trillian's log signer and Tessera's integrator batch the same way (sequence many, sign once).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from safeguard.core.errors import SafeguardError, Unreachable

log = logging.getLogger("safeguard.tlog")

T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True)
class Pending(Generic[T, R]):
    item: T
    future: Future[R] = field(default_factory=Future)


class SequencerStopped(Unreachable):
    code = "TLOG_SEQUENCER_STOPPED"


class Batcher(Generic[T, R]):
    """Runs ``commit(batch)`` on a dedicated thread for batches of queued submissions."""

    def __init__(
        self,
        commit: Callable[[Sequence[Pending[T, R]]], None],
        *,
        max_batch: int = 1024,
        max_wait: float = 0.005,
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
        pending: Pending[T, R] = Pending(item)
        with self._lock:
            if self._stopped:
                pending.future.set_exception(SequencerStopped("the log is shutting down"))
                return pending.future
            self._queue.put(pending)
        return pending.future

    def _collect(self) -> tuple[list[Pending[T, R]], bool]:
        first = self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        deadline = time.monotonic() + self._max_wait
        while len(batch) < self._max_batch:
            remaining = deadline - time.monotonic()
            try:
                if remaining > 0:
                    nxt = self._queue.get(timeout=remaining)
                else:
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
                if not pending.future.done():
                    pending.future.set_exception(Unreachable("the entry was not sequenced"))
        self._drain()

    @staticmethod
    def _fail(batch: Sequence[Pending[T, R]], exc: BaseException) -> None:
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(exc)

    def _drain(self) -> None:
        while True:
            try:
                pending = self._queue.get_nowait()
            except queue.Empty:
                return
            if pending is not None and not pending.future.done():
                pending.future.set_exception(SequencerStopped("the log is shutting down"))

    def close(self, timeout: float = 30.0) -> None:
        """Finish the batch in progress and what is queued, then stop the thread."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            self._queue.put(None)
        self._thread.join(timeout)
