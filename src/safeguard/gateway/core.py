"""One gateway: its upstream, users, store-backed services and background tasks.

``Gateway`` owns what lives as long as the node: the upstream connection pool, the pull-log
writer, the policy view, the grace and quarantine workers. ``app`` is the ASGI app for ``/v2``,
``site`` the one for ``/token`` and the admin API. Background tasks start on the node's start-up
(or on the first request, when the app runs without ASGI lifespan events, as in-process tests
do) and stop, after a last flush, on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from starlette.applications import Starlette

from safeguard.gateway.app import GatewayApp
from safeguard.gateway.auth import AuthConfig
from safeguard.gateway.config import GatewaySettings
from safeguard.gateway.pulllog import PullLog
from safeguard.gateway.site import build_site
from safeguard.gateway.upstream import Upstream
from safeguard.store.engine import Database

log = logging.getLogger("safeguard.gateway")


class Gateway:
    def __init__(
        self, db: Database, upstream: Upstream, auth: AuthConfig, settings: GatewaySettings
    ) -> None:
        self.db = db
        self.upstream = upstream
        self.auth = auth
        self.settings = settings
        self.pulls = PullLog(db, flush_ms=settings.pull_log_flush_ms, batch=settings.pull_log_batch)
        self.app = GatewayApp(
            upstream,
            auth,
            public_url=settings.public_url,
            pulls=self.pulls,
            starter=self.start,
        )
        self.site: Starlette = build_site(auth, [])
        self._tasks: list[asyncio.Task[None]] = []
        self._workers: list[Callable[[], Coroutine[Any, Any, None]]] = [self.pulls.run]
        self._started = False

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
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
