"""Helpers for the transparency log service tests: proposed entries and a full entry check."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from safeguard.formats.dsse import pae
from safeguard.keys import SoftwareSigner
from safeguard.keys.base import PublicKey, public_key_der
from safeguard.tlog import merkle
from safeguard.tlog.checkpoint import Checkpoint, open_checkpoint
from safeguard.tlog.logkey import note_verifier, verify_set
from safeguard.tlog.service import set_payload


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hashedrekord(signer: SoftwareSigner, artifact: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(artifact).hexdigest()
    return {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": digest}},
            "signature": {
                "content": b64(signer.sign(artifact)),
                "publicKey": {"content": b64(signer.public_key_pem)},
            },
        },
    }


def dsse_envelope(signer: SoftwareSigner, payload: bytes, payload_type: str) -> bytes:
    sig = signer.sign(pae(payload_type, payload))
    return json.dumps(
        {"payload": b64(payload), "payloadType": payload_type, "signatures": [{"sig": b64(sig)}]}
    ).encode()


def dsse(signer: SoftwareSigner, payload: bytes) -> tuple[dict[str, Any], bytes]:
    envelope = dsse_envelope(signer, payload, "application/vnd.in-toto+json")
    request = {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "proposedContent": {
                "envelope": envelope.decode(),
                "verifiers": [b64(signer.public_key_pem)],
            }
        },
    }
    return request, envelope


def check_log_entry(doc: dict[str, Any], public_key: PublicKey) -> tuple[str, dict[str, Any]]:
    """Verify a Rekor LogEntry answer with tlog.merkle and the note/SET verifiers alone."""
    assert len(doc) == 1
    ((entry_id, entry),) = doc.items()
    assert set(entry) == {"body", "integratedTime", "logID", "logIndex", "verification"}
    body = base64.b64decode(entry["body"])
    der_hash = hashlib.sha256(public_key_der(public_key)).hexdigest()
    assert entry["logID"] == der_hash
    assert entry_id.endswith(merkle.leaf_hash(body).hex()) and len(entry_id) == 80
    proof = entry["verification"]["inclusionProof"]
    assert set(proof) == {"checkpoint", "hashes", "logIndex", "rootHash", "treeSize"}
    assert proof["logIndex"] == entry["logIndex"]
    merkle.verify_inclusion(
        merkle.leaf_hash(body),
        proof["logIndex"],
        proof["treeSize"],
        [bytes.fromhex(h) for h in proof["hashes"]],
        bytes.fromhex(proof["rootHash"]),
    )
    note = proof["checkpoint"].encode()
    name = proof["checkpoint"].split("\n", 1)[0].split(" ", 1)[0]
    signed = open_checkpoint(note, [note_verifier(name, public_key)])
    assert signed.checkpoint == Checkpoint(
        signed.checkpoint.origin, proof["treeSize"], bytes.fromhex(proof["rootHash"])
    )
    payload = set_payload(body, entry["integratedTime"], entry["logID"], entry["logIndex"])
    assert verify_set(
        public_key, base64.b64decode(entry["verification"]["signedEntryTimestamp"]), payload
    )
    return entry_id, entry
