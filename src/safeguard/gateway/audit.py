"""The gateway's audit trail: every push-policy decision and admin action, in ``gateway_audit``.

An event says who (identity, client address), what (action, repository, tag, digest and, for
moves, the previous digest), under which mode, what was decided (``allowed``, ``denied``,
``warned``, ``pending``, ``released``, ``expired``, ``superseded``, ``done``) and why. Events
are written in a worker thread before the client gets its answer, so an answered decision is
always on record; ``events`` reads them back, newest first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import anyio.to_thread
import sqlalchemy as sa

from safeguard.store.engine import Database
from safeguard.store.gateway_models import GatewayAudit, GatewayFinding

_T = cast(sa.Table, GatewayAudit.__table__)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    action: str  # push, delete, retag, untag, quarantine, purge, grace
    decision: str
    repository: str
    reason: str
    tag: str | None = None
    digest: str | None = None
    old_digest: str | None = None
    client: str = ""
    identity: str = ""
    mode: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def row(self) -> dict[str, Any]:
        out = asdict(self)
        out["client"] = self.client[:64]
        out["identity"] = self.identity[:255]
        return out

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["at"] = self.at.isoformat()
        return out


class AuditLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def write(self, event: AuditEvent) -> None:
        with self.db.write() as conn:
            conn.execute(sa.insert(_T).values(event.row()))

    async def record(self, event: AuditEvent) -> None:
        await anyio.to_thread.run_sync(self.write, event)

    def finding(
        self, kind: str, repository: str, tag: str | None, digest: str | None, detail: str
    ) -> None:
        with self.db.write() as conn:
            conn.execute(
                sa.insert(GatewayFinding).values(
                    kind=kind,
                    repository=repository,
                    tag=tag,
                    digest=digest,
                    detail=detail,
                    at=datetime.now(UTC),
                )
            )

    def events(
        self, repository: str | None = None, *, action: str | None = None, limit: int = 100
    ) -> list[AuditEvent]:
        query = sa.select(_T).order_by(_T.c.id.desc()).limit(limit)
        if repository is not None:
            query = query.where(_T.c.repository == repository)
        if action is not None:
            query = query.where(_T.c.action == action)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [
            AuditEvent(
                action=r.action,
                decision=r.decision,
                repository=r.repository,
                reason=r.reason,
                tag=r.tag,
                digest=r.digest,
                old_digest=r.old_digest,
                client=r.client,
                identity=r.identity,
                mode=r.mode,
                at=r.at if r.at.tzinfo else r.at.replace(tzinfo=UTC),
            )
            for r in rows
        ]
