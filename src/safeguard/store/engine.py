"""Engines and connections for the store: SQLite by default, PostgreSQL to scale out.

SQLite runs in WAL mode (readers never wait for the writer) with a busy timeout, foreign keys on,
and ``BEGIN IMMEDIATE`` for write transactions so that two writers queue on the busy timeout
instead of failing with "database is locked" when a read lock cannot be upgraded.
PostgreSQL is used through psycopg 3 (``postgresql+psycopg://``) with pre-ping on a small pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from safeguard.core.errors import InvalidInput, Unreachable

DB_FILENAME = "safeguard.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
_WRITE = "safeguard_write"


def default_database_url(data_dir: Path) -> str:
    """``sqlite:///<data-dir>/safeguard.db`` with an absolute path."""
    return f"sqlite:///{(Path(data_dir).resolve() / DB_FILENAME)}"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` with the settings this module describes."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise InvalidInput(
            f"invalid database URL: {exc}",
            hint="use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB",
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed, **kwargs)
    if backend == "postgresql":
        options: dict[str, Any] = {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 30}
        options.update(kwargs)
        return sa.create_engine(parsed, **options)
    raise InvalidInput(
        f"unsupported database backend {backend!r}",
        hint="use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB",
    )


def _sqlite_engine(url: sa.URL, **kwargs: Any) -> Engine:
    memory = url.database in (None, "", ":memory:")
    options: dict[str, Any] = {
        "connect_args": {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    }
    if memory:
        options["poolclass"] = StaticPool
    else:
        Path(str(url.database)).parent.mkdir(parents=True, exist_ok=True)
        options.update(pool_size=20, max_overflow=40)
    options.update(kwargs)
    engine = sa.create_engine(url, **options)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN, instead of pysqlite's own logic.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


class Database:
    """An engine plus the two ways the application touches it: a read and a write transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that commits on success and rolls back on any exception."""
        with self.engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        self.engine.dispose()


def open_database(url: str, *, migrate: bool = True) -> Database:
    """Connect to ``url`` and (by default) upgrade its schema to the newest migration."""
    from safeguard.store.migrate import upgrade

    engine = make_engine(url)
    try:
        if migrate:
            upgrade(engine)
    except sa.exc.OperationalError as exc:
        engine.dispose()
        raise Unreachable(
            f"cannot open the database: {exc.orig}",
            hint="check the --database URL and that the server is running",
        ) from exc
    return Database(engine)
