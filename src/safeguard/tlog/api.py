"""HTTP routes of the log: a Rekor v1 API subset and the C2SP tlog-tiles read API.

Rekor v1 (sigstore/rekor ``openapi.yaml``), field names and shapes as Rekor answers them:

* ``GET /api/v1/log`` → ``LogInfo{rootHash, treeSize, signedTreeHead, treeID}``;
* ``GET /api/v1/log/publicKey`` → the log's PEM public key;
* ``GET /api/v1/log/proof?firstSize=&lastSize=`` → ``ConsistencyProof{rootHash, hashes}``;
* ``POST /api/v1/log/entries`` (hashedrekord, dsse 0.0.1) → 201 ``LogEntry``
  ``{"<entry ID>": {body, integratedTime, logID, logIndex, verification{inclusionProof{logIndex,
  rootHash, treeSize, hashes, checkpoint}, signedEntryTimestamp}}}`` with ``Location`` and
  ``ETag``; a duplicate is 409 with the existing entry's ``Location``;
* ``GET /api/v1/log/entries?logIndex=``, ``GET /api/v1/log/entries/{entryUUID}`` (64 or 80 hex);
* ``POST /api/v1/log/entries/retrieve`` (``entryUUIDs``, ``logIndexes``, ``entries``; at most 10
  in all, else 422; missing entries are left out);
* ``POST /api/v1/index/retrieve`` with ``hash`` → entry UUIDs (artifact or DSSE payload hash).

Errors are Rekor's ``Error{code, message}`` (plus ``reason``, Safeguard's stable error code).

C2SP tlog-tiles (c2sp.org/tlog-tiles): ``GET /checkpoint``, ``/tile/<L>/<N>[.p/<W>]`` and
``/tile/entries/<N>[.p/<W>]`` (entries are the canonical bodies, the Merkle leaves). Full tiles
and bundles never change and are served ``immutable``; the checkpoint is ``no-cache``.

The app is plain ASGI with no router in between, like the registry, because entry and proof
reads are the hot path. It shares the event loop with the registry and the gateway, so no request
may block it: a read is first tried from memory alone (``service.cached_only``: cached answers,
entries, node hashes and a fresh head), and whatever needs the database runs in a worker thread,
under the log's own ``CapacityLimiter`` so a flood of log reads cannot take the threads the
registry's file operations use. No request waits for the sequencer's lock: a ``lastSize`` beyond
the tree is a 400 from the cached view, as in Rekor (``service.TransparencyLog._catch_up``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar
from urllib.parse import parse_qs

import anyio
import anyio.to_thread

from safeguard.core.errors import InvalidInput, NotFound, SafeguardError
from safeguard.formats._json import loads
from safeguard.store.engine import Database
from safeguard.tlog.entries import (
    MAX_REQUEST_BYTES,
    EntryTooLarge,
    ProposedEntryInvalid,
    prepare_entry,
)
from safeguard.tlog.logkey import load_or_create
from safeguard.tlog.merkle import MissingHash, TreeRangeError
from safeguard.tlog.service import (
    DEFAULT_HOSTNAME,
    DuplicateEntry,
    Integrated,
    LogConfig,
    TransparencyLog,
    TreeHead,
    WouldBlock,
    cached_only,
)
from safeguard.tlog.storage import StoredEntry
from safeguard.tlog.tiles import InvalidTilePath, parse_entries_path, parse_tile_path

log = logging.getLogger("safeguard.tlog")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PREFIX: Final = "/api/v1/log"
INDEX_RETRIEVE: Final = "/api/v1/index/retrieve"
MAX_SEARCH: Final = 10
_UUID: Final = re.compile(r"[0-9a-fA-F]{64}|[0-9a-fA-F]{80}")
_HASH: Final = re.compile(r"(?:(sha256|sha384|sha512):)?([0-9a-fA-F]+)")
_JSON: Final = (b"content-type", b"application/json")
IMMUTABLE: Final = b"public, max-age=31536000, immutable"
HOSTNAME_ENV: Final = "SAFEGUARD_TLOG_HOSTNAME"
PIECE_CACHE: Final = 16384
"""Entries whose serialised fields are kept (about 1.5 KB each)."""
ANSWER_CACHE: Final = 4096
"""Whole ``LogEntry`` answers kept, keyed by entry index and tree size."""
WORKER_THREADS: Final = 16
"""Worker threads the log's reads may occupy at once (a limiter of its own)."""

