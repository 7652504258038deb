"""Sigstore bundles: media types v0.1, v0.2 and v0.3 (sigstore/protobuf-specs
``protos/sigstore_bundle.proto``, ``sigstore_rekor.proto``, ``sigstore_common.proto``).

A bundle is the protobuf-JSON form of ``dev.sigstore.bundle.v1.Bundle``: field names in
lowerCamel, ``bytes`` as standard base64, ``int64`` as decimal strings::

    {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
     "verificationMaterial": {"publicKey": {"hint"}} | {"x509CertificateChain": {"certificates":
         [{"rawBytes"}]}} | {"certificate": {"rawBytes"}},
       "tlogEntries": [{"logIndex", "logId": {"keyId"}, "kindVersion": {"kind", "version"},
         "integratedTime", "inclusionPromise": {"signedEntryTimestamp"},
         "inclusionProof": {"logIndex", "rootHash", "treeSize", "hashes", "checkpoint":
         {"envelope"}}, "canonicalizedBody"}],
       "timestampVerificationData": {"rfc3161Timestamps": [{"signedTimestamp"}]}},
     "messageSignature": {"messageDigest": {"algorithm": "SHA2_256", "digest"}, "signature"}
     | "dsseEnvelope": {"payload", "payloadType", "signatures": [{"sig", "keyid"}]}}

Why our own model rather than ``sigstore.models.Bundle``: sigstore-python's class only accepts
bundles it can verify keylessly (it rejects ``publicKey`` material, bundles without exactly one
log entry, and v0.1 entries without an inclusion proof), and ``sigstore_models`` requires an
inclusion proof in every entry; Safeguard must read and write all of those (key-signed bundles
from its HSM signers, v0.1 bundles from older cosign). We emit the same bytes sigstore-python
emits (its ``sigstore_models`` field order, compact JSON) and tests round-trip our output through
``sigstore_models`` and ``sigstore.models.Bundle.from_json``.

Parsing enforces the spec's structural rules per version: exactly one kind of verification
material (a certificate chain only before v0.3, a single certificate only from v0.3), exactly one
of ``messageSignature``/``dsseEnvelope``, an inclusion promise in v0.1 entries and an inclusion
proof with checkpoint from v0.2; unknown fields are ignored as protobuf-JSON readers may.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from safeguard.formats._json import b64decode, b64encode, compact, loads
from safeguard.formats.dsse import Envelope
from safeguard.formats.dsse import Signature as DSSESignature
from safeguard.formats.errors import BundleInvalid, DSSEInvalid
from safeguard.formats.rekor import RekorEntry, parse_entry

MEDIA_TYPE_V01: Final = "application/vnd.dev.sigstore.bundle+json;version=0.1"
MEDIA_TYPE_V02: Final = "application/vnd.dev.sigstore.bundle+json;version=0.2"
MEDIA_TYPE_V03_LEGACY: Final = "application/vnd.dev.sigstore.bundle+json;version=0.3"
MEDIA_TYPE_V03: Final = "application/vnd.dev.sigstore.bundle.v0.3+json"
MEDIA_TYPES: Final = {
    MEDIA_TYPE_V01: "0.1",
    MEDIA_TYPE_V02: "0.2",
    MEDIA_TYPE_V03_LEGACY: "0.3",
    MEDIA_TYPE_V03: "0.3",
}
HASH_ALGORITHMS: Final = frozenset({"SHA2_256", "SHA2_384", "SHA2_512", "SHA3_256", "SHA3_384"})
DIGEST_NAMES: Final = {"SHA2_256": "sha256", "SHA2_384": "sha384", "SHA2_512": "sha512"}
"""protobuf-specs ``HashAlgorithm`` names to ``safeguard.core.digest`` algorithm names."""
INT64_MAX: Final = 2**63 - 1
MAX_BUNDLE_SIZE: Final = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class HashOutput:
    algorithm: str
    digest: bytes


@dataclass(frozen=True, slots=True)
class MessageSignature:
    signature: bytes
    message_digest: HashOutput | None = None


@dataclass(frozen=True, slots=True)
class InclusionProof:
    log_index: int
    root_hash: bytes
    tree_size: int
    hashes: tuple[bytes, ...]
    checkpoint: str | None = None


@dataclass(frozen=True, slots=True)
class TransparencyLogEntry:
    log_index: int
    log_id: bytes
    kind: str
    version: str
    canonicalized_body: bytes = field(repr=False)
    integrated_time: int | None = None
    signed_entry_timestamp: bytes | None = None
    inclusion_proof: InclusionProof | None = None

    def entry(self) -> RekorEntry:
        """The parsed ``canonicalizedBody``."""
        return parse_entry(self.canonicalized_body)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "logIndex": str(self.log_index),
            "logId": {"keyId": b64encode(self.log_id)},
            "kindVersion": {"kind": self.kind, "version": self.version},
        }
        if self.integrated_time is not None:
            out["integratedTime"] = str(self.integrated_time)
        if self.signed_entry_timestamp is not None:
            out["inclusionPromise"] = {
                "signedEntryTimestamp": b64encode(self.signed_entry_timestamp)
            }
        if self.inclusion_proof is not None:
            proof = self.inclusion_proof
            raw: dict[str, Any] = {
                "logIndex": str(proof.log_index),
                "rootHash": b64encode(proof.root_hash),
                "treeSize": str(proof.tree_size),
                "hashes": [b64encode(h) for h in proof.hashes],
            }
            if proof.checkpoint is not None:
                raw["checkpoint"] = {"envelope": proof.checkpoint}
            out["inclusionProof"] = raw
        out["canonicalizedBody"] = b64encode(self.canonicalized_body)
        return out


@dataclass(frozen=True, slots=True)
class VerificationMaterial:
    """Exactly one of ``public_key_hint`` (set, possibly ``""``), ``certificate`` (DER) or
    ``certificate_chain`` (DER, leaf first) says who signed; the rest is log and time evidence.
    ``rfc3161_timestamps`` is ``None`` when the bundle has no ``timestampVerificationData``."""

    public_key_hint: str | None = None
    certificate: bytes | None = None
    certificate_chain: tuple[bytes, ...] | None = None
    tlog_entries: tuple[TransparencyLogEntry, ...] = ()
    rfc3161_timestamps: tuple[bytes, ...] | None = None

    @property
    def leaf_certificate(self) -> bytes | None:
        if self.certificate is not None:
            return self.certificate
        if self.certificate_chain:
            return self.certificate_chain[0]
        return None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.public_key_hint is not None:
            out["publicKey"] = {"hint": self.public_key_hint}
        if self.certificate_chain is not None:
            out["x509CertificateChain"] = {
                "certificates": [{"rawBytes": b64encode(c)} for c in self.certificate_chain]
            }
        if self.certificate is not None:
            out["certificate"] = {"rawBytes": b64encode(self.certificate)}
        out["tlogEntries"] = [e.to_dict() for e in self.tlog_entries]
        if self.rfc3161_timestamps is not None:
            out["timestampVerificationData"] = {
                "rfc3161Timestamps": [
                    {"signedTimestamp": b64encode(t)} for t in self.rfc3161_timestamps
                ]
            }
        return out


@dataclass(frozen=True, slots=True)
class Bundle:
    media_type: str
    verification_material: VerificationMaterial
    message_signature: MessageSignature | None = None
    dsse_envelope: Envelope | None = None

    def __post_init__(self) -> None:
        _check(self)

    @property
    def version(self) -> str:
        return MEDIA_TYPES[self.media_type]

    @property
    def signature(self) -> bytes:
        """The (first) signature: the message signature, or the envelope's first ``sig``."""
        if self.message_signature is not None:
            return self.message_signature.signature
        assert self.dsse_envelope is not None
        return self.dsse_envelope.signatures[0].sig

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "verificationMaterial": self.verification_material.to_dict(),
        }
        if self.message_signature is not None:
            ms = self.message_signature
            raw: dict[str, Any] = {}
            if ms.message_digest is not None:
                raw["messageDigest"] = {
                    "algorithm": ms.message_digest.algorithm,
                    "digest": b64encode(ms.message_digest.digest),
                }
            raw["signature"] = b64encode(ms.signature)
            out["messageSignature"] = raw
        if self.dsse_envelope is not None:
            env = self.dsse_envelope
            signatures = []
            for s in env.signatures:
                item = {"sig": b64encode(s.sig)}
                if s.keyid:
                    item["keyid"] = s.keyid
                signatures.append(item)
            out["dsseEnvelope"] = {
                "payload": b64encode(env.payload),
                "payloadType": env.payload_type,
                "signatures": signatures,
            }
        return out

    def to_json(self) -> bytes:
        """Compact protobuf-JSON, in the field order sigstore-python writes."""
        return compact(self.to_dict())

    @classmethod
    def from_json(cls, data: bytes | str) -> Bundle:
        if len(data) > MAX_BUNDLE_SIZE:
            raise BundleInvalid(f"bundle is larger than {MAX_BUNDLE_SIZE} bytes")
        return cls.from_dict(loads(data, "Sigstore bundle", BundleInvalid))

    @classmethod
    def from_dict(cls, doc: Any) -> Bundle:
        return _parse(doc)


