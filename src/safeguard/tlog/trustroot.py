"""A Sigstore ``trusted_root.json`` that names this log, so standard verifiers trust its entries.

Format: protobuf-specs ``dev.sigstore.trustroot.v1.TrustedRoot`` in protobuf JSON
(``application/vnd.dev.sigstore.trustedroot+json;version=0.1``). The log is one
``TransparencyLogInstance`` in ``tlogs``: ``baseUrl``, ``hashAlgorithm: SHA2_256``,
``publicKey{rawBytes (base64 DER SubjectPublicKeyInfo), keyDetails, validFor{start}}`` and
``logId{keyId}`` (base64 of SHA-256 over the DER key, the log ID that entries carry in hex).
``validFor.start`` is when the log was created, so every entry's integrated time is inside it.
An existing trusted root can be extended (``merge``): other logs, CAs and TSAs are kept.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from safeguard.core.errors import InvalidInput

MEDIA_TYPE: Final = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def tlog_instance(
    base_url: str, public_key_der: bytes, key_details: str, start: datetime
) -> dict[str, Any]:
    return {
        "baseUrl": base_url.rstrip("/"),
        "hashAlgorithm": "SHA2_256",
        "publicKey": {
            "rawBytes": base64.b64encode(public_key_der).decode("ascii"),
            "keyDetails": key_details,
            "validFor": {"start": rfc3339(start)},
        },
        "logId": {"keyId": base64.b64encode(hashlib.sha256(public_key_der).digest()).decode()},
    }


def trusted_root(
    base_url: str,
    public_key_der: bytes,
    key_details: str,
    start: datetime,
    *,
    merge: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The trusted root document (a fresh one, or ``merge`` with this log added or replaced)."""
    instance = tlog_instance(base_url, public_key_der, key_details, start)
    if merge is None:
        return {
            "mediaType": MEDIA_TYPE,
            "tlogs": [instance],
            "certificateAuthorities": [],
            "ctlogs": [],
            "timestampAuthorities": [],
        }
    if merge.get("mediaType") != MEDIA_TYPE:
        raise InvalidInput(f"the trusted root to extend is not {MEDIA_TYPE}")
    doc = dict(merge)
    key_id = instance["logId"]["keyId"]
    others = [t for t in doc.get("tlogs", []) if t.get("logId", {}).get("keyId") != key_id]
    doc["tlogs"] = [*others, instance]
    return doc


def write_json_atomic(path: Path, doc: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
