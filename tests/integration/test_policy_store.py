"""Policy versions on SQLite and real PostgreSQL: apply, no-op, history, diff, rollback, the
active-version cache, stored files, and two processes applying at once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from safeguard.core.errors import InvalidInput, Unreachable
from safeguard.policy import (
    PolicyInvalid,
    PolicyNotApplied,
    PolicyStore,
    PolicyVersionNotFound,
    load_policy,
)
from safeguard.store import Database, default_database_url, make_engine, open_database
from safeguard.store.policy_models import PolicyBlob, PolicyFileRecord
from tests.fixtures.builtin import fresh_postgres_database
from tests.fixtures.policy import policy_dir, variant


@pytest.fixture
def fresh_postgres(postgres_url: str) -> Iterator[str]:
    with fresh_postgres_database(postgres_url) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return default_database_url(tmp_path / "data")
    url: str = request.getfixturevalue("fresh_postgres")
    return url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = open_database(database_url)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return policy_dir(tmp_path)


def test_apply_history_diff_rollback(db: Database, base: Path) -> None:
    store = PolicyStore(db, refresh_interval=0)
    assert store.active() is None and store.history() == []
    with pytest.raises(PolicyNotApplied):
        store.require_active()

    v1 = store.apply(load_policy(base / "example.yaml"), "alice", "first version")
    assert (v1.number, v1.new, v1.author, v1.message) == (1, True, "alice", "first version")
    assert v1.diff.startswith("--- /dev/null\n+++ policy v1\n")
    assert v1.created_at.tzinfo is not None

    same = store.apply(load_policy(base / "example.yaml"), "bob", "again")
    assert (same.number, same.new, same.author) == (1, False, "alice")

    changed = variant(
        ("graceSeconds: 60", "graceSeconds: 120"), ("ref: refs/heads/main", "ref: refs/tags/v*")
    )
    v2 = store.apply(changed, "bob", base_dir=base, source="safeguard.yaml")
    assert (v2.number, v2.new, v2.source) == (2, True, "safeguard.yaml")
    assert "-    graceSeconds: 60\n+    graceSeconds: 120\n" in v2.diff
    assert store.active() == v2 and store.active() is not None

    diff = store.diff(1, 2)
    assert [str(c) for c in diff.changes] == [
        "changed identities team-a-release: oidc.ref",
        "changed registries team-a/**: graceSeconds",
    ]
    assert diff.text == v2.diff
    assert store.diff(2, 2).empty

    v3 = store.rollback(1, "carol")
    assert (v3.number, v3.rollback_of, v3.message, v3.new) == (3, 1, "rollback to version 1", True)
    assert v3.text == v1.text and v3.content_sha256 == v1.content_sha256
    assert store.diff(1, 3).changes == () and store.diff(1, 3).text == ""
    assert store.rollback(1, "carol").new is False  # already active

    history = store.history()
    assert [(v.number, v.author, v.rollback_of) for v in history] == [
        (3, "carol", 1),
        (2, "bob", None),
        (1, "alice", None),
    ]
    assert [v.number for v in store.history(limit=1)] == [3]
    assert store.get(2).text == changed
    assert store.get(2).policy.registries[0].grace_seconds == 120
    assert history[0].to_dict()["rollbackOf"] == 1

    with pytest.raises(PolicyVersionNotFound) as info:
        store.get(9)
    assert info.value.hint == "versions are 1 to 3"


def test_invalid_policies_store_nothing(db: Database, base: Path) -> None:
    store = PolicyStore(db, refresh_interval=0)
    with pytest.raises(PolicyInvalid) as info:
        store.apply(variant(("unsignedPush: reject", "unsginedPush: reject")), "a", base_dir=base)
    assert info.value.issues[0].path == "registries[0].unsginedPush"
    assert store.history() == []
    for author in ("", "  ", "a\nb", "x" * 300):
        with pytest.raises(InvalidInput):
            store.apply(load_policy(base / "example.yaml"), author)
    with pytest.raises(InvalidInput):
        store.apply(load_policy(base / "example.yaml"), "a", "m" * 5000)
    assert store.history() == []


def test_files_are_stored_once_and_versioned(db: Database, base: Path) -> None:
    store = PolicyStore(db, refresh_interval=0)
    v1 = store.apply(load_policy(base / "example.yaml"), "alice")
    assert v1.read("trust/tlog.pub") == (base / "trust" / "tlog.pub").read_bytes()
    with pytest.raises(PolicyVersionNotFound):
        v1.read("nope.pub")
    with db.read() as conn:
        blobs = conn.execute(sa.select(sa.func.count()).select_from(PolicyBlob)).scalar()
    assert blobs == 4

    # The same YAML with a changed key file is a new version, and its diff shows the file.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    new_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (base / "trust" / "tlog.pub").write_bytes(new_pem)
    v2 = store.apply(load_policy(base / "example.yaml"), "bob")
    assert v2.new and v2.number == 2 and v2.sha256 == v1.sha256
    assert v2.content_sha256 != v1.content_sha256
    assert "--- v1:trust/tlog.pub\n+++ v2:trust/tlog.pub\n" in v2.diff
    assert [str(c) for c in store.diff(1, 2).changes] == ["changed files trust/tlog.pub"]
    with db.read() as conn:
        blobs = conn.execute(sa.select(sa.func.count()).select_from(PolicyBlob)).scalar()
        links = conn.execute(sa.select(sa.func.count()).select_from(PolicyFileRecord)).scalar()
    assert (blobs, links) == (5, 8)  # three unchanged files are shared

    # Rolling back restores version 1's file, whatever the disk holds now.
    v3 = store.rollback(1, "carol")
    assert v3.read("trust/tlog.pub") == v1.read("trust/tlog.pub")
    assert v3.content_sha256 == v1.content_sha256


def test_active_is_cached_and_sees_other_writers(db: Database, base: Path) -> None:
    now = [100.0]
    reader = PolicyStore(db, refresh_interval=5.0, clock=lambda: now[0])
    writer = PolicyStore(db)
    assert reader.active() is None
    v1 = writer.apply(load_policy(base / "example.yaml"), "alice")
    assert reader.active() is None  # within the refresh interval: the cached answer
    now[0] += 5.0
    first = reader.active()
    assert first is not None and first.number == v1.number
    now[0] += 10.0
    assert reader.active() is first  # unchanged: the very same object, nothing re-read
    v2 = writer.apply(variant(("graceSeconds: 60", "graceSeconds: 61")), "bob", base_dir=base)
    assert reader.active() is first
    now[0] += 5.0
    current = reader.active()
    assert current is not None and current.number == v2.number
    assert current.policy.registries[0].grace_seconds == 61
    # a store's own apply is visible at once
    v3 = reader.apply(variant(("graceSeconds: 60", "graceSeconds: 62")), "c", base_dir=base)
    assert reader.active() is v3


def test_unreachable_database_is_a_typed_error(tmp_path: Path) -> None:
    db = Database(make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"))
    store = PolicyStore(db, refresh_interval=0)
    try:
        for call in (store.active, store.history, lambda: store.get(1)):
            with pytest.raises(Unreachable) as info:
                call()
            assert info.value.exit_code == 3
        base = policy_dir(tmp_path)
        with pytest.raises(Unreachable):
            store.apply(load_policy(base / "example.yaml"), "alice")
    finally:
        db.dispose()


_WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from safeguard.policy import PolicyStore
    from safeguard.store import open_database

    url, base, tag, count, go = sys.argv[1:6]
    base, count, go = Path(base), int(count), Path(go)
    text = (base / "example.yaml").read_text()
    db = open_database(url)
    store = PolicyStore(db, refresh_interval=0)
    while not go.exists():
        time.sleep(0.005)
    for i in range(count):
        version = store.apply(
            text.replace("graceSeconds: 60", f"graceSeconds: {1000 * int(tag) + i + 1}"),
            f"writer-{tag}", base_dir=base,
        )
        assert version.new, version.number
        print(version.number, flush=True)
    db.dispose()
    """
)


def test_two_processes_never_share_a_version_number(
    database_url: str, base: Path, tmp_path: Path
) -> None:
    open_database(database_url).dispose()  # migrate once, before the race
    go = tmp_path / "go"
    count = 12
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, database_url, str(base), tag, str(count), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for tag in ("1", "2")
    ]
    time.sleep(0.5)
    go.touch()
    numbers: list[int] = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        numbers += [int(n) for n in out.split()]
    assert sorted(numbers) == list(range(1, 2 * count + 1))
    db = open_database(database_url)
    try:
        history = PolicyStore(db).history()
        assert [v.number for v in history] == list(range(2 * count, 0, -1))
        assert {v.author for v in history} == {"writer-1", "writer-2"}
    finally:
        db.dispose()
