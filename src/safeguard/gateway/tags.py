"""Tag operations the gateway performs on the registry itself (releasing a grace tag, an admin
retag or untag), over the upstream's ``RegistryClient``.

Removing a tag is ``DELETE /v2/<name>/manifests/<tag>`` (distribution-spec v1.1, "Deleting
tags"). Registries that do not support it — distribution 2.8 answers 400 ``DIGEST_INVALID`` or
``UNSUPPORTED`` — only delete manifests by digest, which removes every tag of that manifest; there
the manifest is deleted and pushed back by digest, and its other tags are put back, so that only
the one tag is gone. Referrers of the manifest are separate manifests and are not touched.
"""

from __future__ import annotations

from dataclasses import dataclass

from safeguard.core.digest import Digest
from safeguard.core.errors import RegistryError
from safeguard.core.reference import validate_tag
from safeguard.oci.client import RegistryClient
from safeguard.oci.referrers import referrers_tag


def is_attached_tag(tag: str) -> Digest | None:
    """The subject digest of a cosign ``<alg>-<hex>.sig``/``.att``/``.sbom`` tag, else None."""
    base, dot, suffix = tag.rpartition(".")
    if not dot or suffix not in ("sig", "att", "sbom"):
        return None
    return _tag_digest(base)


def is_referrers_index_tag(tag: str) -> Digest | None:
    """The subject digest of a referrers tag schema tag ``<alg>-<hex>``, else None."""
    return _tag_digest(tag)


def _tag_digest(text: str) -> Digest | None:
    algorithm, dash, hex_ = text.partition("-")
    if not dash:
        return None
    try:
        digest = Digest.parse(f"{algorithm}:{hex_}")
    except Exception:
        return None
    return digest if referrers_tag(digest) == text else None


@dataclass(frozen=True, slots=True)
class Manifest:
    raw: bytes
    media_type: str
    digest: Digest


async def tag_digest(client: RegistryClient, repository: str, tag: str) -> Digest | None:
    found = await client.manifests.head(repository, tag)
    return found.digest if found is not None else None


async def fetch(client: RegistryClient, repository: str, digest: Digest | str) -> Manifest:
    reply = await client.manifests.get(repository, digest)
    return Manifest(reply.raw, reply.media_type, reply.digest)


async def put_tag(client: RegistryClient, repository: str, tag: str, manifest: Manifest) -> None:
    validate_tag(tag)
    await client.manifests.put(repository, tag, manifest.raw, manifest.media_type)


async def remove_tag(client: RegistryClient, repository: str, tag: str) -> Digest | None:
    """Remove ``tag``; returns the digest it pointed at (None when there was no such tag)."""
    current = await tag_digest(client, repository, tag)
    if current is None:
        return None
    try:
        await client.manifests.delete(repository, tag)
        return current
    except RegistryError as exc:
        if exc.status not in (400, 405, 501) and exc.oci_code not in (
            "UNSUPPORTED",
            "DIGEST_INVALID",
        ):
            raise
    manifest = await fetch(client, repository, current)
    others = [
        t
        for t in await client.manifests.tags(repository)
        if t != tag and await tag_digest(client, repository, t) == current
    ]
    await client.manifests.delete(repository, current)
    await client.manifests.put(repository, current, manifest.raw, manifest.media_type)
    for other in others:
        await put_tag(client, repository, other, manifest)
    return current
