"""The pull log in-process: pulls through the gateway are recorded off the request path, in
batches, survive a failed write, and answer "last pull"; notification envelopes parse strictly."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from safeguard.gateway.app import GatewayApp
from safeguard.gateway.config import GatewaySettings
from safeguard.gateway.events import EventsInvalid, parse_envelope, parse_timestamp
from safeguard.gateway.pulllog import PullLog, PullRecord, last_pulls
from safeguard.server import SafeguardApp, create_app
from safeguard.store import open_database
from safeguard.store.gateway_models import GatewayPull
from tests.fixtures.builtin import OCI_MANIFEST, image_manifest


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[SafeguardApp]:
    app = create_app(tmp_path / "data", gateway=GatewaySettings(pull_log_flush_ms=50))
    yield app
    gateway = app.v2
    assert isinstance(gateway, GatewayApp)
    for stop in app.shutdowns:
        await stop()
    app.db.dispose()


def _client(app: SafeguardApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("10.1.2.3", 4567)),
        base_url="http://gateway",
        headers={"user-agent": "pull-test/1.0"},
    )


async def _push(client: httpx.AsyncClient, repo: str, tag: str) -> str:
    config = b'{"os":"linux"}'
    digest = "sha256:" + hashlib.sha256(config).hexdigest()
    response = await client.post(f"/v2/{repo}/blobs/uploads/?digest={digest}", content=config)
    assert response.status_code == 201
    raw = image_manifest(
        {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest,
            "size": len(config),
        },
        [],
    )
    response = await client.put(
        f"/v2/{repo}/manifests/{tag}", content=raw, headers={"content-type": OCI_MANIFEST}
    )
    assert response.status_code == 201, response.text
    return str(response.headers["docker-content-digest"])


async def test_pulls_through_the_gateway_are_logged(node: SafeguardApp) -> None:
    gateway = node.v2
    assert isinstance(gateway, GatewayApp) and gateway.pulls is not None
    async with _client(node) as client:
        digest = await _push(client, "team/app", "v1")
        assert (await client.get("/v2/team/app/manifests/v1")).status_code == 200
        assert (await client.head(f"/v2/team/app/manifests/{digest}")).status_code == 200
        assert (await client.get("/v2/team/app/manifests/missing")).status_code == 404
    await gateway.pulls.flush()
    (pull,) = last_pulls(node.db, "team/app")
    assert pull.digest == digest
    assert pull.pulls == 2
    assert pull.client == "10.1.2.3"
    assert pull.user_agent == "pull-test/1.0"
    assert pull.identity == "anonymous"
    assert pull.source == "gateway"
    assert last_pulls(node.db, "team/app", digest)[0].at == pull.at
    assert last_pulls(node.db, "team/app", "sha256:" + "0" * 64) == []
    assert last_pulls(node.db, "other/app") == []


async def test_flushes_by_time_and_by_batch(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path}/x.db")
    log = PullLog(db, flush_ms=60_000, batch=3)
    task = asyncio.create_task(log.run())
    try:
        for i in range(3):
            log.record(PullRecord("a/b", f"t{i}", "sha256:" + "a" * 64, "c", "i", "ua"))
        for _ in range(100):
            if log.written == 3:
                break
            await asyncio.sleep(0.01)
        assert log.written == 3  # the full batch did not wait for the minute
        log.record(PullRecord("a/b", "t", "sha256:" + "a" * 64, "c", "i", "ua"))
        assert log.waiting == 1
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert log.written == 4  # the last record is written on the way out
    db.dispose()


async def test_a_failed_write_keeps_the_records(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path}/x.db")
    log = PullLog(db, max_buffer=5)
    with db.write() as conn:
        conn.execute(sa.text("ALTER TABLE gateway_pulls RENAME TO gateway_pulls_away"))
    for i in range(7):
        log.record(PullRecord("a/b", f"t{i}", None, "c", "i", "ua"))
    assert log.dropped == 2 and log.waiting == 5
    assert await log.flush() == 0
    assert log.waiting == 5
    with db.write() as conn:
        conn.execute(sa.text("ALTER TABLE gateway_pulls_away RENAME TO gateway_pulls"))
    assert await log.flush() == 5
    with db.read() as conn:
        refs = conn.execute(sa.select(GatewayPull.reference).order_by(GatewayPull.id)).scalars()
        assert list(refs) == [f"t{i}" for i in range(2, 7)]
    db.dispose()


def _event(action: str = "pull", media_type: str = OCI_MANIFEST, **target: object) -> dict:
    return {
        "id": "e1",
        "timestamp": "2026-11-28T10:11:12.123456789+01:00",
        "action": action,
        "target": {
            "mediaType": media_type,
            "digest": "sha256:" + "b" * 64,
            "repository": "team/app",
            "tag": "v1",
            **target,
        },
        "request": {"addr": "10.0.0.9:5123", "useragent": "containerd/1.7", "method": "GET"},
        "actor": {"name": "kubelet"},
    }


def test_notification_envelopes() -> None:
    envelope = {
        "events": [
            _event(),
            _event(action="push"),
            _event(media_type="application/octet-stream"),  # a blob pull
            _event(repository="../etc"),
            _event(digest="sha256:nothex"),
            "not an event",
        ]
    }
    imported = parse_envelope(json.dumps(envelope).encode())
    (pull,) = imported.pulls
    assert imported.skipped == 5
    assert (pull.repository, pull.reference, pull.client) == ("team/app", "v1", "10.0.0.9")
    assert pull.identity == "kubelet" and pull.source == "event"
    assert pull.at == datetime(2026, 11, 28, 9, 11, 12, 123456, tzinfo=UTC)
    excluded = parse_envelope(
        json.dumps(envelope).encode(), exclude_clients=frozenset({"10.0.0.9"})
    )
    assert excluded.pulls == [] and excluded.excluded == 1
    lines = b"\n".join(json.dumps({"events": [_event()]}).encode() for _ in range(3))
    assert len(parse_envelope(lines).pulls) == 3
    assert parse_timestamp("2026-01-02T03:04:05Z").tzinfo is not None


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"\xff\xfe", b'{"nothing": []}', b"[1, 2]", b'{"events": 5}'],
)
def test_hostile_envelopes_are_typed_errors(raw: bytes) -> None:
    with pytest.raises(EventsInvalid):
        parse_envelope(raw)
