"""Signatures and attestations attached to an artifact: writing them, and finding them again.

Written in both places ecosystem verifiers look (DESIGN.md, "Signatures are written in both
places"):

* an **OCI 1.1 referrer** holding a Sigstore bundle, laid out as cosign v3 writes it (cosign
  ``specs/BUNDLE_SPEC.md``; ``pkg/oci/remote/write.go`` ``WriteAttestationNewBundleFormat``):
  ``artifactType`` ``application/vnd.dev.sigstore.bundle.v0.3+json``, the empty config
  (``application/vnd.oci.empty.v1+json``, the two bytes ``{}``), one layer holding the bundle JSON
  with the ``org.opencontainers.image.title`` annotation ``sha256-<hex>.sigstore.json``, the image
  as ``subject``, and the manifest annotations ``dev.sigstore.bundle.content``,
  ``dev.sigstore.bundle.predicateType`` and ``org.opencontainers.image.created``. The manifest is
  the bytes Go's ``json.Marshal`` gives for cosign's ``referrerManifest`` (field order, the
  config's own ``artifactType``). ``RegistryClient.push_manifest`` keeps the referrers tag schema
  up to date when the registry does not answer ``OCI-Subject``;
* cosign's legacy **``sha256-<hex>.sig``** (signatures) and **``.att``** (attestations) tags: a
  new layer is appended to the manifest already there, as cosign's ``AppendSignatures`` does
  (``safeguard.formats.cosign_sig``).

Reading (``discover``) looks in every place: the referrers API, the referrers tag schema (both
merged, each descriptor labelled with where it was listed), and the ``.sig``/``.att`` tags. Only
what can be read is returned as material; a referrer or tag that exists but is malformed (wrong
media type, subject naming another artifact, oversized or undecodable layer) is returned with its
error, because a hidden broken signature is worse than a reported one. Nothing here decides
whether a signature is good: that is ``safeguard.verify``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from typing import Final, Literal

from safeguard.core import mediatypes as mt
from safeguard.core.digest import Digest
from safeguard.core.errors import InvalidInput, InvalidManifest, SafeguardError
from safeguard.core.manifest import Descriptor, parse_manifest
from safeguard.formats._json import Struct, go_marshal
from safeguard.formats.cosign_sig import (
    SignatureLayer,
    build_signature_manifest,
    parse_signature_manifest,
    tag_for,
)
from safeguard.formats.errors import FormatError
from safeguard.oci.client import PushResult, RegistryClient

BUNDLE_ARTIFACT_TYPE: Final = mt.SIGSTORE_BUNDLE_V03
CONTENT_ANNOTATION: Final = "dev.sigstore.bundle.content"
PREDICATE_ANNOTATION: Final = "dev.sigstore.bundle.predicateType"
CREATED_ANNOTATION: Final = "org.opencontainers.image.created"
TITLE_ANNOTATION: Final = "org.opencontainers.image.title"
COSIGN_SIGN_PREDICATE: Final = "https://sigstore.dev/cosign/sign/v1"
CONTENT_DSSE: Final = "dsse-envelope"
CONTENT_MESSAGE: Final = "message-signature"
MAX_BUNDLE_BLOB: Final = 16 * 1024 * 1024
MAX_PAYLOAD_BLOB: Final = 16 * 1024 * 1024
MAX_CANDIDATES: Final = 256

Purpose = Literal["signatures", "attestations", "all"]
Source = Literal["referrer", "tag-schema", "cosign-tag"]


class SignatureMaterialInvalid(InvalidInput):
    """A referrer or cosign tag that claims to hold a signature but cannot be read as one."""

    code = "SIGNATURE_MATERIAL_INVALID"


def rfc3339_now() -> str:
    """``time.Now().UTC().Format(time.RFC3339)``, as cosign writes ``created``."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def bundle_title(bundle_json: bytes) -> str:
    return f"{Digest.of(bundle_json).tag_form}.sigstore.json"


