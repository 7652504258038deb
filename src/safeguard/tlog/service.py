"""The transparency log service: sequencing appends, serving entries, proofs, checkpoints, tiles.

One ``TransparencyLog`` per process, over the shared store. Appends go through the batching
sequencer (``safeguard.tlog.sequencer``); each batch is ONE transaction that locks the
``tlog_state`` row (``SELECT … FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite, whose
commits are made with ``synchronous=FULL``), drops entries whose leaf hash the log already holds
(duplicates answer 409 with the existing entry), assigns contiguous indexes, signs each entry's
SET, writes the entries, the new Merkle node hashes and a new signed checkpoint, and updates the
state row. Nothing is acknowledged before that commit, so a crash loses no acknowledged entry and
never rolls a published checkpoint back; on start-up the state is read back from the database
and its root recomputed from the stored nodes.

Several processes may share one PostgreSQL database: the row lock serialises them, and a process
that finds the state row ahead of its own view reloads the tree before appending. Readers refresh
their view at most every ``refresh_interval`` seconds, and never wait for the sequencer to do so.
A size a client names beyond the view (a proof's ``lastSize``) is looked up in the state row at
most every ``catch_up_interval`` seconds, and the view is reloaded only when the store really has
it, so a request cannot make a reader wait for a batch's commit or read the store at will.

Reads can be tried from memory alone: inside ``cached_only()`` every read that would touch the
database (or wait for a lock) raises ``WouldBlock`` instead, which is how the HTTP routes answer
hot reads on the event loop and move the rest to worker threads.

Formats: Rekor v1's SET is the log key's signature over the RFC 8785 JSON of
``{body, integratedTime, logID, logIndex}`` (rekor ``pkg/api/entries.go`` ``signEntry``); the
checkpoint's origin is ``<hostname> - <tree ID>`` and its note is signed under the name
``<hostname>`` (rekor ``pkg/util/checkpoint.go``), with the Rekor key ID, so sigstore-python and
sigstore-go verify it.
"""

from __future__ import annotations

import base64
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy.engine import Connection

from safeguard.core.errors import InvalidInput, NotFound, SafeguardError, VerificationFailed
from safeguard.store.engine import Database
from safeguard.tlog import storage
from safeguard.tlog.checkpoint import Checkpoint, sign_checkpoint
from safeguard.tlog.entries import PreparedEntry
from safeguard.tlog.logkey import LogKey
from safeguard.tlog.merkle import (
    EMPTY_ROOT,
    MerkleLog,
    NodeID,
    TreeRangeError,
    read_consistency_proof,
    read_inclusion_proof,
    read_root,
)
from safeguard.tlog.sequencer import Batcher, Pending
from safeguard.tlog.storage import LogState, NewEntry, StoredEntry, TreeCache
from safeguard.tlog.tiles import (
    TILE_WIDTH,
    EntryBundle,
    Tile,
    encode_entry_bundle,
    tile_in_tree,
)

log = logging.getLogger("safeguard.tlog")

DEFAULT_HOSTNAME: Final = "safeguard"
TREE_ID_HEX_LEN: Final = 16


class LogKeyMismatch(InvalidInput):
    """The configured key is not the key this log was created with."""

    code = "TLOG_KEY_MISMATCH"


class LogCorrupted(VerificationFailed):
    """The stored tree does not match the stored checkpoint."""

    code = "TLOG_STORE_CORRUPTED"


class DuplicateEntry(SafeguardError):
    """An equivalent entry is already in the log (Rekor answers 409 Conflict)."""

    code = "TLOG_ENTRY_DUPLICATE"
    http_status = 409

    def __init__(self, uuid: str, index: int) -> None:
        super().__init__(f"an equivalent entry already exists in the transparency log ({uuid})")
        self.uuid = uuid
        self.index = index


class EntryNotFound(NotFound):
    code = "TLOG_ENTRY_NOT_FOUND"


class WouldBlock(Exception):
    """A read inside ``cached_only()`` needs the database or the sequencer's lock."""


_local = threading.local()


@contextmanager
def cached_only() -> Iterator[None]:
    """Within this block (on this thread), reads that need the database raise ``WouldBlock``."""
    previous = getattr(_local, "cached_only", False)
    _local.cached_only = True
    try:
        yield
    finally:
        _local.cached_only = previous


def _io_refused() -> bool:
    return bool(getattr(_local, "cached_only", False))


