"""The log's storage in the SQLAlchemy store, and the in-process cache of its node hashes.

``SqlHashStore`` implements ``safeguard.tlog.merkle.HashStore`` over the ``tlog_nodes`` table:
every proof or root is one ``SELECT … WHERE (level, idx) IN (…)`` (RFC 9162 proofs need
O(log n) stored perfect-subtree hashes, named by ``merkle.ProofPlan``). The other functions read
and write the state row, entries and checkpoints (``safeguard.store.tlog_models``); the sequencer
calls the writers inside its one transaction per batch.

``TreeCache`` keeps node hashes in memory so hot proofs need no database read at all:

* every node at level 8 and above (about one per 128 leaves: 2.5 MB for ten million entries);
* level 0 to 7 nodes per C2SP tile (256 leaves and the 255 nodes above them within the tile),
  for the tile still filling up (always) and for an LRU of full tiles, loaded from the database
  on a miss (one range query of leaf hashes, then 255 hashes in Python).

It is a ``HashReader`` too, so ``merkle.read_inclusion_proof(cache, i, n)`` works on it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from safeguard.store.engine import Database
from safeguard.store.tlog_models import (
    STATE_ROW_ID,
    TlogCheckpoint,
    TlogEntry,
    TlogNode,
    TlogState,
)
from safeguard.tlog.merkle import HASH_SIZE, MissingHash, NodeID, node_hash

STATE: Final = cast(sa.Table, TlogState.__table__)
ENTRIES: Final = cast(sa.Table, TlogEntry.__table__)
NODES: Final = cast(sa.Table, TlogNode.__table__)
CHECKPOINTS: Final = cast(sa.Table, TlogCheckpoint.__table__)
TILE_HEIGHT: Final = 8
TILE_WIDTH: Final = 1 << TILE_HEIGHT
_MAX_IN: Final = 500


@dataclass(frozen=True, slots=True)
class LogState:
    """The ``tlog_state`` row: identity of the log and its newest checkpoint."""

    tree_id: int
    origin: str
    public_key: bytes
    size: int
    root_hash: bytes
    checkpoint: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StoredEntry:
    index: int
    leaf_hash: bytes
    body: bytes
    integrated_time: int
    kind: str
    api_version: str
    signed_entry_timestamp: bytes

    @property
    def uuid(self) -> str:
        return self.leaf_hash.hex()


@dataclass(frozen=True, slots=True)
class NewEntry:
    """An entry row the sequencer writes."""

    index: int
    leaf_hash: bytes
    body: bytes
    integrated_time: int
    kind: str
    api_version: str
    data_hash: str | None
    signed_entry_timestamp: bytes


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --- state -----------------------------------------------------------------------------------


_READ_STATE: Final = sa.select(STATE).where(STATE.c.id == STATE_ROW_ID)
_LOCK_STATE: Final = _READ_STATE.with_for_update()


def read_state(conn: Connection, *, for_update: bool = False) -> LogState | None:
    stmt = _LOCK_STATE if for_update and conn.dialect.name == "postgresql" else _READ_STATE
    row = conn.execute(stmt).mappings().first()
    if row is None:
        return None
    return LogState(
        int(row["tree_id"]),
        str(row["origin"]),
        bytes(row["public_key"]),
        int(row["size"]),
        bytes(row["root_hash"]),
        str(row["checkpoint"]),
        _aware(row["created_at"]),
    )


def insert_state(conn: Connection, state: LogState) -> None:
    conn.execute(
        sa.insert(STATE).values(
            id=STATE_ROW_ID,
            tree_id=state.tree_id,
            origin=state.origin,
            public_key=state.public_key,
            size=state.size,
            root_hash=state.root_hash,
            checkpoint=state.checkpoint,
            created_at=state.created_at,
            updated_at=state.created_at,
        )
    )


_UPDATE_STATE: Final = (
    sa.update(STATE)
    .where(STATE.c.id == STATE_ROW_ID)
    .values(
        size=sa.bindparam("new_size"),
        root_hash=sa.bindparam("new_root"),
        checkpoint=sa.bindparam("new_note"),
        updated_at=sa.bindparam("new_time"),
    )
)


def update_state(conn: Connection, size: int, root_hash: bytes, checkpoint: str) -> None:
    conn.execute(
        _UPDATE_STATE,
        {
            "new_size": size,
            "new_root": root_hash,
            "new_note": checkpoint,
            "new_time": datetime.now(UTC),
        },
    )


# --- entries ---------------------------------------------------------------------------------

_ENTRY_COLUMNS: Final = (
    ENTRIES.c.idx,
    ENTRIES.c.leaf_hash,
    ENTRIES.c.body,
    ENTRIES.c.integrated_time,
    ENTRIES.c.kind,
    ENTRIES.c.api_version,
    ENTRIES.c.signed_entry_timestamp,
)
_BY_INDEX: Final = sa.select(*_ENTRY_COLUMNS).where(
    ENTRIES.c.idx.in_(sa.bindparam("ids", expanding=True))
)
_BY_LEAF: Final = sa.select(*_ENTRY_COLUMNS).where(
    ENTRIES.c.leaf_hash.in_(sa.bindparam("ids", expanding=True))
)
_EXISTING: Final = sa.select(ENTRIES.c.leaf_hash, ENTRIES.c.idx).where(
    ENTRIES.c.leaf_hash.in_(sa.bindparam("ids", expanding=True))
)
_RANGE: Final = (
    sa.select(*_ENTRY_COLUMNS)
    .where(ENTRIES.c.idx >= sa.bindparam("start"), ENTRIES.c.idx < sa.bindparam("end"))
    .order_by(ENTRIES.c.idx)
)


def _entry(row: Any) -> StoredEntry:
    return StoredEntry(
        int(row[0]), bytes(row[1]), bytes(row[2]), int(row[3]), row[4], row[5], bytes(row[6])
    )


def _chunks(items: Sequence[Any], size: int = _MAX_IN) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def entries_by_index(conn: Connection, indexes: Sequence[int]) -> dict[int, StoredEntry]:
    out: dict[int, StoredEntry] = {}
    for chunk in _chunks(list(indexes)):
        for row in conn.execute(_BY_INDEX, {"ids": list(chunk)}):
            entry = _entry(row)
            out[entry.index] = entry
    return out


def entries_by_leaf_hash(conn: Connection, leaves: Sequence[bytes]) -> dict[bytes, StoredEntry]:
    out: dict[bytes, StoredEntry] = {}
    for chunk in _chunks(list(leaves)):
        for row in conn.execute(_BY_LEAF, {"ids": list(chunk)}):
            entry = _entry(row)
            out[entry.leaf_hash] = entry
    return out


def entries_range(conn: Connection, start: int, end: int) -> list[StoredEntry]:
    return [_entry(row) for row in conn.execute(_RANGE, {"start": start, "end": end})]


def existing_leaves(conn: Connection, leaves: Sequence[bytes]) -> dict[bytes, int]:
    out: dict[bytes, int] = {}
    for chunk in _chunks(list(leaves)):
        for leaf, idx in conn.execute(_EXISTING, {"ids": list(chunk)}):
            out[bytes(leaf)] = int(idx)
    return out


def indexes_by_data_hash(conn: Connection, data_hash: str, limit: int = 1000) -> list[int]:
    stmt = (
        sa.select(ENTRIES.c.idx)
        .where(ENTRIES.c.data_hash == data_hash)
        .order_by(ENTRIES.c.idx)
        .limit(limit)
    )
    return [int(i) for i in conn.execute(stmt).scalars()]


_MAX_VARIABLES: Final = 999
"""Bound parameters per statement: SQLite's historical limit, well under PostgreSQL's."""
_ENTRY_INSERT_COLUMNS: Final = (
    "idx",
    "leaf_hash",
    "body",
    "integrated_time",
    "kind",
    "api_version",
    "data_hash",
    "signed_entry_timestamp",
)


def _placeholder(conn: Connection) -> str | None:
    """The driver's positional placeholder (sqlite3: ``?``, psycopg: ``%s``), if it has one."""
    style = conn.dialect.paramstyle
    if style == "qmark":
        return "?"
    if style in ("format", "pyformat"):
        return "%s"
    return None


