"""The batching sequencer: threads and coroutines get their outcome, once per batch and loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from safeguard.core.errors import InvalidInput, Unreachable
from safeguard.tlog.sequencer import Batcher, Pending, SequencerStopped


class Recorder:
    """A commit that doubles each item, refuses negative ones, and records batch sizes."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, batch: Sequence[Pending[int, int]]) -> None:
        self.gate.wait(10)
        self.sizes.append(len(batch))
        for pending in batch:
            if pending.item < 0:
                pending.set_exception(InvalidInput(f"negative {pending.item}"))
            elif pending.item != 1000:  # 1000 is left unresolved: the batcher must fail it
                pending.set_result(pending.item * 2)


async def test_coroutines_get_results_and_errors() -> None:
    commit = Recorder()
    batcher: Batcher[int, int] = Batcher(commit, max_wait=0.01)
    try:
        results = await asyncio.gather(
            *(batcher.submit_async(i) for i in range(50)),
            batcher.submit_async(-1),
            batcher.submit_async(1000),
            return_exceptions=True,
        )
    finally:
        batcher.close()
    assert results[:50] == [2 * i for i in range(50)]
    assert isinstance(results[50], InvalidInput)
    assert isinstance(results[51], Unreachable)
    assert sum(commit.sizes) == 52 and len(commit.sizes) < 52  # batched


def test_threads_and_coroutines_share_batches() -> None:
    commit = Recorder()
    commit.gate.clear()  # hold the first batch so that the rest queue up together
    batcher: Batcher[int, int] = Batcher(commit, max_wait=0.0)
    first = batcher.submit(1)
    threaded = [batcher.submit(i) for i in range(2, 6)]

    async def main() -> list[int]:
        tasks = [asyncio.ensure_future(batcher.submit_async(i)) for i in range(6, 10)]
        await asyncio.sleep(0.05)
        commit.gate.set()
        return list(await asyncio.gather(*tasks))

    try:
        assert asyncio.run(main()) == [12, 14, 16, 18]
        assert [f.result(10) for f in [first, *threaded]] == [2, 4, 6, 8, 10]
    finally:
        batcher.close()


async def test_a_cancelled_waiter_does_not_disturb_the_batch() -> None:
    commit = Recorder()
    commit.gate.clear()
    batcher: Batcher[int, int] = Batcher(commit, max_wait=0.0)
    try:
        doomed = asyncio.ensure_future(batcher.submit_async(1))
        kept = asyncio.ensure_future(batcher.submit_async(2))
        await asyncio.sleep(0.02)
        doomed.cancel()
        commit.gate.set()
        assert await kept == 4
        with pytest.raises(asyncio.CancelledError):
            await doomed
    finally:
        batcher.close()


async def test_submissions_after_close_are_refused() -> None:
    batcher: Batcher[int, int] = Batcher(Recorder())
    batcher.close()
    with pytest.raises(SequencerStopped):
        await batcher.submit_async(1)
    with pytest.raises(SequencerStopped):
        batcher.submit(1).result(1)


def test_a_closed_loop_is_skipped() -> None:
    commit = Recorder()
    commit.gate.clear()
    batcher: Batcher[int, int] = Batcher(commit, max_wait=0.0)
    loop = asyncio.new_event_loop()
    task = loop.create_task(batcher.submit_async(3))
    loop.run_until_complete(asyncio.sleep(0.02))
    task.cancel()
    loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
    loop.close()
    other = batcher.submit(4)
    commit.gate.set()
    try:
        assert other.result(10) == 8  # the sequencer survived the closed loop
    finally:
        batcher.close()
