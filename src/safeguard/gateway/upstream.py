"""The registry behind the gateway: the built-in registry in-process, or any registry over HTTP.

``Upstream.forward`` relays one Distribution API request (distribution-spec v1.1, every
endpoint) and streams its answer back: request bodies (blob ``PATCH``/``PUT``) are read from the
client while they are sent on, response bodies (blob ``GET``) are written to the client as they
arrive, so a 64 MiB layer is never held in memory. Every status and header the registry sent is
kept, except hop-by-hop headers and the registry's own ``WWW-Authenticate`` (the client talks to
the gateway's auth, not the registry's); a ``Location`` pointing at the registry's own address is
made relative, so the client's next request comes back through the gateway.

* ``InProcessUpstream`` calls the built-in ``RegistryApp`` as an ASGI app: no sockets, no copies.
* ``HttpUpstream`` speaks HTTP/1.1 on a pool of keep-alive connections (``wire``); the
  gateway's credentials for the registry (HTTP Basic or Docker's bearer-token flow,
  ``safeguard.oci.transport.auth``) are added to each request. A registry that cannot be reached
  is ``UpstreamUnavailable`` (503 ``UNAVAILABLE``) when nothing was answered to the client yet;
  one that breaks off mid-body makes the gateway close the client's connection
  (``UpstreamAborted``), so the client sees a short read, never a truncated "complete" body.

``client()`` is a ``RegistryClient`` over the same upstream, for what the gateway asks itself
(verifying signatures, copying into quarantine, keeping referrers tag indexes).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final, Protocol

import httpx

from safeguard.core.errors import OCIError, OCIErrorCode
from safeguard.gateway import wire
from safeguard.oci.blobs import BlobClient
from safeguard.oci.client import RegistryClient
from safeguard.oci.manifests import ManifestClient
from safeguard.oci.referrers import ReferrersClient
from safeguard.oci.transport.auth import Authenticator, Scopes
from safeguard.oci.transport.credentials import Credentials
from safeguard.oci.transport.session import Session
from safeguard.registry.http import ClientDisconnected, Headers, Message, Receive, Scope, Send

HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"host",
    }
)
_NOT_FORWARDED: Final = HOP_BY_HOP | {b"authorization", b"cookie", b"x-forwarded-for"}
# set by the relay itself: the framing of the body it sends, and no 100-continue round trip
_NOT_RELAYED: Final = _NOT_FORWARDED | {b"content-length", b"expect"}
_RESPONSE_DROPPED: Final = HOP_BY_HOP | {b"www-authenticate", b"set-cookie", b"date", b"server"}
INTERNAL_HOST: Final = "localhost"


class UpstreamUnavailable(OCIError):
    """The registry behind the gateway did not answer (connection refused, reset, timed out)."""

    def __init__(self, url: str, cause: str) -> None:
        super().__init__(
            OCIErrorCode.UNAVAILABLE,
            f"the upstream registry {url} is unreachable: {cause}",
            status=503,
            hint="retry later; the gateway's registry is down or restarting",
        )


class UpstreamAborted(Exception):
    """The registry went away after the response to the client had started: the connection to
    the client is closed without completing the body, so the client sees a short read."""


@dataclass(slots=True)
class Outgoing:
    """What the gateway sends on: the validated path, the raw query, the client's headers."""

    method: str
    path: str
    query: bytes
    headers: Headers
    body: Receive | bytes | None  # a stream still to read, bytes already read, or no body
    scopes: Scopes = ()


ResponseHook = Callable[[int, Headers], Headers]
"""Called with the upstream status and headers before the response starts; returns the headers
to send (the gateway adds ``Warning``, ``OCI-Subject``... here)."""


class Upstream(Protocol):
    display: str
    has_referrers_api: bool | None

    async def forward(self, out: Outgoing, send: Send, hook: ResponseHook | None) -> int:
        """Relay ``out`` and stream the answer to ``send``; returns the upstream status."""
        ...

    def client(self) -> RegistryClient: ...

    async def aclose(self) -> None: ...


def request_headers(scope: Scope) -> Headers:
    """The client's headers minus hop-by-hop ones and its credentials for the gateway."""
    return [(k, v) for k, v in scope["headers"] if k.lower() not in _NOT_FORWARDED]


def _clean_response_headers(headers: Iterable[tuple[bytes, bytes]], base: bytes | None) -> Headers:
    out: Headers = []
    for key, value in headers:
        name = key.lower()
        if name in _RESPONSE_DROPPED:
            continue
        if base is not None and name == b"location" and value.startswith(base):
            value = value[len(base) :] or b"/"
        elif base is not None and name == b"link" and b"<" + base in value:
            value = value.replace(b"<" + base, b"<")  # pagination: next page via the gateway
        out.append((name, value))
    return out


