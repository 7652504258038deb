"""The content-addressed blob store on the local filesystem.

Layout under the data directory::

    blobs/<algorithm>/<first two hex>/<hex>   published blobs, immutable, named by digest
    uploads/<uuid>                            bytes of an upload session in progress

A blob is only ever published by ``os.replace`` of a fully written, fsynced upload file in the
same filesystem, followed by an fsync of the directory, so a reader sees either no blob or the
whole blob, and a crash leaves at worst an orphaned upload file, never a truncated blob. Every
method here blocks: call them from a worker thread, never on the event loop.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path
from typing import BinaryIO, Final, Protocol, cast

from safeguard.core.digest import Digest, new_hasher

READ_CHUNK: Final = 1 << 20
_UUID: Final = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class RunningHash(Protocol):
    """A hashlib object: it can be fed, read, and copied (to roll a failed chunk back)."""

    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...
    def copy(self) -> RunningHash: ...


def running_hash(algorithm: str) -> RunningHash:
    return cast(RunningHash, new_hasher(algorithm))


def is_upload_id(text: str) -> bool:
    """True for the lower-case hyphenated UUIDs we hand out; anything else never names a file."""
    return bool(_UUID.match(text))


class UploadAppender:
    """Appends to one upload file at a known offset while a hasher follows the same bytes."""

    def __init__(self, path: Path, offset: int, hasher: RunningHash) -> None:
        self._file = path.open("r+b")
        self._file.truncate(offset)
        self._file.seek(offset)
        self.offset = offset
        self.hasher = hasher

    def write(self, data: bytes) -> None:
        self.hasher.update(data)
        self._file.write(data)
        self.offset += len(data)

    def close(self) -> None:
        self._file.close()


class BlobStore:
    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.uploads = self.root / "uploads"
        self.fsync = fsync
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.uploads.mkdir(parents=True, exist_ok=True)

    # -- published blobs -------------------------------------------------------------------
    def blob_path(self, digest: Digest) -> Path:
        return self.blobs / digest.algorithm / digest.hex[:2] / digest.hex

    def blob_size(self, digest: Digest) -> int | None:
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def open_blob(self, digest: Digest) -> BinaryIO | None:
        try:
            return self.blob_path(digest).open("rb", buffering=0)
        except FileNotFoundError:
            return None

    # -- uploads ---------------------------------------------------------------------------
    def upload_path(self, upload_id: str) -> Path:
        if not is_upload_id(upload_id):
            raise ValueError(f"not an upload id: {upload_id!r}")
        return self.uploads / upload_id

    def start_upload(self, upload_id: str) -> None:
        self.upload_path(upload_id).open("xb").close()

    def upload_size(self, upload_id: str) -> int | None:
        try:
            return self.upload_path(upload_id).stat().st_size
        except FileNotFoundError:
            return None

    def appender(self, upload_id: str, offset: int, hasher: RunningHash) -> UploadAppender:
        """Open an existing upload file for appending at ``offset`` (``FileNotFoundError`` if
        the upload has no file: it was cancelled or purged)."""
        return UploadAppender(self.upload_path(upload_id), offset, hasher)

    def hash_upload(self, upload_id: str, algorithm: str, length: int) -> RunningHash:
        """Hash the first ``length`` bytes of an upload, to resume or check it from disk."""
        hasher = running_hash(algorithm)
        remaining = length
        with self.upload_path(upload_id).open("rb", buffering=0) as f:
            while remaining > 0:
                data = f.read(min(READ_CHUNK, remaining))
                if not data:
                    break
                hasher.update(data)
                remaining -= len(data)
        return hasher

    def truncate_upload(self, upload_id: str, size: int) -> None:
        with contextlib.suppress(FileNotFoundError), self.upload_path(upload_id).open("r+b") as f:
            f.truncate(size)

    def discard_upload(self, upload_id: str) -> None:
        with contextlib.suppress(FileNotFoundError, ValueError):
            self.upload_path(upload_id).unlink()

    def publish(self, upload_id: str, digest: Digest) -> None:
        """Move a finished, verified upload to its content address (atomic, durable)."""
        src = self.upload_path(upload_id)
        dest = self.blob_path(digest)
        if dest.exists():
            src.unlink(missing_ok=True)  # same digest, same bytes: keep the published copy
            return
        if self.fsync:
            fd = os.open(src, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        dest.parent.mkdir(parents=True, exist_ok=True)
        src.replace(dest)
        if self.fsync:
            fd = os.open(dest.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def purge_uploads(self, older_than: float) -> list[str]:
        """Remove upload files not written to for ``older_than`` seconds; return their ids."""
        cutoff = time.time() - older_than
        removed = []
        for path in self.uploads.iterdir():
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed.append(path.name)
            except FileNotFoundError:
                continue
        return removed