@dataclass(frozen=True, slots=True)
class TreeHead:
    """A published checkpoint: size, root and the signed note."""

    size: int
    root_hash: bytes
    checkpoint: str


@dataclass(frozen=True, slots=True)
class Integrated:
    """A newly sequenced entry and the checkpoint of the batch that integrated it."""

    entry: StoredEntry
    head: TreeHead


@dataclass(frozen=True, slots=True)
class LogConfig:
    hostname: str = DEFAULT_HOSTNAME
    max_batch: int = 1024
    # 2 ms rather than 5: a commit (one fsync) already lets the next batch gather, and over
    # HTTP (bench/tlog.py) 2 ms gave more appends/s and lower p99 at 1, 8 and 64 clients.
    max_wait: float = 0.002
    tile_cache: int = 2048
    entry_cache: int = 32768
    refresh_interval: float = 0.5
    # How often a size beyond the view, named by a client, may send a reader to the state row.
    catch_up_interval: float = 0.05
    # How long a reader waits for the sequencer's lock to reload a view the store is ahead of.
    lock_wait: float = 5.0
    durable: bool = True


def set_payload(body: bytes, integrated_time: int, log_id_hex: str, index: int) -> bytes:
    """RFC 8785 JSON of the SET's fields. Every value is ASCII without characters JCS escapes
    (base64, hex, integers), and the keys are in JCS order, so plain formatting is exact."""
    encoded = base64.b64encode(body).decode("ascii")
    return (
        f'{{"body":"{encoded}","integratedTime":{integrated_time},'
        f'"logID":"{log_id_hex}","logIndex":{index}}}'
    ).encode("ascii")


class _Staging:
    """The ``HashStore`` the sequencer's ``MerkleLog`` writes to: reads from the cache, and
    collects new nodes until the transaction that stores them commits."""

    def __init__(self, cache: TreeCache) -> None:
        self.cache = cache
        self.pending: list[tuple[NodeID, bytes]] = []

    def read_hashes(self, ids: Sequence[NodeID], /) -> list[bytes]:
        return self.cache.read_hashes(ids)

    def write_hashes(self, nodes: Sequence[tuple[NodeID, bytes]], /) -> None:
        self.pending.extend(nodes)


