"""The log's routes never block the event loop they share with the registry and the gateway.

A batch commit holds the sequencer's lock for its whole transaction (and an HSM signature); no
request may wait for it on the loop: ``/v2/`` and the log's reads keep answering, and a proof for
a ``lastSize`` beyond the tree is a fast 400 (as in Rekor) that costs at most one state-row read
per ``catch_up_interval``. Reads that need the database run in worker threads, which the tests
see by recording the thread of every ``Database.read``. Two service instances over one database
stand in for two processes: a size only the other one has written is still served.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from safeguard.keys import SoftwareSigner
from safeguard.server import SafeguardApp, create_app
from safeguard.store import default_database_url, open_database
from safeguard.tlog import storage
from safeguard.tlog.api import TlogApp, mount_tlog
from safeguard.tlog.entries import prepare_entry
from safeguard.tlog.logkey import generate_log_key
from safeguard.tlog.merkle import TreeRangeError, verify_consistency
from safeguard.tlog.service import LogConfig, TransparencyLog, WouldBlock, cached_only
from tests.unit.tlog.tlog_helpers import hashedrekord

SIGNER = SoftwareSigner.generate()
HUGE = 10**15


def _node(tmp_path: Path, config: LogConfig) -> tuple[SafeguardApp, TlogApp]:
    app = create_app(tmp_path / "data", tlog=False, signing=False)
    return app, mount_tlog(app, config=config)


@contextlib.contextmanager
def _closing(app: SafeguardApp) -> Iterator[SafeguardApp]:
    try:
        yield app
    finally:
        for close in app.closers:
            close()
        app.db.dispose()


@contextlib.asynccontextmanager
async def _client(app: SafeguardApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://log") as client:
        yield client


async def _append(client: httpx.AsyncClient, count: int) -> list[str]:
    uuids = []
    for i in range(count):
        response = await client.post(
            "/api/v1/log/entries", json=hashedrekord(SIGNER, f"loop {i}".encode())
        )
        assert response.status_code == 201, response.text
        uuids.append(next(iter(response.json())))
    return uuids


def _hold(lock: threading.Lock, seconds: float, held: threading.Event) -> threading.Thread:
    """Hold ``lock`` for ``seconds`` in another thread, as a slow batch commit does."""

    def run() -> None:
        with lock:
            held.set()
            time.sleep(seconds)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert held.wait(5)
    return thread


async def test_a_slow_commit_stalls_neither_v2_nor_the_log(tmp_path: Path) -> None:
    app, handler = _node(tmp_path, LogConfig(refresh_interval=0.0))
    with _closing(app):
        async with _client(app) as client:
            uuids = await _append(client, 3)
            holder = _hold(handler.tlog._lock, 3.0, threading.Event())
            started = time.monotonic()
            answers = await asyncio.gather(
                client.get(f"/api/v1/log/proof?firstSize=1&lastSize={HUGE}"),
                client.get("/v2/"),
                client.get("/api/v1/log"),
                client.get("/checkpoint"),
                client.get("/api/v1/log/entries?logIndex=1"),
                client.get(f"/api/v1/log/entries/{uuids[2]}"),
                client.get("/api/v1/log/proof?firstSize=1&lastSize=3"),
            )
            elapsed = time.monotonic() - started
            holder.join()
    assert elapsed < 1.5, f"the requests waited {elapsed:.2f} s for the sequencer's lock"
    huge, v2, info, checkpoint, by_index, by_uuid, proof = answers
    assert huge.status_code == 400
    assert huge.json()["reason"] == "TLOG_RANGE_INVALID"
    assert "greater than what is currently observable(3)" in huge.json()["message"]
    assert v2.status_code == 200
    assert info.status_code == 200 and info.json()["treeSize"] == 3
    assert checkpoint.status_code == 200
    assert by_index.status_code == 200 and by_uuid.status_code == 200
    assert proof.status_code == 200


async def test_a_huge_last_size_is_a_400_that_costs_one_state_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _ = _node(tmp_path, LogConfig(catch_up_interval=3600.0))
    with _closing(app):
        async with _client(app) as client:
            await _append(client, 2)
            reads: list[int] = []
            real = storage.read_state

            def counting(*args: Any, **kwargs: Any) -> Any:
                reads.append(1)
                return real(*args, **kwargs)

            monkeypatch.setattr(storage, "read_state", counting)
            started = time.monotonic()
            for size in (HUGE, HUGE - 1, 3, 10**19):
                for _ in range(25):
                    answer = await client.get(f"/api/v1/log/proof?firstSize=1&lastSize={size}")
                    assert answer.status_code == 400, answer.text
                    assert answer.json()["reason"] == "TLOG_RANGE_INVALID"
            good = await client.get("/api/v1/log/proof?firstSize=1&lastSize=2")
            elapsed = time.monotonic() - started
    assert good.status_code == 200
    assert len(reads) <= 1
    assert elapsed < 5


async def test_database_reads_run_in_worker_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, handler = _node(tmp_path, LogConfig(refresh_interval=0.0, entry_cache=0))
    loop_thread = threading.get_ident()
    with _closing(app):
        async with _client(app) as client:
            uuids = await _append(client, 3)
            threads: list[tuple[str, int]] = []
            current = [""]
            db = handler.tlog.db
            real = db.read

            @contextlib.contextmanager
            def recording() -> Iterator[Any]:
                threads.append((current[0], threading.get_ident()))
                with real() as conn:
                    yield conn

            monkeypatch.setattr(db, "read", recording)
            handler._answers.clear()
            calls: list[tuple[str, Any]] = [
                ("GET", "/api/v1/log"),
                ("GET", "/checkpoint"),
                ("GET", "/api/v1/log/entries?logIndex=0"),
                ("GET", f"/api/v1/log/entries/{uuids[1]}"),
                ("POST", "/api/v1/log/entries/retrieve"),
                ("POST", "/api/v1/index/retrieve"),
                ("GET", "/tile/entries/000.p/3"),
                ("GET", "/api/v1/log/proof?firstSize=1&lastSize=3"),
            ]
            bodies = {
                "/api/v1/log/entries/retrieve": {"entryUUIDs": [uuids[0]], "logIndexes": [2]},
                "/api/v1/index/retrieve": {"hash": "sha256:" + "ab" * 32},
            }
            for method, path in calls:
                current[0] = path
                answer = await client.request(method, path, json=bodies.get(path))
                assert answer.status_code == 200, (path, answer.text)
    on_loop = [path for path, ident in threads if ident == loop_thread]
    assert threads, "no database read was recorded"
    assert on_loop == []


async def test_hot_reads_are_answered_from_memory(tmp_path: Path) -> None:
    """Cached entries, proofs and a fresh head need no thread and no database."""
    app, handler = _node(tmp_path, LogConfig(refresh_interval=3600.0))
    with _closing(app):
        async with _client(app) as client:
            await _append(client, 3)
            with cached_only():
                assert handler._log_info()["treeSize"] == 3
                assert handler._entry_at(1).startswith(b"{")
                status, _, _ = handler._proof({"firstSize": ["1"], "lastSize": ["3"]})
                assert status == 200
                with pytest.raises(WouldBlock):
                    handler.tlog.entries_by_leaf([b"\0" * 32])


def test_a_size_only_another_process_wrote_is_still_served(tmp_path: Path) -> None:
    url = default_database_url(tmp_path)
    key = generate_log_key(tmp_path / "log.pem")
    dbs = [open_database(url), open_database(url)]
    stale = TransparencyLog(dbs[0], key, LogConfig(refresh_interval=3600.0))
    writer = TransparencyLog(dbs[1], key)
    try:
        stale.add_sync(prepare_entry(hashedrekord(SIGNER, b"first")))
        writer.refresh(force=True)
        for i in range(4):
            writer.add_sync(prepare_entry(hashedrekord(SIGNER, f"more {i}".encode())))
        assert stale.head().size == 1
        proof = stale.consistency_proof(1, 5)
        verify_consistency(1, 5, proof, stale.root_at(1), writer.head().root_hash)
        assert stale.head().size == 5
        with pytest.raises(TreeRangeError):
            stale.consistency_proof(1, 6)
        # Beyond the store while the sequencer's lock is held: no wait, a range error.
        holder = _hold(stale._lock, 2.0, threading.Event())
        started = time.monotonic()
        with pytest.raises(TreeRangeError):
            stale.consistency_proof(1, HUGE)
        assert time.monotonic() - started < 0.5
        holder.join()
    finally:
        for log, db in zip((stale, writer), dbs, strict=True):
            log.close()
            db.dispose()