def message_signature_bundle(
    signature: bytes,
    *,
    digest: bytes | None = None,
    digest_algorithm: str = "SHA2_256",
    certificate: bytes | None = None,
    public_key_hint: str | None = None,
    tlog_entries: Sequence[TransparencyLogEntry] = (),
    rfc3161_timestamps: Sequence[bytes] | None = None,
) -> Bundle:
    """A v0.3 bundle for a signature over an artifact (``digest`` is its raw hash).

    Give ``certificate`` (DER) for keyless signing, else ``public_key_hint`` (see
    ``safeguard.keys`` ``key_id``) for a key.
    """
    return Bundle(
        MEDIA_TYPE_V03,
        _material(certificate, public_key_hint, tlog_entries, rfc3161_timestamps),
        message_signature=MessageSignature(
            signature, HashOutput(digest_algorithm, digest) if digest is not None else None
        ),
    )


def dsse_bundle(
    envelope: Envelope,
    *,
    certificate: bytes | None = None,
    public_key_hint: str | None = None,
    tlog_entries: Sequence[TransparencyLogEntry] = (),
    rfc3161_timestamps: Sequence[bytes] | None = None,
) -> Bundle:
    """A v0.3 bundle holding a signed DSSE envelope (an attestation)."""
    return Bundle(
        MEDIA_TYPE_V03,
        _material(certificate, public_key_hint, tlog_entries, rfc3161_timestamps),
        dsse_envelope=envelope,
    )