class TransparencyLog:
    """The log over a ``Database`` and a ``LogKey``; see the module docstring."""

    def __init__(self, db: Database, key: LogKey, config: LogConfig | None = None) -> None:
        self.db = db
        self.key = key
        self.config = config or LogConfig()
        self._lock = threading.Lock()  # guards the tree view: sequencing and refreshes
        self.cache = TreeCache(self._load_tiles, capacity=self.config.tile_cache)
        self._staging = _Staging(self.cache)
        self._tree = MerkleLog(self._staging)
        self._state: LogState | None = None
        self._head = TreeHead(0, EMPTY_ROOT, "")
        self._checked = 0.0
        self._caught_up = float("-inf")
        self._batcher: Batcher[PreparedEntry, Integrated] | None = None
        self._batcher_lock = threading.Lock()
        # Committed entries never change, so recent and hot ones are served from memory.
        self._entries: OrderedDict[int, StoredEntry] = OrderedDict()
        self._entries_lock = threading.Lock()
        self._open()

    # --- start-up and refresh ----------------------------------------------------------------

    @property
    def state(self) -> LogState:
        assert self._state is not None
        return self._state

    @property
    def tree_id(self) -> int:
        return self.state.tree_id

    @property
    def origin(self) -> str:
        return self.state.origin

    @property
    def note_name(self) -> str:
        return self.state.origin.split(" ", 1)[0]

    @property
    def created_at(self) -> datetime:
        return self.state.created_at

    def entry_id(self, leaf: bytes) -> str:
        """Rekor's entry ID: the tree ID in 16 hex digits, then the entry UUID (leaf hash)."""
        return f"{self.tree_id:0{TREE_ID_HEX_LEN}x}{leaf.hex()}"

    def _open(self) -> None:
        with self._transaction() as conn:
            state = storage.read_state(conn, for_update=True)
            if state is None:
                state = self._create(conn)
        if state.public_key != self.key.der:
            raise LogKeyMismatch(
                "the configured transparency log key is not the key this log was created with",
                hint="start with the log's original key (--tlog-key); a log never changes keys",
            )
        with self.db.read() as conn, self._lock:
            self._reload(conn, state)

    def _create(self, conn: Connection) -> LogState:
        tree_id = secrets.randbits(63) or 1
        origin = f"{self.config.hostname} - {tree_id}"
        name = self.config.hostname
        note = sign_checkpoint(Checkpoint(origin, 0, EMPTY_ROOT), self.key.note_signer(name))
        state = LogState(
            tree_id, origin, self.key.der, 0, EMPTY_ROOT, note.decode(), datetime.now(UTC)
        )
        storage.insert_state(conn, state)
        storage.insert_checkpoint(conn, 0, EMPTY_ROOT, state.checkpoint)
        log.info("created transparency log %s", origin)
        return state

    def _reload(self, conn: Connection, state: LogState) -> None:
        """Rebuild the in-memory view for ``state`` from the stored nodes (lock held)."""
        tail_start = (state.size // TILE_WIDTH) * TILE_WIDTH
        tail = b"".join(storage.node_range(conn, 0, tail_start, state.size))
        self.cache.reset(state.size, storage.upper_nodes(conn, 8), tail)
        tree = MerkleLog(self._staging, size=state.size)
        if tree.root() != state.root_hash:
            raise LogCorrupted(
                f"the stored tree of size {state.size} has root {tree.root().hex()}, but the "
                f"stored checkpoint says {state.root_hash.hex()}",
                hint="restore the database from a backup; run `safeguard tlog monitor`",
            )
        self._tree = tree
        self._state = state
        self._head = TreeHead(state.size, state.root_hash, state.checkpoint)
        self._checked = time.monotonic()

    def _read(self) -> AbstractContextManager[Connection]:
        """A read connection, unless the caller asked for memory only (``cached_only``)."""
        if _io_refused():
            raise WouldBlock
        return self.db.read()

    def _load_tiles(self, tiles: Sequence[int]) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        with self._read() as conn:
            for tile in tiles:
                start = tile * TILE_WIDTH
                out[tile] = b"".join(storage.node_range(conn, 0, start, start + TILE_WIDTH))
        return out

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A write transaction; on SQLite with ``synchronous=FULL`` when ``durable``."""
        with self.db.engine.connect() as conn:
            sqlite = conn.dialect.name == "sqlite"
            full = sqlite and self.config.durable
            if full:
                conn.connection.dbapi_connection.execute("PRAGMA synchronous=FULL")  # type: ignore[union-attr]
            try:
                conn.execution_options(safeguard_write=True)
                with conn.begin():
                    yield conn
            finally:
                if full:
                    conn.connection.dbapi_connection.execute("PRAGMA synchronous=NORMAL")  # type: ignore[union-attr]

    def refresh(self, *, force: bool = False) -> None:
        """Catch up with appends made by other processes (at most every refresh_interval).

        Without ``force`` this never waits: when the sequencer holds the lock it moves the view
        itself. ``force`` (operators and tests, never a request) refreshes now, waiting for it.
        """
        now = time.monotonic()
        if not force and now - self._checked < self.config.refresh_interval:
            return
        if _io_refused():
            raise WouldBlock
        if not self._lock.acquire(blocking=force):
            return  # the sequencer is busy and will move the view itself
        try:
            self._checked = now
            with self.db.read() as conn:
                state = storage.read_state(conn)
                if state is not None and state.size != self._head.size:
                    self._reload(conn, state)
        finally:
            self._lock.release()

    def _catch_up(self, size: int, *, throttled: bool) -> TreeHead:
        """The head, caught up with other processes if it is smaller than ``size``.

        The state row says whether the store holds ``size`` entries; only then is the view
        reloaded, waiting at most ``lock_wait`` for the sequencer (which reloads it too). With
        ``throttled`` (a size a client named) the row is read at most every
        ``catch_up_interval``; in between, and for any size beyond the store, the cached head is
        the answer, so hostile sizes cost at most one row read per interval and never wait for a
        commit.
        """
        head = self._head
        if size <= head.size:
            return head
        now = time.monotonic()
        if throttled and now - self._caught_up < self.config.catch_up_interval:
            return head
        if _io_refused():
            raise WouldBlock
        self._caught_up = now
        with self.db.read() as conn:
            state = storage.read_state(conn)
        if state is None or state.size < size or state.size <= self._head.size:
            return self._head
        if not self._lock.acquire(timeout=self.config.lock_wait):
            return self._head
        try:
            with self.db.read() as conn:
                state = storage.read_state(conn)
                if state is not None and state.size > self._head.size:
                    self._reload(conn, state)
            self._checked = time.monotonic()
        finally:
            self._lock.release()
        return self._head

    # --- appends -----------------------------------------------------------------------------

    def _ensure_batcher(self) -> Batcher[PreparedEntry, Integrated]:
        if self._batcher is None:
            with self._batcher_lock:
                if self._batcher is None:
                    self._batcher = Batcher(
                        self._commit,
                        max_batch=self.config.max_batch,
                        max_wait=self.config.max_wait,
                    )
        return self._batcher

    def submit(self, entry: PreparedEntry) -> Future[Integrated]:
        """Queue a validated entry; the future resolves once its batch has committed."""
        return self._ensure_batcher().submit(entry)

    async def add(self, entry: PreparedEntry) -> Integrated:
        return await self._ensure_batcher().submit_async(entry)

    def add_sync(self, entry: PreparedEntry, timeout: float = 60.0) -> Integrated:
        return self.submit(entry).result(timeout)

    def _commit(self, batch: Sequence[Pending[PreparedEntry, Integrated]]) -> None:
        by_leaf: dict[bytes, list[Pending[PreparedEntry, Integrated]]] = {}
        for pending in batch:
            by_leaf.setdefault(pending.item.leaf_hash, []).append(pending)
        with self._lock:
            try:
                result = self._sequence(by_leaf)
            except BaseException:
                # Nothing was committed: rebuild the tree view from the untouched cache.
                self._staging.pending = []
                self._tree = MerkleLog(self._staging, size=self.cache.size)
                raise
            rows, nodes, existing, head = result
            if rows:
                self.cache.append(nodes, head.size)
                self._state = LogState(
                    self.state.tree_id,
                    self.state.origin,
                    self.state.public_key,
                    head.size,
                    head.root_hash,
                    head.checkpoint,
                    self.state.created_at,
                )
                self._head = head
                self._checked = time.monotonic()
        integrated = {row.leaf_hash: row for row in rows}
        self._remember(
            StoredEntry(
                r.index,
                r.leaf_hash,
                r.body,
                r.integrated_time,
                r.kind,
                r.api_version,
                r.signed_entry_timestamp,
            )
            for r in rows
        )
        for leaf, waiters in by_leaf.items():
            row = integrated.get(leaf)
            for position, pending in enumerate(waiters):
                if row is not None and position == 0:
                    stored = StoredEntry(
                        row.index,
                        row.leaf_hash,
                        row.body,
                        row.integrated_time,
                        row.kind,
                        row.api_version,
                        row.signed_entry_timestamp,
                    )
                    pending.set_result(Integrated(stored, head))
                else:
                    index = row.index if row is not None else existing[leaf]
                    pending.set_exception(DuplicateEntry(self.entry_id(leaf), index))

    def _sequence(
        self, by_leaf: dict[bytes, list[Pending[PreparedEntry, Integrated]]]
    ) -> tuple[list[NewEntry], list[tuple[NodeID, bytes]], dict[bytes, int], TreeHead]:
        with self._transaction() as conn:
            state = storage.read_state(conn, for_update=True)
            if state is None:
                raise LogCorrupted("the log's state row is gone")
            if state.size != self._tree.size or state.root_hash != self._head.root_hash:
                self._reload(conn, state)  # another process appended
            existing = storage.existing_leaves(conn, list(by_leaf))
            fresh = [waiters[0].item for leaf, waiters in by_leaf.items() if leaf not in existing]
            if not fresh:
                return [], [], existing, self._head
            now = int(time.time())
            start = state.size
            log_id = self.key.log_id_hex
            rows = [
                NewEntry(
                    start + i,
                    e.leaf_hash,
                    e.body,
                    now,
                    e.kind,
                    e.api_version,
                    e.data_hash,
                    self.key.sign(set_payload(e.body, now, log_id, start + i)),
                )
                for i, e in enumerate(fresh)
            ]
            self._staging.pending = []
            self._tree.extend(e.leaf_hash for e in fresh)
            nodes, self._staging.pending = self._staging.pending, []
            size, root = self._tree.size, self._tree.root()
            note = sign_checkpoint(
                Checkpoint(state.origin, size, root), self.key.note_signer(self.note_name)
            ).decode()
            storage.insert_entries(conn, rows)
            storage.insert_nodes(conn, nodes)
            storage.insert_checkpoint(conn, size, root, note)
            storage.update_state(conn, size, root, note)
        return rows, nodes, existing, TreeHead(size, root, note)

    # --- reads -------------------------------------------------------------------------------

    def head(self) -> TreeHead:
        """The newest published checkpoint this process knows (refreshed periodically)."""
        self.refresh()
        return self._head

    def _known(self, index: int) -> TreeHead:
        """The head for an entry read from the store: it exists, so a view that does not
        cover it is behind another process and catches up at once."""
        self.refresh()
        return self._catch_up(index + 1, throttled=False)

    def _remember(self, entries: Iterable[StoredEntry]) -> None:
        limit = self.config.entry_cache
        if limit <= 0:
            return
        with self._entries_lock:
            for entry in entries:
                self._entries[entry.index] = entry
                self._entries.move_to_end(entry.index)
            while len(self._entries) > limit:
                self._entries.popitem(last=False)

    def entry_by_index(self, index: int) -> StoredEntry:
        found = self.entries_by_index([index]).get(index)
        if found is None:
            raise EntryNotFound(f"no entry at log index {index}")
        return found

    def entries_by_index(self, indexes: Sequence[int]) -> dict[int, StoredEntry]:
        out: dict[int, StoredEntry] = {}
        with self._entries_lock:
            for index in indexes:
                cached = self._entries.get(index)
                if cached is not None:
                    out[index] = cached
        missing = [i for i in indexes if i not in out]
        if missing:
            with self._read() as conn:
                loaded = storage.entries_by_index(conn, missing)
            self._remember(loaded.values())
            out.update(loaded)
        return out

    def entries_by_leaf(self, leaves: Sequence[bytes]) -> dict[bytes, StoredEntry]:
        with self._read() as conn:
            return storage.entries_by_leaf_hash(conn, leaves)

    def entry_by_leaf(self, leaf: bytes) -> StoredEntry:
        found = self.entries_by_leaf([leaf]).get(leaf)
        if found is None:
            raise EntryNotFound(f"no entry with UUID {leaf.hex()}")
        return found

    def indexes_by_data_hash(self, data_hash: str) -> list[int]:
        with self._read() as conn:
            return storage.indexes_by_data_hash(conn, data_hash)

    def head_for(self, index: int) -> TreeHead:
        """The newest checkpoint this process knows, refreshed if it does not cover ``index``."""
        return self._known(index)

    def proof_for(self, entry: StoredEntry) -> tuple[TreeHead, list[bytes]]:
        """The inclusion proof of ``entry`` in the newest checkpoint that covers it."""
        head = self._known(entry.index)
        return head, read_inclusion_proof(self.cache, entry.index, head.size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._check_size(size)
        return read_inclusion_proof(self.cache, index, size)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        self._check_size(size2)
        return read_consistency_proof(self.cache, size1, size2)

    def root_at(self, size: int) -> bytes:
        self._check_size(size)
        return read_root(self.cache, size)

    def _check_size(self, size: int) -> None:
        """A tree size is servable when the view covers it; heads only grow, so a covered size
        needs no refresh, and one beyond the view is looked up without waiting (``_catch_up``)."""
        head = self._catch_up(size, throttled=True)
        if size > head.size:
            raise TreeRangeError(
                f"the tree size requested({size}) was greater than what is currently "
                f"observable({head.size})"
            )

    def checkpoint_at(self, size: int) -> str | None:
        with self._read() as conn:
            return storage.checkpoint_at(conn, size)

    def tile(self, tile: Tile) -> bytes:
        """The bytes of a C2SP tile of the current tree (full, or partial of exactly ``width``
        or fewer hashes than the tree has)."""
        head = self.head()
        have = tile_in_tree(tile.level, tile.index, head.size)
        if have is None or have.width < tile.width:
            raise EntryNotFound(f"tile {tile.path} is not in the tree of size {head.size}")
        cached = self.cache.tile_bytes(tile.level, tile.index, tile.width)
        if cached is not None:
            return cached
        start = tile.index * TILE_WIDTH
        with self._read() as conn:
            return b"".join(storage.node_range(conn, tile.merkle_level, start, start + tile.width))

    def entry_bundle(self, bundle: EntryBundle) -> bytes:
        head = self.head()
        if bundle.start + bundle.width > head.size:
            raise EntryNotFound(f"{bundle.path} is not in the tree of size {head.size}")
        with self._read() as conn:
            entries = storage.entries_range(conn, bundle.start, bundle.end)
        if len(entries) != bundle.width:
            raise EntryNotFound(f"{bundle.path} is not stored in full")
        return encode_entry_bundle([e.body for e in entries])

    def close(self) -> None:
        if self._batcher is not None:
            self._batcher.close()
