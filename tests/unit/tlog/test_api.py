"""The log's HTTP API through the whole node app (httpx ASGITransport), on SQLite and PostgreSQL.

Every answer is checked with ``tlog.merkle`` and the note/SET verifiers alone: inclusion proofs,
consistency proofs between many sizes, checkpoints, SETs; then duplicates, hostile input, search,
and the tlog-tiles read API.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from safeguard.formats import rekor
from safeguard.keys import SoftwareSigner
from safeguard.keys.base import load_public_key
from safeguard.server import SafeguardApp, create_app
from safeguard.tlog import merkle
from safeguard.tlog.tiles import Tile, parse_entry_bundle, split_tile
from tests.fixtures.builtin import fresh_postgres_database
from tests.unit.tlog.tlog_helpers import b64, check_log_entry, dsse, hashedrekord


@pytest.fixture
def fresh_postgres(postgres_url: str) -> Iterator[str]:
    with fresh_postgres_database(postgres_url) as url:
        yield url


def _close(app: SafeguardApp) -> None:
    for close in app.closers:
        close()
    app.db.dispose()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[SafeguardApp]:
    app = create_app(tmp_path / "data")
    yield app
    _close(app)


@pytest.fixture
async def client(node: SafeguardApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=node)
    async with httpx.AsyncClient(transport=transport, base_url="http://log") as c:
        yield c


@pytest.fixture(scope="module")
def signer() -> SoftwareSigner:
    return SoftwareSigner.generate()


async def _public_key(client: httpx.AsyncClient) -> Any:
    response = await client.get("/api/v1/log/publicKey")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-pem-file"
    return load_public_key(response.content)


async def _end_to_end(client: httpx.AsyncClient, signer: SoftwareSigner, count: int) -> None:
    public_key = await _public_key(client)
    requests = [hashedrekord(signer, f"artifact {i}".encode()) for i in range(count - 20)]
    requests += [dsse(signer, b'{"n": %d}' % i)[0] for i in range(20)]
    responses = await asyncio.gather(
        *(client.post("/api/v1/log/entries", json=r) for r in requests)
    )
    heads: dict[int, bytes] = {}
    indexes = []
    for response in responses:
        assert response.status_code == 201, response.text
        entry_id, entry = check_log_entry(response.json(), public_key)
        assert response.headers["location"] == f"/api/v1/log/entries/{entry_id}"
        assert response.headers["etag"] == entry_id
        proof = entry["verification"]["inclusionProof"]
        heads[proof["treeSize"]] = bytes.fromhex(proof["rootHash"])
        indexes.append(entry["logIndex"])
    assert sorted(indexes) == list(range(count))  # no gap, no duplicate
    info = (await client.get("/api/v1/log")).json()
    assert set(info) == {"rootHash", "signedTreeHead", "treeID", "treeSize"}
    assert info["treeSize"] == count
    heads[count] = bytes.fromhex(info["rootHash"])
    # Consistency proofs between every pair of sizes the batches published (and a few more).
    sizes = sorted(heads)
    pairs = [(a, b) for i, a in enumerate(sizes) for b in sizes[i:]]
    for a, b in [*random.Random(7).sample(pairs, min(len(pairs), 60)), (sizes[0], count)]:
        got = (await client.get("/api/v1/log/proof", params={"firstSize": a, "lastSize": b})).json()
        assert bytes.fromhex(got["rootHash"]) == heads[b]
        proof = [bytes.fromhex(h) for h in got["hashes"]]
        merkle.verify_consistency(a, b, proof, heads[a], heads[b])
    # Every entry, read back by index and by UUID, proves into the newest checkpoint.
    for index in random.Random(3).sample(range(count), 25):
        by_index = (await client.get("/api/v1/log/entries", params={"logIndex": index})).json()
        entry_id, entry = check_log_entry(by_index, public_key)
        assert entry["verification"]["inclusionProof"]["treeSize"] == count
        by_uuid = (await client.get(f"/api/v1/log/entries/{entry_id}")).json()
        assert by_uuid[entry_id]["body"] == entry["body"]
        short = (await client.get(f"/api/v1/log/entries/{entry_id[16:]}")).json()
        assert list(short) == [entry_id]
    # Duplicates are refused with the existing entry's location.
    for request in requests[:3]:
        again = await client.post("/api/v1/log/entries", json=request)
        assert again.status_code == 409, again.text
        assert again.json()["code"] == 409
        existing = again.headers["location"].rsplit("/", 1)[1]
        assert (await client.get(f"/api/v1/log/entries/{existing}")).status_code == 200


async def test_end_to_end_sqlite(client: httpx.AsyncClient, signer: SoftwareSigner) -> None:
    await _end_to_end(client, signer, 300)


async def test_end_to_end_postgresql(
    tmp_path: Path, fresh_postgres: str, signer: SoftwareSigner
) -> None:
    app = create_app(tmp_path / "data", fresh_postgres)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://log") as c:
            await _end_to_end(c, signer, 300)
    finally:
        _close(app)


async def test_bodies_are_rekor_canonical(
    client: httpx.AsyncClient, signer: SoftwareSigner
) -> None:
    artifact = b"exact bytes"
    request = hashedrekord(signer, artifact)
    response = (await client.post("/api/v1/log/entries", json=request)).json()
    body = base64.b64decode(next(iter(response.values()))["body"])
    sig = base64.b64decode(request["spec"]["signature"]["content"])
    digest = "sha256:" + hashlib.sha256(artifact).hexdigest()
    assert body == rekor.hashedrekord_v001(digest, sig, signer.public_key_pem)
    assert rekor.parse_entry(body).artifact_digest is not None

    dsse_request, envelope = dsse(signer, b'{"_type": "x"}')
    response = (await client.post("/api/v1/log/entries", json=dsse_request)).json()
    body = base64.b64decode(next(iter(response.values()))["body"])
    assert body == rekor.dsse_v001(envelope, signer.public_key_pem)
    parsed = rekor.parse_entry(body)
    assert parsed.kind == "dsse" and parsed.payload_hash is not None


def _hostile(signer: SoftwareSigner) -> list[tuple[str, bytes, str]]:
    good = hashedrekord(signer, b"a")
    bad_sig = json.loads(json.dumps(good))
    bad_sig["spec"]["signature"]["content"] = b64(signer.sign(b"b"))
    other_kind = dict(good, kind="rpm")
    other_version = dict(good, apiVersion="0.0.2")
    not_pem = json.loads(json.dumps(good))
    not_pem["spec"]["signature"]["publicKey"]["content"] = b64(b"not a key")
    bad_b64 = json.loads(json.dumps(good))
    bad_b64["spec"]["signature"]["content"] = "!!!"
    short_hash = json.loads(json.dumps(good))
    short_hash["spec"]["data"]["hash"]["value"] = "abcd"
    md5 = json.loads(json.dumps(good))
    md5["spec"]["data"]["hash"]["algorithm"] = "md5"
    other = SoftwareSigner.generate()
    wrong_key, _ = dsse(signer, b"{}")
    wrong_key["spec"]["proposedContent"]["verifiers"] = [b64(other.public_key_pem)]
    precomputed, _ = dsse(signer, b"{}")
    precomputed["spec"]["signatures"] = []
    dumps = lambda d: json.dumps(d).encode()  # noqa: E731
    return [
        ("bad signature", dumps(bad_sig), "TLOG_ENTRY_SIGNATURE_INVALID"),
        ("unknown kind", dumps(other_kind), "TLOG_ENTRY_KIND_UNSUPPORTED"),
        ("unknown version", dumps(other_version), "TLOG_ENTRY_KIND_UNSUPPORTED"),
        ("malformed JSON", b'{"kind": "hashedrekord", ', "TLOG_ENTRY_INVALID"),
        ("duplicate keys", b'{"kind": "dsse", "kind": "hashedrekord"}', "TLOG_ENTRY_INVALID"),
        ("not an object", b"[1, 2]", "TLOG_ENTRY_INVALID"),
        ("no spec", b'{"kind": "hashedrekord", "apiVersion": "0.0.1"}', "TLOG_ENTRY_INVALID"),
        ("huge body", b'{"kind": "' + b"x" * (5 * 1024 * 1024) + b'"}', "TLOG_ENTRY_TOO_LARGE"),
        ("key is not PEM", dumps(not_pem), "TLOG_ENTRY_INVALID"),
        ("bad base64", dumps(bad_b64), "TLOG_ENTRY_INVALID"),
        ("short digest", dumps(short_hash), "TLOG_ENTRY_INVALID"),
        ("unsupported hash", dumps(md5), "TLOG_ENTRY_INVALID"),
        ("dsse signed by another key", dumps(wrong_key), "TLOG_ENTRY_SIGNATURE_INVALID"),
        ("dsse with computed fields", dumps(precomputed), "TLOG_ENTRY_INVALID"),
        ("not UTF-8", b'{"kind": "\xff"}', "TLOG_ENTRY_INVALID"),
    ]


async def test_hostile_entries_are_400(client: httpx.AsyncClient, signer: SoftwareSigner) -> None:
    for name, body, reason in _hostile(signer):
        response = await client.post(
            "/api/v1/log/entries", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, (name, response.text)
        doc = response.json()
        assert doc["code"] == 400 and doc["reason"] == reason, (name, doc)
        assert doc["message"], name
    assert (await client.get("/api/v1/log")).json()["treeSize"] == 0


async def test_read_errors(client: httpx.AsyncClient, signer: SoftwareSigner) -> None:
    await client.post("/api/v1/log/entries", json=hashedrekord(signer, b"one"))
    cases = [
        ("GET", "/api/v1/log/entries/xyz", 400),
        ("GET", "/api/v1/log/entries/" + "ab" * 32, 404),
        ("GET", "/api/v1/log/entries/" + "0" * 16 + "ab" * 32, 404),
        ("GET", "/api/v1/log/entries", 400),
        ("GET", "/api/v1/log/entries?logIndex=-1", 400),
        ("GET", "/api/v1/log/entries?logIndex=5", 404),
        ("GET", "/api/v1/log/proof?lastSize=9", 400),
        ("GET", "/api/v1/log/proof?firstSize=2&lastSize=1", 400),
        ("GET", "/api/v1/log/proof", 400),
        ("GET", "/api/v1/log/proof?lastSize=1&treeID=5", 400),
        ("DELETE", "/api/v1/log/entries", 405),
        ("GET", "/api/v1/log/nothing", 404),
        ("GET", "/tile/0/x001", 404),
        ("GET", "/tile/0/001", 404),
        ("GET", "/tile/entries/000", 404),
    ]
    for method, path, status in cases:
        response = await client.request(method, path)
        assert response.status_code == status, (path, response.text)
        assert response.json()["code"] == status
    same = await client.get("/api/v1/log/proof?firstSize=1&lastSize=1")
    assert same.status_code == 200 and same.json()["hashes"] == []


async def test_retrieve_and_index(client: httpx.AsyncClient, signer: SoftwareSigner) -> None:
    requests = [hashedrekord(signer, b"r%d" % i) for i in range(4)]
    ids = []
    for request in requests:
        ids.append(next(iter((await client.post("/api/v1/log/entries", json=request)).json())))
    query = {"entryUUIDs": [ids[0], ids[1][16:], "cd" * 32], "logIndexes": [2, 99]}
    found = (await client.post("/api/v1/log/entries/retrieve", json=query)).json()
    assert [next(iter(e)) for e in found] == [ids[0], ids[1], ids[2]]
    found = (
        await client.post("/api/v1/log/entries/retrieve", json={"entries": [requests[3]]})
    ).json()
    assert [next(iter(e)) for e in found] == [ids[3]]
    too_many = {"logIndexes": list(range(11))}
    response = await client.post("/api/v1/log/entries/retrieve", json=too_many)
    assert response.status_code == 422
    digest = requests[1]["spec"]["data"]["hash"]["value"]
    for text in (digest, f"sha256:{digest}", f"sha256:{digest.upper()}"):
        got = (await client.post("/api/v1/index/retrieve", json={"hash": text})).json()
        assert got == [ids[1]]
    bad = await client.post("/api/v1/index/retrieve", json={"email": "a@b"})
    assert bad.status_code == 400


async def test_tiles(client: httpx.AsyncClient, signer: SoftwareSigner) -> None:
    requests = [hashedrekord(signer, b"t%d" % i) for i in range(300)]
    await asyncio.gather(*(client.post("/api/v1/log/entries", json=r) for r in requests))
    info = (await client.get("/api/v1/log")).json()
    checkpoint = await client.get("/checkpoint")
    assert checkpoint.text == info["signedTreeHead"]
    assert checkpoint.headers["cache-control"] == "no-cache"
    full = await client.get("/tile/0/000")
    assert full.headers["cache-control"] == "public, max-age=31536000, immutable"
    partial = await client.get("/tile/0/001.p/44")
    assert partial.status_code == 200 and len(partial.content) == 44 * 32
    assert (await client.get("/tile/0/001.p/45")).status_code == 404
    assert (await client.get("/tile/0/001.p/20")).content == partial.content[: 20 * 32]
    leaves = split_tile(Tile(0, 0), full.content) + split_tile(Tile(0, 1, 44), partial.content)
    bodies = parse_entry_bundle((await client.get("/tile/entries/000")).content, 256)
    bodies += parse_entry_bundle((await client.get("/tile/entries/001.p/44")).content, 44)
    assert [merkle.leaf_hash(b) for b in bodies] == leaves
    assert merkle.root(leaves).hex() == info["rootHash"]
    level1 = (await client.get("/tile/1/000.p/1")).content
    assert level1 == merkle.root(leaves[:256])
