"""Transparency-log evidence in a bundle or a cosign ``.sig`` layer, checked offline.

Follows the Sigstore client specification ("Verification", steps on the transparency log) and
Rekor's formats:

* the **signed entry timestamp** (SET, Rekor v1 "inclusion promise") is the log's signature over
  the RFC 8785 canonical JSON ``{"body": base64(canonicalizedBody), "integratedTime": t,
  "logID": hex(logId), "logIndex": i}`` (rekor ``pkg/api/entries.go``, cosign
  ``pkg/cosign/tlog.go`` ``VerifySET``);
* the **inclusion proof** is an RFC 9162 audit path from ``leaf_hash(canonicalizedBody)`` to the
  root of a tree whose size and root a **C2SP checkpoint** signed by the log key states
  (``safeguard.tlog.merkle``, ``safeguard.tlog.checkpoint``);
* the log key is looked up in the trusted root by log ID and must be valid at the entry's
  integrated time;
* the entry body must be about *this* signature (CVE-2022-36056's lesson): same artifact digest
  or payload hash, same signature bytes, same key or certificate (``check_binding``).

sigstore-python does the same for the keyless bundles it accepts; this module covers the rest:
public-key bundles, v0.1 bundles whose entries carry only a SET, ``intoto`` 0.0.2 entries and the
``dev.sigstore.cosign/bundle`` annotation of legacy ``.sig`` layers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from safeguard.core.digest import Digest
from safeguard.core.errors import SafeguardError
from safeguard.formats._json import b64encode
from safeguard.formats.bundle import TransparencyLogEntry
from safeguard.formats.cosign_sig import RekorBundle
from safeguard.formats.errors import FormatError
from safeguard.formats.rekor import EntryVerifier, RekorEntry, parse_entry
from safeguard.keys.base import PublicKey, public_key_der
from safeguard.tlog import merkle
from safeguard.tlog.checkpoint import open_checkpoint
from safeguard.tlog.note import EcdsaVerifier, Ed25519Verifier, NoteVerifier
from safeguard.verify.errors import CheckFailed
from safeguard.verify.trustroot import LogKey, TrustMaterial


@dataclass(frozen=True, slots=True)
class LogEvidence:
    log_index: int
    log_id: str  # hex
    log_url: str
    kind: str
    integrated_time: dt.datetime | None
    set_verified: bool
    proof_verified: bool
    checkpoint_origin: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "logIndex": self.log_index,
            "logId": self.log_id,
            "logUrl": self.log_url,
            "kind": self.kind,
            "integratedTime": self.integrated_time.isoformat() if self.integrated_time else None,
            "signedEntryTimestamp": self.set_verified,
            "inclusionProof": self.proof_verified,
            "checkpointOrigin": self.checkpoint_origin,
        }


def entry_from_rekor_bundle(bundle: RekorBundle) -> TransparencyLogEntry:
    """cosign's ``dev.sigstore.cosign/bundle`` annotation as a bundle log entry (SET only)."""
    try:
        parsed = parse_entry(bundle.body)
        log_id = bytes.fromhex(bundle.log_id)
    except (FormatError, ValueError) as exc:
        raise CheckFailed("TLOG_ENTRY_MALFORMED", f"cosign bundle annotation: {exc}") from None
    return TransparencyLogEntry(
        bundle.log_index,
        log_id,
        parsed.kind,
        parsed.api_version,
        bundle.body,
        bundle.integrated_time,
        bundle.signed_entry_timestamp,
        None,
    )


def _verify_with(key: Any, signature: bytes, data: bytes) -> bool:
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def set_payload(entry: TransparencyLogEntry) -> bytes:
    """The bytes a Rekor v1 signed entry timestamp signs."""
    return rfc8785.dumps(
        {
            "body": b64encode(entry.canonicalized_body),
            "integratedTime": entry.integrated_time,
            "logID": entry.log_id.hex(),
            "logIndex": entry.log_index,
        }
    )


def _note_verifier(log: LogKey) -> NoteVerifier | None:
    try:
        if isinstance(log.public_key, ec.EllipticCurvePublicKey):
            return EcdsaVerifier(log.note_name, log.public_key)
        if isinstance(log.public_key, ed25519.Ed25519PublicKey):
            return Ed25519Verifier(log.note_name, log.public_key)
    except SafeguardError:
        return None
    return None


