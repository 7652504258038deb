"""The append and read fast paths produce exactly what the general code would.

The hashedrekord body is formatted directly instead of through ``rfc8785``, parsed keys are
remembered, ``LogEntry`` answers are assembled from cached pieces, and the sequencer inserts rows
with multi-row statements; each must give the same bytes (or the same verdict, or the same rows)
as the straightforward way, including after the tree grows.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safeguard.formats.rekor import canonicalize
from safeguard.keys import SoftwareSigner
from safeguard.store import Database, default_database_url, open_database
from safeguard.tlog import entries as entries_module
from safeguard.tlog import storage
from safeguard.tlog.api import TlogApp
from safeguard.tlog.entries import (
    EntrySignatureInvalid,
    ProposedEntryInvalid,
    hashedrekord_body,
    prepare_entry,
)
from safeguard.tlog.logkey import generate_log_key
from safeguard.tlog.merkle import NodeID
from safeguard.tlog.service import TransparencyLog, TreeHead
from safeguard.tlog.storage import StoredEntry
from tests.unit.tlog.tlog_helpers import b64, dsse, hashedrekord

SIGNER = SoftwareSigner.generate()


@pytest.mark.parametrize(
    ("algorithm", "value"),
    [
        ("sha256", hashlib.sha256(b"a").hexdigest()),
        ("sha256", hashlib.sha256(b"b").hexdigest().upper()),
        ("sha384", hashlib.sha384(b"c").hexdigest()),
        ("sha512", hashlib.sha512(b"d").hexdigest()),
    ],
)
def test_hashedrekord_body_is_rfc8785(algorithm: str, value: str) -> None:
    signature = SIGNER.sign(b"anything")
    doc = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": algorithm, "value": value}},
            "signature": {
                "content": b64(signature),
                "publicKey": {"content": b64(SIGNER.public_key_pem)},
            },
        },
    }
    assert hashedrekord_body(algorithm, value, signature, SIGNER.public_key_pem) == canonicalize(
        doc
    )


@pytest.mark.parametrize(
    ("algorithm", "value"), [("md5", "00" * 16), ("sha256", 'ab"cd'), ("sha256", "")]
)
def test_hashedrekord_body_refuses_what_it_cannot_write_verbatim(
    algorithm: str, value: str
) -> None:
    with pytest.raises(ProposedEntryInvalid):
        hashedrekord_body(algorithm, value, b"sig", SIGNER.public_key_pem)


def test_prepared_bodies_match_the_general_canonicaliser() -> None:
    request = hashedrekord(SIGNER, b"artifact")
    prepared = prepare_entry(request)
    assert prepared.body == canonicalize(request)  # the request is already canonical in shape
    assert prepared.data_hash == "sha256:" + hashlib.sha256(b"artifact").hexdigest()


def test_remembered_keys_still_check_every_signature() -> None:
    first = prepare_entry(hashedrekord(SIGNER, b"one"))
    assert SIGNER.public_key_pem in entries_module._verifiers
    second = prepare_entry(hashedrekord(SIGNER, b"two"))  # served from the cache
    assert first.leaf_hash != second.leaf_hash
    forged = hashedrekord(SIGNER, b"three")
    forged["spec"]["signature"]["content"] = b64(SIGNER.sign(b"not three"))
    with pytest.raises(EntrySignatureInvalid):
        prepare_entry(forged)
    # Another key is another cache entry, and it does not verify this signature.
    other = SoftwareSigner.generate()
    forged["spec"]["signature"]["publicKey"]["content"] = b64(other.public_key_pem)
    forged["spec"]["signature"]["content"] = b64(SIGNER.sign(b"three"))
    with pytest.raises(EntrySignatureInvalid):
        prepare_entry(forged)


def test_key_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(entries_module, "_VERIFIER_CACHE_SIZE", 2)
    signers = [SoftwareSigner.generate() for _ in range(3)]
    for signer in signers:
        prepare_entry(hashedrekord(signer, b"x"))
    assert len(entries_module._verifiers) == 2
    assert signers[0].public_key_pem not in entries_module._verifiers


# --- LogEntry answers ------------------------------------------------------------------------


@pytest.fixture
def tlog(tmp_path: Path) -> Iterator[TransparencyLog]:
    db: Database = open_database(default_database_url(tmp_path))
    log = TransparencyLog(db, generate_log_key(tmp_path / "log.pem"))
    yield log
    log.close()
    db.dispose()


def _reference(log: TransparencyLog, entry: StoredEntry, head: TreeHead) -> bytes:
    """The answer as the general code writes it: a dict through ``json.dumps``."""
    proof = log.inclusion_proof(entry.index, head.size)
    doc: dict[str, Any] = {
        log.entry_id(entry.leaf_hash): {
            "body": base64.b64encode(entry.body).decode("ascii"),
            "integratedTime": entry.integrated_time,
            "logID": log.key.log_id_hex,
            "logIndex": entry.index,
            "verification": {
                "inclusionProof": {
                    "checkpoint": head.checkpoint,
                    "hashes": [h.hex() for h in proof],
                    "logIndex": entry.index,
                    "rootHash": head.root_hash.hex(),
                    "treeSize": head.size,
                },
                "signedEntryTimestamp": base64.b64encode(entry.signed_entry_timestamp).decode(
                    "ascii"
                ),
            },
        }
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def test_log_entry_answers_match_json_dumps_as_the_tree_grows(tlog: TransparencyLog) -> None:
    app = TlogApp(tlog)
    first = tlog.add_sync(prepare_entry(hashedrekord(SIGNER, b"first")))
    # A tree of one: the proof is empty.
    assert app._log_entry(first.entry, first.head) == _reference(tlog, first.entry, first.head)
    assert b'"hashes":[]' in app._log_entry(first.entry, first.head)
    request, _ = dsse(SIGNER, b'{"_type":"https://in-toto.io/Statement/v1"}')
    for i in range(5):
        tlog.add_sync(prepare_entry(hashedrekord(SIGNER, f"more {i}".encode())))
    tlog.add_sync(prepare_entry(request))
    for index in range(tlog.head().size):
        entry = tlog.entry_by_index(index)
        head = tlog.head()
        expected = _reference(tlog, entry, head)
        assert app._log_entry(entry) == expected
        assert app._log_entry(entry) == expected  # from the answer cache
    # After the tree grows, the cached answers of the old size are not served for the new one.
    tlog.add_sync(prepare_entry(hashedrekord(SIGNER, b"later")))
    head = tlog.head()
    assert app._log_entry(first.entry) == _reference(tlog, first.entry, head)
    assert (
        json.loads(app._log_entry(first.entry))[tlog.entry_id(first.entry.leaf_hash)][
            "verification"
        ]["inclusionProof"]["treeSize"]
        == head.size
    )
    # The answer of the first batch is still the one recorded at its own tree size.
    assert app._log_entry(first.entry, first.head) == _reference(tlog, first.entry, first.head)


# --- multi-row inserts ---------------------------------------------------------------------


@pytest.mark.parametrize("multirow", [True, False])
def test_entry_and_node_inserts_round_trip(
    tmp_path: Path, multirow: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Multi-row inserts (chunked by the parameter limit) and, for a driver whose placeholder
    style they do not write, SQLAlchemy's own insert: the rows read back the same."""
    if not multirow:
        monkeypatch.setattr(storage, "_placeholder", lambda conn: None)
    db = open_database(default_database_url(tmp_path))
    log = TransparencyLog(db, generate_log_key(tmp_path / "log.pem"))  # creates the schema
    log.close()
    rows = [
        storage.NewEntry(i, i.to_bytes(32, "big"), b"{}", 7, "k", "v", None, b"s")
        for i in range(300)
    ]
    nodes = [(NodeID(9, i), i.to_bytes(32, "big")) for i in range(400)]
    try:
        with db.write() as conn:
            storage.insert_entries(conn, rows)
            storage.insert_nodes(conn, nodes)
        with db.read() as conn:
            back = storage.entries_range(conn, 0, 1000)
            assert [e.index for e in back] == list(range(300))
            assert [e.leaf_hash for e in back] == [r.leaf_hash for r in rows]
            assert storage.node_range(conn, 9, 0, 400) == [h for _, h in nodes]
    finally:
        db.dispose()
