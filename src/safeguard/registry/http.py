"""Minimal raw-ASGI request and response helpers for the registry's hot paths.

The registry talks ASGI directly instead of through a framework's request/response objects,
because a manifest GET is the request a cluster makes most, and every allocation on it counts.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any, Final
from urllib.parse import parse_qs

from safeguard.core.errors import OCIError, OCIErrorCode

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

API_VERSION_HEADER: Final = (b"docker-distribution-api-version", b"registry/2.0")
JSON: Final = b"application/json"


class ClientDisconnected(Exception):
    """The client went away before it finished sending the request body."""


class Request:
    __slots__ = ("_headers", "_query", "method", "path", "receive", "scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self._headers: dict[bytes, list[bytes]] | None = None
        self._query: dict[str, list[str]] | None = None

    def _header_map(self) -> dict[bytes, list[bytes]]:
        if self._headers is None:
            headers: dict[bytes, list[bytes]] = {}
            for key, value in self.scope["headers"]:
                headers.setdefault(key.lower(), []).append(value)
            self._headers = headers
        return self._headers

    def header(self, name: bytes) -> str | None:
        values = self._header_map().get(name)
        return values[0].decode("latin-1") if values else None

    def header_values(self, name: bytes) -> list[str]:
        return [v.decode("latin-1") for v in self._header_map().get(name, [])]

    @property
    def query(self) -> dict[str, list[str]]:
        if self._query is None:
            raw = self.scope.get("query_string", b"").decode("latin-1")
            self._query = parse_qs(raw, keep_blank_values=True) if raw else {}
        return self._query

    def query_one(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def content_length(self) -> int | None:
        value = self.header(b"content-length")
        if value is None:
            return None
        try:
            length = int(value)
        except ValueError:
            return None
        return length if length >= 0 else None

    async def stream(self) -> AsyncIterator[bytes]:
        while True:
            message = await self.receive()
            kind = message["type"]
            if kind == "http.request":
                body = message.get("body", b"")
                if body:
                    yield body
                if not message.get("more_body", False):
                    return
            elif kind == "http.disconnect":
                raise ClientDisconnected()

    async def read(self, limit: int, too_large: Callable[[], OCIError]) -> bytes:
        parts: list[bytes] = []
        size = 0
        async for chunk in self.stream():
            size += len(chunk)
            if size > limit:
                raise too_large()
            parts.append(chunk)
        return b"".join(parts)

    async def drain(self) -> None:
        async for _ in self.stream():
            pass


class Responder:
    """Sends one response; remembers whether it started so errors are never sent twice."""

    __slots__ = ("head", "send", "started")

    def __init__(self, send: Send, head: bool) -> None:
        self.send = send
        self.head = head
        self.started = False

    async def start(self, status: int, headers: Headers) -> None:
        self.started = True
        headers.append(API_VERSION_HEADER)
        await self.send({"type": "http.response.start", "status": status, "headers": headers})

    async def respond(self, status: int, headers: Headers, body: bytes = b"") -> None:
        headers.append((b"content-length", str(len(body)).encode()))
        await self.start(status, headers)
        await self.send(
            {"type": "http.response.body", "body": b"" if self.head else body, "more_body": False}
        )

    async def json(self, status: int, doc: Any, headers: Headers | None = None) -> None:
        body = json.dumps(doc, separators=(",", ":")).encode()
        out = headers if headers is not None else []
        out.append((b"content-type", JSON))
        await self.respond(status, out, body)

    async def error(self, *errors: OCIError, headers: Headers | None = None) -> None:
        entries = [entry for e in errors for entry in e.body()["errors"]]
        await self.json(errors[0].status, {"errors": entries}, headers)


def oci_error(
    code: OCIErrorCode, message: str, status: int, detail: Any = None, hint: str | None = None
) -> OCIError:
    return OCIError(code, message, status=status, detail=detail, hint=hint)
