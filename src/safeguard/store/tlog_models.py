"""Tables of the private transparency log (``safeguard.tlog``): state, entries, nodes, checkpoints.

The log is append-only and every append is one transaction that writes the new entries, the new
Merkle node hashes, the new signed checkpoint and the new ``tlog_state`` row together, so a
checkpoint never covers entries that were not committed, and no committed checkpoint is ever lost
(RFC 9162 section 2.1 for the tree; c2sp.org/tlog-checkpoint for the checkpoint notes).

* ``tlog_state``: the one row (``id = 1``) that says how big the log is; writers lock it
  (``SELECT … FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) to sequence appends.
* ``tlog_entries``: one row per leaf: the canonical Rekor body, its leaf hash (unique: the
  duplicate check), integrated time and signed entry timestamp.
* ``tlog_nodes``: the hash of every perfect subtree ``(level, idx)``; written once, never changed.
* ``tlog_checkpoints``: every signed checkpoint the log has published, one per tree size.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from safeguard.store.base import Base, utcnow

STATE_ROW_ID = 1


class TlogState(Base):
    __tablename__ = "tlog_state"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    tree_id: Mapped[int] = mapped_column(sa.BigInteger)
    origin: Mapped[str] = mapped_column(sa.String(255))
    public_key: Mapped[bytes] = mapped_column(sa.LargeBinary)
    size: Mapped[int] = mapped_column(sa.BigInteger)
    root_hash: Mapped[bytes] = mapped_column(sa.LargeBinary)
    checkpoint: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class TlogEntry(Base):
    __tablename__ = "tlog_entries"

    idx: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    leaf_hash: Mapped[bytes] = mapped_column(sa.LargeBinary, unique=True)
    body: Mapped[bytes] = mapped_column(sa.LargeBinary)
    integrated_time: Mapped[int] = mapped_column(sa.BigInteger)
    kind: Mapped[str] = mapped_column(sa.String(32))
    api_version: Mapped[str] = mapped_column(sa.String(16))
    data_hash: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    signed_entry_timestamp: Mapped[bytes] = mapped_column(sa.LargeBinary)


class TlogNode(Base):
    __tablename__ = "tlog_nodes"
    __table_args__ = ({"sqlite_with_rowid": False},)

    level: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(sa.LargeBinary)


class TlogCheckpoint(Base):
    __tablename__ = "tlog_checkpoints"

    size: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(sa.LargeBinary)
    note: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
