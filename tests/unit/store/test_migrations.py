"""Migrations build exactly the schema the models declare, on SQLite and on real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from safeguard.core.errors import InvalidInput, Unreachable
from safeguard.store import default_database_url, make_engine, open_database
from safeguard.store.migrate import current_revision, downgrade, head_revision, upgrade
from safeguard.store.models import metadata
from tests.fixtures.builtin import fresh_postgres_database

REGISTRY_TABLES = {
    "registry_repositories",
    "registry_manifests",
    "registry_tags",
    "registry_blob_links",
    "registry_uploads",
}


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


def _diff(engine: sa.Engine) -> list[object]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, metadata))


def test_upgrade_head_matches_models(database_url: str) -> None:
    db = open_database(database_url)
    try:
        assert current_revision(db.engine) == head_revision()
        assert set(sa.inspect(db.engine).get_table_names()) >= REGISTRY_TABLES
        assert _diff(db.engine) == []
    finally:
        db.dispose()


def test_upgrade_is_idempotent_and_downgrade_removes_tables(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        upgrade(engine)  # a second start-up is a no-op
        downgrade(engine, "base")
        assert current_revision(engine) is None
        assert not REGISTRY_TABLES & set(sa.inspect(engine).get_table_names())
        upgrade(engine)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path: Path) -> None:
    db = open_database(default_database_url(tmp_path))
    try:
        with db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert (tmp_path / "safeguard.db").exists()
    finally:
        db.dispose()


def test_tag_order_is_bytewise_on_every_backend(database_url: str) -> None:
    from safeguard.store.registry_models import Repository

    db = open_database(database_url)
    try:
        names = ["b", "B", "a", "_x", "Z", "a-b", "a.b", "a0"]
        with db.write() as conn:
            conn.execute(sa.insert(Repository), [{"name": n} for n in names])
        with db.read() as conn:
            got = conn.execute(sa.select(Repository.name).order_by(Repository.name)).scalars()
            assert list(got) == sorted(names)
            after = conn.execute(
                sa.select(Repository.name).where(Repository.name > "Z").order_by(Repository.name)
            ).scalars()
            assert list(after) == sorted(n for n in names if n > "Z")
    finally:
        db.dispose()


def test_bad_urls_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        make_engine("not a url")
    with pytest.raises(InvalidInput):
        make_engine("mysql://localhost/x")
    with pytest.raises(Unreachable):
        open_database("postgresql+psycopg://nobody@127.0.0.1:1/none")
