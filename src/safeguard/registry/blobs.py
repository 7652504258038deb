"""Blob pull, existence check and delete (distribution-spec v1.1: "Pulling blobs", "Checking if
content exists in the registry", "Deleting Blobs"), with one ``Range`` per request (RFC 9110).

A blob is visible in a repository only through that repository's link; the bytes are streamed
from the content-addressed store in 1 MiB reads done in a worker thread, the next read running
while the previous chunk is being sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import anyio.to_thread

from safeguard.core.errors import OCIError, OCIErrorCode
from safeguard.registry.blobstore import READ_CHUNK
from safeguard.registry.context import RegistryContext, check_digest
from safeguard.registry.http import Headers, Request, Responder
from safeguard.registry.ranges import RangeNotSatisfiable, parse_range

_run = anyio.to_thread.run_sync
OCTET_STREAM = b"application/octet-stream"


def _unknown(name: str, digest: str) -> OCIError:
    return OCIError(
        OCIErrorCode.BLOB_UNKNOWN, f"blob {digest} is not in repository {name}", status=404
    )


async def get_blob(
    ctx: RegistryContext, req: Request, out: Responder, name: str, digest_text: str
) -> None:
    digest = check_digest(digest_text)
    size = await _run(ctx.meta.blob_size, name, str(digest))
    if size is None:
        raise _unknown(name, str(digest))
    headers: Headers = [
        (b"content-type", OCTET_STREAM),
        (b"docker-content-digest", str(digest).encode()),
        (b"accept-ranges", b"bytes"),
        (b"etag", f'"{digest}"'.encode()),
    ]
    if out.head:
        if await _run(ctx.blobs.blob_size, digest) is None:
            raise _unknown(name, str(digest))
        headers.append((b"content-length", str(size).encode()))
        await out.start(200, headers)
        await out.send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    try:
        wanted = parse_range(req.header(b"range"), size)
    except RangeNotSatisfiable as exc:
        await out.error(exc, headers=[(b"content-range", f"bytes */{exc.size}".encode())])
        return
    handle = await _run(ctx.blobs.open_blob, digest)
    if handle is None:
        raise _unknown(name, str(digest))
    try:
        start, length, status = 0, size, 200
        if wanted is not None:
            start, length, status = wanted.start, wanted.length, 206
            headers.append((b"content-range", wanted.content_range(size).encode()))
            handle.seek(start)
        headers.append((b"content-length", str(length).encode()))
        await out.start(status, headers)
        await _stream(out, handle.read, length)
    finally:
        await _run(handle.close)


async def _stream(out: Responder, read: Callable[[int], bytes], length: int) -> None:
    loop = asyncio.get_running_loop()
    remaining = length
    if remaining == 0:
        await out.send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    pending: asyncio.Future[bytes] | None = loop.run_in_executor(
        None, read, min(READ_CHUNK, remaining)
    )
    try:
        while pending is not None:
            data = await pending
            pending = None
            if not data:
                raise OSError("blob file ended early")
            remaining -= len(data)
            if remaining > 0:
                pending = loop.run_in_executor(None, read, min(READ_CHUNK, remaining))
            await out.send({"type": "http.response.body", "body": data, "more_body": remaining > 0})
    finally:
        if pending is not None:
            with contextlib.suppress(Exception):
                await pending


async def delete_blob(
    ctx: RegistryContext, req: Request, out: Responder, name: str, digest_text: str
) -> None:
    digest = check_digest(digest_text)
    if not await _run(ctx.meta.unlink_blob, name, str(digest)):
        raise _unknown(name, str(digest))
    await out.respond(202, [])
