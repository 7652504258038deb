"""cosign's legacy signature layout: the ``sha256-<hex>.sig`` / ``.att`` / ``.sbom`` tags.

cosign stores the signatures of image ``sha256:<hex>`` as an OCI image manifest tagged
``sha256-<hex>.sig`` in the same repository (cosign ``pkg/oci/static``, ``pkg/oci/mutate``,
``pkg/oci/empty``). Each signature is one layer:

* the layer blob is the signed payload (a simple-signing payload, media type
  ``application/vnd.dev.cosign.simplesigning.v1+json``; for ``.att`` a DSSE envelope,
  ``application/vnd.dsse.envelope.v1+json``, with a ``predicateType`` annotation);
* annotations carry ``dev.cosignproject.cosign/signature`` (base64 signature; empty for
  attestations, whose signature is inside the envelope), and when keyless
  ``dev.sigstore.cosign/certificate`` and ``dev.sigstore.cosign/chain`` (PEM), plus
  ``dev.sigstore.cosign/bundle`` (the Rekor "bundle": ``SignedEntryTimestamp`` and
  ``Payload{body,integratedTime,logIndex,logID}``) and ``dev.sigstore.cosign/rfc3161timestamp``.

The config is the one go-containerregistry computes when layers are appended to its empty image:
``{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":...}...],"os":"",
"rootfs":{"type":"layers","diff_ids":[...]},"config":{}}``, so a manifest built here has the
digest cosign's would have for the same layers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from safeguard.core import mediatypes as mt
from safeguard.core.digest import Digest
from safeguard.core.errors import InvalidDigest, InvalidManifest
from safeguard.core.manifest import Descriptor, parse_manifest
from safeguard.formats._json import Struct, b64decode, b64encode, go_marshal, loads
from safeguard.formats.errors import SignatureManifestInvalid

SIGNATURE_ANNOTATION: Final = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION: Final = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION: Final = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION: Final = "dev.sigstore.cosign/bundle"
RFC3161_ANNOTATION: Final = "dev.sigstore.cosign/rfc3161timestamp"
PREDICATE_TYPE_ANNOTATION: Final = "predicateType"

SIMPLE_SIGNING_MEDIA_TYPE: Final = mt.COSIGN_SIMPLE_SIGNING
DSSE_MEDIA_TYPE: Final = mt.DSSE_ENVELOPE
ZERO_TIME: Final = "0001-01-01T00:00:00Z"

TagKind = Literal["sig", "att", "sbom"]
_TAG: Final = re.compile(r"^(sha256|sha512)-([a-f0-9]+)\.(sig|att|sbom)$")


def tag_for(digest: Digest | str, kind: TagKind = "sig") -> str:
    """cosign's tag for ``kind`` (``sig``, ``att`` or ``sbom``) of the image ``digest``."""
    d = Digest.parse(digest) if isinstance(digest, str) else digest
    if kind not in ("sig", "att", "sbom"):
        raise ValueError(f"unknown cosign tag kind {kind!r}")
    return f"{d.tag_form}.{kind}"


def signature_tag(digest: Digest | str) -> str:
    return tag_for(digest, "sig")


def attestation_tag(digest: Digest | str) -> str:
    return tag_for(digest, "att")


def sbom_tag(digest: Digest | str) -> str:
    return tag_for(digest, "sbom")


def parse_tag(tag: str) -> tuple[Digest, TagKind] | None:
    """The image digest and kind a cosign tag points at, or ``None`` if it is not one."""
    match = _TAG.match(tag)
    if not match:
        return None
    try:
        digest = Digest.parse(f"{match.group(1)}:{match.group(2)}")
    except InvalidDigest:
        return None
    kind: TagKind = match.group(3)  # type: ignore[assignment]
    return digest, kind


