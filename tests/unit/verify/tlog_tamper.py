"""Tampering with a stopped log's SQLite database, as a log operator (or an attacker) could.

Shared by the online log check's unit and integration tests. Each function opens the data
directory's database, changes it in one transaction and closes it; the log must not be running
(it caches entries and answers), so tests restart it afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from safeguard.store.engine import default_database_url, open_database
from safeguard.tlog import storage


def rewrite_entry(data_dir: Path, index: int, **values: Any) -> None:
    """Change columns of one stored entry (``body=``, ``integrated_time=``); ``body`` may be a
    function of the old body."""
    db = open_database(default_database_url(data_dir), migrate=False)
    try:
        with db.write() as conn:
            old = conn.execute(
                sa.select(storage.ENTRIES.c.body).where(storage.ENTRIES.c.idx == index)
            ).scalar_one()
            if callable(values.get("body")):
                values["body"] = values["body"](old)
            conn.execute(
                sa.update(storage.ENTRIES).where(storage.ENTRIES.c.idx == index).values(**values)
            )
    finally:
        db.dispose()


def truncate(data_dir: Path, keep: int) -> None:
    """Cut the log back to its first ``keep`` entries: entries, tree nodes, checkpoints and the
    state row, so that it serves its old checkpoint of size ``keep`` as the newest."""
    db = open_database(default_database_url(data_dir), migrate=False)
    try:
        with db.write() as conn:
            conn.execute(sa.delete(storage.ENTRIES).where(storage.ENTRIES.c.idx >= keep))
            for level in range(64):
                conn.execute(
                    sa.delete(storage.NODES).where(
                        storage.NODES.c.level == level, storage.NODES.c.idx >= keep >> level
                    )
                )
            conn.execute(sa.delete(storage.CHECKPOINTS).where(storage.CHECKPOINTS.c.size > keep))
            note, root = conn.execute(
                sa.select(storage.CHECKPOINTS.c.note, storage.CHECKPOINTS.c.root_hash).where(
                    storage.CHECKPOINTS.c.size == keep
                )
            ).one()
            storage.update_state(conn, keep, root, note)
    finally:
        db.dispose()
