"""What every registry handler shares: metadata queries, the blob store, the manifest cache,
and the in-process state of uploads in progress (their hashers and locks)."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final

from safeguard.core.digest import Digest
from safeguard.core.errors import InvalidDigest, InvalidName, InvalidTag, OCIError, OCIErrorCode
from safeguard.core.reference import validate_repository, validate_tag
from safeguard.registry.blobstore import BlobStore, RunningHash
from safeguard.registry.metadata import ManifestRecord, RegistryMetadata

MANIFEST_LIMIT: Final = 4 * 1024 * 1024  # distribution's limit; the spec says "at least 4 MB"


class ManifestCache:
    """A small LRU of manifests by ``(repository, digest)``, bounded in entries and bytes.

    Manifests are immutable per digest, so an entry can only go stale by deletion: this process
    drops the entry when it deletes, and the TTL bounds how long another node's deletion may go
    unseen when several nodes share one database. Manifests over ``max_item`` bytes are not kept.
    """

    def __init__(
        self,
        size: int = 4096,
        ttl: float = 10.0,
        max_bytes: int = 64 * 1024 * 1024,
        max_item: int = 256 * 1024,
    ) -> None:
        self.size = size
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.max_item = max_item
        self.bytes = 0
        self._items: OrderedDict[tuple[str, str], tuple[float, ManifestRecord]] = OrderedDict()

    def get(self, repo: str, digest: str) -> ManifestRecord | None:
        key = (repo, digest)
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] < time.monotonic():
            self.drop(repo, digest)
            return None
        self._items.move_to_end(key)
        return item[1]

    def put(self, repo: str, record: ManifestRecord) -> None:
        if self.size <= 0 or len(record.content) > self.max_item:
            return
        self.drop(repo, record.digest)
        self._items[(repo, record.digest)] = (time.monotonic() + self.ttl, record)
        self.bytes += len(record.content)
        while len(self._items) > self.size or self.bytes > self.max_bytes:
            _, (_, evicted) = self._items.popitem(last=False)
            self.bytes -= len(evicted.content)

    def drop(self, repo: str, digest: str) -> None:
        item = self._items.pop((repo, digest), None)
        if item is not None:
            self.bytes -= len(item[1].content)


class HeaderedError(OCIError):
    """An OCI error whose response must carry headers, such as an upload's ``Location`` and
    ``Range`` on a 416 (distribution-spec v1.1, "Pushing a blob in chunks")."""

    def __init__(
        self,
        oci_code: OCIErrorCode,
        message: str,
        *,
        status: int,
        headers: list[tuple[bytes, bytes]],
        detail: Any = None,
    ) -> None:
        super().__init__(oci_code, message, status=status, detail=detail)
        self.response_headers = headers


@dataclass
class UploadState:
    """The running hash of an upload, valid while ``offset`` equals the stored offset."""

    offset: int
    algorithm: str
    hasher: RunningHash


@dataclass
class RegistryContext:
    meta: RegistryMetadata
    blobs: BlobStore
    cache: ManifestCache = field(default_factory=ManifestCache)
    upload_states: OrderedDict[str, UploadState] = field(default_factory=OrderedDict)
    _locks: weakref.WeakValueDictionary[str, asyncio.Lock] = field(
        default_factory=weakref.WeakValueDictionary
    )
    max_upload_states: int = 10_000

    def upload_lock(self, upload_id: str) -> asyncio.Lock:
        lock = self._locks.get(upload_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[upload_id] = lock
        return lock

    def remember_upload(self, upload_id: str, state: UploadState) -> None:
        self.upload_states[upload_id] = state
        self.upload_states.move_to_end(upload_id)
        while len(self.upload_states) > self.max_upload_states:
            self.upload_states.popitem(last=False)

    def forget_upload(self, upload_id: str) -> None:
        self.upload_states.pop(upload_id, None)


@lru_cache(maxsize=8192)
def _name_problem(name: str) -> str | None:
    try:
        validate_repository(name)
    except InvalidName as exc:
        return exc.message
    return None


def check_name(name: str) -> str:
    problem = _name_problem(name)
    if problem is not None:
        raise OCIError(
            OCIErrorCode.NAME_INVALID,
            problem,
            status=400,
            detail={"name": name[:300]},
        )
    return name


def check_tag(tag: str) -> str:
    try:
        return validate_tag(tag)
    except InvalidTag as exc:
        raise OCIError(OCIErrorCode.TAG_INVALID, exc.message, status=400) from exc


def check_digest(text: str) -> Digest:
    try:
        return Digest.parse(text)
    except InvalidDigest as exc:
        raise OCIError(OCIErrorCode.DIGEST_INVALID, exc.message, status=400) from exc
