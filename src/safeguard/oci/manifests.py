"""Manifests, tags and the catalog on a registry (distribution spec v1.1: "Pulling manifests",
"Pushing Manifests", "Deleting Manifests", "Listing Tags", and distribution's ``/v2/_catalog``).

Manifests are content-addressed, so their bytes are kept exactly as received and never
re-serialised. A manifest fetched by digest must hash to that digest; one fetched by tag must hash
to the ``Docker-Content-Digest`` the registry sent, when it sent one. Manifests larger than 4 MiB
are refused (the spec asks registries to accept "at least 4 megabytes"), since a client must not
read untrusted input without bound. Listings follow ``Link: <...>; rel="next"`` pagination.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

import httpx

from safeguard.core import mediatypes as mt
from safeguard.core.digest import Digest
from safeguard.core.errors import InvalidDigest, InvalidManifest, NotFound, RegistryError
from safeguard.core.manifest import Descriptor, Manifest, parse_manifest
from safeguard.core.reference import validate_repository, validate_tag
from safeguard.oci.errors import DigestMismatch
from safeguard.oci.links import next_page
from safeguard.oci.transport.auth import CATALOG_SCOPE, repository_scope
from safeguard.oci.transport.session import Reply, Session
from safeguard.oci.transport.urls import append_query

MANIFEST_LIMIT: Final = 4 * 1024 * 1024
LISTING_LIMIT: Final = 16 * 1024 * 1024
MAX_PAGES: Final = 10_000


@dataclass(frozen=True, slots=True)
class ManifestReply:
    """A manifest exactly as the registry served it."""

    raw: bytes
    media_type: str
    digest: Digest

    def parse(self) -> Manifest:
        return parse_manifest(self.raw, self.media_type)

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw))


@dataclass(frozen=True, slots=True)
class PutResult:
    digest: Digest
    subject_processed: bool  # the registry answered ``OCI-Subject``


def _reference_text(reference: str | Digest) -> str:
    """A tag or digest, checked: it becomes part of a URL path."""
    if isinstance(reference, Digest):
        return str(reference)
    if ":" in reference:
        return str(Digest.parse(reference))
    return validate_tag(reference)


def manifest_too_large(limit: int) -> InvalidManifest:
    return InvalidManifest(
        f"manifest is larger than {limit} bytes", hint="refusing to read an oversized manifest"
    )


def media_type_of(raw: bytes, content_type: str | None) -> str:
    """The manifest's media type: its ``mediaType`` field, else the ``Content-Type`` header."""
    header = (content_type or "").split(";", 1)[0].strip()
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        doc = None
    declared = doc.get("mediaType") if isinstance(doc, dict) else None
    if isinstance(declared, str) and declared:
        return declared
    if header in mt.MANIFESTS:
        return header
    if isinstance(doc, dict) and "manifests" in doc:
        return mt.OCI_INDEX
    return header or mt.OCI_MANIFEST


