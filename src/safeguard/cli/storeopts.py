"""The options that say where the store is, shared by every command that opens it.

``--data-dir`` (env ``SAFEGUARD_DATA_DIR``, default ``./data``) holds the SQLite database
``safeguard.db``; ``--database`` (env ``SAFEGUARD_DATABASE_URL``) points at another database
instead, e.g. ``postgresql+psycopg://user@host/db``: the same two options, defaults and
environment variables as ``safeguard serve``, so a command finds the store the server uses.
Opening the store runs pending migrations (``safeguard.store.open_database``); a database that
does not answer is ``Unreachable`` (exit 3).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from safeguard.store import Database, default_database_url, open_database

DATA_DIR_OPTION = typer.Option(
    Path("data"),
    "--data-dir",
    envvar="SAFEGUARD_DATA_DIR",
    help="the node's data directory (blobs and SQLite live here)",
)
DATABASE_OPTION = typer.Option(
    None,
    "--database",
    envvar="SAFEGUARD_DATABASE_URL",
    help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db (default: SQLite in data dir)",
)


def database_url(data_dir: Path, database: str | None) -> str:
    """``--database`` if given, else the SQLite file in ``--data-dir``."""
    return database or default_database_url(data_dir)


@contextmanager
def open_store(data_dir: Path, database: str | None) -> Iterator[Database]:
    """Open (and migrate) the store named by the options; dispose of it afterwards."""
    db = open_database(database_url(data_dir, database))
    try:
        yield db
    finally:
        db.dispose()