class _ClientWithSession(RegistryClient):
    """A ``RegistryClient`` over a session the gateway built (in-process ASGI transport)."""

    def __init__(self, session: Session) -> None:
        self.host = session.host
        self.session = session
        self.blobs = BlobClient(session)
        self.manifests = ManifestClient(session)
        self.referrers = ReferrersClient(session, self.manifests)


ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class InProcessUpstream:
    """The built-in registry, called directly as an ASGI application."""

    has_referrers_api: bool | None = True

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.display = "the built-in registry"
        self._client: RegistryClient | None = None

    async def forward(self, out: Outgoing, send: Send, hook: ResponseHook | None) -> int:
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": out.method,
            "scheme": "http",
            "path": out.path,
            "raw_path": out.path.encode(),
            "query_string": out.query,
            "headers": out.headers,
            "client": None,
            "server": None,
        }
        status = 0

        async def relay(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if hook is not None:
                    message = dict(message)
                    message["headers"] = hook(status, list(message.get("headers", [])))
            await send(message)

        body = out.body
        receive = replay(body if isinstance(body, bytes) else b"") if not callable(body) else body
        await self.app(scope, receive, relay)
        return status

    def client(self) -> RegistryClient:
        if self._client is None:
            session = Session(
                INTERNAL_HOST,
                credentials=None,
                scheme="http",
                transport=httpx.ASGITransport(app=self.app),
            )
            self._client = _ClientWithSession(session)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def replay(data: bytes) -> Receive:
    """A ``receive`` that hands over ``data`` as the whole request body."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": data, "more_body": False}

    return receive


async def _body_iter(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        body = message.get("body", b"")
        if body:
            yield body
        if not message.get("more_body", False):
            return


class HttpUpstream:
    """A registry reached over HTTP(S), through one pool of keep-alive connections
    (``safeguard.gateway.wire``; httpx is only used to fetch upstream tokens)."""

    def __init__(
        self,
        url: str,
        *,
        credentials: Credentials | None = None,
        allow_insecure: bool = False,
        timeout: float = 300.0,
        max_connections: int = 256,
    ) -> None:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"upstream URL {url!r} must be http(s)://HOST[:PORT]")
        self.base = f"{parsed.scheme}://{parsed.netloc.decode('ascii')}"
        self.host = parsed.netloc.decode("ascii")
        self.scheme = parsed.scheme
        self.display = self.base
        self.has_referrers_api: bool | None = None
        self.credentials = credentials
        self.allow_insecure = allow_insecure
        self.auth = Authenticator(self.host, credentials, allow_insecure=allow_insecure)
        self._base_bytes = self.base.encode()
        self._host_header = self.host.encode("ascii")
        context = None
        if parsed.scheme == "https":
            context = ssl.create_default_context()
            if allow_insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        self.pool = wire.Pool(
            parsed.host,
            parsed.port or (443 if parsed.scheme == "https" else 80),
            ssl_context=context,
            server_hostname=parsed.host,
            max_connections=max_connections,
            timeout=timeout,
        )
        self._http = httpx.AsyncClient(verify=not allow_insecure, timeout=timeout)
        self._client: RegistryClient | None = None

    async def forward(self, out: Outgoing, send: Send, hook: ResponseHook | None) -> int:
        target = out.path + ("?" + out.query.decode("latin-1") if out.query else "")
        response = await self._send(out, target)
        if response.status == 401 and self.credentials is not None and not callable(out.body):
            await response.read(64 * 1024)
            retry = False
            with contextlib.suppress(Exception):
                challenge = httpx.Response(
                    401,
                    headers=[
                        (k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers
                    ],
                )
                retry = await self.auth.respond(self._http, challenge, out.scopes)
            if retry:
                response = await self._send(out, target)
        try:
            status = response.status
            cleaned = _clean_response_headers(response.headers, self._base_bytes)
            if hook is not None:
                cleaned = hook(status, cleaned)
            await send({"type": "http.response.start", "status": status, "headers": cleaned})
            try:
                async for chunk in response.body():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except wire.BodyFailed as exc:
                raise UpstreamAborted(str(exc)) from exc
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return status
        finally:
            response.close()

    async def _send(self, out: Outgoing, target: str) -> wire.Response:
        headers: Headers = [(b"host", self._host_header)]
        content_length: int | None = None
        for key, value in out.headers:
            name = key.lower()
            if name in _NOT_RELAYED:
                if name == b"content-length" and value.isdigit():
                    content_length = int(value)
                continue
            headers.append((name, value))
        if self.credentials is not None:
            try:
                await self.auth.prepare(self._http, out.scopes)
            except Exception as exc:  # the token service is part of the upstream
                raise UpstreamUnavailable(self.display, f"token service: {exc}") from exc
            authorization = self.auth.authorization(out.scopes)
            if authorization:
                headers.append((b"authorization", authorization.encode("latin-1")))
        body: bytes | AsyncIterator[bytes] | None
        if callable(out.body):
            body = _body_iter(out.body)
        else:
            body = out.body if out.body or out.method not in ("GET", "HEAD", "DELETE") else None
        try:
            return await self.pool.request(
                out.method, target, headers, body, content_length=content_length
            )
        except wire.ConnectionFailed as exc:
            raise UpstreamUnavailable(self.display, str(exc)[:200]) from exc

    def client(self) -> RegistryClient:
        if self._client is None:
            self._client = RegistryClient(
                self.host,
                credentials=self.credentials,
                allow_insecure=self.allow_insecure,
                scheme=self.scheme,
            )
        return self._client

    async def aclose(self) -> None:
        self.pool.close()
        await self._http.aclose()
        if self._client is not None:
            await self._client.aclose()
