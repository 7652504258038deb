"""Alembic environment: runs migrations on the connection ``safeguard.store.migrate`` passes in
(``config.attributes["connection"]``), or on ``-x url=...`` when run from the alembic CLI."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from safeguard.store.models import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("pass the database with: alembic -x url=sqlite:///data/safeguard.db ...")
    from safeguard.store.engine import make_engine

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) mode is not supported; run against a database")
run_migrations_online()
