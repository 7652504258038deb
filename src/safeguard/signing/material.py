"""Signed material for an image, logged, in both layouts verifiers read — without a registry.

The signing service signs; the CI job attaches (it holds the registry credentials). So this module
produces exactly what ``safeguard.signing.sign.sign_image``/``attest_image`` would attach, as
values:

* ``signature`` requests: the cosign v3 statement (in-toto Statement v1, predicate
  ``https://sigstore.dev/cosign/sign/v1``, the annotations on its subject;
  ``sign.cosign_sign_statement``) in a DSSE envelope, logged as a ``dsse`` 0.0.1 entry, in a
  Sigstore bundle v0.3 whose verification material is the key's ``publicKey.hint``; and, for
  the legacy ``sha256-<hex>.sig`` tag, the simple-signing payload (the same annotations as its
  ``optional``) signed directly and logged as a ``hashedrekord`` 0.0.1 entry, whose cosign
  ``RekorBundle`` (SET) goes in the layer's ``dev.sigstore.cosign/bundle`` annotation;
* ``attestation`` requests: the given in-toto statement in a DSSE envelope, logged as ``dsse``,
  in a bundle; the legacy ``.att`` layer is the same envelope with the same ``RekorBundle``.

Logging goes through a ``LogSink``: an async callable taking the Rekor v1 *proposed entry*
(``safeguard.formats.rekor``) and returning the bundle's ``TransparencyLogEntry`` with SET,
inclusion proof and checkpoint. ``InProcessLog`` is the sink over the node's own
``TransparencyLog`` service object (no HTTP); ``RemoteLog`` wraps ``safeguard.tlog.client``'s
``RekorClient`` for a log reached over HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from safeguard.core.digest import Digest
from safeguard.core.reference import Reference
from safeguard.formats import dsse, rekor
from safeguard.formats._json import b64decode, b64encode
from safeguard.formats.bundle import Bundle, InclusionProof, TransparencyLogEntry, dsse_bundle
from safeguard.formats.cosign_sig import (
    RekorBundle,
    SignatureLayer,
    new_attestation_layer,
    new_signature_layer,
    tag_for,
)
from safeguard.formats.errors import FormatError
from safeguard.formats.intoto import PAYLOAD_TYPE
from safeguard.formats.simplesigning import build_payload, cosign_docker_reference
from safeguard.keys.base import Signer
from safeguard.oci.signatures import COSIGN_SIGN_PREDICATE
from safeguard.signing.errors import SigningServerError
from safeguard.signing.sign import cosign_sign_statement

LogSink = Callable[[bytes], Awaitable[TransparencyLogEntry]]
"""``await log(proposed_entry) -> TransparencyLogEntry`` (module doc)."""

SIGNATURE: Final = "signature"
ATTESTATION: Final = "attestation"


@dataclass(frozen=True, slots=True)
class SignedMaterial:
    """What one signing request produced (module doc)."""

    kind: str
    digest: Digest
    repository: str
    predicate_type: str
    bundle: Bundle
    public_key_pem: bytes
    key_id: str
    legacy_payload: bytes | None = None
    legacy_signature: bytes | None = None
    legacy_bundle: RekorBundle | None = None

    @property
    def log_entries(self) -> list[TransparencyLogEntry]:
        entries = list(self.bundle.verification_material.tlog_entries)
        if self.legacy_bundle is not None and self.kind == SIGNATURE:
            entries.append(
                TransparencyLogEntry(
                    self.legacy_bundle.log_index,
                    bytes.fromhex(self.legacy_bundle.log_id),
                    "hashedrekord",
                    "0.0.1",
                    self.legacy_bundle.body,
                    self.legacy_bundle.integrated_time,
                    self.legacy_bundle.signed_entry_timestamp,
                )
            )
        return entries

    @property
    def log_indexes(self) -> list[int]:
        return [e.log_index for e in self.log_entries]

    @property
    def integrated_time(self) -> int | None:
        times = [e.integrated_time for e in self.log_entries if e.integrated_time is not None]
        return min(times) if times else None

    def legacy_layer(self) -> SignatureLayer | None:
        """The layer for ``sha256-<hex>.sig`` (signatures) or ``.att`` (attestations)."""
        if self.legacy_payload is None:
            return None
        if self.kind == SIGNATURE:
            assert self.legacy_signature is not None
            return new_signature_layer(
                self.legacy_payload, self.legacy_signature, bundle=self.legacy_bundle
            )
        return new_attestation_layer(
            self.legacy_payload, self.predicate_type, bundle=self.legacy_bundle
        )

    @property
    def legacy_tag(self) -> str:
        return tag_for(self.digest, "sig" if self.kind == SIGNATURE else "att")

    def to_dict(self) -> dict[str, Any]:
        """The JSON the service answers with (docs/signing-service.md, "The API")."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "digest": str(self.digest),
            "repository": self.repository,
            "predicateType": self.predicate_type,
            "keyId": self.key_id,
            "publicKey": self.public_key_pem.decode("ascii"),
            "bundle": self.bundle.to_dict(),
            "logIndexes": self.log_indexes,
            "integratedTime": self.integrated_time,
        }
        if self.legacy_payload is not None:
            legacy: dict[str, Any] = {
                "tag": self.legacy_tag,
                "payload": b64encode(self.legacy_payload),
            }
            if self.legacy_signature is not None:
                legacy["signature"] = b64encode(self.legacy_signature)
            if self.legacy_bundle is not None:
                legacy["rekorBundle"] = self.legacy_bundle.to_json().decode("utf-8")
            out["legacy"] = legacy
        return out

    @classmethod
    def from_dict(cls, doc: Any) -> SignedMaterial:
        """Read a service answer back (the CI client); malformed answers are typed errors."""
        try:
            if not isinstance(doc, dict):
                raise ValueError("the answer is not a JSON object")
            kind = doc["kind"]
            if kind not in (SIGNATURE, ATTESTATION):
                raise ValueError(f"unknown kind {kind!r}")
            legacy = doc.get("legacy")
            payload = signature = rekor_bundle = None
            if isinstance(legacy, dict):
                payload = b64decode(legacy["payload"], "legacy.payload", FormatError)
                if legacy.get("signature") is not None:
                    signature = b64decode(legacy["signature"], "legacy.signature", FormatError)
                if legacy.get("rekorBundle") is not None:
                    rekor_bundle = RekorBundle.from_json(legacy["rekorBundle"])
            return cls(
                kind,
                Digest.parse(doc["digest"]),
                str(doc["repository"]),
                str(doc["predicateType"]),
                Bundle.from_dict(doc["bundle"]),
                str(doc["publicKey"]).encode("ascii"),
                str(doc["keyId"]),
                payload,
                signature,
                rekor_bundle,
            )
        except Exception as exc:  # any malformed field: one typed error, never a traceback
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            raise SigningServerError(
                f"the signing server answered material that cannot be read: {message}"
            ) from None


