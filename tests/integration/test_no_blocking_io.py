"""File I/O in async code runs in worker threads, never on the event loop: the registry's upload
clean-ups (truncating a failed chunk, discarding a failed upload) and the OCI client's blob
download (temporary file, writes, fsync and rename, or removal on a bad blob).

Each file operation is wrapped to record the thread it ran on; the event loop's thread must not
be among them. Good uploads and downloads run beside the failing ones.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

import safeguard.oci.blobs as oci_blobs
from safeguard.core.digest import Digest
from safeguard.oci.atomic import AtomicFile
from safeguard.oci.client import RegistryClient
from safeguard.oci.errors import SizeMismatch
from safeguard.server import create_app
from tests.fixtures.distribution import RegistryServer


def _recording(calls: list[tuple[str, int]], name: str, fn: Callable[..., Any]) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append((name, threading.get_ident()))
        return fn(*args, **kwargs)

    return wrapper


async def test_registry_upload_cleanups_run_off_the_event_loop(tmp_path: Path) -> None:
    app = create_app(tmp_path / "data", None)
    blobs = app.registry.ctx.blobs
    calls: ClassVar[list[tuple[str, int]]] = []
    for name in ("truncate_upload", "discard_upload"):
        setattr(blobs, name, _recording(calls, name, getattr(blobs, name)))
    loop_thread = threading.get_ident()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://r") as client:
            # Good: a chunk of the size its Content-Range says, then the closing PUT.
            started = await client.post("/v2/team/app/blobs/uploads/")
            assert started.status_code == 202
            location = started.headers["location"]
            good = await client.patch(
                location, content=b"0123456789", headers={"content-range": "0-9"}
            )
            assert good.status_code == 202, good.text

            # Hostile: a chunk shorter than its Content-Range (streamed, no Content-Length).
            async def short() -> AsyncIterator[bytes]:
                yield b"abcde"

            cut = await client.patch(
                good.headers["location"], content=short(), headers={"content-range": "10-19"}
            )
            assert cut.status_code == 400, cut.text
            digest = "sha256:" + hashlib.sha256(b"0123456789").hexdigest()
            closing = good.headers["location"]
            separator = "&" if "?" in closing else "?"
            done = await client.put(f"{closing}{separator}digest={digest}")
            assert done.status_code == 201, done.text  # the short chunk was undone

            # Hostile: a monolithic upload whose bytes do not have the claimed digest.
            wrong = "sha256:" + hashlib.sha256(b"claimed").hexdigest()
            refused = await client.post(f"/v2/team/app/blobs/uploads/?digest={wrong}", content=b"x")
            assert refused.status_code == 400
    finally:
        app.db.dispose()
    assert {name for name, _ in calls} == {"truncate_upload", "discard_upload"}
    assert all(thread != loop_thread for _, thread in calls), calls


class _RecordingAtomicFile(AtomicFile):
    calls: ClassVar[list[tuple[str, int]]] = []

    def __init__(self, dest: Path) -> None:
        self.calls.append(("open", threading.get_ident()))
        super().__init__(dest)

    def write(self, data: bytes) -> None:
        self.calls.append(("write", threading.get_ident()))
        super().write(data)

    def commit(self) -> None:
        self.calls.append(("commit", threading.get_ident()))
        super().commit()

    def abort(self) -> None:
        self.calls.append(("abort", threading.get_ident()))
        super().abort()


async def test_blob_download_writes_off_the_event_loop(
    builtin_registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(oci_blobs, "AtomicFile", _RecordingAtomicFile)
    _RecordingAtomicFile.calls = []
    loop_thread = threading.get_ident()
    repo = f"noblock/{uuid.uuid4().hex[:8]}"
    data = os.urandom(3 * 1024 * 1024 + 5)
    digest = Digest.of(data)
    async with RegistryClient(builtin_registry.host) as client:
        source = tmp_path / "source.bin"
        source.write_bytes(data)
        await client.blobs.upload(repo, digest, source, chunked=True, chunk_size=1 << 20)
        target = tmp_path / "out" / "blob.bin"
        assert await client.blobs.download(repo, digest, target, len(data)) == len(data)
        assert target.read_bytes() == data
        # Hostile: the blob is longer than the size we were told; nothing is left behind.
        bad = tmp_path / "bad" / "blob.bin"
        with pytest.raises(SizeMismatch):
            await client.blobs.download(repo, digest, bad, len(data) - 1)
        assert list(bad.parent.iterdir()) == []
    names = [name for name, _ in _RecordingAtomicFile.calls]
    assert {"open", "write", "commit", "abort"} <= set(names)
    assert all(t != loop_thread for _, t in _RecordingAtomicFile.calls)
