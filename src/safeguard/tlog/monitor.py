"""Monitoring a log from outside: is the history it shows append-only and what it signed?

A monitor remembers the last checkpoint it verified (a state file, written atomically) and, on
each run, over the log's public HTTP API only:

1. verifies the new checkpoint's signature with the log key (given, or pinned on first use);
2. compares it with the remembered one: a smaller size is a rollback, the same size with another
   root is a fork, a larger size needs a consistency proof (``GET /api/v1/log/proof``, checked
   with ``merkle.verify_consistency``; RFC 9162 section 2.1.4.2) or it is a fork too;
3. re-derives the tree from the entries (tlog-tiles entry bundles): each body's leaf hash must
   equal the leaf hash the log's level-0 tile holds (else that entry was rewritten), and the
   root of all leaf hashes must be the checkpoint's root.

Each problem is a ``Finding`` with a stable code (``FindingCode``). The state only moves forward
when a run has no findings, so a bad log cannot make the monitor forget what it saw.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx

from safeguard.core.errors import InvalidInput, SafeguardError, Unreachable
from safeguard.keys.base import PublicKey, load_public_key, public_key_pem
from safeguard.tlog import merkle
from safeguard.tlog.checkpoint import Checkpoint, open_checkpoint, parse_signed_checkpoint
from safeguard.tlog.logkey import note_verifier
from safeguard.tlog.note import rekor_key_id
from safeguard.tlog.tiles import (
    TILE_WIDTH,
    EntryBundle,
    Tile,
    parse_entry_bundle,
    split_tile,
)


class FindingCode(StrEnum):
    CHECKPOINT_SIGNATURE_INVALID = "CHECKPOINT_SIGNATURE_INVALID"
    CHECKPOINT_MALFORMED = "CHECKPOINT_MALFORMED"
    LOG_INFO_INCONSISTENT = "LOG_INFO_INCONSISTENT"
    ORIGIN_CHANGED = "ORIGIN_CHANGED"
    CHECKPOINT_ROLLBACK = "CHECKPOINT_ROLLBACK"
    FORKED_HISTORY = "FORKED_HISTORY"
    ENTRY_REWRITTEN = "ENTRY_REWRITTEN"
    TREE_MISMATCH = "TREE_MISMATCH"


@dataclass(frozen=True, slots=True)
class Finding:
    code: FindingCode
    message: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code.value, "message": self.message, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class MonitorState:
    url: str
    origin: str
    public_key: str
    tree_size: int
    root_hash: str
    checkpoint: str
    verified_at: str

    @classmethod
    def load(cls, path: Path) -> MonitorState | None:
        if not path.exists():
            return None
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                str(doc["url"]),
                str(doc["origin"]),
                str(doc["publicKey"]),
                int(doc["treeSize"]),
                str(doc["rootHash"]),
                str(doc["checkpoint"]),
                str(doc["verifiedAt"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(
                f"the monitor state {path} is unreadable: {exc}",
                hint="restore it, or remove it to start trusting the log afresh",
            ) from None

    def save(self, path: Path) -> None:
        doc = {
            "url": self.url,
            "origin": self.origin,
            "publicKey": self.public_key,
            "treeSize": self.tree_size,
            "rootHash": self.root_hash,
            "checkpoint": self.checkpoint,
            "verifiedAt": self.verified_at,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(json.dumps(doc, indent=2) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)


@dataclass(slots=True)
class MonitorReport:
    url: str
    previous: dict[str, Any] | None = None
    current: dict[str, Any] | None = None
    findings: list[Finding] = field(default_factory=list)
    entries_checked: int = 0
    trusted_on_first_use: bool = False

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["findings"] = [f.to_dict() for f in self.findings]
        out["ok"] = self.ok
        return out


class LogClient:
    """The few read calls a monitor makes, over httpx."""

    def __init__(self, url: str, client: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        self._client = client or httpx.Client(timeout=30.0)

    def _get(self, path: str, **params: Any) -> httpx.Response:
        try:
            response = self._client.get(self.url + path, params=params or None)
        except httpx.HTTPError as exc:
            raise Unreachable(f"cannot reach the log at {self.url}: {exc}") from None
        if response.status_code != 200:
            raise Unreachable(
                f"the log answered {response.status_code} for {path}: {response.text[:200]}"
            )
        return response

    def log_info(self) -> dict[str, Any]:
        doc = self._get("/api/v1/log").json()
        if not isinstance(doc, dict):
            raise Unreachable("the log's /api/v1/log answer is not a JSON object")
        return doc

    def public_key(self) -> bytes:
        return self._get("/api/v1/log/publicKey").content

    def consistency(self, first: int, last: int) -> tuple[list[bytes], bytes]:
        doc = self._get("/api/v1/log/proof", firstSize=first, lastSize=last).json()
        return [bytes.fromhex(h) for h in doc["hashes"]], bytes.fromhex(doc["rootHash"])

    def fetch(self, path: str) -> bytes:
        return self._get("/" + path).content

    def close(self) -> None:
        self._client.close()


def _chunks(size: int) -> Iterator[tuple[int, int]]:
    """(tile index, width) of every level-0 tile of a tree of ``size``."""
    full, rest = divmod(size, TILE_WIDTH)
    for n in range(full):
        yield n, TILE_WIDTH
    if rest:
        yield full, rest


def verify_checkpoint(note: bytes, public_key: PublicKey) -> Checkpoint:
    """The checkpoint in ``note``, if the log key signed it (under whichever key name it uses).

    Shared with ``safeguard.verify.online_log``; raises a ``SafeguardError`` otherwise."""
    _, parsed = parse_signed_checkpoint(note)
    want = rekor_key_id(public_key)  # type: ignore[arg-type]
    names = [s.name for s in parsed.signatures if s.key_id == want]
    if not names:
        raise InvalidInput("the checkpoint carries no signature by the log key")
    return open_checkpoint(note, [note_verifier(names[0], public_key)]).checkpoint


def monitor(
    url: str,
    state_path: Path,
    *,
    public_key_pem_bytes: bytes | None = None,
    client: httpx.Client | None = None,
) -> MonitorReport:
    """One monitoring run; see the module docstring. Saves the state when nothing was found."""
    log = LogClient(url, client)
    try:
        return _run(log, state_path, public_key_pem_bytes)
    finally:
        if client is None:
            log.close()


def _run(log: LogClient, state_path: Path, pem: bytes | None) -> MonitorReport:
    report = MonitorReport(log.url)
    previous = MonitorState.load(state_path)
    if previous is not None:
        report.previous = {
            "treeSize": previous.tree_size,
            "rootHash": previous.root_hash,
            "origin": previous.origin,
        }
    if pem is None and previous is not None:
        pem = previous.public_key.encode()
    if pem is None:
        pem = log.public_key()
        report.trusted_on_first_use = True
    public_key = load_public_key(pem)
    info = log.log_info()
    note = str(info.get("signedTreeHead", "")).encode()
    try:
        checkpoint = verify_checkpoint(note, public_key)
    except SafeguardError as exc:
        code = (
            FindingCode.CHECKPOINT_MALFORMED
            if exc.code.endswith("MALFORMED")
            else FindingCode.CHECKPOINT_SIGNATURE_INVALID
        )
        report.findings.append(
            Finding(code, f"the log's checkpoint does not verify: {exc.message}")
        )
        return report
    root_hex = checkpoint.root_hash.hex()
    report.current = {
        "treeSize": checkpoint.size,
        "rootHash": root_hex,
        "origin": checkpoint.origin,
    }
    if info.get("treeSize") != checkpoint.size or info.get("rootHash") != root_hex:
        report.findings.append(
            Finding(
                FindingCode.LOG_INFO_INCONSISTENT,
                "the log info's treeSize/rootHash differ from its signed checkpoint",
                {"treeSize": info.get("treeSize"), "rootHash": info.get("rootHash")},
            )
        )
    if previous is not None and not _compare(log, previous, checkpoint, report):
        return report
    _rederive(log, checkpoint, report)
    if report.ok:
        MonitorState(
            log.url,
            checkpoint.origin,
            public_key_pem(public_key).decode(),
            checkpoint.size,
            root_hex,
            note.decode(),
            datetime.now(UTC).isoformat(),
        ).save(state_path)
    return report


def _compare(
    log: LogClient, previous: MonitorState, checkpoint: Checkpoint, report: MonitorReport
) -> bool:
    """Findings about the new checkpoint against the remembered one; False stops the run."""
    old_root = bytes.fromhex(previous.root_hash)
    detail = {
        "rememberedSize": previous.tree_size,
        "rememberedRoot": previous.root_hash,
        "size": checkpoint.size,
        "root": checkpoint.root_hash.hex(),
    }
    if checkpoint.origin != previous.origin:
        report.findings.append(
            Finding(
                FindingCode.ORIGIN_CHANGED,
                f"the log now signs for {checkpoint.origin!r}, not {previous.origin!r}",
                detail,
            )
        )
        return False
    problem = extension_problem(log.consistency, previous.tree_size, old_root, checkpoint)
    if problem is not None:
        report.findings.append(Finding(problem[0], problem[1], detail))
        return False
    return True


Consistency = Callable[[int, int], tuple[list[bytes], bytes]]
"""``consistency(first, last) -> (proof hashes, root of last)``: the log's ``/api/v1/log/proof``."""


