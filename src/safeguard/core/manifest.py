"""Descriptors, image manifests and indexes (OCI image spec v1.1 ``descriptor.md``,
``manifest.md``, ``image-index.md``; Docker schema 2 reads the same way).

Parsing is strict about what a registry and a verifier rely on (a descriptor's digest, size and
media type; a manifest's schema version and references) and keeps everything else untouched,
because manifests are content-addressed: we never re-serialise one, we only read it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from safeguard.core import mediatypes as mt
from safeguard.core.digest import Digest
from safeguard.core.errors import InvalidDigest, InvalidManifest


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    artifact_type: str | None = None
    platform: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, raw: Any, where: str = "descriptor") -> Descriptor:
        if not isinstance(raw, dict):
            raise InvalidManifest(f"{where} is not a JSON object")
        media_type = raw.get("mediaType")
        if not isinstance(media_type, str) or not media_type:
            raise InvalidManifest(f"{where} has no mediaType")
        size = raw.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidManifest(f"{where} has no valid size")
        try:
            digest = Digest.parse(raw.get("digest", ""))
        except InvalidDigest as exc:
            raise InvalidManifest(f"{where}: {exc.message}") from exc
        annotations = raw.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise InvalidManifest(f"{where} has annotations that are not a string map")
        artifact_type = raw.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise InvalidManifest(f"{where} has a non-string artifactType")
        platform = raw.get("platform")
        return cls(
            media_type,
            digest,
            size,
            annotations,
            artifact_type,
            platform if isinstance(platform, dict) else None,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = dict(self.platform)
        return out


@dataclass(frozen=True, slots=True)
class Manifest:
    """A parsed manifest or index, with the raw bytes it came from."""

    raw: bytes
    media_type: str
    config: Descriptor | None
    layers: tuple[Descriptor, ...]
    manifests: tuple[Descriptor, ...]
    subject: Descriptor | None
    artifact_type: str | None
    annotations: dict[str, str]

    @property
    def is_index(self) -> bool:
        return self.media_type in mt.INDEXES

    @property
    def digest(self) -> Digest:
        return Digest.of(self.raw)

    @property
    def effective_artifact_type(self) -> str | None:
        """The artifact type the referrers API reports: ``artifactType``, else the config's
        media type (OCI image spec v1.1 manifest.md, "artifactType")."""
        if self.artifact_type:
            return self.artifact_type
        if self.config is not None and not self.is_index:
            return self.config.media_type
        return None

    def blobs(self) -> tuple[Descriptor, ...]:
        """Descriptors this manifest requires to exist as blobs in the same repository."""
        if self.is_index:
            return ()
        return ((self.config,) if self.config else ()) + self.layers

    def descriptor(self) -> Descriptor:
        return Descriptor(
            self.media_type,
            self.digest,
            len(self.raw),
            dict(self.annotations),
            self.effective_artifact_type,
        )


def parse_manifest(raw: bytes, content_type: str | None = None) -> Manifest:
    """Parse ``raw`` as an image manifest or index; ``content_type`` is the header it came with.

    The media type is taken from the document's ``mediaType`` when present, else from the header;
    when both are present they must agree, as the distribution spec requires.
    """
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidManifest(f"manifest is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidManifest("manifest is not a JSON object")
    if doc.get("schemaVersion") != 2:
        raise InvalidManifest(
            "manifest schemaVersion must be 2", hint="schema 1 manifests are not supported"
        )
    declared = doc.get("mediaType")
    header = (content_type or "").split(";", 1)[0].strip() or None
    if declared is not None and not isinstance(declared, str):
        raise InvalidManifest("manifest mediaType is not a string")
    if declared and header and declared != header:
        raise InvalidManifest(
            f"manifest mediaType {declared!r} does not match Content-Type {header!r}"
        )
    media_type = declared or header
    if media_type is None:
        media_type = mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST
    if media_type not in mt.MANIFESTS:
        raise InvalidManifest(f"unsupported manifest media type {media_type!r}")

    config = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    if media_type in mt.INDEXES:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise InvalidManifest("index has no manifests list")
        manifests = tuple(Descriptor.from_dict(d, f"manifests[{i}]") for i, d in enumerate(entries))
    else:
        config = Descriptor.from_dict(doc.get("config"), "config")
        entries = doc.get("layers", [])
        if not isinstance(entries, list):
            raise InvalidManifest("manifest layers is not a list")
        layers = tuple(Descriptor.from_dict(d, f"layers[{i}]") for i, d in enumerate(entries))
    subject = None
    if doc.get("subject") is not None:
        subject = Descriptor.from_dict(doc["subject"], "subject")
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise InvalidManifest("manifest artifactType is not a string")
    annotations = doc.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise InvalidManifest("manifest annotations is not an object")
    return Manifest(
        raw,
        media_type,
        config,
        layers,
        manifests,
        subject,
        artifact_type,
        {str(k): str(v) for k, v in annotations.items()},
    )


def build_referrers_index(descriptors: list[Descriptor]) -> bytes:
    """The body of a referrers response and of a tag-schema index: an OCI image index."""
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [d.to_dict() for d in descriptors],
    }
    return json.dumps(doc, separators=(",", ":")).encode()
