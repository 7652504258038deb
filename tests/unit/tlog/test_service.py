"""The log service without HTTP: recovery, key checks, failed commits, several writers sharing
one database (SQLite file, PostgreSQL with the state-row lock), keys, and the node cache."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from safeguard.core.errors import Unreachable
from safeguard.keys import SoftwareSigner
from safeguard.keys.cosign_keys import generate_key_pair
from safeguard.keys.errors import KeyUnsupported
from safeguard.store import Database, default_database_url, open_database
from safeguard.tlog import merkle, storage
from safeguard.tlog.checkpoint import open_checkpoint
from safeguard.tlog.entries import PreparedEntry, prepare_entry
from safeguard.tlog.logkey import LogKey, generate_log_key, load_log_key, load_or_create, verify_set
from safeguard.tlog.service import (
    DuplicateEntry,
    LogConfig,
    LogCorrupted,
    LogKeyMismatch,
    TransparencyLog,
    set_payload,
)
from tests.fixtures.builtin import fresh_postgres_database
from tests.unit.tlog.tlog_helpers import hashedrekord

SIGNER = SoftwareSigner.generate()


def entries(prefix: str, count: int) -> list[PreparedEntry]:
    return [prepare_entry(hashedrekord(SIGNER, f"{prefix}{i}".encode())) for i in range(count)]


@pytest.fixture
def fresh_postgres(postgres_url: str) -> Iterator[str]:
    with fresh_postgres_database(postgres_url) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return default_database_url(tmp_path)
    url: str = request.getfixturevalue("fresh_postgres")
    return url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = open_database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def key(tmp_path: Path) -> LogKey:
    return generate_log_key(tmp_path / "log.pem")


def _check_tree(log: TransparencyLog, db: Database) -> None:
    """The stored leaves hash to the stored checkpoint, which verifies; indexes are 0..n-1."""
    head = log.head()
    with db.read() as conn:
        rows = storage.entries_range(conn, 0, head.size + 10)
    assert [r.index for r in rows] == list(range(head.size))
    assert merkle.root([merkle.leaf_hash(r.body) for r in rows]) == head.root_hash
    open_checkpoint(head.checkpoint.encode(), [log.key.note_verifier(log.note_name)])


def test_restart_recovers_state(db: Database, key: LogKey) -> None:
    log = TransparencyLog(db, key)
    results = [f.result() for f in [log.submit(e) for e in entries("a", 40)]]
    head = log.head()
    log.close()
    again = TransparencyLog(db, key)
    assert again.head() == head
    assert again.tree_id == log.tree_id
    for r in results[:5]:
        got_head, proof = again.proof_for(again.entry_by_index(r.entry.index))
        merkle.verify_inclusion(
            r.entry.leaf_hash, r.entry.index, got_head.size, proof, head.root_hash
        )
    more = again.add_sync(entries("b", 1)[0])
    assert more.entry.index == 40
    assert set_payload(more.entry.body, more.entry.integrated_time, key.log_id_hex, 40)
    assert verify_set(
        key.public_key,
        more.entry.signed_entry_timestamp,
        set_payload(more.entry.body, more.entry.integrated_time, key.log_id_hex, 40),
    )
    _check_tree(again, db)
    again.close()


def test_another_key_is_refused(db: Database, key: LogKey, tmp_path: Path) -> None:
    TransparencyLog(db, key).close()
    with pytest.raises(LogKeyMismatch):
        TransparencyLog(db, generate_log_key(tmp_path / "other.pem"))


def test_corrupted_nodes_are_detected_at_start(db: Database, key: LogKey) -> None:
    log = TransparencyLog(db, key)
    [f.result() for f in [log.submit(e) for e in entries("c", 9)]]
    log.close()
    with db.write() as conn:
        conn.execute(
            sa.update(storage.NODES)
            .where(storage.NODES.c.level == 0, storage.NODES.c.idx == 8)
            .values(hash=b"\x00" * 32)
        )
    with pytest.raises(LogCorrupted):
        TransparencyLog(db, key)


def test_failed_commit_loses_nothing_and_log_continues(
    db: Database, key: LogKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = TransparencyLog(db, key)
    log.add_sync(entries("d", 1)[0])
    real = storage.insert_checkpoint

    def broken(*args: object, **kwargs: object) -> None:
        raise sa.exc.OperationalError("INSERT", {}, Exception("disk full"))

    monkeypatch.setattr(storage, "insert_checkpoint", broken)
    failed = [log.submit(e) for e in entries("e", 5)]
    for future in failed:
        with pytest.raises(Unreachable):
            future.result(10)
    monkeypatch.setattr(storage, "insert_checkpoint", real)
    assert log.head().size == 1
    retried = [f.result(10) for f in [log.submit(e) for e in entries("e", 5)]]
    assert sorted(r.entry.index for r in retried) == [1, 2, 3, 4, 5]
    _check_tree(log, db)
    log.close()


def test_duplicates_in_one_batch_and_across_batches(db: Database, key: LogKey) -> None:
    log = TransparencyLog(db, key, LogConfig(max_wait=0.05))
    entry = entries("f", 1)[0]
    futures = [log.submit(entry) for _ in range(3)]
    outcomes = []
    for future in futures:
        try:
            outcomes.append(future.result(10).entry.index)
        except DuplicateEntry as exc:
            outcomes.append(("dup", exc.index))
    assert outcomes.count(0) == 1 and outcomes.count(("dup", 0)) == 2
    with pytest.raises(DuplicateEntry) as info:
        log.add_sync(entry)
    assert info.value.uuid == log.entry_id(entry.leaf_hash)
    log.close()


def test_two_writers_share_one_database(database_url: str, key: LogKey) -> None:
    """Two service instances (as two processes would) append concurrently: the state-row lock
    (PostgreSQL) or BEGIN IMMEDIATE (SQLite) keeps indexes contiguous and the tree consistent."""
    dbs = [open_database(database_url), open_database(database_url)]
    logs = [TransparencyLog(d, key, LogConfig(refresh_interval=0.0)) for d in dbs]
    indexes: list[int] = []
    lock = threading.Lock()

    def work(log: TransparencyLog, prefix: str) -> None:
        for chunk in range(6):
            batch = entries(f"{prefix}{chunk}-", 25)
            got = [f.result(30).entry.index for f in [log.submit(e) for e in batch]]
            with lock:
                indexes.extend(got)

    threads = [threading.Thread(target=work, args=(lg, f"w{i}-")) for i, lg in enumerate(logs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(indexes) == list(range(300))
    for log, database in zip(logs, dbs, strict=True):
        log.refresh(force=True)
        assert log.head().size == 300
        _check_tree(log, database)
        proof = log.inclusion_proof(17, 300)
        leaf = log.entry_by_index(17).leaf_hash
        merkle.verify_inclusion(leaf, 17, 300, proof, log.head().root_hash)
        log.close()
        database.dispose()


def test_small_tile_cache_reads_back_from_the_database(db: Database, key: LogKey) -> None:
    log = TransparencyLog(db, key, LogConfig(tile_cache=1))
    [f.result() for f in [log.submit(e) for e in entries("g", 1100)]]
    log.close()
    reopened = TransparencyLog(db, key, LogConfig(tile_cache=1))
    head = reopened.head()
    for index in (0, 300, 700, 1099, 5, 1024):
        leaf = reopened.entry_by_index(index).leaf_hash
        merkle.verify_inclusion(
            leaf, index, head.size, reopened.inclusion_proof(index, head.size), head.root_hash
        )
    assert reopened.cache.misses > 0
    for size1 in (1, 255, 256, 700):
        proof = reopened.consistency_proof(size1, head.size)
        merkle.verify_consistency(size1, head.size, proof, reopened.root_at(size1), head.root_hash)
    reopened.close()


def test_ed25519_log_key(tmp_path: Path, db: Database) -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / "ed.pem"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key = load_log_key(path)
    assert key.details == "PKIX_ED25519"
    log = TransparencyLog(db, key)
    result = log.add_sync(entries("h", 1)[0])
    payload = set_payload(result.entry.body, result.entry.integrated_time, key.log_id_hex, 0)
    assert verify_set(key.public_key, result.entry.signed_entry_timestamp, payload)
    signed = open_checkpoint(result.head.checkpoint.encode(), [key.note_verifier(log.note_name)])
    assert signed.checkpoint.size == 1
    # The note's key ID is the Rekor one: SHA-256 of the DER key, first four bytes.
    assert signed.note.verified[0].key_id == int.from_bytes(key.log_id[:4], "big")
    log.close()


def test_log_key_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "pw")
    key_path, _ = generate_key_pair(tmp_path / "cosign")
    assert load_log_key(key_path).details == "PKIX_ECDSA_P256_SHA_256"
    made = load_or_create(None, tmp_path / "data")
    assert (tmp_path / "data/tlog/log-key.pem").stat().st_mode & 0o777 == 0o600
    assert load_or_create(None, tmp_path / "data").der == made.der
    p384 = SoftwareSigner.generate(__import__("safeguard.keys").keys.Algorithm.ECDSA_P384_SHA384)
    with pytest.raises(KeyUnsupported):
        LogKey(p384)
    bad = tmp_path / "bad.pem"
    bad.write_text("nope")
    with pytest.raises(Exception, match="cannot load"):
        load_log_key(bad)


def test_set_payload_is_rfc8785() -> None:
    import rfc8785

    body = json.dumps({"a": "<&>/"}).encode()
    doc = {
        "body": __import__("base64").b64encode(body).decode(),
        "integratedTime": 7,
        "logID": "ab" * 32,
        "logIndex": 3,
    }
    assert set_payload(body, 7, "ab" * 32, 3) == rfc8785.dumps(doc)
    assert hashlib.sha256(set_payload(b"", 0, "", 0)).digest()
