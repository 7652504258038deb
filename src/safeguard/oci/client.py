"""``RegistryClient``: one registry host, reached by the scheme rule, with auth and typed errors.

It gathers the per-concern clients (``blobs``, ``manifests``, ``referrers``) over one session and
adds what needs more than one of them: pushing a manifest with a ``subject`` keeps the referrers
tag schema up to date when the registry did not answer ``OCI-Subject``, and deleting one removes
it again (distribution spec v1.1, "Pushing Manifests with Subject" and "Deleting Manifests").
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType

from safeguard.core import mediatypes as mt
from safeguard.core.digest import Digest
from safeguard.core.manifest import Descriptor, parse_manifest
from safeguard.core.reference import Reference, validate_repository
from safeguard.oci.blobs import BlobClient
from safeguard.oci.manifests import ManifestClient, media_type_of
from safeguard.oci.referrers import ReferrersClient
from safeguard.oci.transport.credentials import Credentials
from safeguard.oci.transport.session import LOOKUP, Session, _Lookup


@dataclass(frozen=True, slots=True)
class PushResult:
    digest: Digest
    descriptor: Descriptor
    subject: Digest | None
    tag_schema_updated: bool  # the referrers tag index was written for this push


class RegistryClient:
    """Async client for one registry; use as ``async with RegistryClient(host) as client``."""

    def __init__(
        self,
        host: str,
        *,
        credentials: Credentials | _Lookup | None = LOOKUP,
        allow_insecure: bool = False,
        scheme: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.host = host
        self.session = Session(
            host,
            credentials=credentials,
            allow_insecure=allow_insecure,
            scheme=scheme,
            timeout=timeout,
        )
        self.blobs = BlobClient(self.session)
        self.manifests = ManifestClient(self.session)
        self.referrers = ReferrersClient(self.session, self.manifests)

    @classmethod
    def for_reference(
        cls,
        ref: Reference,
        *,
        credentials: Credentials | _Lookup | None = LOOKUP,
        allow_insecure: bool = False,
        scheme: str | None = None,
    ) -> RegistryClient:
        return cls(
            ref.api_host, credentials=credentials, allow_insecure=allow_insecure, scheme=scheme
        )

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.session.aclose()

    async def ping(self) -> None:
        """``GET /v2/``: the registry is there and speaks the API (auth challenges answered)."""
        await self.session.request("GET", "/v2/", scopes=(), expect=(200,))

    async def resolve(self, repo: str, reference: str | Digest) -> Descriptor:
        """The descriptor a tag or digest points at."""
        found = await self.manifests.head(repo, reference)
        if found is None:
            # Same typed NotFound as a GET gives.
            return (await self.manifests.get(repo, reference)).descriptor()
        return found

    async def push_manifest(
        self,
        repo: str,
        reference: str | Digest,
        raw: bytes,
        media_type: str | None = None,
    ) -> PushResult:
        """Push ``raw`` unchanged; record it in the referrers tag index when the registry
        did not process its ``subject`` itself."""
        validate_repository(repo)
        manifest = parse_manifest(raw, media_type)
        media_type = media_type or media_type_of(raw, None)
        result = await self.manifests.put(repo, reference, raw, media_type)
        descriptor = manifest.descriptor()
        updated = False
        if manifest.subject is not None and not result.subject_processed:
            updated = await self.referrers.record_in_tag(repo, manifest.subject.digest, descriptor)
        subject = manifest.subject.digest if manifest.subject else None
        return PushResult(result.digest, descriptor, subject, updated)

    async def delete_manifest(self, repo: str, digest: Digest) -> None:
        """Delete a manifest; drop it from its subject's referrers tag index if it had one."""
        found = await self.manifests.get_optional(repo, digest)
        await self.manifests.delete(repo, digest)
        if found is None:
            return
        subject = found.parse().subject
        no_api = subject is not None and await self.referrers.from_api(repo, subject.digest) is None
        if subject is not None and no_api:
            await self.referrers.forget_in_tag(repo, subject.digest, digest)

    async def push_blob_bytes(self, repo: str, data: bytes) -> Descriptor:
        """Upload ``data`` (skipping it when present) and return an octet-stream descriptor."""
        digest = Digest.of(data)
        if not await self.blobs.exists(repo, digest):
            await self.blobs.upload(repo, digest, data)
        return Descriptor("application/octet-stream", digest, len(data))

    async def push_empty_config(self, repo: str) -> Descriptor:
        await self.push_blob_bytes(repo, mt.EMPTY_JSON)
        return Descriptor(mt.OCI_EMPTY, Digest.parse(mt.EMPTY_JSON_DIGEST), len(mt.EMPTY_JSON))
