"""The one declarative ``Base`` every room's models share (SQLAlchemy 2, typed ``Mapped``).

A fixed naming convention gives every index and constraint a deterministic name, which Alembic
needs to alter or drop them later (and SQLite's batch mode needs to rebuild tables).
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


def ordered_text(length: int) -> sa.types.TypeEngine[str]:
    """A string column that sorts and compares byte-wise ("ASCIIbetical") on every backend.

    SQLite's default ``BINARY`` collation already does; PostgreSQL would otherwise follow the
    database locale, which breaks tag and catalog pagination (distribution-spec v1.1, "Listing
    Tags": lexical or ASCIIbetical order).
    """
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")
