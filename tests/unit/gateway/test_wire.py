"""The relay's HTTP/1.1 client against crafted peers: framing (Content-Length, chunked, until
close, none for HEAD/204), keep-alive reuse, a stale pooled connection retried once, and hostile
or broken answers as typed errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from safeguard.gateway import wire

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
        if line.lower().startswith(b"transfer-encoding: chunked"):
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
    return head


async def _serve(script: Script) -> tuple[asyncio.Server, int, list[int]]:
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await script(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, port, connections


async def _body(response: wire.Response) -> bytes:
    return b"".join([chunk async for chunk in response.body()])


async def test_content_length_and_keep_alive_reuse() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await _read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello")
            await writer.drain()

    server, port, connections = await _serve(script)
    pool = wire.Pool("127.0.0.1", port)
    for _ in range(3):
        response = await pool.request("GET", "/x", [(b"host", b"h")], None)
        assert response.status == 200 and response.header(b"x-a") == b"b"
        assert await _body(response) == b"hello"
    assert len(connections) == 1
    pool.close()
    server.close()


async def test_chunked_until_close_head_and_204() -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",  # HEAD: no body follows
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\nuntil the end",
    ]

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while answers:
            await _read_request(reader)
            answer = answers.pop(0)
            writer.write(answer)
            await writer.drain()
            if answer.startswith(b"HTTP/1.0"):
                return

    server, port, _ = await _serve(script)
    pool = wire.Pool("127.0.0.1", port)
    assert await _body(await pool.request("GET", "/", [], None)) == b"abcde"
    head = await pool.request("HEAD", "/", [], None)
    assert head.header(b"content-length") == b"99" and await _body(head) == b""
    no_content = await pool.request("DELETE", "/", [], None)
    assert no_content.status == 204 and await _body(no_content) == b""
    assert await _body(await pool.request("GET", "/", [], None)) == b"until the end"
    pool.close()
    server.close()


async def test_streamed_request_bodies() -> None:
    seen: list[bytes] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            seen.append(await _read_request(reader))
            writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()

    async def parts() -> AsyncIterator[bytes]:
        for piece in (b"ab", b"cd"):
            yield piece

    server, port, _ = await _serve(script)
    pool = wire.Pool("127.0.0.1", port)
    response = await pool.request("PATCH", "/u", [], parts(), content_length=4)
    assert response.status == 202 and await _body(response) == b""
    response = await pool.request("PATCH", "/u", [], parts())
    assert response.status == 202 and await _body(response) == b""
    assert b"content-length: 4" in seen[0]
    assert b"transfer-encoding: chunked" in seen[1]
    pool.close()
    server.close()


async def test_a_stale_pooled_connection_is_retried_once() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        # then the server closes the idle keep-alive connection

    server, port, connections = await _serve(script)
    pool = wire.Pool("127.0.0.1", port)
    assert await _body(await pool.request("GET", "/", [], None)) == b"ok"
    await asyncio.sleep(0.05)
    assert await _body(await pool.request("GET", "/", [], None)) == b"ok"
    assert len(connections) == 2
    pool.close()
    server.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"",  # closed without answering
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    ],
)
async def test_no_usable_answer_is_connection_failed(answer: bytes) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(answer)
        await writer.drain()

    server, port, _ = await _serve(script)
    pool = wire.Pool("127.0.0.1", port)
    with pytest.raises(wire.ConnectionFailed):
        await pool.request("GET", "/", [], None)
    pool.close()
    server.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX",
    ],
)
async def test_broken_bodies_are_body_failed(answer: bytes) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(answer)
        await writer.drain()

    server, port, _ = await _serve(script)
    pool = wire.Pool("127.0.0.1", port)
    response = await pool.request("GET", "/", [], None)
    with pytest.raises(wire.BodyFailed):
        await _body(response)
    pool.close()
    server.close()


async def test_nothing_listening_is_connection_failed() -> None:
    from tests.fixtures.ports import free_port

    pool = wire.Pool("127.0.0.1", free_port())
    with pytest.raises(wire.ConnectionFailed):
        await pool.request("GET", "/", [], None)


def test_registry_urls_in_answers_point_back_at_the_gateway() -> None:
    from safeguard.gateway.upstream import _clean_response_headers

    base = b"http://registry:5000"
    cleaned = _clean_response_headers(
        [
            (b"Location", base + b"/v2/a/blobs/uploads/u?_state=x"),
            (b"Link", b"<" + base + b'/v2/a/tags/list?n=1&last=b>; rel="next"'),
            (b"WWW-Authenticate", b'Bearer realm="http://auth/token"'),
            (b"Transfer-Encoding", b"chunked"),
            (b"Docker-Content-Digest", b"sha256:x"),
            (b"location2", base),
        ],
        base,
    )
    assert cleaned == [
        (b"location", b"/v2/a/blobs/uploads/u?_state=x"),
        (b"link", b'</v2/a/tags/list?n=1&last=b>; rel="next"'),
        (b"docker-content-digest", b"sha256:x"),
        (b"location2", base),
    ]