@dataclass(frozen=True, slots=True)
class RekorBundle:
    """cosign's "rekor bundle" annotation: an offline proof that Rekor logged the signature.

    ``body`` is the entry's canonicalized body (decoded), ``log_id`` the log's key id in hex.
    """

    signed_entry_timestamp: bytes
    body: bytes
    integrated_time: int
    log_index: int
    log_id: str

    def to_json(self) -> bytes:
        """Bytes as cosign's ``json.Marshal(bundle.RekorBundle)`` writes them."""
        return go_marshal(
            Struct(
                SignedEntryTimestamp=b64encode(self.signed_entry_timestamp),
                Payload=Struct(
                    body=b64encode(self.body),
                    integratedTime=self.integrated_time,
                    logIndex=self.log_index,
                    logID=self.log_id,
                ),
            )
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> RekorBundle:
        doc = loads(data, "cosign bundle annotation", SignatureManifestInvalid)
        if not isinstance(doc, dict):
            raise SignatureManifestInvalid("cosign bundle annotation is not a JSON object")
        payload = doc.get("Payload")
        if not isinstance(payload, dict):
            raise SignatureManifestInvalid("cosign bundle annotation has no Payload object")
        set_ = b64decode(
            doc.get("SignedEntryTimestamp"), "bundle SignedEntryTimestamp", SignatureManifestInvalid
        )
        body = b64decode(payload.get("body"), "bundle Payload.body", SignatureManifestInvalid)
        numbers = []
        for key in ("integratedTime", "logIndex"):
            value = payload.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise SignatureManifestInvalid(f"cosign bundle Payload.{key} is not a count")
            numbers.append(value)
        log_id = payload.get("logID")
        if not isinstance(log_id, str) or not re.fullmatch(r"[0-9a-f]+", log_id):
            raise SignatureManifestInvalid("cosign bundle Payload.logID is not lower-case hex")
        return cls(set_, body, numbers[0], numbers[1], log_id)


@dataclass(frozen=True, slots=True)
class SignatureLayer:
    """One signature (or attestation) layer of a cosign signature manifest.

    ``payload`` is the layer blob when known (always when built; ``None`` after parsing a
    manifest, until the caller fetches the blob and calls ``with_payload``).
    ``signature`` is the decoded signature, empty for attestations.
    """

    media_type: str
    payload_digest: Digest
    payload_size: int
    signature: bytes
    certificate: bytes | None = None
    chain: bytes | None = None
    bundle: RekorBundle | None = None
    rfc3161_timestamp: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    payload: bytes | None = field(default=None, repr=False)

    @property
    def predicate_type(self) -> str | None:
        return self.annotations.get(PREDICATE_TYPE_ANNOTATION)

    @property
    def is_attestation(self) -> bool:
        return self.media_type == DSSE_MEDIA_TYPE

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.payload_digest, self.payload_size, self.annotations)

    def with_payload(self, blob: bytes) -> SignatureLayer:
        """This layer with its blob attached, after checking the blob is the one referenced."""
        if len(blob) != self.payload_size or not self.payload_digest.matches(blob):
            raise SignatureManifestInvalid(
                f"signature layer blob does not match {self.payload_digest}"
            )
        return _replace_payload(self, blob)


def _replace_payload(layer: SignatureLayer, blob: bytes) -> SignatureLayer:
    return SignatureLayer(
        layer.media_type,
        layer.payload_digest,
        layer.payload_size,
        layer.signature,
        layer.certificate,
        layer.chain,
        layer.bundle,
        layer.rfc3161_timestamp,
        dict(layer.annotations),
        blob,
    )


def _layer(
    payload: bytes,
    media_type: str,
    b64sig: str,
    *,
    certificate: bytes | None,
    chain: bytes | None,
    bundle: RekorBundle | None,
    rfc3161_timestamp: str | None,
    annotations: Mapping[str, str] | None,
) -> SignatureLayer:
    # The order of static.makeOptions + staticLayer.Annotations: user annotations, then the
    # certificate and chain (chain written even when empty), bundle, timestamp, signature.
    merged: dict[str, str] = dict(annotations or {})
    if certificate is not None:
        merged[CERTIFICATE_ANNOTATION] = certificate.decode("utf-8")
        merged[CHAIN_ANNOTATION] = (chain or b"").decode("utf-8")
    if bundle is not None:
        merged[BUNDLE_ANNOTATION] = bundle.to_json().decode("utf-8")
    if rfc3161_timestamp is not None:
        merged[RFC3161_ANNOTATION] = rfc3161_timestamp
    merged[SIGNATURE_ANNOTATION] = b64sig
    return SignatureLayer(
        media_type,
        Digest.of(payload),
        len(payload),
        b64decode(b64sig, "signature", SignatureManifestInvalid) if b64sig else b"",
        certificate,
        chain if certificate is not None else None,
        bundle,
        rfc3161_timestamp,
        merged,
        payload,
    )


