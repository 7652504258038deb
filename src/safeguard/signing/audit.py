"""The signing audit trail: every decision, allowed or refused, stored before it is answered.

An ``AuditEvent`` records when, what was asked (action, kind, repository, digest), by whom (the
identity and a subset of its token's claims; for a token that never verified, only its
*unverified* ``iss``/``sub``/``aud``, marked ``"verified": false``, as a forensic hint), what was
decided (``allowed``/``refused``, the HTTP status, the stable error code, the reason) and, for
allowed signatures, the key and the log indexes of the entries made — the link from the audit
trail to the transparency log (``signing_events``, ``safeguard.store.signing_models``).

Writes are batched (``safeguard.tlog.sequencer.Batcher``: one multi-row ``INSERT`` per batch on a
dedicated thread), and a request waits for its own event's commit, so no answer leaves the service
before its audit event is durable, while hundreds of concurrent requests cost a few transactions.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa

from safeguard.store.engine import Database
from safeguard.store.signing_models import SigningEvent
from safeguard.tlog.sequencer import Batcher, Pending

ALLOWED: Final = "allowed"
REFUSED: Final = "refused"
_MAX_REASON: Final = 8192


def _clip(value: str | None, size: int) -> str | None:
    return value if value is None or len(value) <= size else value[: size - 1] + "…"


@dataclass
class AuditEvent:
    """One decision (module doc). ``claims`` is JSON-able; ``log_indexes`` link to the log."""

    action: str
    client: str
    decision: str = REFUSED
    status: int = 500
    code: str = "INTERNAL"
    reason: str = ""
    identity: str | None = None
    kind: str | None = None
    repository: str | None = None
    digest: str | None = None
    claims: dict[str, Any] | None = None
    key_id: str | None = None
    log_indexes: list[int] = field(default_factory=list)
    ticket: str | None = None
    engineer: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def row(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "action": self.action,
            "decision": self.decision,
            "status": self.status,
            "code": self.code[:64],
            "reason": _clip(self.reason, _MAX_REASON) or "",
            "identity": _clip(self.identity, 255),
            "kind": self.kind,
            "repository": _clip(self.repository, 255),
            "digest": _clip(self.digest, 200),
            "claims": json.dumps(self.claims, sort_keys=True) if self.claims is not None else None,
            "key_id": self.key_id,
            "log_indexes": ",".join(map(str, self.log_indexes)) or None,
            "client": self.client[:64],
            "ticket": _clip(self.ticket, 128),
            "engineer": _clip(self.engineer, 255),
        }


def event_dict(row: Any) -> dict[str, Any]:
    """A stored event as JSON (what ``safeguard release uses`` and reports show)."""
    at: datetime = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)
    return {
        "id": row.id,
        "at": at.isoformat(),
        "action": row.action,
        "decision": row.decision,
        "status": row.status,
        "code": row.code,
        "reason": row.reason,
        "identity": row.identity,
        "kind": row.kind,
        "repository": row.repository,
        "digest": row.digest,
        "claims": json.loads(row.claims) if row.claims else None,
        "keyId": row.key_id,
        "logIndexes": [int(i) for i in row.log_indexes.split(",")] if row.log_indexes else [],
        "client": row.client,
        "ticket": row.ticket,
        "engineer": row.engineer,
    }


class AuditLog:
    """Batched, durable audit writes and the queries over them (module doc)."""

    def __init__(self, db: Database, *, max_batch: int = 512, max_wait: float = 0.002) -> None:
        self.db = db
        self._batcher: Batcher[AuditEvent, int] = Batcher(
            self._commit, max_batch=max_batch, max_wait=max_wait, name="signing-audit"
        )

    def _commit(self, batch: Sequence[Pending[AuditEvent, int]]) -> None:
        rows = [p.item.row() for p in batch]
        with self.db.write() as conn:
            ids = conn.execute(
                sa.insert(SigningEvent).returning(SigningEvent.id, sort_by_parameter_order=True),
                rows,
            ).scalars()
            ids_list = list(ids)
        for pending, event_id in zip(batch, ids_list, strict=True):
            # ``Pending.set_result`` where the sequencer has it (it then wakes async waiters
            # once per batch), else its concurrent future.
            setter: Any = getattr(pending, "set_result", None)
            if setter is None:
                setter = getattr(pending, "future").set_result  # noqa: B009
            setter(int(event_id))

    async def record(self, event: AuditEvent) -> int:
        """Store ``event``; returns its id once committed."""
        submit_async = getattr(self._batcher, "submit_async", None)
        if submit_async is not None:
            event_id: int = await submit_async(event)
            return event_id
        return await asyncio.wrap_future(self._batcher.submit(event))

    def record_sync(self, event: AuditEvent, timeout: float = 60.0) -> int:
        return self._batcher.submit(event).result(timeout)

    def events(
        self,
        *,
        action: str | None = None,
        identity: str | None = None,
        digest: str | None = None,
        decision: str | None = None,
        limit: int | None = 1000,
    ) -> list[dict[str, Any]]:
        """Stored events, newest first, filtered by what is given."""
        table = SigningEvent.__table__
        query = sa.select(table).order_by(table.c.id.desc())
        for column, value in (
            (table.c.action, action),
            (table.c.identity, identity),
            (table.c.digest, digest),
            (table.c.decision, decision),
        ):
            if value is not None:
                query = query.where(column == value)
        if limit is not None:
            query = query.limit(limit)
        with self.db.read() as conn:
            return [event_dict(row) for row in conn.execute(query)]

    def close(self) -> None:
        self._batcher.close()
