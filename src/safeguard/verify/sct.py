"""Embedded Signed Certificate Timestamps (SCTs) of a Fulcio signing certificate, checked
against the CT logs of a trusted root.

A Fulcio certificate carries, in its SCT list extension (OID 1.3.6.1.4.1.11129.2.4.2, RFC 6962
§3.3), the promise of a Certificate Transparency log that the precertificate was logged: so a
certificate the CA issued without logging it (a mis-issued or stolen-CA certificate nobody could
see) is refused. cosign checks it by default for Fulcio certificates, sigstore-python on its own
path; this module does it on Safeguard's own keyless path (legacy ``.sig``/``.att`` layers,
v0.1 SET-only bundles: ``safeguard.verify.checks``).

The check follows RFC 6962 §3.2 (the ``SignedCertificateTimestamp`` and the ``digitally-signed``
structure it signs) and §3.4 (the SCT verifies over the precertificate entry rebuilt from the
final certificate): for a ``precert_entry`` the log signs

    sct_version (1) | signature_type = certificate_timestamp (0, 1 byte) | timestamp (uint64 ms)
    | entry_type = precert_entry (1, uint16) | issuer_key_hash[32] (SHA-256 of the issuer's
    SubjectPublicKeyInfo DER) | TBSCertificate<1..2^24-1> without the SCT list extension
    (cryptography's ``tbs_precertificate_bytes``) | extensions<0..2^16-1>

with SHA-256 and the log's ECDSA or RSA key (RFC 6962 §2.1.4). The log is found by its log ID,
the SHA-256 of its DER public key (§3.2), among the trusted root's ``ctlogs``, and its key must
have been valid (``validFor``) at the SCT's timestamp. At least one SCT must verify.

Why not sigstore-python: its SCT code (``sigstore._internal.sct``) is private API, requires
exactly one SCT and ignores the CT key's validity window at the SCT's time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.certificate_transparency import (
    LogEntryType,
    SignatureAlgorithm,
    SignedCertificateTimestamp,
    Version,
)

from safeguard.verify.errors import CheckFailed
from safeguard.verify.trustroot import LogKey, TrustMaterial

SCT_LIST_OID: Final = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MAX_U24: Final = (1 << 24) - 1
_MAX_U16: Final = (1 << 16) - 1


@dataclass(frozen=True, slots=True)
class SctEvidence:
    """The SCT that verified: which CT log promised to log the certificate, and when."""

    log_id: bytes
    log_url: str
    timestamp: dt.datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "logId": self.log_id.hex(),
            "log": self.log_url,
            "timestamp": self.timestamp.isoformat(),
        }


def timestamp_ms(when: dt.datetime) -> int:
    """Milliseconds since the epoch, exactly (no float rounding); naive times are UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def log_id_of(public_key: Any) -> bytes:
    """RFC 6962 §3.2 ``LogID``: SHA-256 of the log's DER ``SubjectPublicKeyInfo``."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).digest()


def issuer_key_hash(issuer: x509.Certificate) -> bytes:
    """SHA-256 of the issuer's DER ``SubjectPublicKeyInfo`` (RFC 6962 §3.2 ``PreCert``)."""
    return log_id_of(issuer.public_key())


def signed_data(
    *,
    version: int,
    timestamp: int,
    issuer_key_hash: bytes,
    tbs_precertificate: bytes,
    extensions: bytes,
) -> bytes:
    """The RFC 6962 §3.2 ``digitally-signed`` input of an SCT for a ``precert_entry``."""
    if len(issuer_key_hash) != 32:
        raise ValueError("issuer_key_hash must be 32 bytes")
    if not 0 < len(tbs_precertificate) <= _MAX_U24:
        raise ValueError("TBSCertificate length out of range")
    if len(extensions) > _MAX_U16:
        raise ValueError("SCT extensions too long")
    return b"".join(
        (
            struct.pack("!BBQH", version, 0, timestamp, 1),
            issuer_key_hash,
            len(tbs_precertificate).to_bytes(3, "big"),
            tbs_precertificate,
            struct.pack("!H", len(extensions)),
            extensions,
        )
    )


def embedded_scts(cert: x509.Certificate) -> list[SignedCertificateTimestamp]:
    """The certificate's embedded SCTs (empty when it has no SCT list extension)."""
    try:
        ext = cert.extensions.get_extension_for_class(
            x509.PrecertificateSignedCertificateTimestamps
        )
    except x509.ExtensionNotFound:
        return []
    except ValueError as exc:  # a malformed extension surfaces when extensions are parsed
        raise CheckFailed(
            "SCT_INVALID", f"the certificate's SCT list is unreadable: {exc}"
        ) from None
    return list(ext.value)


