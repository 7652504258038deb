"""The signing room's store on SQLite and on real PostgreSQL: batched audit events (ids come back
in submission order), custody transitions and their history, and TOTP enrolments whose counter
and failure count survive concurrent checks (one code accepted once, even when raced)."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from safeguard.core.errors import SafeguardError
from safeguard.keys.lifecycle import KeyState
from safeguard.signing import totp
from safeguard.signing.audit import AuditEvent, AuditLog
from safeguard.signing.custody import KeyCustody
from safeguard.signing.errors import TOTPReplayed
from safeguard.signing.release import ReleaseEnrolments
from safeguard.store import Database, default_database_url, open_database
from tests.fixtures.builtin import fresh_postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = open_database(default_database_url(tmp_path))
        yield database
        database.dispose()
        return
    server: str = request.getfixturevalue("postgres_url")
    with fresh_postgres_database(server) as url:
        database = open_database(url)
        yield database
        database.dispose()


def pem() -> bytes:
    return (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


async def test_audit_batches_keep_order(db: Database) -> None:
    audit = AuditLog(db)
    try:
        events = [
            AuditEvent(
                action="sign",
                client="c",
                identity=f"id-{i}",
                log_indexes=[i, i + 1],
                claims={"n": i, "name": "ü"},
            )
            for i in range(200)
        ]
        ids = await asyncio.gather(*(audit.record(e) for e in events))
        assert len(set(ids)) == 200
        stored = {e["id"]: e for e in audit.events(limit=None)}
        for event, event_id in zip(events, ids, strict=True):
            assert stored[event_id]["identity"] == event.identity
            assert stored[event_id]["logIndexes"] == event.log_indexes
            assert stored[event_id]["claims"]["name"] == "ü"
        assert audit.events(identity="id-7", limit=5)[0]["claims"]["n"] == 7
        long_reason = AuditEvent(action="sign", client="x" * 200, reason="r" * 20000)
        stored_id = await audit.record(long_reason)
        assert len(audit.events(limit=1)[0]["reason"]) == 8192 and stored_id
    finally:
        audit.close()


def test_custody_transitions(db: Database) -> None:
    custody = KeyCustody(db, refresh_interval=0)
    record = custody.register("k1", pem(), actor="ops", ref="/keys/cosign.key")
    at = datetime(2026, 6, 30, tzinfo=UTC)
    old, new = custody.rotate("k1", successor="k2", at=at, actor="ops", public_key=pem())
    assert old.successor == "k2" and new.predecessor == "k1"
    assert custody.key_status_at(record.key_id, at - timedelta(seconds=1)) is KeyState.VALID
    assert custody.key_status_at(record.key_id, at) is KeyState.RETIRED
    custody.revoke("k1", at=at + timedelta(days=1), actor="sec", reason="leak")
    assert custody.key_status_at(record.key_id, at) is KeyState.FLAG_FOR_REVIEW
    assert custody.key_status_at(record.key_id, at + timedelta(days=2)) is KeyState.REVOKED
    assert custody.key_status_at("unknown", at) is KeyState.UNKNOWN
    assert [h["action"] for h in custody.history()] == ["register", "register", "rotate", "revoke"]
    with pytest.raises(SafeguardError) as info:
        custody.register("k1", pem(), actor="ops")
    assert info.value.code == "CUSTODY_KEY_EXISTS"
    with pytest.raises(SafeguardError) as pin:
        custody.register("k3", pem(), actor="ops", ref="pkcs11:token=t;object=k?pin-value=1234")
    assert pin.value.code == "CUSTODY_TRANSITION_INVALID"


def test_a_totp_code_is_accepted_once_under_races(db: Database) -> None:
    clock = [1_800_000_000.0]
    enrolments = ReleaseEnrolments(db, b"k" * 32, clock=lambda: clock[0])
    enrolment = enrolments.enrol("jdoe", "release-engineer-jdoe", actor="admin")
    secret_b32 = enrolment.uri.split("secret=")[1].split("&")[0]
    secret = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    code = totp.totp(secret, clock[0])
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt() -> None:
        try:
            enrolments.check("release-engineer-jdoe", code)
            result = "ok"
        except SafeguardError as exc:
            result = exc.code
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 1
    assert outcomes.count("RELEASE_TOTP_REPLAYED") == 7
    with pytest.raises(TOTPReplayed):
        enrolments.check("release-engineer-jdoe", code)
    clock[0] += 30
    name, counter = enrolments.check("release-engineer-jdoe", totp.totp(secret, clock[0]))
    assert name == "jdoe" and counter == totp.counter_at(clock[0])
    # Locked after five failures, for fifteen minutes of the (injected) clock.
    for _ in range(5):
        with pytest.raises(SafeguardError):
            enrolments.check("release-engineer-jdoe", "000000")
    with pytest.raises(SafeguardError) as locked:
        enrolments.check("release-engineer-jdoe", totp.totp(secret, clock[0] + 30))
    assert locked.value.code == "RELEASE_TOTP_LOCKED"
    clock[0] += 16 * 60
    enrolments.check("release-engineer-jdoe", totp.totp(secret, clock[0]))