def build_bundle_manifest(
    bundle_json: bytes,
    subject: Descriptor,
    *,
    predicate_type: str | None,
    content: str = CONTENT_DSSE,
    created: str | None = None,
) -> bytes:
    """The referrer manifest for ``bundle_json`` about ``subject`` (see module docstring)."""
    if content not in (CONTENT_DSSE, CONTENT_MESSAGE):
        raise ValueError(f"unknown bundle content {content!r}")
    annotations = {
        CONTENT_ANNOTATION: content,
        CREATED_ANNOTATION: created or rfc3339_now(),
    }
    if predicate_type:
        annotations[PREDICATE_ANNOTATION] = predicate_type
    return go_marshal(
        Struct(
            schemaVersion=2,
            mediaType=mt.OCI_MANIFEST,
            config=Struct(
                mediaType=mt.OCI_EMPTY,
                size=len(mt.EMPTY_JSON),
                digest=mt.EMPTY_JSON_DIGEST,
                artifactType=BUNDLE_ARTIFACT_TYPE,
            ),
            layers=[
                Struct(
                    mediaType=BUNDLE_ARTIFACT_TYPE,
                    size=len(bundle_json),
                    digest=str(Digest.of(bundle_json)),
                    annotations={TITLE_ANNOTATION: bundle_title(bundle_json)},
                )
            ],
            annotations=annotations,
            subject=Struct(
                mediaType=subject.media_type, size=subject.size, digest=str(subject.digest)
            ),
            artifactType=BUNDLE_ARTIFACT_TYPE,
        )
    )


async def attach_bundle(
    client: RegistryClient,
    repo: str,
    subject: Descriptor,
    bundle_json: bytes,
    *,
    predicate_type: str | None,
    content: str = CONTENT_DSSE,
    created: str | None = None,
) -> PushResult:
    """Push the bundle blob, the empty config and the referrer manifest (by digest)."""
    raw = build_bundle_manifest(
        bundle_json, subject, predicate_type=predicate_type, content=content, created=created
    )
    await client.push_empty_config(repo)
    await client.push_blob_bytes(repo, bundle_json)
    return await client.push_manifest(repo, Digest.of(raw), raw, mt.OCI_MANIFEST)


@dataclass(frozen=True, slots=True)
class LegacyAttachResult:
    tag: str
    digest: Digest
    appended: bool  # False when an identical layer was already there


def _same_layer(a: SignatureLayer, b: SignatureLayer) -> bool:
    return a.payload_digest == b.payload_digest and a.annotations == b.annotations


async def attach_legacy(
    client: RegistryClient,
    repo: str,
    subject: Digest,
    layer: SignatureLayer,
    kind: Literal["sig", "att"] = "sig",
) -> LegacyAttachResult:
    """Append ``layer`` to the ``sha256-<hex>.sig`` (or ``.att``) manifest, creating it if absent.

    An identical layer (same payload and annotations) is not added twice, as cosign dedupes.
    A tag holding something that is not a signature manifest is refused, not overwritten.
    """
    tag = tag_for(subject, kind)
    existing = await client.manifests.get_optional(repo, tag)
    layers: list[SignatureLayer] = []
    media_type_docker = False
    if existing is not None:
        try:
            parsed = parse_signature_manifest(existing.raw, existing.media_type)
        except FormatError as exc:
            raise SignatureMaterialInvalid(
                f"{repo}:{tag} exists but is not a cosign signature manifest: {exc.message}",
                hint="remove or fix that tag before signing again",
            ) from None
        layers = list(parsed.layers)
        media_type_docker = parsed.media_type == mt.DOCKER_MANIFEST
        if any(_same_layer(old, layer) for old in layers):
            return LegacyAttachResult(tag, existing.digest, False)
    layers.append(layer)
    built = build_signature_manifest(layers, docker_media_types=media_type_docker)
    for digest, blob in built.blobs:
        if not await client.blobs.exists(repo, digest):
            await client.blobs.upload(repo, digest, blob)
    result = await client.manifests.put(repo, tag, built.manifest, built.media_type)
    return LegacyAttachResult(tag, result.digest, True)


