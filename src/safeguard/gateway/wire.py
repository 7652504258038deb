"""A minimal HTTP/1.1 client for the gateway's relay to an external registry (RFC 9112).

The relay is the gateway's hot path: every manifest GET and every blob byte goes through it.
A general-purpose client (httpx: async generators per 64 KiB chunk, a pool scanned per request)
costs more CPU than the registry it talks to, so the relay speaks HTTP/1.1 itself on a pool of
keep-alive connections, with an ``asyncio.Protocol`` that hands over whatever the socket
delivered (up to megabytes at a time) and pauses the socket when the client cannot keep up.

What it does: writes a request head and a body (bytes, or a stream sent with its declared
``Content-Length`` or else chunked); reads a response head; yields the body framed by
``Content-Length``, ``Transfer-Encoding: chunked`` (decoded; RFC 9112 section 7.1) or the end of
the connection; no body for ``HEAD``, 1xx, 204 and 304. A connection is reused only after a
complete, keep-alive response. Any socket failure before the response head is
``ConnectionFailed`` (the caller answers 503); a pooled connection the server closed meanwhile is
retried once on a fresh one when the request body can be sent again.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Final, cast

READ_PAUSE: Final = 8 * 1024 * 1024  # stop reading the socket while this much is waiting
HEAD_LIMIT: Final = 256 * 1024
_NO_BODY_STATUS: Final = frozenset({204, 304})


class ConnectionFailed(Exception):
    """No response could be had: connect, write or head read failed."""


class BodyFailed(Exception):
    """The response body broke off (connection closed or malformed framing)."""


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: collections.deque[bytes] = collections.deque()
        self.size = 0
        self.eof = False
        self.error: BaseException | None = None
        self._data = asyncio.Event()
        self._paused = False
        self._write_ready = asyncio.Event()
        self._write_ready.set()

    # -- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        self._data.set()
        if self.size > READ_PAUSE and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        self.eof = True
        self._data.set()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._data.set()
        self._write_ready.set()

    def pause_writing(self) -> None:
        self._write_ready.clear()

    def resume_writing(self) -> None:
        self._write_ready.set()

    # -- reading and writing ----------------------------------------------------------------

    async def read(self) -> bytes:
        """Everything received so far (at least one byte), or b"" at the end."""
        while not self.chunks:
            if self.eof:
                return b""
            self._data.clear()
            await self._data.wait()
        if len(self.chunks) == 1:
            data = self.chunks.popleft()
        else:
            data = b"".join(self.chunks)
            self.chunks.clear()
        self.size = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    def unread(self, data: bytes) -> None:
        if data:
            self.chunks.appendleft(data)
            self.size += len(data)

    async def write(self, data: bytes | memoryview) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("connection closed")
        self.transport.write(data)
        if not self._write_ready.is_set():
            await self._write_ready.wait()
            if self.transport.is_closing():
                raise ConnectionResetError("connection closed while writing")

    @property
    def usable(self) -> bool:
        return (
            self.transport is not None
            and not self.transport.is_closing()
            and not self.eof
            and not self.chunks
        )

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    _body: AsyncIterator[bytes] | None
    _release: Callable[[bool], None]
    _done: bool = field(default=False)

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    async def body(self) -> AsyncIterator[bytes]:
        if self._body is None:
            self._finish(True)
            return
        try:
            async for chunk in self._body:
                yield chunk
        except BaseException:
            self._finish(False)
            raise
        self._finish(True)

    async def read(self, limit: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        async for chunk in self.body():
            size += len(chunk)
            if size > limit:
                self._finish(False)
                raise BodyFailed(f"response body larger than {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    def _finish(self, reusable: bool) -> None:
        if not self._done:
            self._done = True
            self._release(reusable)

    def close(self) -> None:
        """Give up on the rest of the body (the connection is not reused)."""
        self._finish(False)


def _parse_head(head: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ConnectionFailed(f"not an HTTP/1.1 response: {lines[0][:80]!r}")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            raise ConnectionFailed(f"malformed response header {line[:80]!r}")
        headers.append((name.strip().lower(), value.strip()))
    return int(parts[1]), headers


class Pool:
    """Keep-alive connections to one ``host:port`` (TLS when ``ssl_context`` is given)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        max_connections: int = 256,
        timeout: float = 300.0,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        self.timeout = timeout
        self._idle: list[_Protocol] = []
        self._slots = asyncio.Semaphore(max_connections)

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(
                    _Protocol,
                    self.host,
                    self.port,
                    ssl=self.ssl_context,
                    server_hostname=self.server_hostname if self.ssl_context else None,
                ),
                timeout=min(self.timeout, 10.0),
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise ConnectionFailed(str(exc) or type(exc).__name__) from exc
        return protocol

    def _take_idle(self) -> _Protocol | None:
        while self._idle:
            connection = self._idle.pop()
            if connection.usable:
                return connection
            connection.close()
        return None

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes | AsyncIterator[bytes] | None,
        *,
        content_length: int | None = None,
    ) -> Response:
        """Send a request; the response's body must be consumed or closed."""
        await self._slots.acquire()
        replayable = not hasattr(body, "__anext__")
        for attempt in (0, 1):
            connection = self._take_idle()
            reused = connection is not None
            if connection is None:
                try:
                    connection = await self._connect()
                except BaseException:
                    self._slots.release()
                    raise
            try:
                return await self._exchange(
                    connection, method, target, headers, body, content_length
                )
            except ConnectionFailed:
                connection.close()
                if attempt == 0 and reused and replayable:
                    continue  # the server closed an idle connection: once more, fresh
                self._slots.release()
                raise
            except BaseException:
                connection.close()
                self._slots.release()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange(
        self,
        connection: _Protocol,
        method: str,
        target: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes | AsyncIterator[bytes] | None,
        content_length: int | None,
    ) -> Response:
        head = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1")]
        head.extend(k + b": " + v + b"\r\n" for k, v in headers)
        chunked = False
        if isinstance(body, bytes):
            if body or method not in ("GET", "HEAD", "DELETE"):
                head.append(b"content-length: %d\r\n" % len(body))
        elif body is not None:
            if content_length is not None:
                head.append(b"content-length: %d\r\n" % content_length)
            else:
                chunked = True
                head.append(b"transfer-encoding: chunked\r\n")
        head.append(b"\r\n")
        try:
            if isinstance(body, bytes) and len(body) < 65536:
                await connection.write(b"".join(head) + body)
            else:
                await connection.write(b"".join(head))
                if isinstance(body, bytes):
                    await connection.write(body)
                elif body is not None:
                    async for chunk in body:
                        if chunked:
                            await connection.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                        else:
                            await connection.write(chunk)
                    if chunked:
                        await connection.write(b"0\r\n\r\n")
            status, response_headers, rest = await asyncio.wait_for(
                self._read_head(connection), timeout=self.timeout
            )
        except (OSError, TimeoutError) as exc:
            raise ConnectionFailed(str(exc) or type(exc).__name__) from exc
        connection.unread(rest)
        return self._response(connection, method, status, response_headers)

    async def _read_head(
        self, connection: _Protocol
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        buffer = b""
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end >= 0:
                status, headers = _parse_head(buffer[:end])
                buffer = buffer[end + 4 :]
                if 100 <= status < 200:  # interim answers (100 Continue): skip
                    continue
                return status, headers, buffer
            if len(buffer) > HEAD_LIMIT:
                raise ConnectionFailed("response head too large")
            data = await connection.read()
            if not data:
                raise ConnectionFailed("the registry closed the connection without answering")
            buffer += data

    def _response(
        self,
        connection: _Protocol,
        method: str,
        status: int,
        headers: list[tuple[bytes, bytes]],
    ) -> Response:
        keep_alive = True
        length: int | None = None
        chunked = False
        for name, value in headers:
            if name == b"connection" and b"close" in value.lower():
                keep_alive = False
            elif name == b"content-length" and value.isdigit():
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True

        def release(reusable: bool) -> None:
            if reusable and keep_alive and connection.usable:
                self._idle.append(connection)
            else:
                connection.close()
            self._slots.release()

        body: AsyncIterator[bytes] | None
        if method == "HEAD" or status in _NO_BODY_STATUS:
            body = None
        elif chunked:
            body = _chunked(connection)
        elif length is not None:
            body = _sized(connection, length) if length else None
        else:
            keep_alive = False
            body = _until_eof(connection)
        return Response(status, headers, body, release)

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()


async def _sized(connection: _Protocol, length: int) -> AsyncIterator[bytes]:
    remaining = length
    while remaining > 0:
        data = await connection.read()
        if not data:
            raise BodyFailed(f"response ended {remaining} bytes short")
        if len(data) > remaining:
            connection.unread(data[remaining:])
            data = data[:remaining]
        remaining -= len(data)
        yield data


async def _until_eof(connection: _Protocol) -> AsyncIterator[bytes]:
    while True:
        data = await connection.read()
        if not data:
            return
        yield data


async def _chunked(connection: _Protocol) -> AsyncIterator[bytes]:
    buffer = b""

    async def fill() -> None:
        nonlocal buffer
        data = await connection.read()
        if not data:
            raise BodyFailed("chunked response ended early")
        buffer += data

    while True:
        while b"\r\n" not in buffer:
            await fill()
            if len(buffer) > HEAD_LIMIT and b"\r\n" not in buffer:
                raise BodyFailed("chunk size line too long")
        line, _, buffer = buffer.partition(b"\r\n")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise BodyFailed(f"bad chunk size {size_text[:20]!r}") from None
        if size == 0:
            while True:  # trailers, up to the empty line
                while b"\r\n" not in buffer:
                    await fill()
                trailer, _, buffer = buffer.partition(b"\r\n")
                if not trailer:
                    connection.unread(buffer)
                    return
        while size > 0:
            if not buffer:
                await fill()
            piece, buffer = buffer[:size], buffer[size:]
            size -= len(piece)
            yield piece
        while len(buffer) < 2:
            await fill()
        if buffer[:2] != b"\r\n":
            raise BodyFailed("chunk not followed by CRLF")
        buffer = buffer[2:]