def new_signature_layer(
    payload: bytes,
    signature: bytes,
    *,
    certificate: bytes | None = None,
    chain: bytes | None = None,
    bundle: RekorBundle | None = None,
    rfc3161_timestamp: str | None = None,
    annotations: Mapping[str, str] | None = None,
    media_type: str = SIMPLE_SIGNING_MEDIA_TYPE,
) -> SignatureLayer:
    """A ``.sig`` layer: ``payload`` (simple-signing bytes) signed by ``signature``.

    ``certificate`` and ``chain`` are PEM bytes (keyless signing), ``bundle`` the Rekor proof.
    """
    return _layer(
        payload,
        media_type,
        b64encode(signature),
        certificate=certificate,
        chain=chain,
        bundle=bundle,
        rfc3161_timestamp=rfc3161_timestamp,
        annotations=annotations,
    )


def new_attestation_layer(
    envelope: bytes,
    predicate_type: str,
    *,
    certificate: bytes | None = None,
    chain: bytes | None = None,
    bundle: RekorBundle | None = None,
    rfc3161_timestamp: str | None = None,
) -> SignatureLayer:
    """An ``.att`` layer: a DSSE envelope (its JSON bytes) with its ``predicateType``."""
    return _layer(
        envelope,
        DSSE_MEDIA_TYPE,
        "",
        certificate=certificate,
        chain=chain,
        bundle=bundle,
        rfc3161_timestamp=rfc3161_timestamp,
        annotations={PREDICATE_TYPE_ANNOTATION: predicate_type},
    )


@dataclass(frozen=True, slots=True)
class BuiltManifest:
    """A signature manifest ready to push: blobs first (config, layers), then the manifest."""

    manifest: bytes
    media_type: str
    config: bytes
    config_digest: Digest
    blobs: tuple[tuple[Digest, bytes], ...]

    @property
    def digest(self) -> Digest:
        return Digest.of(self.manifest)

    def __iter__(self) -> Any:
        # Lets callers write ``manifest, config, blobs = build_signature_manifest(...)``.
        return iter((self.manifest, self.config, self.blobs))


def build_config(layers: Sequence[SignatureLayer], *, created: str | None = None) -> bytes:
    """The image config go-containerregistry writes for these layers (see module docstring)."""
    return go_marshal(
        Struct(
            architecture="",
            created=created or ZERO_TIME,
            history=[Struct(created=ZERO_TIME) for _ in layers] if layers else None,
            os="",
            rootfs=Struct(
                type="layers",
                diff_ids=[str(layer.payload_digest) for layer in layers] if layers else None,
            ),
            config=Struct(),
        )
    )


