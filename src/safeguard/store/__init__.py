"""The metadata store: SQLAlchemy 2 models on one shared ``Base`` and Alembic migrations.

SQLite in the data directory is the embedded default; PostgreSQL (``postgresql+psycopg://``) is
the scale-out backend. Every room keeps its tables in its own module (``registry_models`` for the
OCI registry; later rooms add theirs) on the ``Base`` of ``safeguard.store.base``, and lists the
module in ``safeguard.store.models`` so that migrations and their tests see every table.
The schema is only ever changed by a migration under ``safeguard/store/migrations/versions``;
``open_database`` upgrades to ``head`` on start-up.
"""

from safeguard.store.base import Base
from safeguard.store.engine import Database, default_database_url, make_engine, open_database
from safeguard.store.migrate import current_revision, upgrade

__all__ = [
    "Base",
    "Database",
    "current_revision",
    "default_database_url",
    "make_engine",
    "open_database",
    "upgrade",
]
