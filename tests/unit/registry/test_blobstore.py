"""The content-addressed filesystem store: atomic publication, upload files, housekeeping."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path

import pytest

from safeguard.core.digest import Digest
from safeguard.registry.blobstore import BlobStore, is_upload_id, running_hash


def _upload(store: BlobStore, data: bytes) -> str:
    upload_id = str(uuid.uuid4())
    store.start_upload(upload_id)
    appender = store.appender(upload_id, 0, running_hash("sha256"))
    try:
        appender.write(data)
    finally:
        appender.close()
    return upload_id


def test_publish_moves_the_upload_to_its_digest(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    data = os.urandom(3000)
    digest = Digest.of(data)
    upload_id = _upload(store, data)
    assert store.blob_size(digest) is None
    store.publish(upload_id, digest)
    path = tmp_path / "blobs" / "sha256" / digest.hex[:2] / digest.hex
    assert path.read_bytes() == data
    assert store.blob_size(digest) == 3000
    assert not (tmp_path / "uploads" / upload_id).exists()
    handle = store.open_blob(digest)
    assert handle is not None
    with handle:
        assert handle.read() == data


def test_publishing_the_same_content_twice_keeps_one_copy(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    data = b"same bytes"
    digest = Digest.of(data)
    store.publish(_upload(store, data), digest)
    before = store.blob_path(digest).stat().st_ino
    second = _upload(store, data)
    store.publish(second, digest)
    assert store.blob_path(digest).stat().st_ino == before
    assert not (tmp_path / "uploads" / second).exists()


def test_appender_hashes_what_it_writes_and_resumes_at_an_offset(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    upload_id = str(uuid.uuid4())
    store.start_upload(upload_id)
    hasher = running_hash("sha256")
    first = store.appender(upload_id, 0, hasher)
    first.write(b"hello ")
    first.close()
    second = store.appender(upload_id, 6, hasher)
    second.write(b"world")
    second.close()
    assert hasher.hexdigest() == hashlib.sha256(b"hello world").hexdigest()
    assert store.upload_size(upload_id) == 11
    rebuilt = store.hash_upload(upload_id, "sha256", 6)
    assert rebuilt.hexdigest() == hashlib.sha256(b"hello ").hexdigest()


def test_appender_cuts_off_bytes_past_its_offset(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    upload_id = _upload(store, b"0123456789")
    appender = store.appender(upload_id, 4, running_hash("sha256"))
    appender.write(b"ab")
    appender.close()
    assert store.upload_path(upload_id).read_bytes() == b"0123ab"
    store.truncate_upload(upload_id, 2)
    assert store.upload_path(upload_id).read_bytes() == b"01"


@pytest.mark.parametrize(
    "text", ["../../etc/passwd", "", "ABCDEFAB-0000-0000-0000-000000000000", "x" * 36, "a/b"]
)
def test_upload_ids_never_name_other_files(tmp_path: Path, text: str) -> None:
    store = BlobStore(tmp_path)
    assert not is_upload_id(text)
    with pytest.raises(ValueError):
        store.upload_path(text)
    store.discard_upload(text)  # silently nothing


def test_purge_removes_only_old_uploads(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    old, fresh = _upload(store, b"old"), _upload(store, b"fresh")
    past = time.time() - 3 * 86400
    os.utime(store.upload_path(old), (past, past))
    assert store.purge_uploads(86400) == [old]
    assert store.upload_size(fresh) == 5
    assert store.upload_size(old) is None
