"""Blob uploads (distribution-spec v1.1, "Pushing blobs"): monolithic ``POST ?digest=``,
``POST`` then ``PUT``, chunked ``POST``/``PATCH``.../``PUT`` with ``Content-Range``, upload
status, cancel, and cross-repository mount.

Bytes are hashed while they stream to ``uploads/<uuid>``; each request is all-or-nothing (a
chunk that arrives short is cut off again), the running hash is kept in memory between chunks
(and rebuilt from disk if another process took the previous chunk), and a blob is published only
once its digest has been verified. A wrong digest ends the session and leaves nothing behind.
Every file operation (writes, the truncation that undoes a failed chunk, discarding a failed
upload) runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import anyio.to_thread

from safeguard.core.digest import Digest
from safeguard.core.errors import OCIError, OCIErrorCode
from safeguard.registry.blobstore import READ_CHUNK, RunningHash, is_upload_id, running_hash
from safeguard.registry.context import (
    HeaderedError,
    RegistryContext,
    UploadState,
    check_digest,
    check_name,
)
from safeguard.registry.http import Headers, Request, Responder
from safeguard.registry.metadata import UploadRecord
from safeguard.registry.ranges import parse_content_range

_run = anyio.to_thread.run_sync
ALGORITHMS = ("sha256", "sha512")


def _location(name: str, upload_id: str) -> bytes:
    return f"/v2/{name}/blobs/uploads/{upload_id}".encode()


def _range(offset: int) -> bytes:
    # "Range: 0-<end-of-range>"; distribution answers 0-0 for an empty upload, and so do we.
    return f"0-{max(offset - 1, 0)}".encode()


def _session_headers(name: str, upload_id: str, offset: int) -> Headers:
    return [
        (b"location", _location(name, upload_id)),
        (b"range", _range(offset)),
        (b"docker-upload-uuid", upload_id.encode()),
    ]


def _created(name: str, digest: Digest) -> Headers:
    return [
        (b"location", f"/v2/{name}/blobs/{digest}".encode()),
        (b"docker-content-digest", str(digest).encode()),
    ]


def _unknown_upload(upload_id: str) -> OCIError:
    return OCIError(
        OCIErrorCode.BLOB_UPLOAD_UNKNOWN,
        f"upload {upload_id[:64]} is unknown",
        status=404,
        hint="start a new upload with POST /v2/<name>/blobs/uploads/",
    )


def _digest_mismatch(expected: Digest, actual: str) -> OCIError:
    return OCIError(
        OCIErrorCode.DIGEST_INVALID,
        f"uploaded content has digest {expected.algorithm}:{actual}, not {expected}",
        status=400,
        detail={"expected": str(expected), "actual": f"{expected.algorithm}:{actual}"},
    )


def _size_invalid(message: str) -> OCIError:
    return OCIError(OCIErrorCode.SIZE_INVALID, message, status=400)


async def _append_body(
    ctx: RegistryContext, req: Request, upload_id: str, offset: int, hasher: RunningHash
) -> int:
    """Stream the request body onto the upload at ``offset``; return the new offset.

    Writes are batched to ``READ_CHUNK`` and run in a worker thread, one write in flight while
    the next batch is being received.
    """
    loop = asyncio.get_running_loop()
    try:
        appender = await _run(ctx.blobs.appender, upload_id, offset, hasher)
    except FileNotFoundError:
        raise _unknown_upload(upload_id) from None
    pending: asyncio.Future[None] | None = None
    parts: list[bytes] = []
    buffered = 0
    try:
        async for chunk in req.stream():
            parts.append(chunk)
            buffered += len(chunk)
            if buffered >= READ_CHUNK:
                data = parts[0] if len(parts) == 1 else b"".join(parts)
                parts, buffered = [], 0
                if pending is not None:
                    await pending
                pending = loop.run_in_executor(None, appender.write, data)
        if pending is not None:
            future, pending = pending, None
            await future
        if parts:
            await _run(appender.write, b"".join(parts))
        return appender.offset
    finally:
        if pending is not None:
            with contextlib.suppress(Exception):
                await pending
        await _run(appender.close)


async def _load(ctx: RegistryContext, name: str, upload_id: str) -> UploadRecord:
    if not is_upload_id(upload_id):
        raise _unknown_upload(upload_id)
    record = await _run(ctx.meta.get_upload, upload_id)
    if record is None or record.repository != name:
        raise _unknown_upload(upload_id)
    return record


async def _hasher_for(ctx: RegistryContext, upload: UploadRecord) -> RunningHash:
    state = ctx.upload_states.get(upload.uuid)
    if (
        state is not None
        and state.offset == upload.offset
        and state.algorithm == upload.digest_algorithm
    ):
        return state.hasher
    try:
        return await _run(
            ctx.blobs.hash_upload, upload.uuid, upload.digest_algorithm, upload.offset
        )
    except FileNotFoundError:
        raise _unknown_upload(upload.uuid) from None


async def _receive_chunk(
    ctx: RegistryContext, req: Request, name: str, upload: UploadRecord
) -> tuple[int, RunningHash]:
    """Append this request's body (a chunk, possibly empty) to the upload, all or nothing."""
    expected: int | None = None
    content_range = req.header(b"content-range")
    if content_range is not None:
        wanted = parse_content_range(content_range)
        if wanted.start != upload.offset:
            raise HeaderedError(
                OCIErrorCode.BLOB_UPLOAD_INVALID,
                f"chunk starts at byte {wanted.start} but the upload has {upload.offset} bytes",
                status=416,
                headers=_session_headers(name, upload.uuid, upload.offset),
                detail={"offset": upload.offset},
            )
        expected = wanted.length
        declared = req.content_length()
        if declared is not None and declared != expected:
            raise _size_invalid(
                f"Content-Range covers {expected} bytes but Content-Length is {declared}"
            )
    hasher = await _hasher_for(ctx, upload)
    saved = hasher.copy()
    try:
        offset = await _append_body(ctx, req, upload.uuid, upload.offset, hasher)
        if expected is not None and offset - upload.offset != expected:
            raise _size_invalid(
                f"Content-Range covers {expected} bytes but "
                f"{offset - upload.offset} bytes were sent"
            )
    except BaseException:
        await _run(ctx.blobs.truncate_upload, upload.uuid, upload.offset)
        ctx.remember_upload(upload.uuid, UploadState(upload.offset, upload.digest_algorithm, saved))
        raise
    ctx.remember_upload(upload.uuid, UploadState(offset, upload.digest_algorithm, hasher))
    if offset != upload.offset:
        await _run(ctx.meta.set_upload_offset, upload.uuid, offset)
    return offset, hasher