T = TypeVar("T")


def is_tlog_path(path: str) -> bool:
    """Paths this app answers (``SafeguardApp`` dispatches them here)."""
    return path in (PREFIX, INDEX_RETRIEVE, "/checkpoint") or path.startswith(
        (PREFIX + "/", "/tile/")
    )


class ApiError(Exception):
    def __init__(self, status: int, message: str, reason: str, headers: list[Any] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.headers = headers or []


class SearchTooLarge(InvalidInput):
    code = "TLOG_SEARCH_TOO_LARGE"


def _hex(data: bytes) -> str:
    return data.hex()


class TlogApp:
    """ASGI app for the routes in the module docstring over one ``TransparencyLog``."""

    def __init__(self, tlog: TransparencyLog) -> None:
        self.tlog = tlog
        self._lock = threading.Lock()
        self._pieces: OrderedDict[int, tuple[bytes, bytes]] = OrderedDict()
        self._answers: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._head_json: tuple[TreeHead, bytes, bytes] | None = None
        self._limiter: tuple[asyncio.AbstractEventLoop, anyio.CapacityLimiter] | None = None

    # --- plumbing ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            status, headers, body = await self._route(scope, receive)
        except ApiError as exc:
            status, headers, body = self._error(exc.status, exc.message, exc.reason, exc.headers)
        except DuplicateEntry as exc:
            location = f"{PREFIX}/entries/{exc.uuid}".encode()
            status, headers, body = self._error(
                409,
                f"an equivalent entry already exists in the transparency log with UUID {exc.uuid}",
                exc.code,
                [(b"location", location)],
            )
        except SafeguardError as exc:
            message = exc.message if not exc.hint else f"{exc.message} (hint: {exc.hint})"
            status, headers, body = self._error(exc.http_status, message, exc.code)
        except Exception:
            log.exception("transparency log request %s %s failed", scope["method"], scope["path"])
            status, headers, body = self._error(500, "internal error", "INTERNAL")
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send(
            {"type": "http.response.body", "body": body if scope["method"] != "HEAD" else b""}
        )

    @staticmethod
    def _error(
        status: int, message: str, reason: str, headers: list[Any] | None = None
    ) -> tuple[int, list[Any], bytes]:
        body = json.dumps({"code": status, "message": message, "reason": reason}).encode()
        return status, [_JSON, *(headers or [])], body

    @staticmethod
    def _json(
        status: int, doc: Any, headers: list[Any] | None = None
    ) -> tuple[int, list[Any], bytes]:
        return status, [_JSON, *(headers or [])], json.dumps(doc, separators=(",", ":")).encode()

    @staticmethod
    async def _body(receive: Receive) -> bytes:
        chunks: list[bytes] = []
        total = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ApiError(400, "the client disconnected", "CLIENT_DISCONNECTED")
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > MAX_REQUEST_BYTES:
                error = EntryTooLarge(f"the request body exceeds {MAX_REQUEST_BYTES} bytes")
                raise ApiError(400, error.message, error.code)
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    @staticmethod
    def _query(scope: Scope) -> dict[str, list[str]]:
        raw = scope.get("query_string", b"").decode("latin-1")
        return parse_qs(raw, keep_blank_values=True)

    @staticmethod
    def _int_param(query: dict[str, list[str]], name: str, default: int | None = None) -> int:
        values = query.get(name)
        if not values:
            if default is None:
                raise ApiError(400, f"query parameter {name} is required", "INVALID_INPUT")
            return default
        text = values[0]
        if not text.isdigit() or len(text) > 20:
            raise ApiError(400, f"{name} must be a non-negative integer", "INVALID_INPUT")
        return int(text)

    # --- threads -------------------------------------------------------------------------------

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` in a worker thread under the log's limiter (one per event loop)."""
        loop = asyncio.get_running_loop()
        if self._limiter is None or self._limiter[0] is not loop:
            self._limiter = (loop, anyio.CapacityLimiter(WORKER_THREADS))
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter[1])

    async def _memory_first(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn`` on the event loop if memory answers it, else (``WouldBlock``) in a thread.
        ``fn`` only reads and fills caches, so running it again is harmless."""
        try:
            with cached_only():
                return fn(*args)
        except WouldBlock:
            return await self._in_thread(fn, *args)

    # --- routing -------------------------------------------------------------------------------

    async def _route(self, scope: Scope, receive: Receive) -> tuple[int, list[Any], bytes]:
        method: str = scope["method"]
        path: str = scope["path"]
        get = method in ("GET", "HEAD")
        if path == f"{PREFIX}/entries":
            if method == "POST":
                return await self._create(receive)
            if get:
                index = self._int_param(self._query(scope), "logIndex")
                return 200, [_JSON], await self._memory_first(self._entry_at, index)
        elif path.startswith(f"{PREFIX}/entries/") and path != f"{PREFIX}/entries/retrieve":
            if get:
                text = path.rsplit("/", 1)[1]
                leaf = self._leaf_from_uuid(text)
                if leaf is None:
                    raise NotFound(f"no entry with UUID {text}")
                return 200, [_JSON], await self._in_thread(self._entry_of, leaf)
        elif path == f"{PREFIX}/entries/retrieve":
            if method == "POST":
                return await self._in_thread(self._retrieve, await self._body(receive))
        elif path == PREFIX:
            if get:
                return self._json(200, await self._memory_first(self._log_info))
        elif path == f"{PREFIX}/proof":
            if get:
                return await self._memory_first(self._proof, self._query(scope))
        elif path == f"{PREFIX}/publicKey":
            if get:
                return 200, [(b"content-type", b"application/x-pem-file")], self.tlog.key.pem
        elif path == INDEX_RETRIEVE:
            if method == "POST":
                return await self._in_thread(self._index, await self._body(receive))
        elif path == "/checkpoint":
            if get:
                head = await self._memory_first(self.tlog.head)
                return (
                    200,
                    [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"cache-control", b"no-cache"),
                    ],
                    head.checkpoint.encode(),
                )
        elif path.startswith("/tile/"):
            if get:
                return await self._memory_first(self._tile, path[1:])
        else:
            raise ApiError(404, f"no endpoint at {path[:200]}", "NOT_FOUND")
        raise ApiError(405, f"method {method} is not allowed here", "METHOD_NOT_ALLOWED")

    # --- Rekor ---------------------------------------------------------------------------------

    def _log_entry(self, entry: StoredEntry, head: TreeHead | None = None) -> bytes:
        """The JSON of Rekor's ``LogEntry`` for ``entry``, with its inclusion proof in ``head``
        (default: the newest checkpoint that covers it).

        Byte for byte what ``json.dumps(doc, separators=(",", ":"))`` writes for the document in
        Rekor's field order (the unit tests compare), assembled from cached pieces because entry
        reads are the hot path: the entry's own fields never change once committed, the
        checkpoint's JSON changes once per batch, and a whole answer is reused while the tree
        keeps its size (an LRU keyed by index and tree size).
        """
        if head is None:
            head = self.tlog.head_for(entry.index)
        key = (entry.index, head.size)
        with self._lock:
            cached = self._answers.get(key)
            if cached is not None:
                self._answers.move_to_end(key)
                return cached
        proof = self.tlog.inclusion_proof(entry.index, head.size)
        prefix, suffix = self._entry_pieces(entry)
        checkpoint, tail = self._head_pieces(head)
        hashes = '","'.join([h.hex() for h in proof])
        answer = b"".join(
            (
                prefix,
                checkpoint,
                (f',"hashes":["{hashes}"]' if proof else ',"hashes":[]').encode("ascii"),
                f',"logIndex":{entry.index}'.encode("ascii"),
                tail,
                suffix,
            )
        )
        with self._lock:
            self._answers[key] = answer
            while len(self._answers) > ANSWER_CACHE:
                self._answers.popitem(last=False)
        return answer

    def _entry_pieces(self, entry: StoredEntry) -> tuple[bytes, bytes]:
        """The JSON before and after an entry's inclusion proof (fixed once it is committed)."""
        with self._lock:
            pieces = self._pieces.get(entry.index)
            if pieces is not None:
                self._pieces.move_to_end(entry.index)
                return pieces
        body = base64.b64encode(entry.body).decode("ascii")
        sig = base64.b64encode(entry.signed_entry_timestamp).decode("ascii")
        pieces = (
            (
                f'{{"{self.tlog.entry_id(entry.leaf_hash)}":{{"body":"{body}",'
                f'"integratedTime":{entry.integrated_time},"logID":"{self.tlog.key.log_id_hex}",'
                f'"logIndex":{entry.index},"verification":{{"inclusionProof":{{"checkpoint":'
            ).encode("ascii"),
            f',"signedEntryTimestamp":"{sig}"}}}}}}'.encode("ascii"),
        )
        with self._lock:
            self._pieces[entry.index] = pieces
            while len(self._pieces) > PIECE_CACHE:
                self._pieces.popitem(last=False)
        return pieces

    def _head_pieces(self, head: TreeHead) -> tuple[bytes, bytes]:
        cached = self._head_json
        if cached is not None and cached[0] is head:
            return cached[1], cached[2]
        checkpoint = json.dumps(head.checkpoint).encode("ascii")
        tail = f',"rootHash":"{head.root_hash.hex()}","treeSize":{head.size}}}'.encode("ascii")
        self._head_json = (head, checkpoint, tail)
        return checkpoint, tail

    async def _create(self, receive: Receive) -> tuple[int, list[Any], bytes]:
        prepared = prepare_entry(await self._body(receive))
        result: Integrated = await self.tlog.add(prepared)
        entry_id = self.tlog.entry_id(result.entry.leaf_hash).encode("ascii")
        headers = [
            _JSON,
            (b"location", PREFIX.encode() + b"/entries/" + entry_id),
            (b"etag", entry_id),
        ]
        return 201, headers, await self._memory_first(self._log_entry, result.entry, result.head)

    def _entry_at(self, index: int) -> bytes:
        return self._log_entry(self.tlog.entry_by_index(index))

    def _entry_of(self, leaf: bytes) -> bytes:
        return self._log_entry(self.tlog.entry_by_leaf(leaf))

    def _leaf_from_uuid(self, text: str) -> bytes | None:
        if not _UUID.fullmatch(text):
            raise ApiError(400, "UUID must be a 64-character hexadecimal string", "INVALID_INPUT")
        if len(text) == 80:
            if int(text[:16], 16) != self.tlog.tree_id:
                return None
            text = text[16:]
        return bytes.fromhex(text)

    def _log_info(self) -> dict[str, Any]:
        head = self.tlog.head()
        return {
            "rootHash": head.root_hash.hex(),
            "signedTreeHead": head.checkpoint,
            "treeID": str(self.tlog.tree_id),
            "treeSize": head.size,
        }

    def _proof(self, query: dict[str, list[str]]) -> tuple[int, list[Any], bytes]:
        first = self._int_param(query, "firstSize", 1)
        last = self._int_param(query, "lastSize")
        tree = query.get("treeID")
        if tree and tree[0] != str(self.tlog.tree_id):
            raise ApiError(400, f"invalid tree ID specified: {tree[0][:40]}", "INVALID_INPUT")
        if first < 1 or last < 1:
            raise ApiError(400, "firstSize and lastSize must be at least 1", "INVALID_INPUT")
        if first > last:
            raise ApiError(
                400, f"firstSize({first}) must be less than lastSize({last})", "INVALID_INPUT"
            )
        try:
            hashes = self.tlog.consistency_proof(first, last)
            root = self.tlog.root_at(last)
        except TreeRangeError as exc:
            raise ApiError(400, exc.message, exc.code) from None
        return self._json(200, {"hashes": [h.hex() for h in hashes], "rootHash": root.hex()})

    def _retrieve(self, raw: bytes) -> tuple[int, list[Any], bytes]:
        query = loads(raw, "the search query", ProposedEntryInvalid)
        if not isinstance(query, dict):
            raise ApiError(400, "the search query is not a JSON object", "INVALID_INPUT")
        uuids = query.get("entryUUIDs") or []
        indexes = query.get("logIndexes") or []
        proposed = query.get("entries") or []
        if not all(isinstance(v, list) for v in (uuids, indexes, proposed)):
            raise ApiError(400, "entryUUIDs, logIndexes and entries must be lists", "INVALID_INPUT")
        if len(uuids) + len(indexes) + len(proposed) > MAX_SEARCH:
            error = SearchTooLarge(f"more than max allowed {MAX_SEARCH} entries in request")
            raise ApiError(422, error.message, error.code)
        leaves: list[bytes] = []
        for text in uuids:
            if not isinstance(text, str):
                raise ApiError(400, "entryUUIDs must be strings", "INVALID_INPUT")
            leaf = self._leaf_from_uuid(text)
            if leaf is not None:
                leaves.append(leaf)
        for item in proposed:
            leaves.append(prepare_entry(item if isinstance(item, dict) else {}).leaf_hash)
        for index in indexes:
            if not isinstance(index, int) or isinstance(index, bool) or index < 0:
                raise ApiError(400, "logIndexes must be non-negative integers", "INVALID_INPUT")
        results: list[bytes] = []
        found = self.tlog.entries_by_leaf(leaves) if leaves else {}
        for leaf in leaves:
            if leaf in found:
                results.append(self._log_entry(found[leaf]))
        by_index = self.tlog.entries_by_index(indexes) if indexes else {}
        for index in indexes:
            if index in by_index:
                results.append(self._log_entry(by_index[index]))
        return 200, [_JSON], b"[" + b",".join(results) + b"]"

    def _index(self, raw: bytes) -> tuple[int, list[Any], bytes]:
        query = loads(raw, "the search query", ProposedEntryInvalid)
        if not isinstance(query, dict) or not isinstance(query.get("hash"), str):
            raise ApiError(
                400, "this log searches its index by 'hash' only", "TLOG_SEARCH_UNSUPPORTED"
            )
        match = _HASH.fullmatch(query["hash"])
        sizes = {"sha256": 64, "sha384": 96, "sha512": 128}
        algorithm = match.group(1) if match else None
        value = match.group(2).lower() if match else ""
        if algorithm is None:
            algorithm = next((a for a, n in sizes.items() if n == len(value)), None)
        if match is None or algorithm is None or sizes[algorithm] != len(value):
            raise ApiError(400, "hash must be [sha256:|sha384:|sha512:]<hex>", "INVALID_INPUT")
        indexes = self.tlog.indexes_by_data_hash(f"{algorithm}:{value}")
        entries = self.tlog.entries_by_index(indexes)
        return self._json(
            200, [self.tlog.entry_id(entries[i].leaf_hash) for i in indexes if i in entries]
        )

    # --- tiles ---------------------------------------------------------------------------------

    def _tile(self, path: str) -> tuple[int, list[Any], bytes]:
        try:
            if path.startswith("tile/entries/"):
                bundle = parse_entries_path(path)
                data = self.tlog.entry_bundle(bundle)
                partial = bundle.is_partial
            else:
                tile = parse_tile_path(path)
                data = self.tlog.tile(tile)
                partial = tile.is_partial
        except InvalidTilePath as exc:
            raise ApiError(404, exc.message, exc.code) from None
        except MissingHash as exc:
            raise ApiError(404, exc.message, exc.code) from None
        cache = b"public, max-age=60" if partial else IMMUTABLE
        return (
            200,
            [(b"content-type", b"application/octet-stream"), (b"cache-control", cache)],
            data,
        )


class MountTarget(Protocol):
    """What ``mount_tlog`` needs of ``safeguard.server.SafeguardApp``."""

    data_dir: Path
    db: Database
    mounts: list[tuple[Callable[[str], bool], Callable[[Scope, Receive, Send], Awaitable[None]]]]
    closers: list[Callable[[], None]]


def mount_tlog(
    app: MountTarget, *, key: str | None = None, config: LogConfig | None = None
) -> TlogApp:
    """Open (or create) the log in ``app``'s store and route its paths to it.

    ``key`` is a key file or ``pkcs11:`` URI; without one the data directory's key is used,
    generated on first start. ``SAFEGUARD_TLOG_HOSTNAME`` names the log in new checkpoints'
    origin line (``<hostname> - <tree ID>``; default ``safeguard``); it is fixed at creation.
    """
    log_key = load_or_create(key, app.data_dir)
    if config is None:
        config = LogConfig(hostname=os.environ.get(HOSTNAME_ENV) or DEFAULT_HOSTNAME)
    tlog = TransparencyLog(app.db, log_key, config)
    handler = TlogApp(tlog)
    app.mounts.append((is_tlog_path, handler))
    app.closers.append(tlog.close)
    return handler
