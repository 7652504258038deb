"""The two places an artifact can live, behind one interface: a registry repository and an OCI
image layout directory. The copy engine and the referrers tree work on ``Store`` only.

A manifest is written in one of four roles, which each store maps to its own conventions:

* ``root``: the artifact being copied (registry: by tag, else by digest; layout: tagged entry);
* ``child``: a manifest of an index (by digest; layout: blob only, reachable from its index);
* ``referrer``: a manifest with a ``subject`` (by digest, keeping the referrers tag schema when
  the registry has no API; layout: untagged ``index.json`` entry plus the tag-schema index);
* ``attached``: a cosign ``<alg>-<hex>.sig``/``.att``/``.sbom`` tag (by that tag, both stores).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final, Literal

from safeguard.core import mediatypes as mt
from safeguard.core.digest import Digest
from safeguard.core.errors import InvalidInput
from safeguard.core.manifest import Descriptor, parse_manifest
from safeguard.oci.blobs import BlobData
from safeguard.oci.client import RegistryClient
from safeguard.oci.layout import OCILayout
from safeguard.oci.location import Location
from safeguard.oci.transport.credentials import Credentials
from safeguard.oci.transport.session import LOOKUP, _Lookup

Role = Literal["root", "child", "referrer", "attached"]
ByteCallback = Callable[[int], None]
IN_MEMORY_LIMIT: Final = 16 * 1024 * 1024


class Store:
    """Base of the two stores; ``display`` names it in messages and reports."""

    display: str
    tag: str | None = None  # the tag named in the location, if any
    digest: Digest | None = None  # the digest named in the location, if any

    async def resolve_root(self) -> Descriptor:
        raise NotImplementedError

    async def fetch_manifest(self, descriptor: Descriptor) -> bytes:
        raise NotImplementedError

    async def referrers(self, subject: Digest) -> list[tuple[Descriptor, str]]:
        raise NotImplementedError

    async def resolve_tag(self, tag: str) -> Descriptor | None:
        raise NotImplementedError

    async def read_blob(
        self, descriptor: Descriptor, scratch: Path, on_bytes: ByteCallback
    ) -> tuple[BlobData, bool]:
        """The verified blob as bytes or a file; True when the file is scratch to delete."""
        raise NotImplementedError

    async def has_blob(self, descriptor: Descriptor) -> bool:
        raise NotImplementedError

    async def try_mount(self, descriptor: Descriptor, source: Store) -> bool:
        return False

    async def write_blob(self, descriptor: Descriptor, data: BlobData) -> None:
        raise NotImplementedError

    async def has_manifest(self, descriptor: Descriptor) -> bool:
        raise NotImplementedError

    async def tag_digest(self, tag: str) -> Digest | None:
        raise NotImplementedError

    async def write_manifest(
        self, descriptor: Descriptor, raw: bytes, role: Role, tag: str | None = None
    ) -> None:
        raise NotImplementedError

    async def ensure_referrer(self, subject: Digest, descriptor: Descriptor) -> None:
        """Make sure an already present referrer is listed for its subject."""
        raise NotImplementedError


class RegistryStore(Store):
    def __init__(self, client: RegistryClient, location: Location) -> None:
        assert location.reference is not None
        self.client = client
        self.reference = location.reference
        self.repo = location.reference.repository
        self.display = str(location)
        self.tag = location.reference.tag
        self.digest = location.reference.digest

    async def resolve_root(self) -> Descriptor:
        return await self.client.resolve(self.repo, self.reference.reference)

    async def fetch_manifest(self, descriptor: Descriptor) -> bytes:
        return (await self.client.manifests.get(self.repo, descriptor.digest)).raw

    async def referrers(self, subject: Digest) -> list[tuple[Descriptor, str]]:
        api = await self.client.referrers.from_api(self.repo, subject) or ()
        tagged = await self.client.referrers.from_tag(self.repo, subject) or ()
        out: dict[Digest, tuple[Descriptor, str]] = {}
        for d in api:
            out.setdefault(d.digest, (d, "referrers-api"))
        for d in tagged:
            out.setdefault(d.digest, (d, "tag-schema"))
        return list(out.values())

    async def resolve_tag(self, tag: str) -> Descriptor | None:
        return await self.client.manifests.head(self.repo, tag)

    async def read_blob(
        self, descriptor: Descriptor, scratch: Path, on_bytes: ByteCallback
    ) -> tuple[BlobData, bool]:
        if descriptor.size <= IN_MEMORY_LIMIT:
            buf = bytearray()
            async with self.client.blobs.open(
                self.repo, descriptor.digest, descriptor.size
            ) as chunks:
                async for chunk in chunks:
                    buf += chunk
                    on_bytes(len(chunk))
            return bytes(buf), False
        dest = scratch / descriptor.digest.hex
        await self.client.blobs.download(
            self.repo, descriptor.digest, dest, descriptor.size, on_bytes
        )
        return dest, True

    async def has_blob(self, descriptor: Descriptor) -> bool:
        return await self.client.blobs.exists(self.repo, descriptor.digest)

    async def try_mount(self, descriptor: Descriptor, source: Store) -> bool:
        if not isinstance(source, RegistryStore) or source.client.host != self.client.host:
            return False
        if source.repo == self.repo:
            return False
        return await self.client.blobs.mount(self.repo, descriptor.digest, source.repo)

    async def write_blob(self, descriptor: Descriptor, data: BlobData) -> None:
        await self.client.blobs.upload(self.repo, descriptor.digest, data)

    async def has_manifest(self, descriptor: Descriptor) -> bool:
        return await self.client.manifests.head(self.repo, descriptor.digest) is not None

    async def tag_digest(self, tag: str) -> Digest | None:
        found = await self.client.manifests.head(self.repo, tag)
        return found.digest if found else None

    async def write_manifest(
        self, descriptor: Descriptor, raw: bytes, role: Role, tag: str | None = None
    ) -> None:
        reference: str | Digest = tag if tag and role in ("root", "attached") else descriptor.digest
        await self.client.push_manifest(self.repo, reference, raw, descriptor.media_type)

    async def ensure_referrer(self, subject: Digest, descriptor: Descriptor) -> None:
        listed = await self.client.referrers.list(self.repo, subject)
        if descriptor.digest not in listed.digests():
            await self.client.referrers.record_in_tag(self.repo, subject, descriptor)


class LayoutStore(Store):
    """An OCI layout; as a destination that does not exist yet, it is created on first write,
    so a copy that fails early leaves no empty layout behind."""

    def __init__(self, layout: OCILayout | None, location: Location) -> None:
        assert location.path is not None
        self.path = location.path
        self._layout = layout
        self.display = str(location)
        self.tag = location.tag

    @property
    def layout(self) -> OCILayout:
        if self._layout is None:
            self._layout = OCILayout.create(self.path)
        return self._layout

    @property
    def exists(self) -> bool:
        return self._layout is not None

    async def resolve_root(self) -> Descriptor:
        return self.layout.resolve(self.tag)

    async def fetch_manifest(self, descriptor: Descriptor) -> bytes:
        return self.layout.read_manifest(descriptor)

    async def referrers(self, subject: Digest) -> list[tuple[Descriptor, str]]:
        return self.layout.referrers(subject)

    async def resolve_tag(self, tag: str) -> Descriptor | None:
        return self.layout.find_tag(tag)

    async def read_blob(
        self, descriptor: Descriptor, scratch: Path, on_bytes: ByteCallback
    ) -> tuple[BlobData, bool]:
        size = await asyncio.to_thread(self.layout.verify_blob, descriptor.digest, descriptor.size)
        on_bytes(size)
        return self.layout.blob_path(descriptor.digest), False

    async def has_blob(self, descriptor: Descriptor) -> bool:
        return self.exists and self.layout.has_blob(descriptor.digest, descriptor.size)

    async def write_blob(self, descriptor: Descriptor, data: BlobData) -> None:
        if isinstance(data, bytes):
            self.layout.write_blob(descriptor.digest, data)
        else:
            await asyncio.to_thread(
                self.layout.import_blob, descriptor.digest, data, descriptor.size
            )

    async def has_manifest(self, descriptor: Descriptor) -> bool:
        return self.exists and self.layout.has_blob(descriptor.digest, descriptor.size)

    async def tag_digest(self, tag: str) -> Digest | None:
        found = self.layout.find_tag(tag) if self.exists else None
        return found.digest if found else None

    async def write_manifest(
        self, descriptor: Descriptor, raw: bytes, role: Role, tag: str | None = None
    ) -> None:
        self.layout.write_blob(descriptor.digest, raw)
        plain = Descriptor(descriptor.media_type, descriptor.digest, descriptor.size)
        if role in ("root", "attached"):
            self.layout.add_entry(plain, tag)
        elif role == "referrer":
            self._record_referrer(raw, plain)

    def _record_referrer(self, raw: bytes, plain: Descriptor) -> None:
        manifest = parse_manifest(raw, plain.media_type)
        self.layout.add_entry(plain, None)
        if manifest.subject is not None:
            self.layout.record_referrer(manifest.subject.digest, manifest.descriptor())

    async def ensure_referrer(self, subject: Digest, descriptor: Descriptor) -> None:
        raw = self.layout.read_manifest(descriptor)
        plain = Descriptor(descriptor.media_type, descriptor.digest, descriptor.size)
        self._record_referrer(raw, plain)


@asynccontextmanager
async def open_store(
    location: Location,
    *,
    write: bool = False,
    allow_insecure: bool = False,
    credentials: Credentials | _Lookup | None = LOOKUP,
) -> AsyncIterator[Store]:
    """A store for ``location``; a layout is created when opened for writing."""
    if location.path is not None:
        if not write:
            layout: OCILayout | None = OCILayout.open(location.path)
        elif location.path.exists():
            layout = OCILayout.create(location.path)  # checks that it is a layout (or empty)
        else:
            layout = None  # created on first write
        yield LayoutStore(layout, location)
        return
    assert location.reference is not None
    async with RegistryClient.for_reference(
        location.reference,
        credentials=credentials,
        allow_insecure=allow_insecure,
        scheme=location.scheme,
    ) as client:
        yield RegistryStore(client, location)


def scratch_directory() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="safeguard-copy-")


def is_manifest_type(media_type: str) -> bool:
    return media_type in mt.MANIFESTS


def require_same_digest(store: Store, digest: Digest) -> None:
    if store.digest is not None and store.digest != digest:
        raise InvalidInput(
            f"destination {store.display} names digest {store.digest}, but the source is {digest}",
            hint="drop the digest from the destination, or copy the matching source",
        )
