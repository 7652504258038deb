"""The local signing flows: an image signature, an image attestation, a blob signature or
attestation, each with the exact bytes cosign writes.

* **Image signature** (``sign_image``), as ``cosign sign`` v3: a DSSE envelope
  (``application/vnd.in-toto+json``) of the in-toto Statement v1 ``{"_type", "subject":
  [{"digest": {"sha256": <hex>}, "annotations": {...}}], "predicateType":
  "https://sigstore.dev/cosign/sign/v1", "predicate": {}}`` (cosign ``cmd/cosign/cli/sign/sign.go``
  ``signDigestBundle``; protojson field order), in a v0.3 bundle whose verification material is
  the key's ``publicKey.hint`` (or a certificate, keyless), attached as an OCI referrer; and, for
  clients that know only the legacy layout, a simple-signing payload signed directly and appended
  to ``sha256-<hex>.sig`` (cosign ``signDigest``).
* **Image attestation** (``attest_image``): a DSSE in-toto Statement v1 about the image (subject
  name is the repository, as cosign writes it) as a bundle referrer with the predicate type
  annotation, and the same envelope as a layer of ``sha256-<hex>.att``.
* **Blob signature** (``sign_blob``): a v0.3 ``messageSignature`` bundle (the file's digest and
  the signature over the file), as ``cosign sign-blob --bundle``; ``attest_blob`` a DSSE bundle.
  The digest (``messageDigest`` and a logged ``hashedrekord``'s ``data.hash``) is made with the
  hash the key signs with: SHA-256, or SHA-384 for a P-384 key (``sha384``/``SHA2_384``, as
  sigstore-go records them), so that the log can check the signature over it.

Transparency log seam: each flow takes an optional ``tlog`` callable. It is handed the Rekor v1
*proposed entry* for what was just signed, the body ``POST /api/v1/log/entries`` takes
(``safeguard.formats.rekor``): ``hashedrekord`` 0.0.1 for message signatures and the legacy
``.sig`` layer (that request is already the canonical body), ``dsse`` 0.0.1
``spec.proposedContent{envelope, verifiers}`` for envelopes, as sigstore-go's
``pkg/sign/transparency.go`` submits a DSSE bundle's envelope with the signer's PEM key. It returns
the ``TransparencyLogEntry`` to put in the bundle (and, when it carries a SET, in the legacy
``dev.sigstore.cosign/bundle`` annotation); ``safeguard.tlog.client.RekorClient`` is that callable
for a log reached over HTTP. Without it, bundles carry no log entries, as
``cosign sign --tlog-upload=false`` makes them; verifiers must then be told to accept that
(docs/verification.md, "The log choice").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from safeguard.core.digest import DEFAULT_ALGORITHM, Digest
from safeguard.core.manifest import Descriptor
from safeguard.core.reference import Reference
from safeguard.formats import dsse, rekor
from safeguard.formats._json import compact
from safeguard.formats.bundle import (
    DIGEST_NAMES,
    Bundle,
    TransparencyLogEntry,
    dsse_bundle,
    message_signature_bundle,
)
from safeguard.formats.cosign_sig import (
    RekorBundle,
    new_attestation_layer,
    new_signature_layer,
)
from safeguard.formats.intoto import PAYLOAD_TYPE, STATEMENT_V1, Subject, build_statement
from safeguard.formats.simplesigning import build_payload, cosign_docker_reference
from safeguard.keys.base import Signer
from safeguard.oci.client import RegistryClient
from safeguard.oci.signatures import (
    CONTENT_DSSE,
    COSIGN_SIGN_PREDICATE,
    LegacyAttachResult,
    attach_bundle,
    attach_legacy,
)

TlogHook = Callable[[bytes], TransparencyLogEntry]
"""``tlog(proposed_entry) -> TransparencyLogEntry``: log it, return the proof."""

TAG_WARNING: Final = (
    "Image reference {ref} uses a tag, not a digest, to identify the image to sign.\n"
    "    The tag may move between resolving and signing, so you could sign another image\n"
    "    than intended. Sign by digest (REGISTRY/REPO@sha256:...) to be sure; the digest\n"
    "    that was signed is printed below."
)


@dataclass(frozen=True, slots=True)
class ImageSignResult:
    reference: str
    digest: Digest
    bundle: Bundle
    referrer: Digest | None
    tag_schema_updated: bool
    legacy: LegacyAttachResult | None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "reference": self.reference,
            "digest": str(self.digest),
            "referrer": str(self.referrer) if self.referrer else None,
            "referrersTagSchemaUpdated": self.tag_schema_updated,
            "tlogEntries": len(self.bundle.verification_material.tlog_entries),
        }
        if self.legacy is not None:
            out["legacyTag"] = self.legacy.tag
            out["legacyManifest"] = str(self.legacy.digest)
            out["legacyAppended"] = self.legacy.appended
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


def cosign_sign_statement(digest: Digest, annotations: Mapping[str, str] | None = None) -> bytes:
    """The statement cosign v3 signs for an image (see module docstring), byte for byte."""
    doc = {
        "_type": STATEMENT_V1,
        "subject": [
            {"digest": {digest.algorithm: digest.hex}, "annotations": dict(annotations or {})}
        ],
        "predicateType": COSIGN_SIGN_PREDICATE,
        "predicate": {},
    }
    return compact(doc)


def signed_digest(signer: Signer, data: bytes) -> Digest:
    """``data``'s digest in the hash ``signer`` signs with (SHA-256 for Ed25519, which has none)."""
    return Digest.of(data, signer.algorithm.hash_name or DEFAULT_ALGORITHM)


