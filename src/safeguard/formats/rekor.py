"""Rekor transparency-log entry bodies (sigstore/rekor ``pkg/types``, rekor-tiles ``api/proto``).

A log entry's ``canonicalizedBody`` is what the log hashes into its Merkle tree, so builders here
produce the exact canonical bytes: RFC 8785 (JSON Canonicalization Scheme, via ``rfc8785``),
which for these documents equals what Rekor's Go ``json.Marshal`` of its models writes.

Built (Rekor v1, apiVersion 0.0.1):

* ``hashedrekord``: ``spec.data.hash{algorithm, value: hex}`` (``sha256``; ``sha384`` for P-384
  keys, which sign SHA-384 digests, as sigstore-go logs them; ``sha512``) and
  ``spec.signature{content: base64 sig, publicKey.content: base64 PEM (key or certificate)}``;
* ``dsse``: the canonical form ``spec{envelopeHash, payloadHash, signatures[{signature,
  verifier}]}`` (signatures sorted by their base64 text, as Rekor's ``Canonicalize`` does; the
  envelope hash is SHA-256 of the envelope JSON exactly as submitted), and the request form
  ``spec.proposedContent{envelope, verifiers}``.

Parsed to one normalised ``RekorEntry`` (artifact digest or envelope/payload hashes, signatures
and their verifiers): hashedrekord 0.0.1 and 0.0.2, dsse 0.0.1 and 0.0.2, intoto 0.0.2 (whose
canonical form double-base64-encodes the envelope payload and signatures).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import rfc8785

from safeguard.core.digest import SIGNATURE_ALGORITHMS, Digest
from safeguard.core.errors import InvalidDigest
from safeguard.formats._json import b64decode, b64encode, loads
from safeguard.formats.dsse import Envelope, Signature
from safeguard.formats.errors import RekorEntryInvalid

KINDS: Final = frozenset({"hashedrekord", "dsse", "intoto"})
_PROTO_HASHES: Final = {"SHA2_256": "sha256", "SHA2_384": "sha384", "SHA2_512": "sha512"}


def canonicalize(document: Any) -> bytes:
    """RFC 8785 canonical JSON of ``document``."""
    return rfc8785.dumps(document)


@dataclass(frozen=True, slots=True)
class EntryVerifier:
    """The key material an entry records for one signature.

    Rekor v1 bodies hold PEM (``pem``: a ``CERTIFICATE`` or ``PUBLIC KEY`` block); Rekor v2
    bodies hold DER (``der``) with ``is_certificate`` and ``key_details`` saying which.
    """

    pem: bytes | None = None
    der: bytes | None = None
    is_certificate: bool = False
    key_details: str | None = None


@dataclass(frozen=True, slots=True)
class EntrySignature:
    signature: bytes
    verifier: EntryVerifier


@dataclass(frozen=True, slots=True)
class RekorEntry:
    """A parsed entry body. ``artifact_digest`` is set for hashedrekord (the signed artifact's
    digest); ``envelope_hash`` and ``payload_hash`` for dsse and intoto."""

    kind: str
    api_version: str
    signatures: tuple[EntrySignature, ...]
    artifact_digest: Digest | None = None
    envelope_hash: Digest | None = None
    payload_hash: Digest | None = None
    envelope: Envelope | None = None
    body: dict[str, Any] = field(default_factory=dict, repr=False)


# --- builders -----------------------------------------------------------------------------


def hashedrekord_v001(digest: Digest | str, signature: bytes, verifier_pem: bytes) -> bytes:
    """Canonical ``hashedrekord`` 0.0.1 body for a signature over an artifact with ``digest``.

    ``verifier_pem`` is the PEM public key or certificate; Rekor stores it base64-encoded.
    """
    d = Digest.parse(digest, algorithms=SIGNATURE_ALGORITHMS) if isinstance(digest, str) else digest
    if d.algorithm not in SIGNATURE_ALGORITHMS:
        raise RekorEntryInvalid(f"hashedrekord cannot record a {d.algorithm} digest")
    _check_pem(verifier_pem)
    return canonicalize(
        {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": d.algorithm, "value": d.hex}},
                "signature": {
                    "content": b64encode(signature),
                    "publicKey": {"content": b64encode(verifier_pem)},
                },
            },
        }
    )


def _dsse_verifiers(envelope: Envelope, verifier_pems: bytes | Sequence[bytes]) -> list[bytes]:
    pems = (
        [verifier_pems] * len(envelope.signatures)
        if isinstance(verifier_pems, bytes)
        else list(verifier_pems)
    )
    if not envelope.signatures:
        raise RekorEntryInvalid("a dsse entry needs a signed envelope")
    if len(pems) != len(envelope.signatures):
        raise RekorEntryInvalid("a dsse entry needs one verifier per envelope signature")
    for pem in pems:
        _check_pem(pem)
    return pems


def dsse_v001(envelope_json: bytes, verifier_pems: bytes | Sequence[bytes]) -> bytes:
    """Canonical ``dsse`` 0.0.1 body for the envelope whose JSON is ``envelope_json``.

    ``verifier_pems`` is one PEM for all signatures or one per signature, in envelope order.
    """
    envelope = Envelope.from_json(envelope_json)
    pems = _dsse_verifiers(envelope, verifier_pems)
    signatures = sorted(
        (
            {"signature": b64encode(s.sig), "verifier": b64encode(pem)}
            for s, pem in zip(envelope.signatures, pems, strict=True)
        ),
        key=lambda item: item["signature"],
    )
    return canonicalize(
        {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(envelope_json).hexdigest(),
                },
                "payloadHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(envelope.payload).hexdigest(),
                },
                "signatures": signatures,
            },
        }
    )


def dsse_v001_request(envelope_json: bytes, verifier_pems: bytes | Sequence[bytes]) -> bytes:
    """The ``dsse`` 0.0.1 proposed entry a client submits: ``spec.proposedContent``."""
    envelope = Envelope.from_json(envelope_json)
    pems = _dsse_verifiers(envelope, verifier_pems)
    unique = list(dict.fromkeys(pems))
    return canonicalize(
        {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "proposedContent": {
                    "envelope": envelope_json.decode("utf-8"),
                    "verifiers": [b64encode(p) for p in unique],
                }
            },
        }
    )


def _check_pem(pem: bytes) -> None:
    if not isinstance(pem, bytes) or not pem.lstrip().startswith(b"-----BEGIN "):
        raise RekorEntryInvalid("a Rekor verifier must be a PEM public key or certificate")


# --- parsing ------------------------------------------------------------------------------


def _obj(parent: Any, key: str, where: str) -> dict[str, Any]:
    value = parent.get(key) if isinstance(parent, dict) else None
    if not isinstance(value, dict):
        raise RekorEntryInvalid(f"Rekor entry has no object {where}.{key}")
    return value


def _str(parent: dict[str, Any], key: str, where: str) -> str:
    value = parent.get(key)
    if not isinstance(value, str):
        raise RekorEntryInvalid(f"Rekor entry has no string {where}.{key}")
    return value


def _hex_digest(obj: dict[str, Any], where: str) -> Digest:
    algorithm = _str(obj, "algorithm", where).lower()
    value = _str(obj, "value", where)
    try:
        return Digest.parse(f"{algorithm}:{value}", algorithms=SIGNATURE_ALGORITHMS)
    except InvalidDigest as exc:
        raise RekorEntryInvalid(f"Rekor entry {where}: {exc.message}") from None


def _proto_digest(obj: dict[str, Any], where: str) -> Digest:
    algorithm = _PROTO_HASHES.get(_str(obj, "algorithm", where))
    raw = b64decode(obj.get("digest"), f"{where}.digest", RekorEntryInvalid)
    if algorithm is None or algorithm not in SIGNATURE_ALGORITHMS:
        raise RekorEntryInvalid(f"Rekor entry {where} uses an unsupported hash algorithm")
    try:
        return Digest.parse(f"{algorithm}:{raw.hex()}", algorithms=SIGNATURE_ALGORITHMS)
    except InvalidDigest as exc:
        raise RekorEntryInvalid(f"Rekor entry {where}: {exc.message}") from None


def _pem_verifier(text: Any, where: str) -> EntryVerifier:
    pem = b64decode(text, where, RekorEntryInvalid)
    if not pem.lstrip().startswith(b"-----BEGIN "):
        raise RekorEntryInvalid(f"Rekor entry {where} is not a base64 PEM block")
    return EntryVerifier(pem=pem, is_certificate=b"CERTIFICATE" in pem.split(b"\n", 1)[0])


def _v2_verifier(obj: dict[str, Any], where: str) -> EntryVerifier:
    details = obj.get("keyDetails")
    if not isinstance(details, str):
        raise RekorEntryInvalid(f"Rekor entry {where}.keyDetails is missing")
    cert, key = obj.get("x509Certificate"), obj.get("publicKey")
    if (cert is None) == (key is None):
        raise RekorEntryInvalid(
            f"Rekor entry {where} needs exactly one of x509Certificate, publicKey"
        )
    holder = cert if cert is not None else key
    if not isinstance(holder, dict):
        raise RekorEntryInvalid(f"Rekor entry {where} key material is not an object")
    der = b64decode(holder.get("rawBytes"), f"{where} rawBytes", RekorEntryInvalid)
    return EntryVerifier(der=der, is_certificate=cert is not None, key_details=details)


def _hashedrekord_v001(spec: dict[str, Any]) -> RekorEntry:
    data = _obj(spec, "data", "spec")
    digest = _hex_digest(_obj(data, "hash", "spec.data"), "spec.data.hash")
    signature = _obj(spec, "signature", "spec")
    content = b64decode(signature.get("content"), "spec.signature.content", RekorEntryInvalid)
    key = _obj(signature, "publicKey", "spec.signature")
    verifier = _pem_verifier(key.get("content"), "spec.signature.publicKey.content")
    return RekorEntry("hashedrekord", "0.0.1", (EntrySignature(content, verifier),), digest)


def _hashedrekord_v002(spec: dict[str, Any]) -> RekorEntry:
    inner = _obj(spec, "hashedRekordV002", "spec")
    digest = _proto_digest(_obj(inner, "data", "spec.hashedRekordV002"), "data")
    signature = _obj(inner, "signature", "spec.hashedRekordV002")
    content = b64decode(signature.get("content"), "signature.content", RekorEntryInvalid)
    verifier = _v2_verifier(_obj(signature, "verifier", "signature"), "signature.verifier")
    return RekorEntry("hashedrekord", "0.0.2", (EntrySignature(content, verifier),), digest)


def _dsse_v001(spec: dict[str, Any]) -> RekorEntry:
    envelope_hash = _hex_digest(_obj(spec, "envelopeHash", "spec"), "spec.envelopeHash")
    payload_hash = _hex_digest(_obj(spec, "payloadHash", "spec"), "spec.payloadHash")
    raw_signatures = spec.get("signatures")
    if not isinstance(raw_signatures, list) or not raw_signatures:
        raise RekorEntryInvalid("Rekor dsse entry has no signatures")
    signatures = []
    for index, item in enumerate(raw_signatures):
        if not isinstance(item, dict):
            raise RekorEntryInvalid(f"Rekor dsse entry signatures[{index}] is not an object")
        sig = b64decode(item.get("signature"), f"signatures[{index}].signature", RekorEntryInvalid)
        verifier = _pem_verifier(item.get("verifier"), f"signatures[{index}].verifier")
        signatures.append(EntrySignature(sig, verifier))
    return RekorEntry("dsse", "0.0.1", tuple(signatures), None, envelope_hash, payload_hash)


def _dsse_v002(spec: dict[str, Any]) -> RekorEntry:
    inner = _obj(spec, "dsseV002", "spec")
    payload_hash = _proto_digest(_obj(inner, "payloadHash", "spec.dsseV002"), "payloadHash")
    raw_signatures = inner.get("signatures")
    if not isinstance(raw_signatures, list) or not raw_signatures:
        raise RekorEntryInvalid("Rekor dsse entry has no signatures")
    signatures = []
    for index, item in enumerate(raw_signatures):
        if not isinstance(item, dict):
            raise RekorEntryInvalid(f"Rekor dsse entry signatures[{index}] is not an object")
        sig = b64decode(item.get("content"), f"signatures[{index}].content", RekorEntryInvalid)
        verifier = _v2_verifier(
            _obj(item, "verifier", f"signatures[{index}]"), f"signatures[{index}].verifier"
        )
        signatures.append(EntrySignature(sig, verifier))
    return RekorEntry("dsse", "0.0.2", tuple(signatures), None, None, payload_hash)


def _intoto_v002(spec: dict[str, Any]) -> RekorEntry:
    content = _obj(spec, "content", "spec")
    envelope_hash = _hex_digest(_obj(content, "hash", "spec.content"), "spec.content.hash")
    payload_hash = _hex_digest(
        _obj(content, "payloadHash", "spec.content"), "spec.content.payloadHash"
    )
    raw_envelope = _obj(content, "envelope", "spec.content")
    payload_type = _str(raw_envelope, "payloadType", "spec.content.envelope")
    payload = b""
    if raw_envelope.get("payload") is not None:
        inner = b64decode(raw_envelope["payload"], "envelope.payload", RekorEntryInvalid)
        payload = b64decode(inner.decode("latin-1"), "envelope.payload", RekorEntryInvalid)
    raw_signatures = raw_envelope.get("signatures")
    if not isinstance(raw_signatures, list) or not raw_signatures:
        raise RekorEntryInvalid("Rekor intoto entry has no signatures")
    signatures = []
    for index, item in enumerate(raw_signatures):
        if not isinstance(item, dict):
            raise RekorEntryInvalid(f"Rekor intoto entry signatures[{index}] is not an object")
        outer = b64decode(item.get("sig"), f"signatures[{index}].sig", RekorEntryInvalid)
        sig = b64decode(outer.decode("latin-1"), f"signatures[{index}].sig", RekorEntryInvalid)
        verifier = _pem_verifier(item.get("publicKey"), f"signatures[{index}].publicKey")
        signatures.append(EntrySignature(sig, verifier))
    envelope = Envelope(payload_type, payload, tuple(Signature(s.signature) for s in signatures))
    return RekorEntry(
        "intoto", "0.0.2", tuple(signatures), None, envelope_hash, payload_hash, envelope
    )


_PARSERS: Final = {
    ("hashedrekord", "0.0.1"): _hashedrekord_v001,
    ("hashedrekord", "0.0.2"): _hashedrekord_v002,
    ("dsse", "0.0.1"): _dsse_v001,
    ("dsse", "0.0.2"): _dsse_v002,
    ("intoto", "0.0.2"): _intoto_v002,
}


def parse_entry(body: bytes | str) -> RekorEntry:
    """Parse a canonicalized entry body (the decoded ``canonicalizedBody`` of a bundle entry)."""
    doc = loads(body, "Rekor entry body", RekorEntryInvalid)
    if not isinstance(doc, dict):
        raise RekorEntryInvalid("Rekor entry body is not a JSON object")
    kind, version = doc.get("kind"), doc.get("apiVersion")
    parser = (
        _PARSERS.get((kind, version))
        if isinstance(kind, str) and isinstance(version, str)
        else None
    )
    if parser is None:
        raise RekorEntryInvalid(
            f"unsupported Rekor entry {kind!r} version {version!r}",
            hint="supported: hashedrekord 0.0.1/0.0.2, dsse 0.0.1/0.0.2, intoto 0.0.2",
        )
    spec = _obj(doc, "spec", "entry")
    entry = parser(spec)
    return RekorEntry(
        entry.kind,
        entry.api_version,
        entry.signatures,
        entry.artifact_digest,
        entry.envelope_hash,
        entry.payload_hash,
        entry.envelope,
        doc,
    )
