"""Builders for test artifacts: images, indexes and referrers as exact bytes, and pushing them.

Not a test module: the client's unit and integration tests import it.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from dataclasses import dataclass, field
from typing import Any

from safeguard.core import mediatypes as mt
from safeguard.core.digest import Digest
from safeguard.core.manifest import Descriptor
from safeguard.oci.client import RegistryClient


@dataclass
class Artifact:
    raw: bytes
    media_type: str
    blobs: dict[Digest, bytes] = field(default_factory=dict)
    children: list[Artifact] = field(default_factory=list)
    artifact_type: str | None = None

    @property
    def digest(self) -> Digest:
        return Digest.of(self.raw)

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw))

    def all_blobs(self) -> dict[Digest, bytes]:
        out = dict(self.blobs)
        for child in self.children:
            out.update(child.all_blobs())
        return out


def layer_tgz(name: str = "hello.txt", data: bytes | None = None) -> bytes:
    """A real gzip-compressed tar layer (so tools like skopeo keep it as it is)."""
    data = data if data is not None else os.urandom(256)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0)


def _desc(media_type: str, data: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": str(Digest.of(data)), "size": len(data)}


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=False).encode()


def image(
    layers: list[bytes] | None = None,
    *,
    config: bytes | None = None,
    annotations: dict[str, str] | None = None,
    subject: Artifact | None = None,
    artifact_type: str | None = None,
    config_type: str = mt.OCI_CONFIG,
) -> Artifact:
    layers = layers if layers is not None else [layer_tgz()]
    config = (
        config
        if config is not None
        else json.dumps(
            {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
        ).encode()
    )
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST}
    if artifact_type:
        doc["artifactType"] = artifact_type
    doc["config"] = _desc(config_type, config)
    doc["layers"] = [_desc(mt.OCI_LAYER_GZIP, layer) for layer in layers]
    if subject is not None:
        doc["subject"] = subject.descriptor().to_dict()
    if annotations:
        doc["annotations"] = annotations
    blobs = {Digest.of(config): config}
    blobs.update({Digest.of(layer): layer for layer in layers})
    return Artifact(_dump(doc), mt.OCI_MANIFEST, blobs, artifact_type=artifact_type)


def referrer(
    subject: Artifact, artifact_type: str, payload: bytes | None = None, **annotations: str
) -> Artifact:
    """An artifact manifest with the empty config, one payload layer and ``subject``."""
    payload = payload if payload is not None else os.urandom(64)
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": _desc(mt.OCI_EMPTY, mt.EMPTY_JSON),
        "layers": [_desc("application/octet-stream", payload)],
        "subject": subject.descriptor().to_dict(),
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    blobs = {Digest.of(mt.EMPTY_JSON): mt.EMPTY_JSON, Digest.of(payload): payload}
    return Artifact(_dump(doc), mt.OCI_MANIFEST, blobs, artifact_type=artifact_type)


def index(children: list[Artifact], platforms: list[str] | None = None) -> Artifact:
    entries = []
    for i, child in enumerate(children):
        entry = child.descriptor().to_dict()
        arch = (platforms or [])[i] if platforms and i < len(platforms) else f"arch{i}"
        entry["platform"] = {"architecture": arch, "os": "linux"}
        entries.append(entry)
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}
    return Artifact(_dump(doc), mt.OCI_INDEX, {}, list(children))


async def push(
    client: RegistryClient, repo: str, artifact: Artifact, tag: str | None = None
) -> None:
    """Push an artifact's blobs, its children, then itself (by tag, else by digest)."""
    for digest, data in artifact.blobs.items():
        if not await client.blobs.exists(repo, digest):
            await client.blobs.upload(repo, digest, data)
    for child in artifact.children:
        await push(client, repo, child)
    await client.push_manifest(repo, tag or artifact.digest, artifact.raw, artifact.media_type)