# --- discovery -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Listed:
    """A manifest that may hold signatures: a bundle referrer, or a cosign tag."""

    source: Source
    digest: Digest
    tag: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    descriptor: Descriptor | None = None


@dataclass(frozen=True, slots=True)
class Listing:
    subject: Digest
    items: tuple[Listed, ...]
    problems: tuple[str, ...] = ()

    @property
    def manifest_digests(self) -> tuple[str, ...]:
        """Every listed manifest digest, sorted: what a verification cache keys on."""
        return tuple(sorted({str(i.digest) for i in self.items}))


@dataclass(frozen=True, slots=True)
class Found:
    """One signature or attestation as stored, not yet verified.

    Exactly one of ``bundle_json`` (a referrer's bundle layer), ``layer`` (a cosign tag layer with
    its payload) or ``error`` (something claimed to be a signature and could not be read).
    """

    source: Source
    location: str
    manifest_digest: Digest
    annotations: dict[str, str] = field(default_factory=dict)
    bundle_json: bytes | None = field(default=None, repr=False)
    layer: SignatureLayer | None = None
    error: SafeguardError | None = None


def _wanted(purpose: Purpose, annotations: dict[str, str]) -> bool:
    if purpose == "all":
        return True
    predicate = annotations.get(PREDICATE_ANNOTATION)
    is_signature = predicate is None or predicate == COSIGN_SIGN_PREDICATE
    return is_signature if purpose == "signatures" else not is_signature


async def list_attached(
    client: RegistryClient, repo: str, subject: Digest, purpose: Purpose = "all"
) -> Listing:
    """Cheap listing (no blobs): bundle referrers from the API and the tag schema, and the
    ``.sig``/``.att`` tags. ``purpose`` uses the (unsigned) predicate-type annotation to skip
    referrers that are clearly of the other kind; the verifier re-checks what was signed."""
    problems: list[str] = []
    kinds: tuple[Literal["sig", "att"], ...] = (
        ("sig",)
        if purpose == "signatures"
        else ("att",)
        if purpose == "attestations"
        else ("sig", "att")
    )
    # The three lookups are independent: ask them at once.
    api_result, tag_result, *heads = await asyncio.gather(
        client.referrers.from_api(repo, subject, BUNDLE_ARTIFACT_TYPE),
        client.referrers.from_tag(repo, subject),
        *(client.manifests.head(repo, tag_for(subject, kind)) for kind in kinds),
        return_exceptions=True,
    )
    if isinstance(api_result, BaseException):
        raise api_result
    from_api: tuple[Descriptor, ...] | None = api_result  # type: ignore[assignment]
    tags: list[Descriptor | None] = []
    for outcome in heads:
        if isinstance(outcome, BaseException):
            raise outcome
        tags.append(outcome)  # type: ignore[arg-type]
    from_tag: tuple[Descriptor, ...] | None = None
    if isinstance(tag_result, InvalidManifest):
        problems.append(f"referrers tag schema index is unreadable: {tag_result.message}")
    elif isinstance(tag_result, BaseException):
        raise tag_result
    else:
        from_tag = tag_result  # type: ignore[assignment]
    items: list[Listed] = []
    seen: set[Digest] = set()
    for source, descriptors in (("referrer", from_api or ()), ("tag-schema", from_tag or ())):
        for d in descriptors:
            if d.artifact_type != BUNDLE_ARTIFACT_TYPE or d.digest in seen:
                continue
            if not _wanted(purpose, d.annotations):
                continue
            seen.add(d.digest)
            items.append(
                Listed(source, d.digest, None, dict(d.annotations), d)  # type: ignore[arg-type]
            )
    for kind, found in zip(kinds, tags, strict=True):
        if found is not None:
            items.append(Listed("cosign-tag", found.digest, tag_for(subject, kind)))
    if len(items) > MAX_CANDIDATES:
        problems.append(f"only the first {MAX_CANDIDATES} of {len(items)} signatures were read")
        items = items[:MAX_CANDIDATES]
    return Listing(subject, tuple(items), tuple(problems))


