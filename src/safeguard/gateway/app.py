"""The gateway's ASGI application for ``/v2/``: authenticate, apply policy, relay to the registry.

Every Distribution API request (distribution-spec v1.1) is classified (``routes``), its caller
authenticated and authorised (``auth``), and relayed to the upstream registry (``upstream``) with
the body streamed through. What the gateway adds happens around the relay:

* manifest ``GET``/``HEAD``: quarantined names are served from quarantine with a ``Warning``;
  every answered pull is queued for the pull log (``pulllog``);
* manifest ``PUT``/``DELETE``: the push policy decides first (``pushpolicy``: unsigned-push
  modes, tag immutability, read-only quarantine), and what the registry accepted is recorded
  afterwards (referrers index, pending tags, audit events) — never before, so a registry that
  fails mid-push leaves nothing half-written in the gateway's tables;
* ``GET /v2/<name>/referrers/<digest>`` is answered by the gateway when the registry has no
  referrers API (``referrers``).
* blob ``GET`` with ``blob_redirect`` set (``safeguard serve --blob-redirect``, opt-in): once
  the request is allowed, and unless the repository has quarantined content (then the gateway
  may have to serve the blob from the quarantine copy, so it keeps relaying), the answer is
  ``307 Temporary Redirect`` to the same path on the upstream's public URL, which
  distribution-spec v1.1 ("Pulling blobs": "may redirect ... using a 307") allows and clients
  follow; the bytes then do not pass through the gateway. ``HEAD`` and all else are relayed.

Errors are the spec's ``{"errors": [...]}`` bodies (the registry's ``Responder``); a registry
that cannot be reached is ``503 UNAVAILABLE``; a request without valid credentials is ``401
UNAUTHORIZED`` with a ``WWW-Authenticate: Bearer`` challenge for the gateway's ``/token``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from safeguard.core import mediatypes as mt
from safeguard.core.digest import Digest
from safeguard.core.errors import OCIError, OCIErrorCode, SafeguardError, Unreachable
from safeguard.core.manifest import build_referrers_index
from safeguard.gateway.auth import AuthConfig, Principal, challenge
from safeguard.gateway.pulllog import PullLog, PullRecord
from safeguard.gateway.pushes import Enforcer, warning
from safeguard.gateway.quarantine import QuarantineView
from safeguard.gateway.referrers import ReferrerIndex
from safeguard.gateway.routes import Route, classify, required_action
from safeguard.gateway.upstream import (
    Outgoing,
    ResponseHook,
    Upstream,
    UpstreamAborted,
    UpstreamUnavailable,
    request_headers,
)
from safeguard.registry.app import _as_oci
from safeguard.registry.context import HeaderedError
from safeguard.registry.http import (
    ClientDisconnected,
    Headers,
    Message,
    Receive,
    Request,
    Responder,
    Scope,
    Send,
)

log = logging.getLogger("safeguard.gateway")

TOKEN_PATH: Final = "/token"
DIGEST_HEADER: Final = b"docker-content-digest"
RELAY_LIMIT: Final = 1024 * 1024


@dataclass(slots=True)
class Call:
    """One request in flight: what was asked, by whom, and how to answer."""

    scope: Scope
    receive: Receive
    send: Send
    req: Request
    out: Responder
    route: Route
    principal: Principal

    @property
    def client(self) -> str:
        peer = self.scope.get("client")
        return str(peer[0]) if peer else ""

    @property
    def user_agent(self) -> str:
        return (self.req.header(b"user-agent") or "")[:255]


Handler = Callable[[Call], Awaitable[None]]


class GatewayApp:
    """ASGI app for ``/v2/`` in front of ``upstream``."""

    def __init__(
        self,
        upstream: Upstream,
        auth: AuthConfig,
        *,
        public_url: str | None = None,
        pulls: PullLog | None = None,
        starter: Callable[[], Awaitable[None]] | None = None,
        enforcer: Enforcer | None = None,
        referrers: ReferrerIndex | None = None,
        quarantine: QuarantineView | None = None,
        blob_redirect: str | None = None,
    ) -> None:
        self.upstream = upstream
        self.auth = auth
        self.public_url = public_url.rstrip("/") if public_url else None
        self.pulls = pulls
        self.enforcer = enforcer
        self.referrers = referrers
        self.quarantine = quarantine
        # base URL blob GETs are redirected to (the upstream as clients reach it); None: relay
        self.blob_redirect = blob_redirect.rstrip("/") if blob_redirect else None
        self._starter = starter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if self._starter is not None:
            starter, self._starter = self._starter, None
            await starter()
        req = Request(scope, receive)
        out = Responder(send, req.method == "HEAD")
        try:
            await self._dispatch(scope, receive, send, req, out)
        except (ClientDisconnected, UpstreamAborted):
            return
        except SafeguardError as exc:
            if isinstance(exc, Unreachable):
                exc = UpstreamUnavailable(self.upstream.display, exc.message)
            error = _as_oci(exc)
            if not out.started:
                await out.error(error, headers=list(getattr(error, "response_headers", [])))
        except Exception:
            log.exception("gateway request failed: %s %s", req.method, req.path[:200])
            if not out.started:
                await out.json(
                    500, {"errors": [{"code": "UNKNOWN", "message": "internal server error"}]}
                )

    # -- authentication -------------------------------------------------------------------------

    def realm(self, scope: Scope, req: Request) -> str:
        if self.public_url:
            return self.public_url + TOKEN_PATH
        host = req.header(b"host") or "localhost"
        return f"{scope.get('scheme', 'http')}://{host}{TOKEN_PATH}"

    def _refuse(
        self, scope: Scope, req: Request, principal: Principal | None, route: Route, action: str
    ) -> OCIError:
        scope_text = None
        if route.name:
            actions = "pull" if action == "pull" else f"pull,{action}"
            scope_text = f"repository:{route.name}:{actions}"
        if principal is not None and principal.authenticated:
            return OCIError(
                OCIErrorCode.DENIED,
                f"{principal.name} may not {action} {route.name or 'here'}",
                status=403,
                hint="ask an administrator for a role that allows it",
            )
        value = challenge(
            self.realm(scope, req), scope_text, None if principal is not None else "invalid_token"
        )
        return HeaderedError(
            OCIErrorCode.UNAUTHORIZED,
            "authentication required" if principal is not None else "invalid credentials",
            status=401,
            headers=[(b"www-authenticate", value)],
        )

    # -- dispatch ----------------------------------------------------------------------------

    async def _dispatch(
        self, scope: Scope, receive: Receive, send: Send, req: Request, out: Responder
    ) -> None:
        route = classify(req.path)
        principal = self.auth.authenticate(req.header(b"authorization"))
        action = required_action(route, req.method)
        if principal is None or not principal.may(action, route.name or None):
            raise self._refuse(scope, req, principal, route, action)
        call = Call(scope, receive, send, req, out, route, principal)
        await self.handle(call)

    async def handle(self, call: Call) -> None:
        """Route ``call`` to what the gateway does around the relay."""
        route, method = call.route, call.req.method
        if route.kind == "manifest":
            if method in ("GET", "HEAD"):
                await self.pull_manifest(call)
                return
            if self.enforcer is not None and method == "PUT":
                await self.enforcer.put_manifest(call, self.relay)
                return
            if self.enforcer is not None and method == "DELETE":
                await self.enforcer.delete_manifest(call, self.relay)
                return
        if method not in ("GET", "HEAD") and route.name and self.enforcer is not None:
            self.enforcer.refuse_writes_to_quarantine(route.name)
        if (
            route.kind == "referrers"
            and method == "GET"
            and self.referrers is not None
            and await self.referrers.emulating(route.name, route.reference)
        ):
            await self.list_referrers(call, self.referrers)
            return
        if route.kind == "blob" and method in ("GET", "HEAD"):
            target = self.quarantine.target_repository(route.name) if self.quarantine else None
            if target is not None:
                if not await self.upstream.client().blobs.exists(
                    route.name, Digest.parse(route.reference)
                ):
                    await self.forward(call, path=f"/v2/{target}/blobs/{route.reference}")
                    return
            elif method == "GET" and self.blob_redirect is not None:
                await self.redirect_blob(call, self.blob_redirect)
                return
        await self.forward(call)

    async def redirect_blob(self, call: Call, base: str) -> None:
        """``307`` to the blob on the upstream (distribution-spec v1.1, "Pulling blobs")."""
        route = call.route
        location = f"{base}/v2/{route.name}/blobs/{route.reference}"
        headers: Headers = [
            (b"location", location.encode("latin-1")),
            (DIGEST_HEADER, route.reference.encode("latin-1")),
            (b"cache-control", b"no-store"),
        ]
        await call.out.respond(307, headers)

    # -- pulls -------------------------------------------------------------------------------

    async def pull_manifest(self, call: Call) -> None:
        route = call.route
        answered: list[str] = []
        path: str | None = None
        notes: list[tuple[bytes, bytes]] = []
        entry = self.quarantine.lookup(route.name, route.reference) if self.quarantine else None
        if entry is not None:
            client = self.upstream.client()
            reference: str | Digest = (
                Digest.parse(route.reference) if route.by_digest else route.reference
            )
            if await client.manifests.head(route.name, reference) is None:
                path = f"/v2/{entry.target_repository}/manifests/{route.reference}"
                notes.append(
                    warning(
                        f"{route.name}:{route.reference} is quarantined until "
                        f"{entry.until.date().isoformat()} ({entry.reason}); served from "
                        f"{entry.target_repository}"
                    )
                )
            else:
                entry = None

        def hook(status: int, headers: Headers) -> Headers:
            if status == 200:
                answered.extend(v.decode("latin-1") for k, v in headers if k == DIGEST_HEADER)
                headers.extend(notes)
            return headers

        status = await self.forward(call, path=path, hook=hook)
        if status == 200 and self.pulls is not None:
            digest = answered[0] if answered else (route.reference if route.by_digest else None)
            self.pulls.record(
                PullRecord(
                    route.name,
                    route.reference,
                    digest,
                    call.client,
                    call.principal.name,
                    call.user_agent,
                    quarantined=entry is not None,
                )
            )

    async def list_referrers(self, call: Call, index: ReferrerIndex) -> None:
        """``GET /v2/<name>/referrers/<digest>`` answered by the gateway (see ``referrers``)."""
        artifact_type = call.req.query_one("artifactType") or None
        found = await index.list(call.route.name, call.route.reference, artifact_type)
        headers: Headers = [(b"content-type", mt.OCI_INDEX.encode())]
        if artifact_type:
            headers.append((b"oci-filters-applied", b"artifactType"))
        await call.out.respond(200, headers, build_referrers_index(found))

    async def relay(
        self,
        call: Call,
        *,
        path: str | None,
        body: bytes,
        query: bytes | None,
    ) -> tuple[int, Headers, bytes]:
        """Relay ``call`` and keep the (small) answer instead of streaming it to the client."""
        status = 0
        headers: Headers = []
        parts: list[bytes] = []
        size = 0

        async def collect(message: Message) -> None:
            nonlocal status, headers, size
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > RELAY_LIMIT:
                    raise UpstreamAborted("the registry's answer is too large")
                parts.append(chunk)

        outgoing = Outgoing(
            method=call.req.method,
            path=path or call.req.path,
            query=call.scope.get("query_string", b"") if query is None else query,
            headers=request_headers(call.scope),
            body=body,
            scopes=_scopes(call.route, call.req.method),
        )
        await self.upstream.forward(outgoing, collect, None)
        return status, headers, b"".join(parts)

    async def forward(
        self,
        call: Call,
        *,
        path: str | None = None,
        body: Receive | bytes | None = None,
        hook: ResponseHook | None = None,
        method: str | None = None,
        query: bytes | None = None,
    ) -> int:
        """Relay ``call`` (to ``path`` when rewritten) and stream the answer to the client."""
        req = call.req
        method = method or req.method
        if body is None and method not in ("GET", "HEAD"):
            body = call.receive
        outgoing = Outgoing(
            method=method,
            path=path or req.path,
            query=call.scope.get("query_string", b"") if query is None else query,
            headers=request_headers(call.scope),
            body=body,
            scopes=_scopes(call.route, method),
        )

        def started(status: int, headers: Headers) -> Headers:
            call.out.started = True
            return hook(status, headers) if hook is not None else headers

        return await self.upstream.forward(outgoing, call.send, started)


def _scopes(route: Route, method: str) -> tuple[str, ...]:
    if not route.name:
        return ("registry:catalog:*",) if route.kind == "catalog" else ()
    if method in ("GET", "HEAD"):
        return (f"repository:{route.name}:pull",)
    if method == "DELETE":
        return (f"repository:{route.name}:pull,push,delete",)
    return (f"repository:{route.name}:pull,push",)
