"""Proposed Rekor v1 entries: validate, verify the signature, canonicalise (what the log stores).

Follows sigstore/rekor's entry types (``pkg/types``), API version 0.0.1:

* ``hashedrekord``: ``spec.data.hash{algorithm, value}`` and ``spec.signature{content,
  publicKey.content}``. The signature must verify over the *digest* with the given key
  (``pkg/types/hashedrekord/v0.0.1/entry.go`` ``validate``: ECDSA or RSA PKCS#1 v1.5 with the
  data hash's algorithm). The algorithm is one of ``core.digest.SIGNATURE_ALGORITHMS`` (Rekor's
  schema enum: sha256, sha384, sha512), written in lower case. The value is hex of the
  algorithm's length and is stored in lower case, which the schema says it is ("a lower case
  hexadecimal string") and which is what a verifier re-derives from the artifact's digest: Rekor
  itself stores an upper-case value verbatim, which verifiers then cannot match, and would log
  the same signature twice under two leaves. The key is re-encoded as canonical PEM
  (``pkg/pki/x509`` ``CanonicalValue``: a key, a certificate, or a chain).
* ``dsse``: ``spec.proposedContent{envelope (JSON text), verifiers[base64 PEM]}``. Every
  envelope signature must be verified by one of the verifiers over DSSE's PAE; the canonical body
  is ``spec{envelopeHash (SHA-256 of the envelope text as submitted), payloadHash,
  signatures[{signature (as in the envelope), verifier (base64 canonical PEM)}]}`` with the
  signatures deduplicated and sorted by their text (``pkg/types/dsse/v0.0.1/entry.go``).

The canonical body is RFC 8785 JSON, as Rekor's ``types.CanonicalizeEntry`` writes it, and the
Merkle leaf is that body. Every failure is a ``ProposedEntryInvalid`` (HTTP 400) whose message
says what is wrong; none is a traceback.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from safeguard.core.digest import SIGNATURE_ALGORITHMS, Digest
from safeguard.core.errors import InvalidDigest
from safeguard.formats._json import b64decode, b64encode, loads
from safeguard.formats.dsse import pae
from safeguard.formats.errors import FormatError
from safeguard.formats.rekor import canonicalize
from safeguard.tlog.merkle import leaf_hash
from safeguard.tlog.tiles import MAX_ENTRY_SIZE

MAX_REQUEST_BYTES: Final = 4 * 1024 * 1024
"""Largest proposed entry accepted (a DSSE envelope with a large provenance fits)."""
MAX_VERIFIERS: Final = 16
MAX_CHAIN: Final = 10
_API_VERSION: Final = "0.0.1"
_HASHES: Final[dict[str, Callable[[], hashes.HashAlgorithm]]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_DIGEST_SIZES: Final = {"sha256": 32, "sha384": 48, "sha512": 64}
_HEX: Final = re.compile(r"[0-9a-fA-F]+")
_PEM_BLOCK: Final = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


class ProposedEntryInvalid(FormatError):
    """A proposed entry that the log refuses: malformed, unsupported, or a bad signature."""

    code = "TLOG_ENTRY_INVALID"


class UnsupportedEntryKind(ProposedEntryInvalid):
    code = "TLOG_ENTRY_KIND_UNSUPPORTED"


class EntrySignatureInvalid(ProposedEntryInvalid):
    code = "TLOG_ENTRY_SIGNATURE_INVALID"


class EntryTooLarge(ProposedEntryInvalid):
    code = "TLOG_ENTRY_TOO_LARGE"


@dataclass(frozen=True, slots=True)
class PreparedEntry:
    """A validated entry, ready to be sequenced: its canonical body and leaf hash."""

    body: bytes
    leaf_hash: bytes
    kind: str
    api_version: str
    data_hash: str | None

    @property
    def uuid(self) -> str:
        return self.leaf_hash.hex()


# --- key material ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Verifier:
    public_key: PublicKey
    canonical_pem: bytes


def _pem_blocks(pem: bytes) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for match in _PEM_BLOCK.finditer(pem):
        out.append((match.group(1).decode("ascii"), match.group(0)))
    return out


_VERIFIER_CACHE_SIZE: Final = 4096
_verifiers: OrderedDict[bytes, _Verifier] = OrderedDict()
_verifiers_lock = threading.Lock()


def parse_verifier(pem: bytes, where: str) -> _Verifier:
    """A PEM public key, certificate or certificate chain, and its canonical PEM re-encoding.

    Successful parses are remembered (an LRU keyed by the exact PEM bytes): a signing service
    or CI key submits many entries with the same key, and its parse and re-encoding cost as much
    as a third of the signature check. Key objects are immutable, so sharing them is safe.
    """
    with _verifiers_lock:
        cached = _verifiers.get(pem)
        if cached is not None:
            _verifiers.move_to_end(pem)
            return cached
    verifier = _parse_verifier(pem, where)
    with _verifiers_lock:
        _verifiers[pem] = verifier
        while len(_verifiers) > _VERIFIER_CACHE_SIZE:
            _verifiers.popitem(last=False)
    return verifier


def _parse_verifier(pem: bytes, where: str) -> _Verifier:
    blocks = _pem_blocks(pem.strip())
    if not blocks:
        raise ProposedEntryInvalid(f"{where} is not a PEM public key or certificate")
    try:
        if len(blocks) > 1 or blocks[0][0] == "CERTIFICATE":
            if len(blocks) > MAX_CHAIN:
                raise ProposedEntryInvalid(f"{where} holds more than {MAX_CHAIN} certificates")
            if any(kind != "CERTIFICATE" for kind, _ in blocks):
                raise ProposedEntryInvalid(f"{where} mixes certificates with other PEM blocks")
            certs = [x509.load_pem_x509_certificate(block) for _, block in blocks]
            canonical = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
            key: object = certs[0].public_key()
        elif blocks[0][0] == "PUBLIC KEY":
            public = serialization.load_pem_public_key(blocks[0][1])
            canonical = public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            key = public
        else:
            raise ProposedEntryInvalid(f"{where} has an unsupported PEM block {blocks[0][0]!r}")
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ProposedEntryInvalid(f"{where} cannot be parsed: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise ProposedEntryInvalid(f"{where} holds an unsupported key type {type(key).__name__}")
    return _Verifier(key, canonical)


def _verify_digest(key: PublicKey, signature: bytes, digest: bytes, algorithm: str) -> None:
    hash_algorithm = _HASHES[algorithm]()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, digest, ec.ECDSA(utils.Prehashed(hash_algorithm)))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(hash_algorithm))
        else:
            raise EntrySignatureInvalid(
                "an Ed25519 key cannot verify a signature over a digest",
                hint="log Ed25519 signatures as dsse entries",
            )
    except (InvalidSignature, ValueError):
        raise EntrySignatureInvalid(
            "error processing entry: verifying signature: the signature does not verify over "
            f"the {algorithm} digest with the given public key"
        ) from None


def _verify_message(key: PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
            return True
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
            return True
        # Rekor loads every DSSE verifier with SHA-256; P-384 keys made by safeguard.keys sign
        # with SHA-384, so that is accepted as well. The canonical body is the same either way.
        candidates: list[hashes.HashAlgorithm] = [hashes.SHA256()]
        if isinstance(key.curve, ec.SECP384R1):
            candidates.append(hashes.SHA384())
        for algorithm in candidates:
            try:
                key.verify(signature, message, ec.ECDSA(algorithm))
                return True
            except InvalidSignature:
                continue
    except (InvalidSignature, ValueError):
        return False
    return False


# --- helpers --------------------------------------------------------------------------------


def _obj(parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise ProposedEntryInvalid(f"{where}.{key} is missing or not an object")
    return value


def _str(parent: dict[str, Any], key: str, where: str) -> str:
    value = parent.get(key)
    if not isinstance(value, str) or not value:
        raise ProposedEntryInvalid(f"{where}.{key} is missing or not a non-empty string")
    return value


def _b64(value: Any, where: str) -> bytes:
    return b64decode(value, where, ProposedEntryInvalid)


def _finish(doc: dict[str, Any], kind: str, data_hash: str | None) -> PreparedEntry:
    return _finish_body(canonicalize(doc), kind, data_hash)


def _finish_body(body: bytes, kind: str, data_hash: str | None) -> PreparedEntry:
    if len(body) > MAX_ENTRY_SIZE:
        raise EntryTooLarge(
            f"the canonical entry is {len(body)} bytes; the log stores at most {MAX_ENTRY_SIZE}"
        )
    return PreparedEntry(body, leaf_hash(body), kind, _API_VERSION, data_hash)


# --- hashedrekord 0.0.1 ---------------------------------------------------------------------


def _hashedrekord(spec: dict[str, Any]) -> PreparedEntry:
    data = _obj(spec, "data", "spec")
    digest_obj = _obj(data, "hash", "spec.data")
    algorithm = _str(digest_obj, "algorithm", "spec.data.hash")
    value = _str(digest_obj, "value", "spec.data.hash")
    if algorithm not in _HASHES or algorithm not in SIGNATURE_ALGORITHMS:
        names = ", ".join(sorted(SIGNATURE_ALGORITHMS & _HASHES.keys()))
        raise ProposedEntryInvalid(f"spec.data.hash.algorithm {algorithm!r} is not one of {names}")
    size = _DIGEST_SIZES[algorithm]
    if len(value) != 2 * size or not _HEX.fullmatch(value):
        raise ProposedEntryInvalid(f"spec.data.hash.value is not a {algorithm} hex digest")
    value = value.lower()
    try:  # what verifiers parse the logged digest with (formats.rekor)
        Digest.parse(f"{algorithm}:{value}", algorithms=SIGNATURE_ALGORITHMS)
    except InvalidDigest as exc:
        raise ProposedEntryInvalid(f"spec.data.hash: {exc.message}") from None
    signature = _obj(spec, "signature", "spec")
    content = _b64(signature.get("content"), "spec.signature.content")
    if not content:
        raise ProposedEntryInvalid("spec.signature.content is empty")
    key = _obj(signature, "publicKey", "spec.signature")
    pem = _b64(key.get("content"), "spec.signature.publicKey.content")
    verifier = parse_verifier(pem, "spec.signature.publicKey.content")
    _verify_digest(verifier.public_key, content, bytes.fromhex(value), algorithm)
    return _finish_body(
        hashedrekord_body(algorithm, value, content, verifier.canonical_pem),
        "hashedrekord",
        f"{algorithm}:{value}",
    )


def hashedrekord_body(algorithm: str, value: str, signature: bytes, canonical_pem: bytes) -> bytes:
    """The RFC 8785 body of a hashedrekord 0.0.1 entry, formatted directly.

    Exact because every value is ASCII that JCS writes verbatim (a fixed algorithm name, hex,
    base64) and the keys are written in JCS order; ``canonicalize`` of the same document gives
    the same bytes (the unit tests check), at a fraction of the cost on the append path.
    """
    if algorithm not in _HASHES or not _HEX.fullmatch(value):
        raise ProposedEntryInvalid("a hashedrekord digest must be a known algorithm and hex")
    return (
        '{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{"hash":{"algorithm":"'
        f'{algorithm}","value":"{value}"}}}},"signature":{{"content":"{b64encode(signature)}",'
        f'"publicKey":{{"content":"{b64encode(canonical_pem)}"}}}}}}}}'
    ).encode("ascii")


# --- dsse 0.0.1 -----------------------------------------------------------------------------


def _dsse(spec: dict[str, Any]) -> PreparedEntry:
    if any(k in spec for k in ("envelopeHash", "payloadHash", "signatures")):
        raise ProposedEntryInvalid(
            "a proposed dsse entry carries spec.proposedContent only; envelopeHash, "
            "payloadHash and signatures are computed by the log"
        )
    proposed = _obj(spec, "proposedContent", "spec")
    envelope_text = _str(proposed, "envelope", "spec.proposedContent")
    raw_verifiers = proposed.get("verifiers")
    if not isinstance(raw_verifiers, list) or not raw_verifiers:
        raise ProposedEntryInvalid("spec.proposedContent.verifiers must be a non-empty list")
    if len(raw_verifiers) > MAX_VERIFIERS:
        raise ProposedEntryInvalid(f"at most {MAX_VERIFIERS} verifiers are accepted")
    verifiers = [
        parse_verifier(_b64(v, f"verifiers[{i}]"), f"verifiers[{i}]")
        for i, v in enumerate(raw_verifiers)
    ]
    envelope = loads(envelope_text, "the DSSE envelope", ProposedEntryInvalid)
    if not isinstance(envelope, dict):
        raise ProposedEntryInvalid("the DSSE envelope is not a JSON object")
    payload_type = envelope.get("payloadType")
    if not isinstance(payload_type, str):
        raise ProposedEntryInvalid("the DSSE envelope has no string payloadType")
    payload = _b64url(envelope.get("payload"), "the DSSE envelope payload")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise ProposedEntryInvalid("DSSE envelope must contain 1 or more signatures")
    message = pae(payload_type, payload)
    by_signature: dict[str, _Verifier] = {}
    for index, item in enumerate(signatures):
        if not isinstance(item, dict) or not isinstance(item.get("sig"), str):
            raise ProposedEntryInvalid(f"DSSE envelope signatures[{index}] has no string sig")
        text: str = item["sig"]
        if text in by_signature:
            continue
        raw = _b64url(text, f"DSSE envelope signatures[{index}].sig")
        found = next((v for v in verifiers if _verify_message(v.public_key, raw, message)), None)
        if found is None:
            raise EntrySignatureInvalid(
                "error processing entry: all signatures must have a key that verifies it "
                f"(signatures[{index}] is verified by none of the verifiers)"
            )
        by_signature[text] = found
    payload_hash = hashlib.sha256(payload).hexdigest()
    doc = {
        "apiVersion": _API_VERSION,
        "kind": "dsse",
        "spec": {
            "envelopeHash": {
                "algorithm": "sha256",
                "value": hashlib.sha256(envelope_text.encode("utf-8")).hexdigest(),
            },
            "payloadHash": {"algorithm": "sha256", "value": payload_hash},
            "signatures": [
                {"signature": sig, "verifier": b64encode(by_signature[sig].canonical_pem)}
                for sig in sorted(by_signature)
            ],
        },
    }
    return _finish(doc, "dsse", f"sha256:{payload_hash}")


def _b64url(value: Any, where: str) -> bytes:
    return b64decode(value, where, ProposedEntryInvalid, urlsafe=True)


_KINDS: Final = {"hashedrekord": _hashedrekord, "dsse": _dsse}


def prepare_entry(data: bytes | str | dict[str, Any]) -> PreparedEntry:
    """Validate a proposed entry (JSON bytes or parsed) and return what the log will store."""
    if isinstance(data, bytes | str):
        if len(data) > MAX_REQUEST_BYTES:
            raise EntryTooLarge(f"a proposed entry is at most {MAX_REQUEST_BYTES} bytes")
        doc = loads(data, "the proposed entry", ProposedEntryInvalid)
    else:
        doc = data
    if not isinstance(doc, dict):
        raise ProposedEntryInvalid("the proposed entry is not a JSON object")
    kind = doc.get("kind")
    if not isinstance(kind, str):
        raise ProposedEntryInvalid("the proposed entry has no string 'kind'")
    builder = _KINDS.get(kind)
    if builder is None:
        raise UnsupportedEntryKind(
            f"unsupported entry kind {kind!r}", hint="this log accepts hashedrekord and dsse"
        )
    version = doc.get("apiVersion")
    if version != _API_VERSION:
        raise UnsupportedEntryKind(
            f"unsupported {kind} apiVersion {version!r}", hint=f"this log accepts {_API_VERSION}"
        )
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        raise ProposedEntryInvalid("the proposed entry has no object 'spec'")
    return builder(spec)


def entry_from_body(body: bytes) -> tuple[str, str]:
    """``(kind, apiVersion)`` of a stored canonical body (for display and monitors)."""
    doc = loads(body, "the entry body", ProposedEntryInvalid)
    if not isinstance(doc, dict):
        raise ProposedEntryInvalid("the entry body is not a JSON object")
    return str(doc.get("kind")), str(doc.get("apiVersion"))
