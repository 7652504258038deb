"""Checking content against its digest and size while it streams.

The client trusts no registry and no layout: every blob and manifest is hashed as it is read and
compared with the digest it was asked for (distribution spec v1.1, "Pulling blobs": the client
SHOULD verify the content against the digest; OCI image spec, descriptor.md "Digests"). More bytes
than the descriptor's size stop the read at once, so a hostile endless body cannot fill a disk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from safeguard.core.digest import Digest
from safeguard.oci.errors import DigestMismatch, SizeMismatch


class DigestVerifier:
    def __init__(self, digest: Digest, size: int | None, what: str) -> None:
        self.digest = digest
        self.size = size
        self.what = what
        self.count = 0
        self._hasher = digest.hasher()

    def update(self, chunk: bytes) -> None:
        self.count += len(chunk)
        if self.size is not None and self.count > self.size:
            raise SizeMismatch(
                f"{self.what}: more than the declared {self.size} bytes",
                hint="the content does not match its descriptor; do not use it",
            )
        self._hasher.update(chunk)

    def finish(self) -> None:
        if self.size is not None and self.count != self.size:
            raise SizeMismatch(
                f"{self.what}: {self.count} bytes, but the descriptor declares {self.size}",
                hint="the content does not match its descriptor; do not use it",
            )
        actual = Digest.from_hasher(self.digest.algorithm, self._hasher)
        if actual != self.digest:
            raise DigestMismatch(self.what, str(self.digest), str(actual))


async def verified(
    chunks: AsyncIterator[bytes], digest: Digest, size: int | None, what: str
) -> AsyncIterator[bytes]:
    """Pass ``chunks`` through, raising ``DigestMismatch``/``SizeMismatch`` when they are bad.

    The last chunk is held back until the digest is checked, so a consumer never sees the end of a
    stream whose content turned out to be wrong.
    """
    verifier = DigestVerifier(digest, size, what)
    pending: bytes | None = None
    async for chunk in chunks:
        if not chunk:
            continue
        verifier.update(chunk)
        if pending is not None:
            yield pending
        pending = chunk
    verifier.finish()
    if pending is not None:
        yield pending


def check_bytes(data: bytes, digest: Digest, what: str, size: int | None = None) -> None:
    verifier = DigestVerifier(digest, size, what)
    verifier.update(data)
    verifier.finish()
