"""The pull log: who pulled which manifest, when, from where — written off the request path.

A manifest ``GET``/``HEAD`` answered through the gateway is one ``PullRecord`` (repository, the
reference asked for, the digest answered, client address, identity, user agent, time). Recording
is an ``append`` to an in-memory buffer; a background task writes the buffer in one transaction
every ``flush_ms`` milliseconds, or as soon as ``batch`` records wait, in a worker thread, so a
pull never waits for the database. If the database is unavailable, records are kept and retried
on the next flush, up to ``max_buffer`` records; beyond that the oldest are dropped and the drop
is logged (the pull itself never fails because of its log).

``last_pulls`` answers "when was this last pulled": per digest of a repository, or for one digest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, cast

import anyio.to_thread
import sqlalchemy as sa

from safeguard.store.engine import Database
from safeguard.store.gateway_models import GatewayPull

log = logging.getLogger("safeguard.gateway.pulllog")

MAX_BUFFER: Final = 100_000


def _clip(text: str | None, size: int) -> str:
    return (text or "")[:size]


@dataclass(frozen=True, slots=True)
class PullRecord:
    repository: str
    reference: str
    digest: str | None
    client: str
    identity: str
    user_agent: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    source: str = "gateway"
    quarantined: bool = False

    def row(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "repository": _clip(self.repository, 255),
            "reference": _clip(self.reference, 200),
            "digest": self.digest[:200] if self.digest else None,
            "client": _clip(self.client, 64),
            "identity": _clip(self.identity, 255),
            "user_agent": _clip(self.user_agent, 255),
            "source": self.source,
            "quarantined": self.quarantined,
        }


def write_pulls(db: Database, records: Sequence[PullRecord]) -> None:
    """Insert ``records`` in one transaction (blocking)."""
    if not records:
        return
    with db.write() as conn:
        conn.execute(sa.insert(GatewayPull), [r.row() for r in records])


class PullLog:
    """Buffers pull records and writes them in batches (see module docstring)."""

    def __init__(
        self, db: Database, *, flush_ms: int = 200, batch: int = 500, max_buffer: int = MAX_BUFFER
    ) -> None:
        self.db = db
        self.flush_seconds = max(flush_ms, 1) / 1000
        self.batch = max(batch, 1)
        self.max_buffer = max_buffer
        self.dropped = 0
        self.written = 0
        self._buffer: list[PullRecord] = []
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    def record(self, record: PullRecord) -> None:
        self._buffer.append(record)
        if len(self._buffer) > self.max_buffer:
            excess = len(self._buffer) - self.max_buffer
            del self._buffer[:excess]
            self.dropped += excess
        if len(self._buffer) >= self.batch:
            self._wake.set()

    @property
    def waiting(self) -> int:
        return len(self._buffer)

    async def flush(self) -> int:
        """Write what is buffered now; returns how many records were written."""
        async with self._lock:
            if not self._buffer:
                return 0
            records, self._buffer = self._buffer, []
            try:
                await anyio.to_thread.run_sync(write_pulls, self.db, records)
            except Exception:
                log.exception("pull log: writing %d records failed; will retry", len(records))
                self._buffer[:0] = records
                return 0
            self.written += len(records)
            return len(records)

    async def run(self) -> None:
        """The flusher: every ``flush_seconds``, or when a batch is full; flushes on exit."""
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.flush_seconds)
                self._wake.clear()
                await self.flush()
        finally:
            await asyncio.shield(self.flush())


@dataclass(frozen=True, slots=True)
class LastPull:
    repository: str
    digest: str | None
    at: datetime
    reference: str
    client: str
    identity: str
    user_agent: str
    source: str
    pulls: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "digest": self.digest,
            "lastPull": self.at.isoformat(),
            "reference": self.reference,
            "client": self.client,
            "identity": self.identity,
            "userAgent": self.user_agent,
            "source": self.source,
            "pulls": self.pulls,
        }


def last_pulls(db: Database, repository: str, digest: str | None = None) -> list[LastPull]:
    """The latest pull of each digest of ``repository`` (or of ``digest`` only), newest first."""
    table = cast(sa.Table, GatewayPull.__table__)
    counts = (
        sa.select(
            table.c.digest,
            sa.func.max(table.c.at).label("last"),
            sa.func.count().label("pulls"),
        )
        .where(table.c.repository == repository)
        .group_by(table.c.digest)
    )
    if digest is not None:
        counts = counts.where(table.c.digest == digest)
    latest = counts.subquery()
    query = (
        sa.select(table, latest.c.pulls)
        .join(
            latest,
            sa.and_(
                table.c.digest.is_not_distinct_from(latest.c.digest),
                table.c.at == latest.c.last,
            ),
        )
        .where(table.c.repository == repository)
        .order_by(table.c.at.desc(), table.c.id.desc())
    )
    out: dict[str | None, LastPull] = {}
    with db.read() as conn:
        for row in conn.execute(query):
            if row.digest in out:
                continue
            at = row.at if row.at.tzinfo is not None else row.at.replace(tzinfo=UTC)
            out[row.digest] = LastPull(
                row.repository,
                row.digest,
                at,
                row.reference,
                row.client,
                row.identity,
                row.user_agent,
                row.source,
                int(row.pulls),
            )
    return list(out.values())
