"""One gateway: its upstream, users, store-backed services and background tasks.

``Gateway`` owns what lives as long as the node: the upstream connection pool, the pull-log
writer, the policy view, the grace and quarantine workers. ``app`` is the ASGI app for ``/v2``,
``site`` the one for ``/token`` and the admin API. Background tasks (pull-log flushing, grace
deadlines, policy and quarantine refreshes, resuming quarantine moves a crash interrupted)
start on the node's start-up — or on the first request, when the app runs without ASGI
lifespan events, as in-process tests do — and stop, after a last flush, on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette

from safeguard.core.errors import InvalidInput, NotFound, SafeguardError
from safeguard.gateway.admin import admin_routes
from safeguard.gateway.app import GatewayApp
from safeguard.gateway.audit import AuditLog
from safeguard.gateway.auth import AuthConfig
from safeguard.gateway.config import GatewaySettings, registry_hosts
from safeguard.gateway.grace import Grace, PendingTags
from safeguard.gateway.pulllog import PullLog
from safeguard.gateway.pushes import Enforcer
from safeguard.gateway.quarantine import (
    Entry,
    QuarantineJournal,
    QuarantineMover,
    QuarantineView,
    StepHook,
)
from safeguard.gateway.referrers import ReferrerIndex
from safeguard.gateway.rules import DEFAULT_NAMESPACE, PolicySource
from safeguard.gateway.signed import SignatureCheck
from safeguard.gateway.site import build_site
from safeguard.gateway.upstream import Upstream
from safeguard.registry.context import check_digest, check_tag
from safeguard.store.engine import Database
from safeguard.verify.custody_check import KeyStatusSource

log = logging.getLogger("safeguard.gateway")
_run = anyio.to_thread.run_sync


class Gateway:
    def __init__(
        self,
        db: Database,
        upstream: Upstream,
        auth: AuthConfig,
        settings: GatewaySettings,
        *,
        rules: PolicySource | None = None,
        after_step: StepHook | None = None,
        custody: KeyStatusSource | None = None,
    ) -> None:
        self.db = db
        self.upstream = upstream
        self.auth = auth
        self.settings = settings
        self.rules = rules or default_rules(db, settings)
        self.after_step = after_step
        self.pulls = PullLog(db, flush_ms=settings.pull_log_flush_ms, batch=settings.pull_log_batch)
        self.audit = AuditLog(db)
        self.signatures = SignatureCheck(upstream, custody)
        self.pending = PendingTags(db)
        self.journal = QuarantineJournal(db)
        self.view = QuarantineView(self.journal)
        self.referrers = ReferrerIndex(db, upstream)
        self.grace = Grace(
            self.pending,
            upstream,
            self.rules,
            self.signatures,
            self.audit,
            self.journal,
            self.mover,
            tick_seconds=settings.tick_seconds,
        )
        enforcer = Enforcer(
            upstream,
            self.rules,
            self.signatures,
            self.audit,
            self.pending,
            self.grace,
            self.referrers,
        )
        self.app = GatewayApp(
            upstream,
            auth,
            public_url=settings.public_url,
            pulls=self.pulls,
            starter=self.start,
            enforcer=enforcer,
            referrers=self.referrers,
            quarantine=self.view,
            blob_redirect=settings.blob_redirect_url,
        )
        self.site: Starlette = build_site(auth, admin_routes(self))
        self._tasks: list[asyncio.Task[None]] = []
        self._workers: list[Callable[[], Coroutine[Any, Any, None]]] = [
            self.pulls.run,
            self.grace.run,
            self._refresh,
            self._resume_on_start,
        ]
        self._started = False

    def mover(self) -> QuarantineMover:
        return QuarantineMover(
            self.journal,
            self.upstream,
            after_step=self.after_step,
            on_removed=self.view.add,
            forget_referrers=self.referrers.forget_subject,
        )

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        await _run(self.view.refresh)
        for worker in self._workers:
            self._tasks.append(asyncio.create_task(worker()))

    async def stop(self) -> None:
        """Stop the background work; the pull log's last records are written first."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self._started = False
        await self.pulls.flush()
        await self.upstream.aclose()

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.settings.policy_refresh_seconds)
            try:
                await _run(self.rules.current)
                await _run(self.view.refresh)
            except Exception:
                log.exception("gateway: refreshing policy or quarantine failed")

    async def _resume_on_start(self) -> None:
        try:
            await self.quarantine_resume()
        except Exception:
            log.exception("gateway: resuming quarantine moves failed; retry with resume")

    # -- quarantine ----------------------------------------------------------------------------

    async def quarantine_move(
        self,
        repository: str,
        reference: str,
        until: datetime,
        reason: str,
        actor: str,
        namespace: str | None = None,
    ) -> Entry:
        """Journal and run the move of ``repository`` ``:tag`` or ``@digest``."""
        if until <= datetime.now(UTC):
            raise InvalidInput("--until must be in the future")
        book = self.rules.cached()
        if book.in_quarantine(repository):
            raise InvalidInput(f"{repository} is already in the quarantine namespace")
        rule = book.rule_for(repository)
        namespace = namespace or (rule.namespace if rule else DEFAULT_NAMESPACE)
        client = self.upstream.client()
        tag: str | None = None
        if ":" in reference:
            digest = check_digest(reference)
        else:
            tag = check_tag(reference)
            found = await client.manifests.head(repository, tag)
            if found is None:
                raise NotFound(f"{repository}:{tag} does not exist")
            digest = found.digest
        entry = await _run(
            lambda: self.journal.plan(
                kind="move",
                repository=repository,
                tag=tag,
                digest=str(digest),
                namespace=namespace,
                until=until,
                reason=reason,
                actor=actor,
                serve=True,
            )
        )
        return await self.mover().run(entry)

    async def quarantine_resume(self) -> list[Entry]:
        unfinished = await _run(lambda: self.journal.entries(("planned", "copied", "verified")))
        done = []
        for entry in unfinished:
            done.append(await self.mover().run(entry))
        purging = await _run(lambda: self.journal.entries(("purging",)))
        for entry in purging:
            await self.mover().purge(entry)
        return done

    async def quarantine_purge(self, now: datetime | None = None) -> list[Entry]:
        due = await _run(self.journal.due_for_purge, now or datetime.now(UTC))
        purged = []
        for entry in due:
            try:
                await self.mover().purge(entry)
            except SafeguardError as exc:
                await _run(self.journal.failed, entry.id, str(exc))
                raise
            purged.append(entry)
        await _run(self.view.refresh)
        return purged


def default_rules(db: Database, settings: GatewaySettings) -> PolicySource:
    hosts = registry_hosts(settings)
    if settings.policy_file is not None:
        return PolicySource(policy_file=settings.policy_file, hosts=hosts)
    from safeguard.policy import PolicyStore

    source = PolicySource(
        store=PolicyStore(db), refresh_seconds=settings.policy_refresh_seconds, hosts=hosts
    )
    source.current()
    return source