def _material(
    certificate: bytes | None,
    public_key_hint: str | None,
    tlog_entries: Sequence[TransparencyLogEntry],
    rfc3161_timestamps: Sequence[bytes] | None,
) -> VerificationMaterial:
    if (certificate is None) == (public_key_hint is None):
        raise BundleInvalid("a bundle needs exactly one of a certificate or a public key hint")
    return VerificationMaterial(
        public_key_hint,
        certificate,
        None,
        tuple(tlog_entries),
        tuple(rfc3161_timestamps) if rfc3161_timestamps is not None else None,
    )


# --- parsing ------------------------------------------------------------------------------


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BundleInvalid(f"bundle {where} is not an object")
    return value


def _int64(value: Any, where: str) -> int:
    """protobuf-JSON int64: a decimal string (a JSON number is also accepted, as protojson does)."""
    if isinstance(value, bool):
        raise BundleInvalid(f"bundle {where} is not an integer")
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        number = int(value)
    elif isinstance(value, int):
        number = value
    else:
        raise BundleInvalid(f"bundle {where} is not a non-negative integer")
    if number < 0 or number > INT64_MAX:
        raise BundleInvalid(f"bundle {where} is out of range")
    return number


def _bytes(value: Any, where: str) -> bytes:
    return b64decode(value, f"bundle {where}", BundleInvalid, urlsafe=True)


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BundleInvalid(f"bundle {where} is not a list")
    return value


