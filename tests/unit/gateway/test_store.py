"""The gateway's tables on SQLite and on real PostgreSQL: pull log, audit, pending tags, referrers
index and quarantine journal behave the same on both."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from safeguard.core.digest import Digest
from safeguard.core.manifest import Descriptor
from safeguard.gateway.audit import AuditEvent, AuditLog
from safeguard.gateway.grace import PendingTags
from safeguard.gateway.pulllog import PullLog, PullRecord, last_pulls
from safeguard.gateway.quarantine import QuarantineJournal, QuarantineView
from safeguard.gateway.referrers import ReferrerIndex
from safeguard.gateway.upstream import InProcessUpstream
from safeguard.store import Database, default_database_url, open_database
from tests.fixtures.builtin import fresh_postgres_database

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


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


async def test_pull_log_last_pulls(db: Database) -> None:
    log = PullLog(db)
    now = datetime.now(UTC)
    for i, (digest, when) in enumerate([(D1, now - timedelta(hours=2)), (D1, now), (D2, now)]):
        log.record(PullRecord("a/b", f"t{i}", digest, "10.0.0.1", f"user{i}", "ua", at=when))
    log.record(PullRecord("a/b", "gone", None, "10.0.0.2", "x", "ua", at=now - timedelta(days=1)))
    assert await log.flush() == 4
    found = {p.digest: p for p in last_pulls(db, "a/b")}
    assert set(found) == {D1, D2, None}
    assert found[D1].pulls == 2 and found[D1].identity == "user1"
    assert found[None].reference == "gone"
    assert [p.digest for p in last_pulls(db, "a/b", D2)] == [D2]


def test_audit_pending_and_journal(db: Database) -> None:
    audit = AuditLog(db)
    audit.write(AuditEvent("push", "denied", "a/b", "unsigned", tag="v1", digest=D1, client="c"))
    audit.write(AuditEvent("retag", "done", "a/b", "why", tag="v1", old_digest=D1, digest=D2))
    events = audit.events("a/b")
    assert [e.action for e in events] == ["retag", "push"]
    assert events[0].old_digest == D1 and events[0].at.tzinfo is not None
    audit.finding("unsigned-push-expired", "a/b", "v1", D1, "moved")

    pending = PendingTags(db)
    first = pending.add("a/b", "v1", D1, "application/x", 0, "c", "ci")
    second = pending.add("a/b", "v1", D2, "application/x", 0, "c", "ci")
    states = {p.digest: p.state for p in pending.entries("a/b")}
    assert states == {D1: "superseded", D2: "pending"}
    assert pending.has_digest("a/b", D2) and not pending.has_digest("a/b", D1)
    assert [p.id for p in pending.due(datetime.now(UTC) + timedelta(seconds=1))] == [second.id]
    assert pending.claim(second.id, "releasing") and not pending.claim(second.id, "releasing")
    pending.finish(second.id, "released")
    assert first.id != second.id

    journal = QuarantineJournal(db)
    until = datetime.now(UTC) + timedelta(days=1)
    entry = journal.plan(kind="move", repository="a/b", tag="v1", digest=D1,
                         namespace="quarantine", until=until, reason="r", actor="x",
                         serve=True)  # fmt: skip
    journal.advance(entry.id, "copied", referrers=[D2])
    journal.advance(entry.id, "verified")
    journal.advance(entry.id, "removed")
    view = QuarantineView(journal)
    view.refresh()
    served = view.lookup("a/b", "v1")
    assert (
        served is not None
        and served.referrers == (D2,)
        and served.target_repository == ("quarantine/a/b")
    )
    assert view.lookup("a/b", D1) is not None and view.lookup("a/b", "v2") is None
    assert journal.due_for_purge(datetime.now(UTC)) == []
    assert [e.id for e in journal.due_for_purge(until + timedelta(seconds=1))] == [entry.id]


async def test_referrer_index(db: Database, tmp_path: Path) -> None:
    from safeguard.registry import create_registry_app

    index = ReferrerIndex(db, InProcessUpstream(create_registry_app(db, tmp_path / "r")))
    descriptor = Descriptor(
        "application/vnd.oci.image.manifest.v1+json", Digest.parse(D2), 10, {"a": "b"}, "x/y"
    )
    index._insert("a/b", D1, descriptor)
    index._insert("a/b", D1, descriptor)  # twice: once recorded
    assert index._rows("a/b", D1) == [descriptor]
    assert await index.subject_of("a/b", D2) == D1
    await index.forget_subject("a/b", D1)
    assert index._rows("a/b", D1) == []