def _log(tlog: TlogHook | None, body: Callable[[], bytes]) -> list[TransparencyLogEntry]:
    return [tlog(body())] if tlog is not None else []


def _rekor_bundle(entries: list[TransparencyLogEntry]) -> RekorBundle | None:
    for entry in entries:
        if entry.signed_entry_timestamp is not None and entry.integrated_time is not None:
            return RekorBundle(
                entry.signed_entry_timestamp,
                entry.canonicalized_body,
                entry.integrated_time,
                entry.log_index,
                entry.log_id.hex(),
            )
    return None


def sign_envelope(
    signer: Signer, payload: bytes, tlog: TlogHook | None
) -> tuple[dsse.Envelope, list[TransparencyLogEntry]]:
    envelope = dsse.sign(PAYLOAD_TYPE, payload, signer.sign)
    entries = _log(tlog, lambda: rekor.dsse_v001_request(envelope.to_json(), signer.public_key_pem))
    return envelope, entries


async def _subject(client: RegistryClient, ref: Reference) -> tuple[Descriptor, list[str]]:
    warnings = []
    if ref.digest is None:
        warnings.append(TAG_WARNING.format(ref=str(ref)))
    descriptor = await client.resolve(ref.repository, ref.reference)
    return descriptor, warnings


async def sign_image(
    client: RegistryClient,
    ref: Reference,
    signer: Signer,
    *,
    annotations: Mapping[str, str] | None = None,
    tlog: TlogHook | None = None,
    legacy: bool = True,
    created: str | None = None,
) -> ImageSignResult:
    """Sign ``ref`` (resolved to its digest) and attach the signature in both places."""
    subject, warnings = await _subject(client, ref)
    digest = subject.digest
    statement = cosign_sign_statement(digest, annotations)
    envelope, entries = sign_envelope(signer, statement, tlog)
    bundle = dsse_bundle(envelope, public_key_hint=signer.key_id, tlog_entries=entries)
    pushed = await attach_bundle(
        client,
        ref.repository,
        subject,
        bundle.to_json(),
        predicate_type=COSIGN_SIGN_PREDICATE,
        content=CONTENT_DSSE,
        created=created,
    )
    legacy_result = None
    if legacy:
        payload = build_payload(cosign_docker_reference(ref), digest, annotations)
        signature = signer.sign(payload)
        legacy_entries = _log(
            tlog,
            lambda: rekor.hashedrekord_v001(
                signed_digest(signer, payload), signature, signer.public_key_pem
            ),
        )
        layer = new_signature_layer(payload, signature, bundle=_rekor_bundle(legacy_entries))
        legacy_result = await attach_legacy(client, ref.repository, digest, layer, "sig")
    return ImageSignResult(
        str(ref.with_digest(digest)),
        digest,
        bundle,
        pushed.digest,
        pushed.tag_schema_updated,
        legacy_result,
        warnings,
    )


async def attest_image(
    client: RegistryClient,
    ref: Reference,
    signer: Signer,
    predicate_type: str,
    predicate: Mapping[str, Any],
    *,
    tlog: TlogHook | None = None,
    legacy: bool = True,
    created: str | None = None,
) -> ImageSignResult:
    """Attest ``predicate`` about ``ref``: a bundle referrer and a ``.att`` layer."""
    subject, warnings = await _subject(client, ref)
    digest = subject.digest
    statement = build_statement(
        [Subject.for_digest(cosign_docker_reference(ref), digest)], predicate_type, predicate
    )
    envelope, entries = sign_envelope(signer, statement.to_json(), tlog)
    bundle = dsse_bundle(envelope, public_key_hint=signer.key_id, tlog_entries=entries)
    pushed = await attach_bundle(
        client,
        ref.repository,
        subject,
        bundle.to_json(),
        predicate_type=predicate_type,
        content=CONTENT_DSSE,
        created=created,
    )
    legacy_result = None
    if legacy:
        layer = new_attestation_layer(
            envelope.to_json(), predicate_type, bundle=_rekor_bundle(entries)
        )
        legacy_result = await attach_legacy(client, ref.repository, digest, layer, "att")
    return ImageSignResult(
        str(ref.with_digest(digest)),
        digest,
        bundle,
        pushed.digest,
        pushed.tag_schema_updated,
        legacy_result,
        warnings,
    )


def sign_blob(data: bytes, signer: Signer, *, tlog: TlogHook | None = None) -> Bundle:
    """A v0.3 message-signature bundle for ``data``."""
    digest = signed_digest(signer, data)
    signature = signer.sign(data)
    entries = _log(tlog, lambda: rekor.hashedrekord_v001(digest, signature, signer.public_key_pem))
    return message_signature_bundle(
        signature,
        digest=bytes.fromhex(digest.hex),
        digest_algorithm={v: k for k, v in DIGEST_NAMES.items()}[digest.algorithm],
        public_key_hint=signer.key_id,
        tlog_entries=entries,
    )


def attest_blob(
    digest: Digest,
    name: str,
    signer: Signer,
    predicate_type: str,
    predicate: Mapping[str, Any],
    *,
    tlog: TlogHook | None = None,
) -> Bundle:
    """A v0.3 DSSE bundle attesting ``predicate`` about the blob ``name`` with ``digest``."""
    statement = build_statement([Subject.for_digest(name, digest)], predicate_type, predicate)
    envelope, entries = sign_envelope(signer, statement.to_json(), tlog)
    return dsse_bundle(envelope, public_key_hint=signer.key_id, tlog_entries=entries)