def _tlog_entry(raw: Any, index: int, version: str) -> TransparencyLogEntry:
    where = f"tlogEntries[{index}]"
    entry = _object(raw, where)
    log_index = _int64(entry.get("logIndex"), f"{where}.logIndex")
    log_id = _bytes(_object(entry.get("logId"), f"{where}.logId").get("keyId"), f"{where}.logId")
    kind_version = _object(entry.get("kindVersion"), f"{where}.kindVersion")
    kind, kind_ver = kind_version.get("kind"), kind_version.get("version")
    if not isinstance(kind, str) or not kind or not isinstance(kind_ver, str) or not kind_ver:
        raise BundleInvalid(f"bundle {where}.kindVersion needs kind and version")
    integrated_time = None
    if entry.get("integratedTime") is not None:
        integrated_time = _int64(entry["integratedTime"], f"{where}.integratedTime")
    set_ = None
    if entry.get("inclusionPromise") is not None:
        promise = _object(entry["inclusionPromise"], f"{where}.inclusionPromise")
        set_ = _bytes(promise.get("signedEntryTimestamp"), f"{where}.signedEntryTimestamp")
    proof = None
    if entry.get("inclusionProof") is not None:
        raw_proof = _object(entry["inclusionProof"], f"{where}.inclusionProof")
        p_where = f"{where}.inclusionProof"
        p_index = _int64(raw_proof.get("logIndex"), f"{p_where}.logIndex")
        tree_size = _int64(raw_proof.get("treeSize"), f"{p_where}.treeSize")
        if p_index >= tree_size:
            raise BundleInvalid(f"bundle {p_where}: logIndex {p_index} is not below treeSize")
        checkpoint = None
        if raw_proof.get("checkpoint") is not None:
            envelope = _object(raw_proof["checkpoint"], f"{p_where}.checkpoint").get("envelope")
            if not isinstance(envelope, str):
                raise BundleInvalid(f"bundle {p_where}.checkpoint has no envelope text")
            checkpoint = envelope
        proof = InclusionProof(
            p_index,
            _bytes(raw_proof.get("rootHash"), f"{p_where}.rootHash"),
            tree_size,
            tuple(
                _bytes(h, f"{p_where}.hashes[{i}]")
                for i, h in enumerate(_list(raw_proof.get("hashes"), f"{p_where}.hashes"))
            ),
            checkpoint,
        )
    if entry.get("canonicalizedBody") is None:
        raise BundleInvalid(f"bundle {where} has no canonicalizedBody")
    body = _bytes(entry["canonicalizedBody"], f"{where}.canonicalizedBody")
    if version == "0.1" and set_ is None:
        raise BundleInvalid(f"bundle v0.1 {where} has no inclusion promise")
    if version != "0.1" and (proof is None or proof.checkpoint is None):
        raise BundleInvalid(f"bundle v{version} {where} has no inclusion proof with a checkpoint")
    return TransparencyLogEntry(
        log_index, log_id, kind, kind_ver, body, integrated_time, set_, proof
    )


def _verification_material(raw: Any, version: str) -> VerificationMaterial:
    vm = _object(raw, "verificationMaterial")
    present = [
        k for k in ("publicKey", "x509CertificateChain", "certificate") if vm.get(k) is not None
    ]
    if len(present) != 1:
        raise BundleInvalid(
            "bundle verificationMaterial needs exactly one of publicKey, x509CertificateChain, "
            f"certificate (found {', '.join(present) or 'none'})"
        )
    hint = certificate = chain = None
    if present[0] == "publicKey":
        hint = _object(vm["publicKey"], "publicKey").get("hint", "")
        if not isinstance(hint, str):
            raise BundleInvalid("bundle publicKey.hint is not a string")
    elif present[0] == "certificate":
        if version in ("0.1", "0.2"):
            raise BundleInvalid(f"bundle v{version} cannot hold a single certificate")
        certificate = _bytes(
            _object(vm["certificate"], "certificate").get("rawBytes"), "certificate"
        )
        if not certificate:
            raise BundleInvalid("bundle certificate is empty")
    else:
        if version == "0.3":
            raise BundleInvalid("bundle v0.3 must hold certificate, not x509CertificateChain")
        certs = _list(
            _object(vm["x509CertificateChain"], "x509CertificateChain").get("certificates"),
            "x509CertificateChain.certificates",
        )
        if not certs:
            raise BundleInvalid("bundle x509CertificateChain is empty")
        chain = tuple(
            _bytes(_object(c, f"certificates[{i}]").get("rawBytes"), f"certificates[{i}]")
            for i, c in enumerate(certs)
        )
    entries = tuple(
        _tlog_entry(e, i, version)
        for i, e in enumerate(_list(vm.get("tlogEntries"), "tlogEntries"))
    )
    timestamps = None
    if vm.get("timestampVerificationData") is not None:
        tvd = _object(vm["timestampVerificationData"], "timestampVerificationData")
        timestamps = tuple(
            _bytes(
                _object(t, f"rfc3161Timestamps[{i}]").get("signedTimestamp"),
                f"rfc3161Timestamps[{i}]",
            )
            for i, t in enumerate(_list(tvd.get("rfc3161Timestamps"), "rfc3161Timestamps"))
        )
    return VerificationMaterial(hint, certificate, chain, entries, timestamps)


