"""One ASGI application for every HTTP surface of a Safeguard node.

``create_app`` opens (and migrates) the store, then routes ``/v2/`` to the built-in OCI registry
and everything else to a Starlette app (``SafeguardApp.site``) where later surfaces add their
routes. The registry is dispatched to directly, without a framework router in between, because
manifest and blob requests are the bulk of the traffic.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from safeguard import __version__
from safeguard.gateway.config import GatewaySettings
from safeguard.registry import RegistryApp, create_registry_app
from safeguard.registry.http import Receive, Scope, Send
from safeguard.store import Database, default_database_url, open_database


class SafeguardApp:
    """The node's ASGI entry point: ``/v2`` goes to the registry, the rest to ``site``."""

    def __init__(self, data_dir: Path, db: Database, registry: RegistryApp) -> None:
        self.data_dir = data_dir
        self.db = db
        self.registry = registry
        # Other surfaces claim path prefixes here (``safeguard.tlog.api.mount_tlog``), and
        # register what must run at shutdown before the database closes.
        self.mounts: list[
            tuple[Callable[[str], bool], Callable[[Scope, Receive, Send], Awaitable[None]]]
        ] = []
        self.closers: list[Callable[[], None]] = []
        # What answers ``/v2``: the registry itself, or the gateway in front of it.
        self.v2: Callable[[Scope, Receive, Send], Awaitable[None]] = registry
        # Async start-up and shutdown work of surfaces with background tasks (the gateway).
        self.startups: list[Callable[[], Awaitable[None]]] = []
        self.shutdowns: list[Callable[[], Awaitable[None]]] = []

        @asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            for start in self.startups:
                await start()
            yield
            for stop in self.shutdowns:
                await stop()
            for close in self.closers:
                close()
            db.dispose()

        self.site = Starlette(routes=[Route("/healthz", self._health)], lifespan=lifespan)

    async def _health(self, _: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "version": __version__})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith("/v2/") or path == "/v2":
                await self.v2(scope, receive, send)
                return
            for matches, handler in self.mounts:
                if matches(path):
                    await handler(scope, receive, send)
                    return
        await self.site(scope, receive, send)


def create_app(
    data_dir: Path | str,
    database_url: str | None = None,
    *,
    tlog: bool = True,
    tlog_key: str | None = None,
    gateway: GatewaySettings | None = None,
    signing: bool = True,
) -> SafeguardApp:
    """Build the node's app over ``data_dir`` (created if missing) and ``database_url``
    (default: SQLite in the data directory). Runs pending migrations first. With ``tlog`` the
    transparency log is mounted (key: ``tlog_key``, else one made in the data directory). With
    ``gateway`` settings, ``/v2`` goes through the policy gateway (``safeguard.gateway``) to the
    built-in registry or to the upstream the settings name. With ``signing`` (and the log) the
    signing service answers ``/api/v1/signatures`` (``safeguard.signing.api``), by the gateway's
    ``policy_file`` when one is set, else by the store's active policy."""
    root = Path(data_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    db = open_database(database_url or default_database_url(root))
    try:
        registry = create_registry_app(db, root)
    except BaseException:
        db.dispose()
        raise
    app = SafeguardApp(root, db, registry)
    if tlog:
        from safeguard.tlog.api import mount_tlog

        try:
            mount_tlog(app, key=tlog_key)
        except BaseException:
            db.dispose()
            raise
    if tlog and signing:
        from safeguard.signing.api import mount_signing

        try:
            mount_signing(app, policy_file=gateway.policy_file if gateway is not None else None)
        except BaseException:
            db.dispose()
            raise
    if gateway is not None:
        from safeguard.gateway.mount import mount_gateway

        try:
            mount_gateway(app, gateway)
        except BaseException:
            db.dispose()
            raise
    return app