def rekor_bundle_of(entry: TransparencyLogEntry) -> RekorBundle | None:
    """cosign's ``dev.sigstore.cosign/bundle`` annotation for a logged entry (needs a SET)."""
    if entry.signed_entry_timestamp is None or entry.integrated_time is None:
        return None
    return RekorBundle(
        entry.signed_entry_timestamp,
        entry.canonicalized_body,
        entry.integrated_time,
        entry.log_index,
        entry.log_id.hex(),
    )


async def sign_signature(
    signer: Signer,
    ref: Reference,
    annotations: Mapping[str, str],
    log: LogSink,
    *,
    legacy: bool = True,
) -> SignedMaterial:
    """Sign and log an image signature for ``ref`` (which carries the digest)."""
    assert ref.digest is not None
    digest = ref.digest
    statement = cosign_sign_statement(digest, annotations)
    envelope = dsse.sign(PAYLOAD_TYPE, statement, signer.sign)
    pem = signer.public_key_pem
    proposed = rekor.dsse_v001_request(envelope.to_json(), pem)
    if legacy:
        payload = build_payload(cosign_docker_reference(ref), digest, annotations)
        signature = signer.sign(payload)
        legacy_proposed = rekor.hashedrekord_v001(Digest.of(payload), signature, pem)
        entry, legacy_entry = await asyncio.gather(log(proposed), log(legacy_proposed))
    else:
        entry = await log(proposed)
    bundle = dsse_bundle(envelope, public_key_hint=signer.key_id, tlog_entries=[entry])
    if not legacy:
        return SignedMaterial(
            SIGNATURE, digest, ref.name, COSIGN_SIGN_PREDICATE, bundle, pem, signer.key_id
        )
    return SignedMaterial(
        SIGNATURE,
        digest,
        ref.name,
        COSIGN_SIGN_PREDICATE,
        bundle,
        pem,
        signer.key_id,
        payload,
        signature,
        rekor_bundle_of(legacy_entry),
    )