def extension_problem(
    consistency: Consistency, old_size: int, old_root: bytes, new: Checkpoint
) -> tuple[FindingCode, str] | None:
    """Why ``new`` is not an append-only extension of the tree ``(old_size, old_root)``, or None.

    A smaller size is ``CHECKPOINT_ROLLBACK``; the same size with another root, or a consistency
    proof (RFC 9162 section 2.1.4.2) that is missing, malformed (``ValueError``, ``KeyError``,
    ``TypeError``) or does not verify, is ``FORKED_HISTORY``. Shared with
    ``safeguard.verify.online_log``; errors other than those (``Unreachable``) propagate."""
    if new.size < old_size:
        return (
            FindingCode.CHECKPOINT_ROLLBACK,
            f"the log's checkpoint went back from size {old_size} to {new.size}",
        )
    if new.size == old_size:
        if new.root_hash != old_root:
            return (
                FindingCode.FORKED_HISTORY,
                f"two different signed checkpoints of size {new.size}",
            )
        return None
    if old_size == 0:
        return None
    try:
        proof, root = consistency(old_size, new.size)
        if root != new.root_hash:
            raise merkle.ProofError(
                merkle.ProofFailure.ROOT_MISMATCH, "the proof's rootHash is not the checkpoint's"
            )
        merkle.verify_consistency(old_size, new.size, proof, old_root, new.root_hash)
    except (merkle.ProofError, ValueError, KeyError, TypeError) as exc:
        return (
            FindingCode.FORKED_HISTORY,
            f"the checkpoint of size {new.size} is not an extension of the one of size "
            f"{old_size}: {exc}",
        )
    return None


