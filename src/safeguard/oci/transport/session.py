"""One HTTP session with one registry host: scheme, auth, error mapping, bounded reads.

Every request names the token scopes it needs (``repository:<name>:pull`` ...) so that
``Authenticator`` can answer a ``401`` challenge and the request is sent again once. Request
bodies are bytes or a factory of async byte iterators, so a body can be sent twice. Responses are
always streamed and read with a size limit, because a registry is untrusted input: a manifest or an
error body is never read without bound. Connection failures become ``Unreachable`` (exit code 3)
with a hint; answers outside ``expect`` become ``RegistryError`` with the status and OCI code.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

import httpx

from safeguard import __version__
from safeguard.core.errors import RegistryError, SafeguardError, Unreachable
from safeguard.httpbounded import aread_bounded
from safeguard.oci.errors import ERROR_BODY_LIMIT, registry_error
from safeguard.oci.transport.auth import Authenticator, Scopes
from safeguard.oci.transport.credentials import Credentials, lookup_credentials
from safeguard.oci.transport.endpoint import INSECURE_HINT, Endpoint, resolve_endpoint

Content = bytes | Callable[[], AsyncIterator[bytes]] | None

DEFAULT_LIMIT: Final = 16 * 1024 * 1024
USER_AGENT: Final = f"safeguard/{__version__}"


class _Lookup:
    """Marker: find credentials in the Docker/containers auth files."""


LOOKUP: Final = _Lookup()


@dataclass(frozen=True, slots=True)
class Reply:
    """A fully read (bounded) response."""

    status: int
    headers: httpx.Headers
    url: httpx.URL
    content: bytes


def _may_redirect(method: str, url: httpx.URL) -> bool:
    """Redirects are followed for blob GETs only, which the distribution spec lets a registry
    send elsewhere (a storage backend, or the gateway's ``--blob-redirect``); the content is
    digest-checked wherever it comes from. Any other answer must come from the registry itself:
    a redirected manifest, tag list or upload would be trusted on another host's word. httpx drops
    ``Authorization`` when a redirect leaves the origin."""
    path = url.path
    return method in ("GET", "HEAD") and "/blobs/" in path and "/blobs/uploads/" not in path


class Session:
    def __init__(
        self,
        host: str,
        *,
        credentials: Credentials | _Lookup | None = LOOKUP,
        allow_insecure: bool = False,
        scheme: str | None = None,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.host = host
        self.allow_insecure = allow_insecure
        self.endpoint: Endpoint = resolve_endpoint(
            host, allow_insecure=allow_insecure, scheme=scheme
        )
        creds = lookup_credentials(host) if isinstance(credentials, _Lookup) else credentials
        self.auth = Authenticator(host, creds, allow_insecure=allow_insecure)
        self._http = httpx.AsyncClient(
            verify=self.endpoint.verify_tls,
            follow_redirects=False,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"User-Agent": USER_AGENT},
            transport=transport,
        )
        self._settled = not self.endpoint.http_fallback
        self._downgraded = False

    async def aclose(self) -> None:
        await self._http.aclose()

    def url(self, path: str) -> httpx.URL:
        return httpx.URL(self.endpoint.base_url + path)

    def _is_ours(self, url: httpx.URL) -> bool:
        netloc = url.netloc.decode("ascii", "replace").lower()
        return netloc == self.host.lower()

    async def request(
        self,
        method: str,
        target: str | httpx.URL,
        *,
        scopes: Scopes,
        headers: Mapping[str, str] | None = None,
        content: Content = None,
        expect: Collection[int] = (200,),
        limit: int = DEFAULT_LIMIT,
        too_large: Callable[[int], SafeguardError] | None = None,
    ) -> Reply:
        """Send a request and read its answer (at most ``limit`` bytes)."""
        async with self.stream(
            method, target, scopes=scopes, headers=headers, content=content, expect=expect
        ) as response:
            body = await read_limited(response, limit, too_large)
            return Reply(response.status_code, response.headers, response.url, body)

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        target: str | httpx.URL,
        *,
        scopes: Scopes,
        headers: Mapping[str, str] | None = None,
        content: Content = None,
        expect: Collection[int] = (200,),
    ) -> AsyncIterator[httpx.Response]:
        """Send a request and yield the open response; its body is the caller's to read."""
        response = await self._send_authenticated(method, target, scopes, headers, content)
        try:
            if response.status_code not in expect:
                body = await read_limited(response, ERROR_BODY_LIMIT, None, truncate=True)
                raise registry_error(
                    response.status_code,
                    body,
                    method=method,
                    url=_display(response.url),
                    content_type=response.headers.get("content-type"),
                )
            yield response
        finally:
            await response.aclose()

    async def _send_authenticated(
        self,
        method: str,
        target: str | httpx.URL,
        scopes: Scopes,
        headers: Mapping[str, str] | None,
        content: Content,
    ) -> httpx.Response:
        url = target if isinstance(target, httpx.URL) else self.url(target)
        ours = self._is_ours(url)
        if ours:
            await self.auth.prepare(self._http, scopes)
        response = await self._send(method, url, scopes if ours else None, headers, content)
        if response.status_code == 401 and ours:
            try:
                retry = await self.auth.respond(self._http, response, scopes)
            except BaseException:
                await response.aclose()
                raise
            if retry:
                await response.aclose()
                response = await self._send(method, url, scopes, headers, content)
        return response

    async def _send(
        self,
        method: str,
        url: httpx.URL,
        scopes: Scopes | None,
        headers: Mapping[str, str] | None,
        content: Content,
    ) -> httpx.Response:
        while True:
            if self._downgraded and url.scheme == "https" and self._is_ours(url):
                url = url.copy_with(scheme="http")
            all_headers = dict(headers or {})
            if scopes is not None:
                authorization = self.auth.authorization(scopes)
                if authorization:
                    all_headers["Authorization"] = authorization
            body = content() if callable(content) else content
            request = self._http.build_request(method, url, headers=all_headers, content=body)
            try:
                response = await self._http.send(
                    request, stream=True, follow_redirects=_may_redirect(method, url)
                )
            except httpx.ConnectError as exc:
                if not self._settled and url.scheme == "https" and self._is_ours(url):
                    # --allow-insecure-registry: no TLS there, try plain HTTP as Docker does.
                    self._settled = True
                    self._downgraded = True
                    self.endpoint = self.endpoint.downgraded()
                    continue
                raise self._unreachable(url, exc) from exc
            except httpx.TransportError as exc:
                raise self._unreachable(url, exc) from exc
            self._settled = True
            return response

    def _unreachable(self, url: httpx.URL, exc: Exception) -> Unreachable:
        cause = exc.__cause__ or exc.__context__
        tls = isinstance(cause, ssl.SSLError) or "SSL" in str(exc) or "TLS" in str(exc)
        if tls:
            hint = (
                "TLS could not be set up with this registry; if it serves plain HTTP, "
                + INSECURE_HINT
            )
        elif isinstance(exc, httpx.TimeoutException):
            hint = "the registry did not answer in time; check the network or retry"
        else:
            hint = "check the registry address and port, and that the registry is running"
        reason = str(exc) or type(exc).__name__
        return Unreachable(
            f"cannot reach registry {self.host} ({_display(url)}): {reason}",
            hint=hint,
        )


async def read_limited(
    response: httpx.Response,
    limit: int,
    too_large: Callable[[int], SafeguardError] | None,
    *,
    truncate: bool = False,
) -> bytes:
    """Read a streamed body, refusing (or, with ``truncate``, cutting) more than ``limit``."""
    try:
        return await aread_bounded(
            response, limit, lambda n: _too_large(response, n, too_large), truncate=truncate
        )
    except httpx.TransportError as exc:
        raise Unreachable(
            f"connection broke while reading {_display(response.url)}: {exc}",
            hint="retry; check the network",
        ) from exc


def _too_large(
    response: httpx.Response, limit: int, factory: Callable[[int], SafeguardError] | None
) -> SafeguardError:
    if factory is not None:
        return factory(limit)
    return RegistryError(
        f"response from {_display(response.url)} is larger than {limit} bytes",
        status=response.status_code,
    )


def _display(url: httpx.URL) -> str:
    """A URL for messages: no query string, since upload locations carry opaque state."""
    return str(url.copy_with(query=None, fragment=None))
