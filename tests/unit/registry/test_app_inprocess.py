"""The registry app in-process (httpx's ASGI transport), on SQLite and on real PostgreSQL:
the same flows as the integration tests, plus what only in-process tests can reach — restarts
mid-upload, concurrent writers, stale-upload purging and the 500 path."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from safeguard.server import SafeguardApp, create_app
from safeguard.store.registry_models import Upload
from tests.fixtures.builtin import fresh_postgres_database

OCI = "application/vnd.oci.image.manifest.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
        return
    server: str = request.getfixturevalue("postgres_url")
    with fresh_postgres_database(server) as url:
        yield url


@pytest.fixture
def app(tmp_path: Path, database_url: str | None) -> Iterator[SafeguardApp]:
    application = create_app(tmp_path / "data", database_url)
    yield application
    application.db.dispose()


def _client(app: SafeguardApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://registry")


@pytest.fixture
async def client(app: SafeguardApp) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(app) as c:
        yield c


async def _push_blob(client: httpx.AsyncClient, repo: str, data: bytes) -> dict[str, object]:
    digest = _digest(data)
    response = await client.post(f"/v2/{repo}/blobs/uploads/?digest={digest}", content=data)
    assert response.status_code == 201, response.text
    return {"mediaType": "application/octet-stream", "digest": digest, "size": len(data)}


async def _push_manifest(
    client: httpx.AsyncClient, repo: str, ref: str, seed: bytes, subject: object = None
) -> bytes:
    config = await _push_blob(client, repo, b'{"seed":"%s"}' % seed)
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI,
        "config": config,
        "layers": [await _push_blob(client, repo, seed * 10)],
    }
    if subject is not None:
        doc["subject"] = subject
    raw = json.dumps(doc).encode()
    response = await client.put(
        f"/v2/{repo}/manifests/{ref}", content=raw, headers={"content-type": OCI}
    )
    assert response.status_code == 201, response.text
    return raw


async def test_flow(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v2/")).status_code == 200
    raw = await _push_manifest(client, "team/app", "v1", b"a")
    got = await client.get("/v2/team/app/manifests/v1")
    assert got.content == raw and got.headers["content-type"] == OCI
    subject = {"mediaType": OCI, "digest": _digest(raw), "size": len(raw)}
    referrer = await _push_manifest(client, "team/app", "sig", b"s", subject)
    listed = (await client.get(f"/v2/team/app/referrers/{_digest(raw)}")).json()
    assert [d["digest"] for d in listed["manifests"]] == [_digest(referrer)]
    assert (await client.get("/v2/team/app/tags/list")).json()["tags"] == ["sig", "v1"]
    assert (await client.get("/v2/_catalog")).json()["repositories"] == ["team/app"]
    assert (await client.delete(f"/v2/team/app/manifests/{_digest(raw)}")).status_code == 202
    assert (await client.get("/v2/team/app/tags/list")).json()["tags"] == ["sig"]


async def test_concurrent_pushes_of_one_tag_and_blob(client: httpx.AsyncClient) -> None:
    data = os.urandom(10_000)
    await asyncio.gather(*(_push_blob(client, "race/blob", data) for _ in range(8)))
    raws = await asyncio.gather(
        *(_push_manifest(client, "race/tag", "latest", bytes([65 + i])) for i in range(8))
    )
    got = await client.get("/v2/race/tag/manifests/latest")
    assert got.status_code == 200 and got.content in raws
    assert (await client.get("/v2/race/tag/tags/list")).json()["tags"] == ["latest"]


async def test_upload_survives_a_restart(tmp_path: Path, database_url: str | None) -> None:
    data = os.urandom(300_000)
    first = create_app(tmp_path / "data", database_url)
    async with _client(first) as c:
        location = (await c.post("/v2/resume/me/blobs/uploads/")).headers["location"]
        response = await c.patch(location, content=data[:100_000])
        assert response.status_code == 202
    first.db.dispose()
    second = create_app(tmp_path / "data", database_url)  # no running hash in memory now
    try:
        async with _client(second) as c:
            status = await c.get(location)
            assert status.headers["range"] == "0-99999"
            response = await c.patch(
                location, content=data[100_000:], headers={"content-range": "100000-299999"}
            )
            assert response.status_code == 202
            done = await c.put(f"{location}?digest={_digest(data)}")
            assert done.status_code == 201, done.text
            assert (await c.get(f"/v2/resume/me/blobs/{_digest(data)}")).content == data
    finally:
        second.db.dispose()


async def test_stale_uploads_are_purged(app: SafeguardApp, client: httpx.AsyncClient) -> None:
    location = (await client.post("/v2/stale/repo/blobs/uploads/")).headers["location"]
    upload_id = location.rsplit("/", 1)[1]
    path = app.data_dir / "uploads" / upload_id
    assert path.exists()
    with app.db.write() as conn:
        conn.execute(
            sa.update(Upload)
            .where(Upload.uuid == upload_id)
            .values(updated_at=datetime.now(UTC) - timedelta(days=3))
        )
    assert app.registry.purge_stale_uploads() >= 1
    assert not path.exists()
    assert (await client.get(location)).status_code == 404


async def test_unexpected_failures_are_500_without_traceback(
    app: SafeguardApp, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_: object) -> None:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(app.registry.ctx.meta, "manifest_by_tag", boom)
    response = await client.get("/v2/any/repo/manifests/latest")
    assert response.status_code == 500
    assert response.json() == {"errors": [{"code": "UNKNOWN", "message": "internal server error"}]}
    assert "fire" not in response.text


async def test_other_paths_go_to_the_site(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert (await client.get("/nothing")).status_code == 404


async def test_upload_whose_file_vanished_is_unknown(
    app: SafeguardApp, client: httpx.AsyncClient
) -> None:
    location = (await client.post("/v2/gone/file/blobs/uploads/")).headers["location"]
    assert (await client.patch(location, content=b"abc")).status_code == 202
    (app.data_dir / "uploads" / location.rsplit("/", 1)[1]).unlink()
    response = await client.patch(location, content=b"def", headers={"content-range": "3-5"})
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"


async def test_sqlite_fast_reads_agree_with_sqlalchemy(
    app: SafeguardApp, client: httpx.AsyncClient
) -> None:
    from safeguard.registry.metadata import RegistryMetadata

    raw = await _push_manifest(client, "fast/path", "v1", b"f")
    meta = app.registry.ctx.meta
    slow = RegistryMetadata(app.db)
    slow._fast = None
    digest = _digest(raw)
    layer = _digest(b"f" * 10)
    for name in ("fast/path", "other/repo"):
        assert meta.manifest_by_tag(name, "v1") == slow.manifest_by_tag(name, "v1")
        assert meta.manifest_by_digest(name, digest) == slow.manifest_by_digest(name, digest)
        assert meta.blob_size(name, layer) == slow.blob_size(name, layer)
    assert meta.manifest_by_tag("fast/path", "v1") is not None
    assert meta.blob_size("fast/path", layer) == 10
