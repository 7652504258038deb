"""Tables of the policy room (``safeguard.policy.store``): every applied version, kept forever.

* ``policy_versions``: one row per applied version, numbered 1, 2, 3… with no gaps. It keeps the
  YAML exactly as applied (comments and all), the normalised JSON every service reads, the sha256
  of the text and of the text plus its files (``content_sha256``: applying identical content is
  a no-op), who applied it and why, the unified diff against the previous version, and, for a
  rollback, which version it restored. Numbers are assigned under a lock (PostgreSQL advisory
  lock; SQLite ``BEGIN IMMEDIATE``) and are the primary key, so two writers can never share one.
* ``policy_blobs``: the public files policies refer to (keys, trusted roots, CA certificates,
  JWKS), content-addressed by sha256 so that unchanged files are stored once.
* ``policy_files``: which file (by the path the policy wrote) each version refers to.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from safeguard.store.base import Base, utcnow

PATH_LENGTH = 1024


class PolicyVersionRecord(Base):
    __tablename__ = "policy_versions"

    number: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    author: Mapped[str] = mapped_column(sa.String(255))
    message: Mapped[str | None] = mapped_column(sa.Text)
    source: Mapped[str | None] = mapped_column(sa.String(PATH_LENGTH))
    text: Mapped[str] = mapped_column(sa.Text)
    normalized: Mapped[str] = mapped_column(sa.Text)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    content_sha256: Mapped[str] = mapped_column(sa.String(64))
    diff: Mapped[str] = mapped_column(sa.Text)
    rollback_of: Mapped[int | None] = mapped_column(sa.Integer)


class PolicyBlob(Base):
    __tablename__ = "policy_blobs"

    sha256: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    content: Mapped[bytes] = mapped_column(sa.LargeBinary)


class PolicyFileRecord(Base):
    __tablename__ = "policy_files"

    version: Mapped[int] = mapped_column(
        sa.ForeignKey("policy_versions.number", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(sa.String(PATH_LENGTH), primary_key=True)
    sha256: Mapped[str] = mapped_column(sa.ForeignKey("policy_blobs.sha256"), index=True)