def build_signature_manifest(
    layers: Sequence[SignatureLayer],
    *,
    created: str | None = None,
    docker_media_types: bool = False,
) -> BuiltManifest:
    """Build the manifest, config and blobs of a ``.sig``/``.att`` image holding ``layers``.

    To add a signature to an existing tag, parse it and pass its layers followed by the new one,
    as cosign's ``AppendSignatures`` does; layers without a payload are taken to be in the
    registry already and are not listed in ``blobs``. ``created`` is an RFC 3339
    time for cosign's ``--record-creation-timestamp``; ``docker_media_types`` mirrors
    ``COSIGN_DOCKER_MEDIA_TYPES=1``.
    """
    if not layers:
        raise SignatureManifestInvalid("a signature manifest needs at least one layer")
    config = build_config(layers, created=created)
    config_digest = Digest.of(config)
    manifest_type = mt.DOCKER_MANIFEST if docker_media_types else mt.OCI_MANIFEST
    config_type = mt.DOCKER_CONFIG if docker_media_types else mt.OCI_CONFIG
    descriptors = []
    for layer in layers:
        descriptor = Struct(
            mediaType=layer.media_type, size=layer.payload_size, digest=str(layer.payload_digest)
        )
        if layer.annotations:
            descriptor["annotations"] = dict(layer.annotations)
        descriptors.append(descriptor)
    manifest = go_marshal(
        Struct(
            schemaVersion=2,
            mediaType=manifest_type,
            config=Struct(mediaType=config_type, size=len(config), digest=str(config_digest)),
            layers=descriptors,
        )
    )
    blobs: list[tuple[Digest, bytes]] = [(config_digest, config)]
    seen = {config_digest}
    for layer in layers:
        if layer.payload is not None and layer.payload_digest not in seen:
            seen.add(layer.payload_digest)
            blobs.append((layer.payload_digest, layer.payload))
    return BuiltManifest(manifest, manifest_type, config, config_digest, tuple(blobs))


def _pem_annotation(value: str | None) -> bytes | None:
    if value is None:
        return None
    if value and "-----BEGIN CERTIFICATE-----" not in value:
        raise SignatureManifestInvalid("certificate annotation holds no PEM certificate")
    return value.encode("utf-8")


def parse_signature_layer(descriptor: Descriptor) -> SignatureLayer:
    """Read one layer descriptor of a signature manifest into a ``SignatureLayer``."""
    annotations = dict(descriptor.annotations)
    b64sig = annotations.get(SIGNATURE_ANNOTATION)
    if b64sig is None:
        raise SignatureManifestInvalid(
            f"layer {descriptor.digest} has no {SIGNATURE_ANNOTATION} annotation"
        )
    signature = (
        b64decode(b64sig, "signature annotation", SignatureManifestInvalid) if b64sig else b""
    )
    if not signature and descriptor.media_type != DSSE_MEDIA_TYPE:
        raise SignatureManifestInvalid(f"layer {descriptor.digest} has an empty signature")
    certificate = _pem_annotation(annotations.get(CERTIFICATE_ANNOTATION))
    chain_text = annotations.get(CHAIN_ANNOTATION)
    chain = chain_text.encode("utf-8") if chain_text is not None else None
    bundle_text = annotations.get(BUNDLE_ANNOTATION)
    bundle = RekorBundle.from_json(bundle_text) if bundle_text else None
    return SignatureLayer(
        descriptor.media_type,
        descriptor.digest,
        descriptor.size,
        signature,
        certificate or None,
        chain,
        bundle,
        annotations.get(RFC3161_ANNOTATION),
        annotations,
    )


@dataclass(frozen=True, slots=True)
class SignatureManifest:
    """A parsed ``.sig``/``.att`` manifest: its layers, without their blobs."""

    raw: bytes
    media_type: str
    config: Descriptor
    layers: tuple[SignatureLayer, ...]

    @property
    def digest(self) -> Digest:
        return Digest.of(self.raw)


def parse_signature_manifest(raw: bytes, content_type: str | None = None) -> SignatureManifest:
    """Parse a cosign signature or attestation manifest into its signature layers.

    Raises ``SignatureManifestInvalid`` for anything that is not an image manifest whose layers
    all carry a cosign signature annotation.
    """
    loads(raw, "signature manifest", SignatureManifestInvalid)  # strict JSON first
    try:
        manifest = parse_manifest(raw, content_type)
    except InvalidManifest as exc:
        raise SignatureManifestInvalid(f"signature manifest: {exc.message}") from None
    if manifest.is_index or manifest.config is None:
        raise SignatureManifestInvalid("a signature manifest must be an image manifest")
    if not manifest.layers:
        raise SignatureManifestInvalid("signature manifest has no layers")
    layers = tuple(parse_signature_layer(d) for d in manifest.layers)
    return SignatureManifest(raw, manifest.media_type, manifest.config, layers)