def _verify_signature(log: LogKey, sct: SignedCertificateTimestamp, data: bytes) -> None:
    key = log.public_key
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            if sct.signature_algorithm != SignatureAlgorithm.ECDSA:
                raise InvalidSignature
            key.verify(sct.signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            if sct.signature_algorithm != SignatureAlgorithm.RSA:
                raise InvalidSignature
            key.verify(sct.signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise InvalidSignature  # RFC 6962 logs sign with ECDSA or RSA only
    except (InvalidSignature, ValueError, UnsupportedAlgorithm):
        raise CheckFailed(
            "SCT_INVALID",
            f"the SCT of CT log {log.base_url or sct.log_id.hex()} does not verify with its key",
        ) from None


def _check_one(
    sct: SignedCertificateTimestamp,
    tbs: bytes,
    key_hash: bytes,
    logs: Sequence[tuple[bytes, LogKey]],
) -> SctEvidence:
    when = sct.timestamp.replace(tzinfo=dt.UTC)
    log_id = sct.log_id
    if sct.version != Version.v1:
        raise CheckFailed("SCT_INVALID", f"SCT version {sct.version} is not v1")
    if sct.entry_type != LogEntryType.PRE_CERTIFICATE:
        raise CheckFailed(
            "SCT_INVALID", "an embedded SCT must be for a precertificate entry (RFC 6962 §3.3)"
        )
    if not isinstance(sct.signature_hash_algorithm, hashes.SHA256):
        raise CheckFailed(
            "SCT_INVALID",
            f"the SCT is signed with {sct.signature_hash_algorithm.name}, not SHA-256",
        )
    candidates = [log for lid, log in logs if lid == log_id]
    if not candidates:
        raise CheckFailed(
            "SCT_UNKNOWN_LOG",
            f"the SCT is from CT log {log_id.hex()}, which the trusted root does not list",
        )
    valid = [log for log in candidates if log.valid.contains(when)]
    if not valid:
        raise CheckFailed(
            "SCT_LOG_OUTSIDE_VALIDITY",
            f"CT log {candidates[0].base_url or log_id.hex()}'s key was not valid at the SCT's "
            f"time {when.isoformat()} (valid {candidates[0].valid.describe()})",
        )
    data = signed_data(
        version=sct.version.value,
        timestamp=timestamp_ms(when),
        issuer_key_hash=key_hash,
        tbs_precertificate=tbs,
        extensions=sct.extension_bytes,
    )
    refused: CheckFailed | None = None
    for log in valid:
        try:
            _verify_signature(log, sct, data)
        except CheckFailed as exc:
            refused = refused or exc
            continue
        return SctEvidence(log_id, log.base_url, when)
    assert refused is not None
    raise refused


def verify_embedded_scts(
    leaf: x509.Certificate, issuer: x509.Certificate, trust: TrustMaterial
) -> SctEvidence | None:
    """Check that at least one embedded SCT of ``leaf`` verifies with a CT log of ``trust``.

    ``issuer`` is the certificate that issued ``leaf`` (the verified chain's second element).
    Returns the evidence of the SCT that verified, or ``None`` when the trusted root lists no CT
    logs (a private CA without CT: nothing to check against). Raises ``CheckFailed`` with
    ``SCT_MISSING``, ``SCT_INVALID``, ``SCT_UNKNOWN_LOG`` or ``SCT_LOG_OUTSIDE_VALIDITY`` (the
    first SCT's reason when none verifies; the message names every SCT's).
    """
    if not trust.ctlogs:
        return None
    scts = embedded_scts(leaf)
    if not scts:
        raise CheckFailed(
            "SCT_MISSING",
            "the signing certificate has no embedded SCT, and the trusted root lists CT logs",
        )
    try:
        tbs = leaf.tbs_precertificate_bytes
    except ValueError as exc:
        raise CheckFailed("SCT_INVALID", f"cannot rebuild the precertificate: {exc}") from None
    key_hash = issuer_key_hash(issuer)
    logs = [(log_id_of(log.public_key), log) for log in trust.ctlogs]
    failures: list[CheckFailed] = []
    for sct in scts:
        try:
            return _check_one(sct, tbs, key_hash, logs)
        except CheckFailed as exc:
            failures.append(exc)
    first = failures[0]
    if len(failures) == 1:
        raise first
    raise CheckFailed(
        first.reason_code,
        f"none of the certificate's {len(failures)} SCTs verifies: "
        + "; ".join(f"[{f.reason_code}] {f.message}" for f in failures),
    )