def _insert_rows(
    conn: Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> bool:
    """Insert ``rows`` with multi-row ``INSERT … VALUES (…), (…)`` statements of plain values
    (one statement per 999 values): one round trip per chunk instead of one per row, and none
    of SQLAlchemy's per-row bind processing. False if the driver's placeholder style is not a
    positional one this function writes (the caller then uses SQLAlchemy)."""
    mark = _placeholder(conn)
    if mark is None:
        return False
    group = "(" + ",".join([mark] * len(columns)) + ")"
    head = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
    per_statement = max(1, _MAX_VARIABLES // len(columns))
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        params = tuple(value for row in chunk for value in row)
        conn.exec_driver_sql(head + ",".join([group] * len(chunk)), params)
    return True


def insert_entries(conn: Connection, entries: Sequence[NewEntry]) -> None:
    """Insert the sequencer's new entry rows (see ``_insert_rows``)."""
    if not entries:
        return
    rows = [
        (
            e.index,
            e.leaf_hash,
            e.body,
            e.integrated_time,
            e.kind,
            e.api_version,
            e.data_hash,
            e.signed_entry_timestamp,
        )
        for e in entries
    ]
    if not _insert_rows(conn, ENTRIES, _ENTRY_INSERT_COLUMNS, rows):
        conn.execute(
            sa.insert(ENTRIES), [dict(zip(_ENTRY_INSERT_COLUMNS, r, strict=True)) for r in rows]
        )


# --- nodes -----------------------------------------------------------------------------------

_READ_NODES: Final = sa.select(NODES.c.level, NODES.c.idx, NODES.c.hash).where(
    sa.tuple_(NODES.c.level, NODES.c.idx).in_(sa.bindparam("ids", expanding=True))
)
_NODE_RANGE: Final = (
    sa.select(NODES.c.idx, NODES.c.hash)
    .where(
        NODES.c.level == sa.bindparam("level"),
        NODES.c.idx >= sa.bindparam("start"),
        NODES.c.idx < sa.bindparam("end"),
    )
    .order_by(NODES.c.idx)
)


def insert_nodes(conn: Connection, nodes: Sequence[tuple[NodeID, bytes]]) -> None:
    if not nodes:
        return
    rows = [(n.level, n.index, h) for n, h in nodes]
    if not _insert_rows(conn, NODES, ("level", "idx", "hash"), rows):
        conn.execute(sa.insert(NODES), [{"level": lv, "idx": i, "hash": h} for lv, i, h in rows])


def read_nodes(conn: Connection, ids: Sequence[NodeID]) -> list[bytes]:
    """The hashes of ``ids`` in order, in one query (per 500 ids); ``MissingHash`` if absent."""
    found: dict[tuple[int, int], bytes] = {}
    unique = list(dict.fromkeys((n.level, n.index) for n in ids))
    for chunk in _chunks(unique):
        for level, idx, value in conn.execute(_READ_NODES, {"ids": list(chunk)}):
            found[(int(level), int(idx))] = bytes(value)
    out: list[bytes] = []
    for node in ids:
        value = found.get((node.level, node.index))
        if value is None:
            raise MissingHash(f"no stored hash for node (level {node.level}, index {node.index})")
        out.append(value)
    return out


def node_range(conn: Connection, level: int, start: int, end: int) -> list[bytes]:
    """Stored hashes of level ``level``, indexes ``[start, end)``, in order (gaps not allowed)."""
    rows = conn.execute(_NODE_RANGE, {"level": level, "start": start, "end": end}).all()
    if len(rows) != end - start:
        raise MissingHash(f"level {level} nodes [{start}, {end}) are not all stored")
    return [bytes(h) for _, h in rows]


def upper_nodes(conn: Connection, min_level: int) -> list[tuple[int, int, bytes]]:
    stmt = (
        sa.select(NODES.c.level, NODES.c.idx, NODES.c.hash)
        .where(NODES.c.level >= min_level)
        .order_by(NODES.c.level, NODES.c.idx)
    )
    return [(int(lv), int(i), bytes(h)) for lv, i, h in conn.execute(stmt)]


class SqlHashStore:
    """``HashStore`` over ``tlog_nodes``: reads on their own connection, or on ``conn``."""

    def __init__(self, db: Database, conn: Connection | None = None) -> None:
        self._db = db
        self._conn = conn

    def read_hashes(self, ids: Sequence[NodeID], /) -> list[bytes]:
        if not ids:
            return []
        if self._conn is not None:
            return read_nodes(self._conn, ids)
        with self._db.read() as conn:
            return read_nodes(conn, ids)

    def write_hashes(self, nodes: Sequence[tuple[NodeID, bytes]], /) -> None:
        if self._conn is not None:
            insert_nodes(self._conn, nodes)
            return
        with self._db.write() as conn:
            insert_nodes(conn, nodes)


# --- checkpoints -----------------------------------------------------------------------------


_INSERT_CHECKPOINT: Final = sa.insert(CHECKPOINTS)


def insert_checkpoint(conn: Connection, size: int, root_hash: bytes, note: str) -> None:
    conn.execute(
        _INSERT_CHECKPOINT,
        {"size": size, "root_hash": root_hash, "note": note, "created_at": datetime.now(UTC)},
    )


def checkpoint_at(conn: Connection, size: int) -> str | None:
    value = conn.execute(
        sa.select(CHECKPOINTS.c.note).where(CHECKPOINTS.c.size == size)
    ).scalar_one_or_none()
    return None if value is None else str(value)


# --- the in-memory cache ---------------------------------------------------------------------


def _levels_from_leaves(leaves: bytes) -> list[bytes]:
    """Levels 0..7 of a (possibly partial) tile from its concatenated leaf hashes."""
    levels = [bytes(leaves)]
    current = leaves
    for _ in range(1, TILE_HEIGHT):
        count = len(current) // HASH_SIZE // 2
        nxt = bytearray()
        for i in range(count):
            a = current[2 * i * HASH_SIZE : (2 * i + 1) * HASH_SIZE]
            b = current[(2 * i + 1) * HASH_SIZE : (2 * i + 2) * HASH_SIZE]
            nxt += node_hash(a, b)
        current = bytes(nxt)
        levels.append(current)
    return levels


TileLoader = Callable[[Sequence[int]], Mapping[int, bytes]]
"""Loads the concatenated level-0 hashes of the given full tiles."""


class TreeCache:
    """Node hashes of a log in memory; see the module docstring. Thread-safe."""

    def __init__(self, loader: TileLoader, *, capacity: int = 2048) -> None:
        self._loader = loader
        self._capacity = max(1, capacity)
        self._lock = threading.Lock()
        self._size = 0
        self._upper: list[bytearray] = []
        self._tiles: OrderedDict[int, list[bytes]] = OrderedDict()
        self._tail_index = 0
        self._tail: list[bytearray] = [bytearray() for _ in range(TILE_HEIGHT)]
        self.hits = 0
        self.misses = 0

    @property
    def size(self) -> int:
        return self._size

    def reset(self, size: int, upper: Iterable[tuple[int, int, bytes]], tail_leaves: bytes) -> None:
        """Load the cache for a tree of ``size`` from stored upper nodes and the tail's leaves."""
        with self._lock:
            self._size = size
            self._upper = []
            for level, idx, value in upper:
                k = level - TILE_HEIGHT
                while len(self._upper) <= k:
                    self._upper.append(bytearray())
                row = self._upper[k]
                if idx * HASH_SIZE != len(row):
                    raise MissingHash(f"stored level {level} has a gap before index {idx}")
                row += value
            self._tiles.clear()
            self._tail_index = size >> TILE_HEIGHT
            self._tail = [bytearray(level) for level in _levels_from_leaves(tail_leaves)]
            if len(tail_leaves) != (size % TILE_WIDTH) * HASH_SIZE:
                raise MissingHash("the last tile's stored leaf hashes do not match the size")

    def append(self, nodes: Sequence[tuple[NodeID, bytes]], new_size: int) -> None:
        """Add the nodes an append created (in ``MerkleLog`` order) and move to ``new_size``."""
        with self._lock:
            for (level, idx), value in nodes:
                if level >= TILE_HEIGHT:
                    k = level - TILE_HEIGHT
                    while len(self._upper) <= k:
                        self._upper.append(bytearray())
                    row = self._upper[k]
                    if idx * HASH_SIZE == len(row):
                        row += value
                    continue
                tile = idx >> (TILE_HEIGHT - level)
                if tile != self._tail_index:
                    self._roll_tail(tile)
                self._tail[level] += value
            self._size = new_size
            if new_size >> TILE_HEIGHT != self._tail_index and new_size % TILE_WIDTH == 0:
                self._roll_tail(new_size >> TILE_HEIGHT)

    def _roll_tail(self, tile: int) -> None:
        if len(self._tail[0]) == TILE_WIDTH * HASH_SIZE:
            self._remember(self._tail_index, [bytes(level) for level in self._tail])
        self._tail_index = tile
        self._tail = [bytearray() for _ in range(TILE_HEIGHT)]

    def _remember(self, tile: int, levels: list[bytes]) -> None:
        self._tiles[tile] = levels
        self._tiles.move_to_end(tile)
        while len(self._tiles) > self._capacity:
            self._tiles.popitem(last=False)

    def _lookup(self, level: int, idx: int) -> bytes | None:
        if level >= TILE_HEIGHT:
            k = level - TILE_HEIGHT
            start = idx * HASH_SIZE
            if k < len(self._upper) and start + HASH_SIZE <= len(self._upper[k]):
                return bytes(self._upper[k][start : start + HASH_SIZE])
            return None
        tile = idx >> (TILE_HEIGHT - level)
        offset = (idx - (tile << (TILE_HEIGHT - level))) * HASH_SIZE
        if tile == self._tail_index:
            row: bytes | bytearray = self._tail[level]
        else:
            levels = self._tiles.get(tile)
            if levels is None:
                return None
            self._tiles.move_to_end(tile)
            row = levels[level]
        if offset + HASH_SIZE > len(row):
            return None
        return bytes(row[offset : offset + HASH_SIZE])

    def read_hashes(self, ids: Sequence[NodeID], /) -> list[bytes]:
        out: list[bytes | None] = []
        missing: set[int] = set()
        with self._lock:
            for level, idx in ids:
                value = self._lookup(level, idx)
                if value is None:
                    if level >= TILE_HEIGHT or (idx + 1) << level > self._size:
                        raise MissingHash(f"no hash for node (level {level}, index {idx})")
                    missing.add(idx >> (TILE_HEIGHT - level))
                out.append(value)
        if not missing:
            self.hits += 1
            return out  # type: ignore[return-value]
        self.misses += 1
        loaded = self._loader(sorted(missing))
        with self._lock:
            for tile in missing:
                leaves = loaded.get(tile)
                if leaves is None or len(leaves) != TILE_WIDTH * HASH_SIZE:
                    raise MissingHash(f"tile {tile} is not stored in full")
                self._remember(tile, _levels_from_leaves(leaves))
            result: list[bytes] = []
            for (level, idx), value in zip(ids, out, strict=True):
                if value is None:
                    value = self._lookup(level, idx)
                    if value is None:
                        raise MissingHash(f"no hash for node (level {level}, index {idx})")
                result.append(value)
        return result

    def tile_bytes(self, level: int, index: int, width: int) -> bytes | None:
        """Cached bytes of C2SP tile ``(level, index)`` of ``width`` hashes, when in memory."""
        with self._lock:
            if level == 0:
                if index == self._tail_index:
                    row: bytes | bytearray = self._tail[0]
                else:
                    levels = self._tiles.get(index)
                    if levels is None:
                        return None
                    row = levels[0]
                data = bytes(row[: width * HASH_SIZE])
            else:
                k = level * TILE_HEIGHT - TILE_HEIGHT
                if k >= len(self._upper):
                    return None
                start = index * TILE_WIDTH * HASH_SIZE
                data = bytes(self._upper[k][start : start + width * HASH_SIZE])
        return data if len(data) == width * HASH_SIZE else None
