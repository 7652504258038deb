"""Grace mode: a tag pushed without a valid signature waits, invisible, for one.

The manifest itself is stored in the registry by digest; the tag is kept in ``gateway_pending``
and not given to the registry, so no client — through the gateway or around it — can pull it by
that tag. When a signature for the digest passes through the gateway (a referrer with that
``subject``, or its cosign ``.sig`` tag), the digest is verified under the rule's signers and,
if it passes, the tag is written to the registry (*released*). A background task looks at
entries whose ``graceSeconds`` ran out: verified once more (a signature may have gone to the
registry directly), then released, or *expired*: the manifest is moved to the quarantine
namespace (``safeguard.gateway.quarantine``, not served under the old name), a finding is
recorded, and the tag is never written. A later push of the same tag supersedes the pending one.

Release does not move a tag that now points at a signed digest or matches ``immutableTags``
(the pending entry is then *superseded*): the pending tag never bypasses immutability.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import anyio.to_thread
import sqlalchemy as sa

from safeguard.core.digest import Digest
from safeguard.core.errors import SafeguardError
from safeguard.gateway.audit import AuditEvent, AuditLog
from safeguard.gateway.quarantine import QuarantineJournal, QuarantineMover
from safeguard.gateway.rules import DEFAULT_DEPRECATION_DAYS, DEFAULT_NAMESPACE, PolicySource
from safeguard.gateway.signed import SignatureCheck
from safeguard.gateway.tags import fetch, put_tag, tag_digest
from safeguard.gateway.upstream import Upstream
from safeguard.store.engine import Database
from safeguard.store.gateway_models import GatewayPending

log = logging.getLogger("safeguard.gateway.grace")
_run = anyio.to_thread.run_sync
_T = cast(sa.Table, GatewayPending.__table__)


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Pending:
    id: int
    repository: str
    tag: str
    digest: str
    deadline: datetime
    state: str
    client: str
    identity: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "repository": self.repository,
            "tag": self.tag,
            "digest": self.digest,
            "deadline": self.deadline.isoformat(),
            "state": self.state,
            "identity": self.identity,
        }


def _pending(row: Any) -> Pending:
    return Pending(
        row.id,
        row.repository,
        row.tag,
        row.digest,
        _aware(row.deadline),
        row.state,
        row.client,
        row.identity,
    )


class PendingTags:
    """The ``gateway_pending`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(
        self,
        repository: str,
        tag: str,
        digest: str,
        media_type: str,
        seconds: int,
        client: str,
        identity: str,
    ) -> Pending:
        now = datetime.now(UTC)
        with self.db.write() as conn:
            conn.execute(
                sa.update(_T)
                .where(_T.c.repository == repository, _T.c.tag == tag, _T.c.state == "pending")
                .values(state="superseded", resolved_at=now)
            )
            new_id = conn.execute(
                sa.insert(_T)
                .values(
                    repository=repository,
                    tag=tag,
                    digest=digest,
                    media_type=media_type[:255],
                    created_at=now,
                    deadline=now + timedelta(seconds=seconds),
                    state="pending",
                    client=client[:64],
                    identity=identity[:255],
                )
                .returning(_T.c.id)
            ).scalar_one()
            row = conn.execute(sa.select(_T).where(_T.c.id == new_id)).one()
        return _pending(row)

    def supersede(self, repository: str, tag: str) -> int:
        with self.db.write() as conn:
            result = conn.execute(
                sa.update(_T)
                .where(_T.c.repository == repository, _T.c.tag == tag, _T.c.state == "pending")
                .values(state="superseded", resolved_at=datetime.now(UTC))
            )
            return int(result.rowcount or 0)

    def for_digest(self, repository: str, digest: str) -> list[Pending]:
        query = sa.select(_T).where(
            _T.c.repository == repository, _T.c.digest == digest, _T.c.state == "pending"
        )
        with self.db.read() as conn:
            return [_pending(r) for r in conn.execute(query)]

    def has_digest(self, repository: str, digest: str) -> bool:
        return bool(self.for_digest(repository, digest))

    def claim(self, entry_id: int, to_state: str, from_state: str = "pending") -> bool:
        with self.db.write() as conn:
            result = conn.execute(
                sa.update(_T)
                .where(_T.c.id == entry_id, _T.c.state == from_state)
                .values(state=to_state)
            )
            return (result.rowcount or 0) == 1

    def finish(self, entry_id: int, state: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                sa.update(_T)
                .where(_T.c.id == entry_id)
                .values(state=state, resolved_at=datetime.now(UTC))
            )

    def due(self, now: datetime) -> list[Pending]:
        query = (
            sa.select(_T)
            .where(_T.c.state.in_(("pending", "expiring")), _T.c.deadline <= now)
            .order_by(_T.c.deadline)
            .limit(100)
        )
        with self.db.read() as conn:
            return [_pending(r) for r in conn.execute(query)]

    def entries(self, repository: str | None = None) -> list[Pending]:
        query = sa.select(_T).order_by(_T.c.id)
        if repository is not None:
            query = query.where(_T.c.repository == repository)
        with self.db.read() as conn:
            return [_pending(r) for r in conn.execute(query)]


class Grace:
    """Releases and expires pending tags (see module docstring)."""

    def __init__(
        self,
        pending: PendingTags,
        upstream: Upstream,
        rules: PolicySource,
        signatures: SignatureCheck,
        audit: AuditLog,
        journal: QuarantineJournal,
        mover: Callable[[], QuarantineMover],
        *,
        tick_seconds: float = 1.0,
    ) -> None:
        self.pending = pending
        self.upstream = upstream
        self.rules = rules
        self.signatures = signatures
        self.audit = audit
        self.journal = journal
        self.mover = mover
        self.tick_seconds = tick_seconds
        self._lock = asyncio.Lock()

    async def on_signature(self, repository: str, digest: str) -> list[str]:
        """A signature for ``digest`` arrived: release the tags waiting for it. Returns them."""
        self.signatures.forget(repository, digest)
        waiting = await _run(self.pending.for_digest, repository, digest)
        released = []
        for entry in waiting:
            rule = self.rules.cached().rule_for(repository)
            if rule is not None and rule.mode in ("grace", "reject"):
                outcome = await self.signatures.verified(repository, digest, rule)
                if not outcome.ok:
                    continue
                reason = outcome.reason
            else:
                reason = "the repository has no signing rule any more"
            if not await _run(self.pending.claim, entry.id, "releasing"):
                continue
            if await self._release(entry, reason):
                released.append(entry.tag)
        return released

    async def _release(self, entry: Pending, reason: str) -> bool:
        client = self.upstream.client()
        try:
            current = await tag_digest(client, entry.repository, entry.tag)
            rule = self.rules.cached().rule_for(entry.repository)
            if current is not None and str(current) != entry.digest and rule is not None:
                protected = rule.tag_is_immutable(entry.tag) or await self.signatures.signed(
                    entry.repository, str(current), rule
                )
                if protected:
                    await _run(self.pending.finish, entry.id, "superseded")
                    await self.audit.record(
                        AuditEvent(
                            "grace",
                            "superseded",
                            entry.repository,
                            f"not released: {entry.tag} now points at protected {current}",
                            tag=entry.tag,
                            digest=entry.digest,
                            old_digest=str(current),
                            client=entry.client,
                            identity=entry.identity,
                            mode="grace",
                        )
                    )
                    return False
            manifest = await fetch(client, entry.repository, Digest.parse(entry.digest))
            await put_tag(client, entry.repository, entry.tag, manifest)
        except SafeguardError as exc:
            log.warning("grace: releasing %s:%s failed: %s", entry.repository, entry.tag, exc)
            await _run(lambda: self.pending.claim(entry.id, "pending", "releasing"))
            return False
        await _run(self.pending.finish, entry.id, "released")
        await self.audit.record(
            AuditEvent(
                "grace",
                "released",
                entry.repository,
                reason,
                tag=entry.tag,
                digest=entry.digest,
                old_digest=str(current) if current is not None else None,
                client=entry.client,
                identity=entry.identity,
                mode="grace",
            )
        )
        return True

    async def tick(self) -> int:
        """Handle every entry whose deadline passed; returns how many were handled."""
        async with self._lock:
            due = await _run(self.pending.due, datetime.now(UTC))
            for entry in due:
                try:
                    await self._expire(entry)
                except SafeguardError as exc:
                    log.warning(
                        "grace: %s:%s not handled yet: %s", entry.repository, entry.tag, exc
                    )
            return len(due)

    async def _expire(self, entry: Pending) -> None:
        if entry.state == "pending" and not await _run(self.pending.claim, entry.id, "expiring"):
            return
        rule = self.rules.cached().rule_for(entry.repository)
        outcome = None
        if rule is not None and rule.mode in ("grace", "reject"):
            outcome = await self.signatures.verified(entry.repository, entry.digest, rule)
        if outcome is None or outcome.ok:
            if await _run(self.pending.claim, entry.id, "releasing", "expiring"):
                reason = outcome.reason if outcome is not None else "no signing rule any more"
                await self._release(entry, reason)
            return
        assert rule is not None
        days = rule.deprecation_days if rule else DEFAULT_DEPRECATION_DAYS
        namespace = rule.namespace if rule else DEFAULT_NAMESPACE
        reason = f"grace period for {entry.repository}:{entry.tag} ran out unsigned"
        planned = await _run(
            lambda: self.journal.plan(
                kind="grace",
                repository=entry.repository,
                tag=entry.tag,
                digest=entry.digest,
                namespace=namespace,
                until=datetime.now(UTC) + timedelta(days=days),
                reason=reason,
                actor="safeguard-gateway",
                serve=False,
            )
        )
        await self.mover().run(planned)
        await _run(self.pending.finish, entry.id, "expired")
        detail = f"{reason}; moved to {planned.target_repository}; {outcome.reason}"
        await _run(
            self.audit.finding,
            "unsigned-push-expired",
            entry.repository,
            entry.tag,
            entry.digest,
            detail,
        )
        await self.audit.record(
            AuditEvent(
                "grace",
                "expired",
                entry.repository,
                detail[:2000],
                tag=entry.tag,
                digest=entry.digest,
                client=entry.client,
                identity=entry.identity,
                mode="grace",
            )
        )

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_seconds)
            try:
                await self.tick()
            except Exception:
                log.exception("grace: tick failed")