async def start_upload(ctx: RegistryContext, req: Request, out: Responder, name: str) -> None:
    mount = req.query_one("mount")
    if mount is not None:
        digest = check_digest(mount)
        source = req.query_one("from")
        if source:
            check_name(source)
            size = await _run(ctx.meta.blob_size, source, str(digest))
            if size is not None and await _run(ctx.blobs.blob_size, digest) is not None:
                await _run(ctx.meta.link_blob, name, str(digest), size)
                await req.drain()
                await out.respond(201, _created(name, digest))
                return
    else:
        digest_param = req.query_one("digest")
        if digest_param is not None:
            await _monolithic(ctx, req, out, name, check_digest(digest_param))
            return
    algorithm = req.query_one("digest-algorithm") or "sha256"
    if algorithm not in ALGORITHMS:
        raise OCIError(
            OCIErrorCode.DIGEST_INVALID,
            f"unsupported digest algorithm {algorithm[:32]!r}",
            status=400,
            hint="use sha256 or sha512",
        )
    await req.drain()
    upload_id = str(uuid.uuid4())
    await _run(ctx.blobs.start_upload, upload_id)
    try:
        await _run(ctx.meta.create_upload, upload_id, name, algorithm)
    except BaseException:
        await _run(ctx.blobs.discard_upload, upload_id)
        raise
    await out.respond(202, _session_headers(name, upload_id, 0))


async def _monolithic(
    ctx: RegistryContext, req: Request, out: Responder, name: str, digest: Digest
) -> None:
    upload_id = str(uuid.uuid4())
    await _run(ctx.blobs.start_upload, upload_id)
    try:
        hasher = running_hash(digest.algorithm)
        size = await _append_body(ctx, req, upload_id, 0, hasher)
        actual = hasher.hexdigest()
        if actual != digest.hex:
            raise _digest_mismatch(digest, actual)
        await _run(ctx.blobs.publish, upload_id, digest)
    except BaseException:
        await _run(ctx.blobs.discard_upload, upload_id)
        raise
    await _run(ctx.meta.link_blob, name, str(digest), size)
    await out.respond(201, _created(name, digest))


async def patch_upload(
    ctx: RegistryContext, req: Request, out: Responder, name: str, upload_id: str
) -> None:
    async with ctx.upload_lock(upload_id):
        upload = await _load(ctx, name, upload_id)
        offset, _ = await _receive_chunk(ctx, req, name, upload)
    await out.respond(202, _session_headers(name, upload_id, offset))


async def put_upload(
    ctx: RegistryContext, req: Request, out: Responder, name: str, upload_id: str
) -> None:
    digest_param = req.query_one("digest")
    if not digest_param:
        raise OCIError(
            OCIErrorCode.DIGEST_INVALID,
            "the digest query parameter is required to finish an upload",
            status=400,
            hint="PUT <location>?digest=sha256:<hex>",
        )
    digest = check_digest(digest_param)
    async with ctx.upload_lock(upload_id):
        upload = await _load(ctx, name, upload_id)
        size, hasher = await _receive_chunk(ctx, req, name, upload)
        if digest.algorithm != upload.digest_algorithm:
            hasher = await _run(ctx.blobs.hash_upload, upload_id, digest.algorithm, size)
        actual = hasher.hexdigest()
        if actual != digest.hex:
            await _abort(ctx, upload_id)
            raise _digest_mismatch(digest, actual)
        await _run(ctx.blobs.publish, upload_id, digest)
        await _run(ctx.meta.finish_upload, upload_id, name, str(digest), size)
        ctx.forget_upload(upload_id)
    await out.respond(201, _created(name, digest))


async def _abort(ctx: RegistryContext, upload_id: str) -> None:
    ctx.forget_upload(upload_id)
    await _run(ctx.meta.delete_upload, upload_id)
    await _run(ctx.blobs.discard_upload, upload_id)


async def upload_status(
    ctx: RegistryContext, req: Request, out: Responder, name: str, upload_id: str
) -> None:
    upload = await _load(ctx, name, upload_id)
    await out.respond(204, _session_headers(name, upload_id, upload.offset))


async def cancel_upload(
    ctx: RegistryContext, req: Request, out: Responder, name: str, upload_id: str
) -> None:
    async with ctx.upload_lock(upload_id):
        await _load(ctx, name, upload_id)
        await _abort(ctx, upload_id)
    await out.respond(204, [])