def _message_signature(raw: Any) -> MessageSignature:
    ms = _object(raw, "messageSignature")
    signature = _bytes(ms.get("signature"), "messageSignature.signature")
    if not signature:
        raise BundleInvalid("bundle messageSignature.signature is empty")
    digest = None
    if ms.get("messageDigest") is not None:
        md = _object(ms["messageDigest"], "messageDigest")
        algorithm = md.get("algorithm")
        if algorithm not in HASH_ALGORITHMS:
            raise BundleInvalid(f"bundle messageDigest.algorithm {algorithm!r} is not supported")
        digest = HashOutput(algorithm, _bytes(md.get("digest"), "messageDigest.digest"))
    return MessageSignature(signature, digest)


def _parse(doc: Any) -> Bundle:
    bundle = _object(doc, "document")
    media_type = bundle.get("mediaType")
    if media_type not in MEDIA_TYPES:
        raise BundleInvalid(
            f"unsupported bundle media type {media_type!r}",
            hint="Safeguard reads Sigstore bundles v0.1, v0.2 and v0.3",
        )
    version = MEDIA_TYPES[media_type]
    material = _verification_material(bundle.get("verificationMaterial"), version)
    has_message = bundle.get("messageSignature") is not None
    has_envelope = bundle.get("dsseEnvelope") is not None
    if has_message == has_envelope:
        raise BundleInvalid("bundle needs exactly one of messageSignature and dsseEnvelope")
    message = _message_signature(bundle["messageSignature"]) if has_message else None
    envelope = None
    if has_envelope:
        try:
            envelope = Envelope.from_dict(bundle["dsseEnvelope"])
        except DSSEInvalid as exc:
            raise BundleInvalid(f"bundle dsseEnvelope: {exc.message}") from None
        if not envelope.signatures:
            raise BundleInvalid("bundle dsseEnvelope has no signatures")
    return Bundle(media_type, material, message, envelope)


def _check(bundle: Bundle) -> None:
    if bundle.media_type not in MEDIA_TYPES:
        raise BundleInvalid(f"unsupported bundle media type {bundle.media_type!r}")
    if (bundle.message_signature is None) == (bundle.dsse_envelope is None):
        raise BundleInvalid("bundle needs exactly one of messageSignature and dsseEnvelope")
    vm = bundle.verification_material
    kinds = [
        vm.public_key_hint is not None,
        vm.certificate is not None,
        vm.certificate_chain is not None,
    ]
    if sum(kinds) != 1:
        raise BundleInvalid("bundle needs exactly one kind of verification material")


__all__ = [
    "MEDIA_TYPES",
    "MEDIA_TYPE_V01",
    "MEDIA_TYPE_V02",
    "MEDIA_TYPE_V03",
    "MEDIA_TYPE_V03_LEGACY",
    "Bundle",
    "DSSESignature",
    "HashOutput",
    "InclusionProof",
    "MessageSignature",
    "TransparencyLogEntry",
    "VerificationMaterial",
    "dsse_bundle",
    "message_signature_bundle",
]