class ManifestClient:
    def __init__(self, session: Session) -> None:
        self.session = session

    async def get(
        self, repo: str, reference: str | Digest, accept: str = mt.MANIFEST_ACCEPT
    ) -> ManifestReply:
        found = await self.get_optional(repo, reference, accept)
        if found is None:
            raise NotFound(
                f"manifest {reference} not found in {self.session.host}/{repo}",
                hint="check the repository name and the tag or digest",
            )
        return found

    async def get_optional(
        self, repo: str, reference: str | Digest, accept: str = mt.MANIFEST_ACCEPT
    ) -> ManifestReply | None:
        ref = _reference_text(reference)
        reply = await self.session.request(
            "GET",
            f"/v2/{repo}/manifests/{ref}",
            scopes=(repository_scope(repo, "pull"),),
            headers={"Accept": accept},
            expect=(200, 404),
            limit=MANIFEST_LIMIT,
            too_large=manifest_too_large,
        )
        if reply.status == 404:
            return None
        return self._checked(repo, ref, reply)

    def _checked(self, repo: str, ref: str, reply: Reply) -> ManifestReply:
        what = f"manifest {ref} from {self.session.host}/{repo}"
        expected: Digest | None = None
        if ":" in ref:
            expected = Digest.parse(ref)
        else:
            header = reply.headers.get("docker-content-digest")
            if header:
                try:
                    expected = Digest.parse(header)
                except InvalidDigest:
                    expected = None
        algorithm = expected.algorithm if expected else "sha256"
        actual = Digest.of(reply.content, algorithm)
        if expected is not None and actual != expected:
            raise DigestMismatch(what, str(expected), str(actual))
        media_type = media_type_of(reply.content, reply.headers.get("content-type"))
        return ManifestReply(reply.content, media_type, actual)

    async def head(self, repo: str, reference: str | Digest) -> Descriptor | None:
        """Digest, media type and size of a manifest, or ``None`` when absent."""
        ref = _reference_text(reference)
        reply = await self.session.request(
            "HEAD",
            f"/v2/{repo}/manifests/{ref}",
            scopes=(repository_scope(repo, "pull"),),
            headers={"Accept": mt.MANIFEST_ACCEPT},
            expect=(200, 404),
        )
        if reply.status == 404:
            return None
        header = reply.headers.get("docker-content-digest")
        length = reply.headers.get("content-length", "")
        content_type = reply.headers.get("content-type", "").split(";", 1)[0].strip()
        if header and length.isdigit() and content_type in mt.MANIFESTS:
            digest = Digest.parse(header)
            if ":" in ref and Digest.parse(ref) != digest:
                raise DigestMismatch(
                    f"manifest {ref} on {self.session.host}/{repo}", ref, str(digest)
                )
            return Descriptor(content_type, digest, int(length))
        found = await self.get_optional(repo, reference)  # registry told too little: GET it
        return found.descriptor() if found else None

    async def put(
        self, repo: str, reference: str | Digest, raw: bytes, media_type: str
    ) -> PutResult:
        """Store ``raw`` under a tag or its digest; the registry must keep the exact bytes."""
        ref = _reference_text(reference)
        digest = Digest.of(raw)
        if ":" in ref and Digest.of(raw, Digest.parse(ref).algorithm) != Digest.parse(ref):
            raise InvalidManifest(
                f"manifest bytes do not hash to {ref}",
                hint="push a manifest by its own digest, or by a tag",
            )
        reply = await self.session.request(
            "PUT",
            f"/v2/{repo}/manifests/{ref}",
            scopes=(repository_scope(repo, "pull", "push"),),
            headers={"Content-Type": media_type},
            content=raw,
            expect=(200, 201, 202),
        )
        echoed = reply.headers.get("docker-content-digest")
        if echoed and echoed.startswith("sha256:") and echoed != str(digest):
            raise DigestMismatch(
                f"manifest pushed to {self.session.host}/{repo}", str(digest), echoed
            )
        return PutResult(digest, bool(reply.headers.get("oci-subject")))

    async def delete(self, repo: str, reference: str | Digest) -> None:
        await self.session.request(
            "DELETE",
            f"/v2/{repo}/manifests/{_reference_text(reference)}",
            scopes=(repository_scope(repo, "pull", "push"),),
            expect=(200, 202),
        )

    async def tags(self, repo: str, page_size: int | None = None) -> list[str]:
        """Every tag of ``repo``, following pagination."""
        validate_repository(repo)
        url = self.session.url(f"/v2/{repo}/tags/list")
        if page_size is not None:
            url = append_query(url, [("n", str(page_size))])
        out: list[str] = []
        async for doc in self._pages(url, (repository_scope(repo, "pull"),)):
            out.extend(_string_list(doc, "tags", url))
        return out

    async def catalog(self, page_size: int | None = None) -> list[str]:
        """Every repository the registry lists in ``/v2/_catalog``, following pagination."""
        url = self.session.url("/v2/_catalog")
        if page_size is not None:
            url = append_query(url, [("n", str(page_size))])
        out: list[str] = []
        async for doc in self._pages(url, (CATALOG_SCOPE,)):
            out.extend(_string_list(doc, "repositories", url))
        return out

    async def _pages(self, url: httpx.URL, scopes: tuple[str, ...]) -> AsyncIterator[Any]:
        seen: set[str] = set()
        current: httpx.URL | None = url
        while current is not None:
            if str(current) in seen or len(seen) >= MAX_PAGES:
                raise RegistryError(
                    f"registry {self.session.host} pagination does not end ({current.path})",
                    status=200,
                )
            seen.add(str(current))
            reply = await self.session.request(
                "GET", current, scopes=scopes, expect=(200,), limit=LISTING_LIMIT
            )
            try:
                doc = json.loads(reply.content)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise RegistryError(
                    f"registry {self.session.host} answered {current.path} with something "
                    "that is not JSON",
                    status=reply.status,
                ) from exc
            yield doc
            current = next_page(reply.headers, reply.url)


def _string_list(doc: Any, key: str, url: httpx.URL) -> list[str]:
    if not isinstance(doc, dict):
        raise RegistryError(f"listing {url.path} is not a JSON object", status=200)
    items = doc.get(key)
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise RegistryError(f"listing {url.path}: {key!r} is not a list of strings", status=200)
    return list(items)
