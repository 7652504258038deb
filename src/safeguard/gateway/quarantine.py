"""Quarantine: moving an artifact out of its repository without ever losing it, serving it under
its old name until a deadline, and purging it after.

A move copies ``REPO@DIGEST`` (with its index children, OCI referrers and cosign ``.sig``/
``.att``/``.sbom`` tags, through ``safeguard.oci.copy``) to ``<namespace>/REPO`` in the same
registry (blobs are mounted, not re-uploaded), checks the copy by digest, and only then deletes
the original. Every step is journaled in ``gateway_quarantine`` before the next begins::

    planned -> copied -> verified -> removed (done)        purge: done -> purging -> purged

Each step is idempotent (copying skips what is there, deleting accepts "already gone"), so
``resume`` simply runs a journal entry again from the state it reached: a crash at any point
leaves the artifact in the source, in quarantine, or in both — never in neither, because the
source is deleted only in a state (``verified``) that says the copy was checked. ``purge``
deletes quarantined artifacts whose deadline has passed, first marking them ``purging``.

The registry is reached through the upstream's client, not through the gateway's routes: the
quarantine namespace is read-only for everyone else. Moves made for grace-mode pushes that
were never signed (``kind = grace``) are not served under the old name; admin moves are, until
their deadline, with a ``Warning: 299`` header (``QuarantineView``).

Fault injection for tests: ``SAFEGUARD_QUARANTINE_CRASH_AFTER=<state>`` makes the process exit
(``os._exit``) right after journaling that state, as a crash would.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, cast

import anyio.to_thread
import sqlalchemy as sa

from safeguard.core.digest import Digest
from safeguard.core.errors import NotFound, RegistryError, SafeguardError
from safeguard.core.reference import Reference, validate_repository
from safeguard.gateway.upstream import INTERNAL_HOST, Upstream
from safeguard.oci.copy import copy_artifact
from safeguard.oci.location import Location
from safeguard.oci.referrers import referrers_tag
from safeguard.oci.stores import RegistryStore
from safeguard.store.engine import Database
from safeguard.store.gateway_models import GatewayQuarantine

log = logging.getLogger("safeguard.gateway.quarantine")
_run = anyio.to_thread.run_sync
_T = cast(sa.Table, GatewayQuarantine.__table__)

MOVE_STATES: Final = ("planned", "copied", "verified", "removed")
PURGE_STATES: Final = ("purging", "purged")
CRASH_ENV: Final = "SAFEGUARD_QUARANTINE_CRASH_AFTER"

StepHook = Callable[[int, str], None]


def _crash_from_env(entry_id: int, state: str) -> None:
    if os.environ.get(CRASH_ENV) == state:
        log.error("quarantine: simulated crash after %s (entry %d)", state, entry_id)
        os._exit(70)


@dataclass(frozen=True, slots=True)
class Entry:
    id: int
    kind: str
    source_repository: str
    source_tag: str | None
    digest: str
    target_repository: str
    until: datetime
    reason: str
    actor: str
    state: str
    serve: bool
    referrers: tuple[str, ...]
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "source": f"{self.source_repository}@{self.digest}",
            "sourceTag": self.source_tag,
            "target": f"{self.target_repository}@{self.digest}",
            "until": self.until.isoformat(),
            "reason": self.reason,
            "actor": self.actor,
            "state": self.state,
            "served": self.serve,
            "referrers": list(self.referrers),
            "error": self.error,
        }


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _entry(row: Any) -> Entry:
    return Entry(
        row.id,
        row.kind,
        row.source_repository,
        row.source_tag,
        row.digest,
        row.target_repository,
        _aware(row.until),
        row.reason,
        row.actor,
        row.state,
        bool(row.serve),
        tuple(row.referrers or ()),
        row.error,
    )


def target_for(namespace: str, repository: str) -> str:
    return validate_repository(f"{namespace}/{repository}")


class QuarantineJournal:
    """The ``gateway_quarantine`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def plan(
        self,
        *,
        kind: str,
        repository: str,
        tag: str | None,
        digest: str,
        namespace: str,
        until: datetime,
        reason: str,
        actor: str,
        serve: bool,
    ) -> Entry:
        """A new journal entry, or the unfinished one already moving this digest."""
        target = target_for(namespace, repository)
        now = datetime.now(UTC)
        with self.db.write() as conn:
            existing = conn.execute(
                sa.select(_T).where(
                    _T.c.source_repository == repository,
                    _T.c.digest == digest,
                    _T.c.state.in_(MOVE_STATES[:-1]),
                )
            ).first()
            if existing is not None:
                return _entry(existing)
            new_id = conn.execute(
                sa.insert(_T)
                .values(
                    kind=kind,
                    source_repository=repository,
                    source_tag=tag,
                    digest=digest,
                    target_repository=target,
                    until=until,
                    reason=reason,
                    actor=actor,
                    state="planned",
                    serve=serve,
                    referrers=None,
                    error=None,
                    created_at=now,
                    updated_at=now,
                )
                .returning(_T.c.id)
            ).scalar_one()
            row = conn.execute(sa.select(_T).where(_T.c.id == new_id)).one()
        return _entry(row)

    def advance(self, entry_id: int, state: str, *, referrers: list[str] | None = None) -> None:
        values: dict[str, Any] = {"state": state, "updated_at": datetime.now(UTC), "error": None}
        if referrers is not None:
            values["referrers"] = referrers
        with self.db.write() as conn:
            conn.execute(sa.update(_T).where(_T.c.id == entry_id).values(values))

    def failed(self, entry_id: int, error: str) -> None:
        with self.db.write() as conn:
            conn.execute(
                sa.update(_T)
                .where(_T.c.id == entry_id)
                .values(error=error[:2000], updated_at=datetime.now(UTC))
            )

    def get(self, entry_id: int) -> Entry | None:
        with self.db.read() as conn:
            row = conn.execute(sa.select(_T).where(_T.c.id == entry_id)).first()
        return _entry(row) if row is not None else None

    def entries(self, states: tuple[str, ...] | None = None) -> list[Entry]:
        query = sa.select(_T).order_by(_T.c.id)
        if states is not None:
            query = query.where(_T.c.state.in_(states))
        with self.db.read() as conn:
            return [_entry(r) for r in conn.execute(query)]

    def serving(self, now: datetime) -> list[Entry]:
        query = sa.select(_T).where(_T.c.state == "removed", _T.c.serve.is_(True), _T.c.until > now)
        with self.db.read() as conn:
            return [_entry(r) for r in conn.execute(query)]

    def due_for_purge(self, now: datetime) -> list[Entry]:
        query = (
            sa.select(_T)
            .where(
                sa.or_(
                    sa.and_(_T.c.state == "removed", _T.c.until <= now),
                    _T.c.state == "purging",
                )
            )
            .order_by(_T.c.id)
        )
        with self.db.read() as conn:
            return [_entry(r) for r in conn.execute(query)]


class QuarantineMover:
    """Runs journal entries step by step against the registry (see module docstring)."""

    def __init__(
        self,
        journal: QuarantineJournal,
        upstream: Upstream,
        *,
        after_step: StepHook | None = None,
        on_removed: Callable[[Entry], None] | None = None,
        forget_referrers: Callable[[str, str], Awaitable[None]] | None = None,
    ) -> None:
        self.journal = journal
        self.upstream = upstream
        self.after_step = after_step or _crash_from_env
        self.on_removed = on_removed
        self.forget_referrers = forget_referrers

    def _store(self, repository: str, digest: str, tag: str | None = None) -> RegistryStore:
        client = self.upstream.client()
        ref = Reference(client.host or INTERNAL_HOST, repository, tag, Digest.parse(digest))
        if tag is not None:
            ref = Reference(client.host or INTERNAL_HOST, repository, tag, None)
        return RegistryStore(client, Location(reference=ref))

    async def _step(self, entry: Entry, state: str, **extra: Any) -> None:
        await _run(lambda: self.journal.advance(entry.id, state, **extra))
        self.after_step(entry.id, state)

    async def run(self, entry: Entry) -> Entry:
        """Take ``entry`` from the state it is in to ``removed``; raises on failure (the journal
        keeps the state reached, and the error)."""
        try:
            state = entry.state
            if state == "planned":
                await self._copy(entry)
                state = "copied"
            if state == "copied":
                await self._verify(entry)
                state = "verified"
            if state == "verified":
                await self._remove(entry)
        except SafeguardError as exc:
            await _run(self.journal.failed, entry.id, str(exc))
            raise
        done = await _run(self.journal.get, entry.id)
        assert done is not None
        if self.on_removed is not None:
            self.on_removed(done)
        return done

    async def _copy(self, entry: Entry) -> None:
        client = self.upstream.client()
        if await client.manifests.head(entry.source_repository, Digest.parse(entry.digest)) is None:
            if await client.manifests.head(entry.target_repository, Digest.parse(entry.digest)):
                await self._step(entry, "copied", referrers=list(entry.referrers))
                return  # a crash after removing the source but before journaling it
            raise NotFound(f"{entry.source_repository}@{entry.digest} does not exist")
        source = self._store(entry.source_repository, entry.digest)
        target = self._store(entry.target_repository, entry.digest, entry.source_tag)
        report = await copy_artifact(source, target, referrers=True)
        await self._step(entry, "copied", referrers=[str(d) for d in report.referrers])

    async def _verify(self, entry: Entry) -> None:
        client = self.upstream.client()
        for digest in (entry.digest, *await _run(self._referrers, entry)):
            found = await client.manifests.head(entry.target_repository, Digest.parse(digest))
            if found is None or str(found.digest) != digest:
                raise NotFound(
                    f"the quarantine copy {entry.target_repository}@{digest} is missing",
                    hint="resume the move: the copy is made again",
                )
        # the copy is whole: fetch it once more by digest (the client checks the bytes)
        await client.manifests.get(entry.target_repository, Digest.parse(entry.digest))
        await self._step(entry, "verified")

    def _referrers(self, entry: Entry) -> tuple[str, ...]:
        current = self.journal.get(entry.id)
        return current.referrers if current is not None else entry.referrers

    async def _remove(self, entry: Entry) -> None:
        client = self.upstream.client()
        repository = entry.source_repository
        for digest in reversed(await _run(self._referrers, entry)):
            await _delete(client, repository, digest)
        index = await client.manifests.head(repository, referrers_tag(Digest.parse(entry.digest)))
        if index is not None:
            await _delete(client, repository, str(index.digest))
        await _delete(client, repository, entry.digest)
        if self.forget_referrers is not None:
            await self.forget_referrers(repository, entry.digest)
        await self._step(entry, "removed")

    async def purge(self, entry: Entry) -> None:
        client = self.upstream.client()
        if entry.state != "purging":
            await self._step(entry, "purging")
        for digest in reversed(entry.referrers):
            await _delete(client, entry.target_repository, digest)
        index = await client.manifests.head(
            entry.target_repository, referrers_tag(Digest.parse(entry.digest))
        )
        if index is not None:
            await _delete(client, entry.target_repository, str(index.digest))
        await _delete(client, entry.target_repository, entry.digest)
        await self._step(entry, "purged")


async def _delete(client: Any, repository: str, digest: str) -> None:
    try:
        await client.manifests.delete(repository, Digest.parse(digest))
    except (NotFound, RegistryError) as exc:
        if getattr(exc, "status", 404) != 404:
            raise


class QuarantineView:
    """What the gateway serves from quarantine under old names, refreshed from the journal."""

    def __init__(self, journal: QuarantineJournal, refresh_seconds: float = 5.0) -> None:
        self.journal = journal
        self.refresh_seconds = refresh_seconds
        self._by_name: dict[tuple[str, str], Entry] = {}
        self._repositories: dict[str, str] = {}
        self._loaded = 0.0

    def refresh(self) -> None:
        entries = self.journal.serving(datetime.now(UTC))
        by_name: dict[tuple[str, str], Entry] = {}
        repositories: dict[str, str] = {}
        for entry in entries:
            by_name[(entry.source_repository, entry.digest)] = entry
            if entry.source_tag:
                by_name[(entry.source_repository, entry.source_tag)] = entry
            repositories[entry.source_repository] = entry.target_repository
        self._by_name, self._repositories = by_name, repositories
        self._loaded = time.monotonic()

    @property
    def stale(self) -> bool:
        return time.monotonic() - self._loaded > self.refresh_seconds

    def add(self, entry: Entry) -> None:
        if entry.serve and entry.state == "removed":
            self._by_name[(entry.source_repository, entry.digest)] = entry
            if entry.source_tag:
                self._by_name[(entry.source_repository, entry.source_tag)] = entry
            self._repositories[entry.source_repository] = entry.target_repository

    def lookup(self, repository: str, reference: str) -> Entry | None:
        if not self._by_name:
            return None
        entry = self._by_name.get((repository, reference))
        if entry is None or entry.until <= datetime.now(UTC):
            return None
        return entry

    def target_repository(self, repository: str) -> str | None:
        return self._repositories.get(repository) if self._repositories else None