def _rederive(log: LogClient, checkpoint: Checkpoint, report: MonitorReport) -> None:
    leaves: list[bytes] = []
    rewritten: list[int] = []
    for index, width in _chunks(checkpoint.size):
        try:
            bodies = parse_entry_bundle(log.fetch(EntryBundle(index, width).path), width)
            tile = Tile(0, index, width)
            stored = split_tile(tile, log.fetch(tile.path))
        except SafeguardError as exc:
            report.findings.append(
                Finding(
                    FindingCode.TREE_MISMATCH,
                    f"tile {index} of the log cannot be read back: {exc.message}",
                    {"tile": index},
                )
            )
            return
        for offset, body in enumerate(bodies):
            leaf = merkle.leaf_hash(body)
            if leaf != stored[offset]:
                rewritten.append(index * TILE_WIDTH + offset)
            leaves.append(leaf)
    report.entries_checked = len(leaves)
    for position in rewritten[:100]:
        report.findings.append(
            Finding(
                FindingCode.ENTRY_REWRITTEN,
                f"entry {position} does not hash to the leaf the log's tree holds for it",
                {"logIndex": position},
            )
        )
    if merkle.root(leaves) != checkpoint.root_hash and not rewritten:
        report.findings.append(
            Finding(
                FindingCode.TREE_MISMATCH,
                "the log's entries do not hash to its signed root",
                {"treeSize": checkpoint.size},
            )
        )