def verify_entry(entry: TransparencyLogEntry, trust: TrustMaterial) -> LogEvidence:
    """Check a log entry's SET and/or inclusion proof against ``trust``; see module docstring.

    Raises ``CheckFailed`` naming the reason: ``TLOG_UNKNOWN_LOG``, ``TLOG_KEY_OUTSIDE_VALIDITY``,
    ``TLOG_SET_INVALID``, ``TLOG_PROOF_INVALID``, ``TLOG_CHECKPOINT_INVALID``, ``TLOG_NO_PROOF``.
    """
    log = trust.log_for(entry.log_id)
    if log is None:
        raise CheckFailed(
            "TLOG_UNKNOWN_LOG",
            f"log entry {entry.log_index} is from log {entry.log_id.hex()}, "
            "which the trusted root does not list",
        )
    integrated = (
        dt.datetime.fromtimestamp(entry.integrated_time, dt.UTC) if entry.integrated_time else None
    )
    if integrated is not None and not log.valid.contains(integrated):
        raise CheckFailed(
            "TLOG_KEY_OUTSIDE_VALIDITY",
            f"log entry {entry.log_index} was integrated at {integrated.isoformat()}, outside "
            f"the validity {log.valid.describe()} of log key {log.base_url}",
        )
    set_ok = False
    if entry.signed_entry_timestamp is not None:
        if entry.integrated_time is None:
            raise CheckFailed(
                "TLOG_SET_INVALID", f"log entry {entry.log_index} has a SET but no integrated time"
            )
        if not _verify_with(log.public_key, entry.signed_entry_timestamp, set_payload(entry)):
            raise CheckFailed(
                "TLOG_SET_INVALID",
                f"the signed entry timestamp of log entry {entry.log_index} does not verify "
                f"with the key of {log.base_url}",
            )
        set_ok = True
    proof_ok = False
    origin = None
    proof = entry.inclusion_proof
    if proof is not None:
        leaf = merkle.leaf_hash(entry.canonicalized_body)
        try:
            merkle.verify_inclusion(
                leaf, proof.log_index, proof.tree_size, proof.hashes, proof.root_hash
            )
        except SafeguardError as exc:
            raise CheckFailed(
                "TLOG_PROOF_INVALID",
                f"inclusion proof of log entry {entry.log_index}: {exc.message}",
            ) from None
        if proof.checkpoint is not None:
            verifier = _note_verifier(log)
            if verifier is None:
                raise CheckFailed(
                    "TLOG_CHECKPOINT_INVALID",
                    f"cannot check checkpoints signed with a {log.key_details} key",
                )
            try:
                opened = open_checkpoint(proof.checkpoint.encode("utf-8"), [verifier])
            except SafeguardError as exc:
                raise CheckFailed(
                    "TLOG_CHECKPOINT_INVALID",
                    f"checkpoint of log entry {entry.log_index}: {exc.message}",
                ) from None
            cp = opened.checkpoint
            if cp.size != proof.tree_size or cp.root_hash != proof.root_hash:
                raise CheckFailed(
                    "TLOG_CHECKPOINT_INVALID",
                    f"checkpoint of log entry {entry.log_index} states size {cp.size}, which "
                    "does not match the inclusion proof",
                )
            origin = cp.origin
            proof_ok = True
    if not set_ok and not proof_ok:
        raise CheckFailed(
            "TLOG_NO_PROOF",
            f"log entry {entry.log_index} has neither a signed entry timestamp nor an inclusion "
            "proof with a signed checkpoint",
        )
    return LogEvidence(
        entry.log_index,
        entry.log_id.hex(),
        log.base_url,
        f"{entry.kind}/{entry.version}",
        integrated,
        set_ok,
        proof_ok,
        origin,
    )


def _verifier_key_der(verifier: EntryVerifier) -> bytes | None:
    try:
        if verifier.pem is not None:
            if verifier.is_certificate:
                return public_key_der(
                    x509.load_pem_x509_certificate(verifier.pem).public_key()  # type: ignore[arg-type]
                )
            key = serialization.load_pem_public_key(verifier.pem)
        elif verifier.der is not None:
            if verifier.is_certificate:
                return public_key_der(
                    x509.load_der_x509_certificate(verifier.der).public_key()  # type: ignore[arg-type]
                )
            key = serialization.load_der_public_key(verifier.der)
        else:
            return None
    except ValueError:
        return None
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_binding(
    entry: TransparencyLogEntry,
    *,
    signature: bytes,
    public_key: PublicKey,
    artifact_digest: Digest | None = None,
    payload: bytes | None = None,
) -> RekorEntry:
    """Check that the entry records this signature, by this key, over this content.

    ``artifact_digest`` is what a ``hashedrekord`` entry must name; ``payload`` the DSSE payload a
    ``dsse``/``intoto`` entry must hash to. Raises ``CheckFailed("TLOG_BODY_MISMATCH")``.
    """
    try:
        body = entry.entry()
    except FormatError as exc:
        raise CheckFailed("TLOG_ENTRY_MALFORMED", f"log entry body: {exc.message}") from None
    where = f"log entry {entry.log_index} ({body.kind} {body.api_version})"
    if (body.kind, body.api_version) != (entry.kind, entry.version):
        raise CheckFailed(
            "TLOG_BODY_MISMATCH",
            f"{where}: the body's kind does not match the entry's {entry.kind}/{entry.version}",
        )
    if body.kind == "hashedrekord":
        if artifact_digest is None or body.artifact_digest != artifact_digest:
            raise CheckFailed(
                "TLOG_BODY_MISMATCH",
                f"{where} records artifact {body.artifact_digest}, not {artifact_digest}",
            )
    else:
        if payload is None or body.payload_hash is None:
            raise CheckFailed("TLOG_BODY_MISMATCH", f"{where} does not record a DSSE payload")
        if body.payload_hash != Digest.of(payload, body.payload_hash.algorithm):
            raise CheckFailed(
                "TLOG_BODY_MISMATCH", f"{where} records another payload ({body.payload_hash})"
            )
    if not any(s.signature == signature for s in body.signatures):
        raise CheckFailed("TLOG_BODY_MISMATCH", f"{where} records another signature")
    want = public_key_der(public_key)
    matching = [s for s in body.signatures if s.signature == signature]
    if not any(_verifier_key_der(s.verifier) == want for s in matching):
        raise CheckFailed("TLOG_BODY_MISMATCH", f"{where} records another key or certificate")
    return body


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
