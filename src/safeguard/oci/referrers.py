"""Referrers: the OCI 1.1 referrers API and the referrers tag schema that stands in for it.

Distribution spec v1.1, "Listing Referrers": ``GET /v2/<name>/referrers/<digest>`` answers an image
index of the manifests whose ``subject`` is ``<digest>``, may be filtered by ``artifactType``
(applied filters are named in ``OCI-Filters-Applied``; when the header is absent the client filters
itself) and pages with ``Link``. A registry without the API answers ``404`` (Debian's
docker-registry 2.8.2 with a plain-text body), and the client must then read the index tagged
with the "Referrers Tag Schema" (``<alg>-<hex>``, truncated) in the same repository.

Reading merges both sources, API first, by digest: a registry that gained the API may still hold
referrers that were only ever recorded in the tag. A tag that exists but does not hold an image
index is reported as ``InvalidManifest``, not silently ignored: something wrote it, and hiding it
would hide signatures. Writing follows "Pushing Manifests with Subject": when the registry did not
answer ``OCI-Subject``, pull the tag's index (404 means start empty), add the pushed manifest's
descriptor unless it is already there, and push the index back under the same tag.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any, Final

import httpx

from safeguard.core import mediatypes as mt
from safeguard.core.digest import Digest
from safeguard.core.errors import InvalidManifest, RegistryError
from safeguard.core.manifest import Descriptor, Manifest, parse_manifest
from safeguard.oci.links import next_page
from safeguard.oci.manifests import MANIFEST_LIMIT, ManifestClient, manifest_too_large
from safeguard.oci.transport.auth import repository_scope
from safeguard.oci.transport.session import Session
from safeguard.oci.transport.urls import append_query

MAX_PAGES: Final = 1000
# Statuses meaning "no referrers API here": the spec's 404, and what some registries send for
# routes they do not know.
NO_API: Final = (404, 405, 501)
_NOT_IN_TAG: Final = re.compile(r"[^a-zA-Z0-9_.-]")


def referrers_tag(digest: Digest) -> str:
    """The referrers tag schema's tag: truncated algorithm, ``-``, truncated encoded part."""
    algorithm = _NOT_IN_TAG.sub("-", digest.algorithm[:32])
    encoded = _NOT_IN_TAG.sub("-", digest.hex[:64])
    return f"{algorithm}-{encoded}"


@dataclass(frozen=True, slots=True)
class ReferrerList:
    descriptors: tuple[Descriptor, ...]
    api: bool  # the registry answered the referrers API
    tag_schema: bool  # a referrers tag index exists

    def digests(self) -> set[Digest]:
        return {d.digest for d in self.descriptors}


def descriptor_for_referrer(manifest: Manifest) -> Descriptor:
    """The descriptor a referrers list holds for ``manifest`` (artifactType, annotations)."""
    return manifest.descriptor()


def parse_referrers_index(raw: bytes, where: str) -> tuple[Descriptor, ...]:
    """The descriptors of a referrers response or tag-schema index, strictly checked."""
    try:
        manifest = parse_manifest(raw)
    except InvalidManifest as exc:
        raise InvalidManifest(
            f"{where} is not a valid image index: {exc.message}",
            hint="the registry (or whoever wrote that tag) stored a malformed referrers list",
        ) from exc
    if manifest.media_type != mt.OCI_INDEX:
        raise InvalidManifest(
            f"{where} is a {manifest.media_type}, not an OCI image index",
            hint="the referrers tag must hold an image index of referrer descriptors",
        )
    return manifest.manifests