async def _read_referrer(client: RegistryClient, repo: str, subject: Digest, item: Listed) -> Found:
    location = str(item.digest)
    try:
        reply = await client.manifests.get(repo, item.digest)
        manifest = parse_manifest(reply.raw, reply.media_type)
        annotations = dict(manifest.annotations)
        if manifest.is_index or manifest.effective_artifact_type != BUNDLE_ARTIFACT_TYPE:
            raise SignatureMaterialInvalid(
                f"referrer {location} is not a Sigstore bundle manifest "
                f"(artifactType {manifest.effective_artifact_type!r})"
            )
        if manifest.subject is None or manifest.subject.digest != subject:
            raise SignatureMaterialInvalid(
                f"referrer {location} names another subject "
                f"({manifest.subject.digest if manifest.subject else 'none'})"
            )
        layers = [d for d in manifest.layers if d.media_type == BUNDLE_ARTIFACT_TYPE]
        if len(manifest.layers) != 1 or len(layers) != 1:
            raise SignatureMaterialInvalid(
                f"referrer {location} must hold exactly one layer of media type "
                f"{BUNDLE_ARTIFACT_TYPE} (has "
                f"{', '.join(d.media_type for d in manifest.layers) or 'none'})"
            )
        if layers[0].size > MAX_BUNDLE_BLOB:
            raise SignatureMaterialInvalid(
                f"referrer {location}: bundle layer of {layers[0].size} bytes is too large"
            )
        blob = await client.blobs.get(repo, layers[0].digest, layers[0].size)
    except SafeguardError as exc:
        if exc.exit_code == 3:
            raise
        return Found(item.source, location, item.digest, dict(item.annotations), error=exc)
    return Found(item.source, location, item.digest, annotations, bundle_json=blob)


async def _read_tag(client: RegistryClient, repo: str, item: Listed) -> list[Found]:
    assert item.tag is not None
    where = f"{item.tag}@{item.digest}"
    try:
        reply = await client.manifests.get(repo, item.digest)
        parsed = parse_signature_manifest(reply.raw, reply.media_type)
    except SafeguardError as exc:
        if exc.exit_code == 3:
            raise
        return [Found("cosign-tag", where, item.digest, error=exc)]

    async def read(index: int, layer: SignatureLayer) -> Found:
        location = f"{where}#{index}"
        try:
            if layer.payload_size > MAX_PAYLOAD_BLOB:
                raise SignatureMaterialInvalid(
                    f"{location}: payload of {layer.payload_size} bytes is too large"
                )
            blob = await client.blobs.get(repo, layer.payload_digest, layer.payload_size)
            return Found("cosign-tag", location, item.digest, layer=layer.with_payload(blob))
        except SafeguardError as exc:
            if exc.exit_code == 3:
                raise
            return Found("cosign-tag", location, item.digest, error=exc)

    layers = parsed.layers[:MAX_CANDIDATES]
    return list(await asyncio.gather(*(read(i, layer) for i, layer in enumerate(layers))))


async def fetch_attached(client: RegistryClient, repo: str, listing: Listing) -> list[Found]:
    """Read every listed manifest and its signature blobs (each checked against its digest)."""

    async def read(item: Listed) -> list[Found]:
        if item.source == "cosign-tag":
            return await _read_tag(client, repo, item)
        return [await _read_referrer(client, repo, listing.subject, item)]

    batches = await asyncio.gather(*(read(item) for item in listing.items))
    return [found for batch in batches for found in batch]


async def discover_signatures(
    client: RegistryClient, repo: str, subject: Digest, purpose: Purpose = "all"
) -> tuple[Listing, list[Found]]:
    listing = await list_attached(client, repo, subject, purpose)
    return listing, await fetch_attached(client, repo, listing)
