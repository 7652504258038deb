"""Blobs on a registry: existence, streamed and verified download, uploads, cross-repo mounts.

Follows the distribution spec v1.1: "Checking if content exists in the registry" (``HEAD``),
"Pulling blobs" (``GET``, verified against the digest), "Pushing a blob monolithically" (``POST``
then ``PUT <location>?digest=``), "Pushing a blob in chunks" (``POST``, ``PATCH`` with
``Content-Range``, closing ``PUT``), "Mounting a blob from another repository" (``POST
?mount=&from=``; a ``202`` means no mount) and "Cancel a blob upload". An upload ``Location`` may be
relative or absolute and may carry query parameters of its own, so ``digest`` is appended to it
rather than passed as ``params=`` (which would replace them).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import anyio.to_thread
import httpx

from safeguard.core.digest import Digest
from safeguard.core.errors import NotFound, RegistryError, SafeguardError, Unreachable
from safeguard.oci.atomic import AtomicFile
from safeguard.oci.errors import DigestMismatch
from safeguard.oci.transport.auth import repository_scope
from safeguard.oci.transport.session import Content, Session
from safeguard.oci.transport.urls import append_query
from safeguard.oci.verify import verified

CHUNK_SIZE: Final = 8 * 1024 * 1024
MONOLITHIC_LIMIT: Final = 64 * 1024 * 1024
READ_SIZE: Final = 1024 * 1024
OCTET: Final = "application/octet-stream"

BlobData = bytes | Path
_in_thread = anyio.to_thread.run_sync
ByteCallback = Callable[[int], None]


def _pull(repo: str) -> tuple[str, ...]:
    return (repository_scope(repo, "pull"),)


def _push(repo: str) -> tuple[str, ...]:
    return (repository_scope(repo, "pull", "push"),)


class BlobClient:
    def __init__(self, session: Session) -> None:
        self.session = session

    async def head(self, repo: str, digest: Digest) -> int | None:
        """The blob's size when the repository has it, else ``None``."""
        reply = await self.session.request(
            "HEAD", f"/v2/{repo}/blobs/{digest}", scopes=_pull(repo), expect=(200, 404)
        )
        if reply.status == 404:
            return None
        length = reply.headers.get("content-length", "")
        return int(length) if length.isdigit() else -1

    async def exists(self, repo: str, digest: Digest) -> bool:
        return await self.head(repo, digest) is not None

    @asynccontextmanager
    async def open(
        self, repo: str, digest: Digest, size: int | None = None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Stream a blob; iterating to the end raises ``DigestMismatch`` if it was altered."""
        async with self.session.stream(
            "GET", f"/v2/{repo}/blobs/{digest}", scopes=_pull(repo), expect=(200, 404)
        ) as response:
            if response.status_code == 404:
                raise NotFound(
                    f"blob {digest} not found in {self.session.host}/{repo}",
                    hint="the registry lost content a manifest refers to, or the name is wrong",
                )
            yield verified(
                _chunks(response), digest, size, f"blob {digest} from {self.session.host}/{repo}"
            )

    async def get(self, repo: str, digest: Digest, size: int | None = None) -> bytes:
        buf = bytearray()
        async with self.open(repo, digest, size) as chunks:
            async for chunk in chunks:
                buf += chunk
        return bytes(buf)

    async def download(
        self,
        repo: str,
        digest: Digest,
        dest: Path,
        size: int | None = None,
        on_bytes: ByteCallback | None = None,
    ) -> int:
        """Write a blob to ``dest`` through a temporary file renamed into place once verified.

        Every file operation (creating, writing, fsyncing, renaming or removing the temporary
        file) runs in a worker thread, so a slow disk never stalls the event loop.
        """
        out = await _in_thread(AtomicFile, dest)
        try:
            async with self.open(repo, digest, size) as chunks:
                async for chunk in chunks:
                    await _in_thread(out.write, chunk)
                    if on_bytes:
                        on_bytes(len(chunk))
            await _in_thread(out.commit)
        except BaseException:
            await _in_thread(out.abort)
            raise
        return out.size

    async def mount(self, repo: str, digest: Digest, from_repo: str) -> bool:
        """Ask the registry to link ``digest`` from ``from_repo``; False when it did not."""
        path = append_query(
            self.session.url(f"/v2/{repo}/blobs/uploads/"),
            [("mount", str(digest)), ("from", from_repo)],
        )
        reply = await self.session.request(
            "POST",
            path,
            scopes=(*_push(repo), repository_scope(from_repo, "pull")),
            headers={"Content-Length": "0"},
            content=b"",
            expect=(201, 202),
        )
        if reply.status == 201:
            return True
        location = reply.headers.get("location")
        if location:
            await self._cancel(repo, reply.url.join(location))
        return False

    async def upload(
        self,
        repo: str,
        digest: Digest,
        data: BlobData,
        *,
        chunked: bool | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        """Upload ``data`` (bytes, or a file) as blob ``digest``.

        Chunked when asked, or by default when larger than ``MONOLITHIC_LIMIT``; the registry's
        ``OCI-Chunk-Min-Length`` raises the chunk size when it asks for more.
        """
        size = len(data) if isinstance(data, bytes) else data.stat().st_size
        if chunked is None:
            chunked = size > MONOLITHIC_LIMIT
        location = await self._start(repo)
        try:
            if chunked:
                minimum = location[1]
                location_url = await self._patch_chunks(
                    repo, location[0], data, size, max(chunk_size, minimum, 1)
                )
                reply = await self.session.request(
                    "PUT",
                    append_query(location_url, [("digest", str(digest))]),
                    scopes=_push(repo),
                    headers={"Content-Length": "0"},
                    content=b"",
                    expect=(201,),
                )
            else:
                reply = await self.session.request(
                    "PUT",
                    append_query(location[0], [("digest", str(digest))]),
                    scopes=_push(repo),
                    headers={"Content-Type": OCTET, "Content-Length": str(size)},
                    content=_body(data, 0, size),
                    expect=(201,),
                )
        except SafeguardError:
            await self._cancel(repo, location[0])
            raise
        echoed = reply.headers.get("docker-content-digest")
        if echoed and echoed.startswith(f"{digest.algorithm}:") and echoed != str(digest):
            raise DigestMismatch(f"blob upload to {self.session.host}/{repo}", str(digest), echoed)

    async def delete(self, repo: str, digest: Digest) -> None:
        await self.session.request(
            "DELETE", f"/v2/{repo}/blobs/{digest}", scopes=_push(repo), expect=(202,)
        )

    async def _start(self, repo: str) -> tuple[httpx.URL, int]:
        reply = await self.session.request(
            "POST",
            f"/v2/{repo}/blobs/uploads/",
            scopes=_push(repo),
            headers={"Content-Length": "0"},
            content=b"",
            expect=(202,),
        )
        location = reply.headers.get("location")
        if not location:
            raise RegistryError(
                f"registry {self.session.host} started an upload without a Location", status=202
            )
        minimum = reply.headers.get("oci-chunk-min-length", "")
        return reply.url.join(location), int(minimum) if minimum.isdigit() else 0

    async def _patch_chunks(
        self, repo: str, location: httpx.URL, data: BlobData, size: int, chunk_size: int
    ) -> httpx.URL:
        offset = 0
        while offset < size:
            end = min(offset + chunk_size, size)
            reply = await self.session.request(
                "PATCH",
                location,
                scopes=_push(repo),
                headers={
                    "Content-Type": OCTET,
                    "Content-Length": str(end - offset),
                    "Content-Range": f"{offset}-{end - 1}",
                },
                content=_body(data, offset, end),
                expect=(202,),
            )
            nxt = reply.headers.get("location")
            if nxt:
                location = reply.url.join(nxt)
            offset = end
        return location

    async def _cancel(self, repo: str, location: httpx.URL) -> None:
        with contextlib.suppress(SafeguardError):
            await self.session.request(
                "DELETE", location, scopes=_push(repo), expect=(200, 202, 204, 404)
            )


def _body(data: BlobData, start: int, end: int) -> Content:
    if isinstance(data, bytes):
        return data[start:end]
    path = data

    async def chunks() -> AsyncIterator[bytes]:
        f = await _in_thread(path.open, "rb")
        try:
            await _in_thread(f.seek, start)
            remaining = end - start
            while remaining > 0:
                piece = await _in_thread(f.read, min(READ_SIZE, remaining))
                if not piece:
                    break
                remaining -= len(piece)
                yield piece
        finally:
            await _in_thread(f.close)

    return chunks


async def _chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_bytes(READ_SIZE):
            yield chunk
    except httpx.TransportError as exc:
        raise Unreachable(
            f"connection broke while downloading {response.url.path}: {exc}",
            hint="retry; check the network",
        ) from exc