class ReferrersClient:
    def __init__(self, session: Session, manifests: ManifestClient) -> None:
        self.session = session
        self.manifests = manifests
        self._locks: dict[tuple[str, Digest], asyncio.Lock] = {}

    async def list(
        self, repo: str, subject: Digest, artifact_type: str | None = None
    ) -> ReferrerList:
        """Referrers of ``subject`` from the API and the tag schema, merged by digest."""
        from_api = await self.from_api(repo, subject, artifact_type)
        from_tag = await self.from_tag(repo, subject)
        merged: dict[Digest, Descriptor] = {}
        for d in (*(from_api or ()), *(from_tag or ())):
            if artifact_type is not None and d.artifact_type != artifact_type:
                continue
            merged.setdefault(d.digest, d)
        return ReferrerList(tuple(merged.values()), from_api is not None, from_tag is not None)

    async def from_api(
        self, repo: str, subject: Digest, artifact_type: str | None = None
    ) -> tuple[Descriptor, ...] | None:
        """The referrers API's answer, or ``None`` when the registry has no such API (404)."""
        url: httpx.URL | None = self.session.url(f"/v2/{repo}/referrers/{subject}")
        assert url is not None
        if artifact_type is not None:
            url = append_query(url, [("artifactType", artifact_type)])
        out: list[Descriptor] = []
        pages = 0
        while url is not None:
            pages += 1
            if pages > MAX_PAGES:
                raise RegistryError(
                    f"referrers of {subject} on {self.session.host}/{repo}: pagination does "
                    "not end",
                    status=200,
                )
            reply = await self.session.request(
                "GET",
                url,
                scopes=(repository_scope(repo, "pull"),),
                headers={"Accept": mt.OCI_INDEX},
                expect=(200, *NO_API),
                limit=MANIFEST_LIMIT,
                too_large=manifest_too_large,
            )
            if reply.status in NO_API:
                if pages == 1:
                    return None
                raise RegistryError(
                    f"referrers page {url.path} of {self.session.host} vanished (404)", status=404
                )
            where = f"referrers response for {subject} from {self.session.host}/{repo}"
            descriptors = parse_referrers_index(reply.content, where)
            applied = {
                f.strip().lower()
                for f in reply.headers.get("oci-filters-applied", "").split(",")
                if f.strip()
            }
            if artifact_type is not None and "artifacttype" not in applied:
                descriptors = tuple(d for d in descriptors if d.artifact_type == artifact_type)
            out.extend(descriptors)
            url = next_page(reply.headers, reply.url)
        return tuple(out)

    async def from_tag(self, repo: str, subject: Digest) -> tuple[Descriptor, ...] | None:
        """The referrers tag schema's index, or ``None`` when the tag does not exist."""
        tag = referrers_tag(subject)
        found = await self.manifests.get_optional(repo, tag)
        if found is None:
            return None
        where = f"referrers tag {tag} in {self.session.host}/{repo}"
        return parse_referrers_index(found.raw, where)

    async def record_in_tag(self, repo: str, subject: Digest, descriptor: Descriptor) -> bool:
        """Add ``descriptor`` to the subject's referrers tag index; False if already there."""
        tag = referrers_tag(subject)
        lock = self._locks.setdefault((repo, subject), asyncio.Lock())
        async with lock:
            found = await self.manifests.get_optional(repo, tag)
            where = f"referrers tag {tag} in {self.session.host}/{repo}"
            if found is None:
                doc: dict[str, Any] = {
                    "schemaVersion": 2,
                    "mediaType": mt.OCI_INDEX,
                    "manifests": [],
                }
            else:
                existing = parse_referrers_index(found.raw, where)
                if any(d.digest == descriptor.digest for d in existing):
                    return False
                doc = json.loads(found.raw)
            doc["manifests"].append(descriptor.to_dict())
            raw = json.dumps(doc, separators=(",", ":")).encode()
            await self.manifests.put(repo, tag, raw, mt.OCI_INDEX)
            return True

    async def forget_in_tag(self, repo: str, subject: Digest, digest: Digest) -> bool:
        """Remove ``digest`` from the subject's referrers tag index ("Deleting Manifests")."""
        tag = referrers_tag(subject)
        lock = self._locks.setdefault((repo, subject), asyncio.Lock())
        async with lock:
            found = await self.manifests.get_optional(repo, tag)
            if found is None:
                return False
            where = f"referrers tag {tag} in {self.session.host}/{repo}"
            parse_referrers_index(found.raw, where)
            doc = json.loads(found.raw)
            kept = [m for m in doc["manifests"] if m.get("digest") != str(digest)]
            if len(kept) == len(doc["manifests"]):
                return False
            doc["manifests"] = kept
            raw = json.dumps(doc, separators=(",", ":")).encode()
            await self.manifests.put(repo, tag, raw, mt.OCI_INDEX)
            return True