async def sign_attestation(
    signer: Signer,
    ref: Reference,
    statement: bytes,
    predicate_type: str,
    log: LogSink,
    *,
    legacy: bool = True,
) -> SignedMaterial:
    """Sign and log an in-toto ``statement`` (already checked to be about ``ref``'s digest)."""
    assert ref.digest is not None
    envelope = dsse.sign(PAYLOAD_TYPE, statement, signer.sign)
    pem = signer.public_key_pem
    entry = await log(rekor.dsse_v001_request(envelope.to_json(), pem))
    bundle = dsse_bundle(envelope, public_key_hint=signer.key_id, tlog_entries=[entry])
    return SignedMaterial(
        ATTESTATION,
        ref.digest,
        ref.name,
        predicate_type,
        bundle,
        pem,
        signer.key_id,
        envelope.to_json() if legacy else None,
        None,
        rekor_bundle_of(entry) if legacy else None,
    )


# --- log sinks -------------------------------------------------------------------------------


class InProcessLog:
    """A ``LogSink`` over the node's ``safeguard.tlog.service.TransparencyLog`` (module doc).

    The proposed entry is validated exactly as ``POST /api/v1/log/entries`` validates it
    (``tlog.entries.prepare_entry``: signature checked, body canonicalised), then sequenced; the
    answer is the entry with its SET and its inclusion proof in the checkpoint of the batch that
    integrated it, as the log's HTTP API answers.
    """

    def __init__(self, tlog: Any) -> None:
        from safeguard.tlog.service import TransparencyLog

        if not isinstance(tlog, TransparencyLog):
            raise TypeError("InProcessLog needs a safeguard.tlog.service.TransparencyLog")
        self.tlog = tlog
        self.log_id = bytes.fromhex(tlog.key.log_id_hex)

    async def __call__(self, proposed: bytes) -> TransparencyLogEntry:
        from safeguard.tlog.entries import prepare_entry
        from safeguard.tlog.service import DuplicateEntry

        prepared = prepare_entry(proposed)
        try:
            integrated = await self.tlog.add(prepared)
            stored, head = integrated.entry, integrated.head
            # Just integrated: its proof comes from the in-memory tree, no database read.
            proof = self.tlog.inclusion_proof(stored.index, head.size)
        except DuplicateEntry as exc:
            # An older entry may need the database: read it off the event loop.
            stored = await asyncio.to_thread(self.tlog.entry_by_index, exc.index)
            head, proof = await asyncio.to_thread(self.tlog.proof_for, stored)
        return TransparencyLogEntry(
            stored.index,
            self.log_id,
            stored.kind,
            stored.api_version,
            stored.body,
            stored.integrated_time,
            stored.signed_entry_timestamp,
            InclusionProof(stored.index, head.root_hash, head.size, tuple(proof), head.checkpoint),
        )


class RemoteLog:
    """A ``LogSink`` over a Rekor v1 log reached by HTTP (``safeguard.tlog.client.RekorClient``,
    which checks each answer before it is used); its blocking calls run in a worker thread."""

    def __init__(self, client: Callable[[bytes], TransparencyLogEntry]) -> None:
        self.client = client

    async def __call__(self, proposed: bytes) -> TransparencyLogEntry:
        return await asyncio.to_thread(self.client, proposed)
