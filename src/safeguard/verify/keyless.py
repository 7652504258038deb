"""Keyless bundles: a Fulcio certificate, a Rekor entry, maybe RFC 3161 timestamps, checked offline.

The chain, SCT, inclusion proof, checkpoint, SET and timestamp cryptography come from
sigstore-python's ``Verifier`` (Sigstore client spec, "Verification"), which is maintained by the
people who wrote that spec. What sigstore-python does not do, Safeguard does around it: identity
matching with cosign's exact/regexp semantics (``safeguard.verify.identity``, plugged in as its
``VerificationPolicy``), and turning every failure into a named reason with the evidence used.

What depends only on the trusted root is built once per root, not per bundle: the ``Verifier``
(its Fulcio CA certificates, parsed once, keep what cryptography memoises about them) and the
Rekor, CT and timestamp-authority keyrings that sigstore-python would rebuild for every bundle.
sigstore-python leaves out trust-root keys and CAs whose validity has not started yet, so these
are rebuilt when the next validity start or end in the root is reached. Nothing that depends on
the bundle is kept.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from cryptography import x509
from sigstore._internal.trust import CertificateAuthority, CTKeyring, KeyringPurpose, RekorKeyring
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
    """sigstore-python's ``VerificationPolicy`` protocol, answered by Safeguard's matcher.

    ``checked`` is a certificate whose identity the caller has already matched against
    ``policy`` (it refuses mismatches before calling sigstore-python): for that very certificate
    (same DER) the answer stands; any other certificate is matched here from scratch.
    """

    def __init__(self, policy: IdentityPolicy, checked: x509.Certificate | None = None) -> None:
        self._policy = policy
        self._checked = checked

    def verify(self, cert: x509.Certificate) -> None:
        if self._checked is not None and (cert is self._checked or cert == self._checked):
            return
        reasons = self._policy.mismatches(identity_of(cert))
        if reasons:
            raise VerificationError("; ".join(reasons))


_T = TypeVar("_T")


def _change_instants(root: TrustedRoot) -> list[dt.datetime]:
    """Every validity start and end in the root: where sigstore-python's choice of keys and
    CAs (by the current time) can change."""
    inner = root._inner
    ranges = [log.public_key.valid_for for log in [*inner.tlogs, *inner.ctlogs]]
    ranges += [
        ca.valid_for for ca in [*inner.certificate_authorities, *inner.timestamp_authorities]
    ]
    out: list[dt.datetime] = []
    for period in ranges:
        if period is None:
            continue
        out += [t for t in (period.start, getattr(period, "end", None)) if t is not None]
    return out


class _MemoRoot(TrustedRoot):
    """The same trusted root, with what sigstore-python derives from it per call built once.

    Valid until ``expires`` (the next validity start or end after it was built; see the module
    docstring); a new one is made after that.
    """

    def __init__(self, root: TrustedRoot) -> None:
        super().__init__(root._inner)
        now = dt.datetime.now(dt.UTC)
        later = [t for t in _change_instants(root) if t > now]
        self.expires = min(later) if later else None
        self._memo: dict[Any, Any] = {}
        self._lock = threading.Lock()

    def _once(self, key: Any, build: Callable[[], _T]) -> _T:
        with self._lock:
            if key in self._memo:
                return self._memo[key]  # type: ignore[no-any-return]
        value = build()
        with self._lock:
            return self._memo.setdefault(key, value)  # type: ignore[no-any-return]

    def rekor_keyring(self, purpose: KeyringPurpose) -> RekorKeyring:
        return self._once(("rekor", purpose), lambda: super(_MemoRoot, self).rekor_keyring(purpose))

    def ct_keyring(self, purpose: KeyringPurpose) -> CTKeyring:
        return self._once(("ct", purpose), lambda: super(_MemoRoot, self).ct_keyring(purpose))

    def get_fulcio_certs(self) -> list[x509.Certificate]:
        return list(self._once("fulcio", super().get_fulcio_certs))

    def get_timestamp_authorities(self) -> list[CertificateAuthority]:
        return list(self._once("tsa", super().get_timestamp_authorities))


_verifiers: weakref.WeakKeyDictionary[TrustedRoot, Verifier] = weakref.WeakKeyDictionary()
_verifiers_lock = threading.Lock()


def verifier_for(trusted_root: TrustedRoot) -> Verifier:
    """sigstore-python's ``Verifier`` for ``trusted_root``, made once per root (and again when
    the root's next validity instant passes). A ``Verifier`` keeps no per-bundle state."""
    with _verifiers_lock:
        verifier = _verifiers.get(trusted_root)
    if verifier is not None:
        expires = verifier._trusted_root.expires  # type: ignore[attr-defined]
        if expires is None or dt.datetime.now(dt.UTC) < expires:
            return verifier
    verifier = Verifier(trusted_root=_MemoRoot(trusted_root))
    with _verifiers_lock:
        _verifiers[trusted_root] = verifier
    return verifier


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


