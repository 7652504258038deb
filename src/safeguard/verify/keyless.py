"""Keyless bundles: a Fulcio certificate, a Rekor entry, maybe RFC 3161 timestamps, checked offline.

The chain, SCT, inclusion proof, checkpoint, SET and timestamp cryptography come from
sigstore-python's ``Verifier`` (Sigstore client spec, "Verification"), which is maintained by the
people who wrote that spec. What sigstore-python does not do, Safeguard does around it: identity
matching with cosign's exact/regexp semantics (``safeguard.verify.identity``, plugged in as its
``VerificationPolicy``), and turning every failure into a named reason with the evidence used.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from sigstore.errors import Error as SigstoreError
from sigstore.errors import VerificationError
from sigstore.hashes import Hashed
from sigstore.models import Bundle, InvalidBundle, TrustedRoot
from sigstore.verify import Verifier
from sigstore_models.common.v1 import HashAlgorithm

from safeguard.core.digest import Digest
from safeguard.core.errors import InvalidInput, VerificationFailed
from safeguard.verify.identity import CertificateIdentity, IdentityPolicy, identity_of


@dataclass(frozen=True, slots=True)
class KeylessEvidence:
    """What a verified keyless bundle proves: who signed, and when the log saw it."""

    identity: CertificateIdentity
    log_index: int
    log_id: str
    integrated_time: dt.datetime | None
    entry_kind: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "identity": self.identity.as_dict(),
            "logIndex": self.log_index,
            "logId": self.log_id,
            "integratedTime": self.integrated_time.isoformat() if self.integrated_time else None,
            "entryKind": self.entry_kind,
        }


class _PolicyAdapter:
    """sigstore-python's ``VerificationPolicy`` protocol, answered by Safeguard's matcher."""

    def __init__(self, policy: IdentityPolicy) -> None:
        self._policy = policy

    def verify(self, cert: x509.Certificate) -> None:
        reasons = self._policy.mismatches(identity_of(cert))
        if reasons:
            raise VerificationError("; ".join(reasons))


def load_trusted_root(path: Path) -> TrustedRoot:
    try:
        return TrustedRoot.from_file(str(path))
    except FileNotFoundError as exc:
        raise InvalidInput(
            f"trusted root {path} does not exist",
            hint="export one with `safeguard tlog export-trusted-root` or use Sigstore's "
            "public-good trusted_root.json",
        ) from exc
    except (SigstoreError, ValueError) as exc:
        raise InvalidInput(f"{path} is not a valid trusted_root.json: {exc}") from exc


def parse_bundle(raw: bytes) -> Bundle:
    try:
        return Bundle.from_json(raw)
    except (InvalidBundle, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(
            f"not a valid Sigstore bundle: {exc}",
            hint="pass the .sigstore.json bundle that the signer produced",
        ) from exc


def _evidence(bundle: Bundle) -> KeylessEvidence:
    entry = bundle.log_entry._inner
    integrated = None
    if entry.integrated_time:
        integrated = dt.datetime.fromtimestamp(int(entry.integrated_time), dt.UTC)
    return KeylessEvidence(
        identity=identity_of(bundle.signing_certificate),
        log_index=int(entry.log_index),
        log_id=entry.log_id.key_id.hex() if isinstance(entry.log_id.key_id, bytes) else "",
        integrated_time=integrated,
        entry_kind=f"{entry.kind_version.kind}/{entry.kind_version.version}",
    )


def verify_artifact_bundle(
    bundle: Bundle,
    artifact: bytes | Digest,
    trusted_root: TrustedRoot,
    policy: IdentityPolicy,
) -> KeylessEvidence:
    """Verify a message-signature bundle over ``artifact`` (its bytes, or its sha256 digest)."""
    if isinstance(artifact, Digest):
        if artifact.algorithm != "sha256":
            raise InvalidInput("keyless artifact verification needs a sha256 digest")
        input_: bytes | Hashed = Hashed(
            algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(artifact.hex)
        )
    else:
        input_ = artifact
    try:
        Verifier(trusted_root=trusted_root).verify_artifact(input_, bundle, _PolicyAdapter(policy))
    except (VerificationError, SigstoreError, ValueError) as exc:
        raise VerificationFailed(f"keyless verification failed: {exc}") from exc
    return _evidence(bundle)


def verify_dsse_bundle(
    bundle: Bundle, trusted_root: TrustedRoot, policy: IdentityPolicy
) -> tuple[str, bytes, KeylessEvidence]:
    """Verify a DSSE bundle; returns its payload type and payload for the caller to interpret."""
    try:
        payload_type, payload = Verifier(trusted_root=trusted_root).verify_dsse(
            bundle, _PolicyAdapter(policy)
        )
    except (VerificationError, SigstoreError, ValueError) as exc:
        raise VerificationFailed(f"keyless verification failed: {exc}") from exc
    return payload_type, payload, _evidence(bundle)
