"""Alembic, configured in code: no ``alembic.ini``; scripts live in ``store/migrations``.

``upgrade(engine)`` runs on every start-up. On PostgreSQL it holds a transaction-scoped advisory
lock so that several nodes starting together migrate once; on SQLite the write transaction's
``BEGIN IMMEDIATE`` serialises them the same way.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_ADVISORY_LOCK_KEY = 0x5AFE6A4D  # "safeguard migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    head: str | None = ScriptDirectory.from_config(alembic_config()).get_current_head()
    return head


def _run(engine: Engine, action: str, revision: str) -> None:
    with engine.connect() as conn:
        conn.execution_options(safeguard_write=True)
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK_KEY})
            config = alembic_config(conn)
            if action == "upgrade":
                command.upgrade(config, revision)
            else:
                command.downgrade(config, revision)


def upgrade(engine: Engine, revision: str = "head") -> None:
    _run(engine, "upgrade", revision)


def downgrade(engine: Engine, revision: str) -> None:
    _run(engine, "downgrade", revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        revision: str | None = MigrationContext.configure(conn).get_current_revision()
        return revision