def _evidence(bundle: Bundle, identity: CertificateIdentity | None) -> KeylessEvidence:
    entry = bundle.log_entry._inner
    integrated = None
    if entry.integrated_time:
        integrated = dt.datetime.fromtimestamp(int(entry.integrated_time), dt.UTC)
    return KeylessEvidence(
        identity=identity if identity is not None else identity_of(bundle.signing_certificate),
        log_index=int(entry.log_index),
        log_id=entry.log_id.key_id.hex() if isinstance(entry.log_id.key_id, bytes) else "",
        integrated_time=integrated,
        entry_kind=f"{entry.kind_version.kind}/{entry.kind_version.version}",
    )


_DIGEST_NAMES: Final = {
    HashAlgorithm.SHA2_256: "sha256",
    HashAlgorithm.SHA2_384: "sha384",
    HashAlgorithm.SHA2_512: "sha512",
}


def signed_hash(bundle: Bundle) -> tuple[HashAlgorithm, str]:
    """The hash a message-signature bundle signs: its ``messageDigest`` algorithm (``SHA2_384``
    for P-384 certificates), ``SHA2_256`` when it names none; with Safeguard's digest name."""
    message = bundle._inner.message_signature
    digest = getattr(message, "message_digest", None) if message is not None else None
    algorithm = HashAlgorithm.SHA2_256 if digest is None else HashAlgorithm(digest.algorithm)
    name = _DIGEST_NAMES.get(algorithm)
    if name is None:
        raise VerificationFailed(
            f"the bundle signs a {algorithm.value} digest, which is unsupported"
        )
    return algorithm, name


def verify_artifact_bundle(
    bundle: Bundle,
    artifact: bytes | Digest,
    trusted_root: TrustedRoot,
    policy: IdentityPolicy,
    *,
    matched: CertificateIdentity | None = None,
) -> KeylessEvidence:
    """Verify a message-signature bundle over ``artifact``: its bytes, or its digest made with
    the hash the bundle signs (``signed_hash``).

    ``matched``: the identity of ``bundle.signing_certificate``, already matched against
    ``policy`` by the caller (so it is not matched again for that certificate).

    sigstore-python (4.x) verifies ``SHA2_256`` message signatures only: it refuses a ``Hashed``
    of any other algorithm ("unknown hash algorithm"), and digests bytes with SHA-256 whatever
    the bundle says. A ``SHA2_384`` bundle (a P-384 certificate) is therefore refused here with
    that reason; ``safeguard.verify.checks`` sends such bundles to its own path instead."""
    algorithm, name = signed_hash(bundle)
    if isinstance(artifact, Digest):
        if artifact.algorithm != name:
            raise InvalidInput(
                f"the bundle signs a {name} digest, not {artifact.algorithm}",
                hint=f"give the artifact itself or its {name} digest",
            )
        digest = bytes.fromhex(artifact.hex)
    else:
        digest = hashlib.new(name, artifact).digest()
    adapter = _PolicyAdapter(policy, bundle.signing_certificate if matched is not None else None)
    try:
        verifier_for(trusted_root).verify_artifact(
            Hashed(algorithm=algorithm, digest=digest), bundle, adapter
        )
    except (VerificationError, SigstoreError, ValueError) as exc:
        note = ""
        if algorithm is not HashAlgorithm.SHA2_256:
            note = f" (sigstore-python verifies SHA2_256 message signatures only, not {name})"
        raise VerificationFailed(f"keyless verification failed: {exc}{note}") from exc
    return _evidence(bundle, matched)


def verify_dsse_bundle(
    bundle: Bundle,
    trusted_root: TrustedRoot,
    policy: IdentityPolicy,
    *,
    matched: CertificateIdentity | None = None,
) -> tuple[str, bytes, KeylessEvidence]:
    """Verify a DSSE bundle; returns its payload type and payload for the caller to interpret.
    ``matched`` as for ``verify_artifact_bundle``."""
    adapter = _PolicyAdapter(policy, bundle.signing_certificate if matched is not None else None)
    try:
        payload_type, payload = verifier_for(trusted_root).verify_dsse(bundle, adapter)
    except (VerificationError, SigstoreError, ValueError) as exc:
        raise VerificationFailed(f"keyless verification failed: {exc}") from exc
    return payload_type, payload, _evidence(bundle, matched)
