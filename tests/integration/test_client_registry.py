"""The registry client against both registries: ours (native referrers API) and Debian's
docker-registry 2.8.2 (no referrers API: the tag-schema fallback)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from safeguard.core import mediatypes as mt
from safeguard.core.digest import Digest
from safeguard.core.errors import (
    InvalidDigest,
    InvalidManifest,
    InvalidName,
    InvalidTag,
    NotFound,
    RegistryError,
)
from safeguard.oci.client import RegistryClient
from safeguard.oci.referrers import referrers_tag
from tests.fixtures.distribution import RegistryServer
from tests.unit.oci.artifacts import image, index, push, referrer


def _repo() -> str:
    return f"test/{uuid.uuid4().hex[:12]}"


async def test_ping_and_manifest_round_trip(any_registry: RegistryServer) -> None:
    repo = _repo()
    art = image(annotations={"org.example": "yes"})
    async with RegistryClient(any_registry.host) as client:
        await client.ping()
        await push(client, repo, art, "v1")
        got = await client.manifests.get(repo, "v1")
        assert got.raw == art.raw  # exact bytes
        assert got.digest == art.digest
        assert got.media_type == mt.OCI_MANIFEST
        by_digest = await client.manifests.get(repo, art.digest)
        assert by_digest.raw == art.raw
        head = await client.manifests.head(repo, "v1")
        assert head is not None
        assert (head.digest, head.size, head.media_type) == (
            art.digest,
            len(art.raw),
            mt.OCI_MANIFEST,
        )
        assert await client.manifests.head(repo, "nope") is None
        with pytest.raises(NotFound):
            await client.manifests.get(repo, "nope")


async def test_blob_uploads_monolithic_and_chunked(
    any_registry: RegistryServer, tmp_path: Path
) -> None:
    repo = _repo()
    small = os.urandom(1000)
    large = os.urandom(3 * 1024 * 1024 + 17)
    async with RegistryClient(any_registry.host) as client:
        assert not await client.blobs.exists(repo, Digest.of(small))
        await client.blobs.upload(repo, Digest.of(small), small)
        assert await client.blobs.head(repo, Digest.of(small)) == len(small)
        assert await client.blobs.get(repo, Digest.of(small)) == small

        source = tmp_path / "large.bin"
        source.write_bytes(large)
        await client.blobs.upload(repo, Digest.of(large), source, chunked=True, chunk_size=1 << 20)
        target = tmp_path / "out" / "large.bin"
        seen: list[int] = []
        n = await client.blobs.download(
            repo, Digest.of(large), target, len(large), on_bytes=seen.append
        )
        assert n == len(large) == sum(seen)
        assert target.read_bytes() == large
        assert [p.name for p in target.parent.iterdir()] == ["large.bin"]  # no temp left

        with pytest.raises(NotFound):
            await client.blobs.get(repo, Digest.of(b"never uploaded"))


async def test_upload_with_wrong_digest_is_refused(any_registry: RegistryServer) -> None:
    async with RegistryClient(any_registry.host) as client:
        with pytest.raises(RegistryError) as info:
            await client.blobs.upload(_repo(), Digest.of(b"claimed"), b"actual")
        assert info.value.status == 400
        assert info.value.oci_code == "DIGEST_INVALID"


async def test_cross_repository_mount(any_registry: RegistryServer) -> None:
    source, target = _repo(), _repo()
    data = os.urandom(2048)
    async with RegistryClient(any_registry.host) as client:
        await client.blobs.upload(source, Digest.of(data), data)
        assert await client.blobs.mount(target, Digest.of(data), source)
        assert await client.blobs.get(target, Digest.of(data)) == data
        # Nothing to mount: the registry starts an upload instead, which we cancel.
        assert not await client.blobs.mount(target, Digest.of(b"absent"), source)


async def test_tags_and_catalog_pagination(any_registry: RegistryServer) -> None:
    repo = _repo()
    art = image()
    async with RegistryClient(any_registry.host) as client:
        await push(client, repo, art, "a")
        for tag in ("b", "c", "d", "e"):
            await client.manifests.put(repo, tag, art.raw, art.media_type)
        # distribution 2.8 pages in storage order, not lexically; every tag comes exactly once.
        paged = await client.manifests.tags(repo, page_size=2)
        assert sorted(paged) == ["a", "b", "c", "d", "e"]
        assert sorted(await client.manifests.tags(repo)) == ["a", "b", "c", "d", "e"]
        other = _repo()
        await push(client, other, art, "x")
        names = await client.manifests.catalog(page_size=1)
        assert repo in names and other in names
        assert len(names) == len(set(names))


async def test_delete_manifest(any_registry: RegistryServer) -> None:
    repo = _repo()
    art = image()
    async with RegistryClient(any_registry.host) as client:
        await push(client, repo, art, "v1")
        await client.manifests.delete(repo, art.digest)
        assert await client.manifests.head(repo, art.digest) is None


async def test_index_with_children(any_registry: RegistryServer) -> None:
    repo = _repo()
    idx = index([image(), image()])
    async with RegistryClient(any_registry.host) as client:
        await push(client, repo, idx, "multi")
        got = await client.manifests.get(repo, "multi")
        assert got.raw == idx.raw and got.media_type == mt.OCI_INDEX
        assert [c.digest for c in got.parse().manifests] == [c.digest for c in idx.children]


async def test_referrers(any_registry: RegistryServer) -> None:
    repo = _repo()
    subject = image()
    sig = referrer(subject, mt.SIGSTORE_BUNDLE_V03, note="signed")
    sbom = referrer(subject, "application/spdx+json")
    async with RegistryClient(any_registry.host) as client:
        await push(client, repo, subject, "v1")
        await push(client, repo, sig)
        await push(client, repo, sbom)
        listed = await client.referrers.list(repo, subject.digest)
        by_digest = {d.digest: d for d in listed.descriptors}
        assert set(by_digest) == {sig.digest, sbom.digest}
        assert by_digest[sig.digest].artifact_type == mt.SIGSTORE_BUNDLE_V03
        assert by_digest[sig.digest].annotations == {"note": "signed"}
        assert by_digest[sig.digest].size == len(sig.raw)
        only = await client.referrers.list(
            repo, subject.digest, artifact_type="application/spdx+json"
        )
        assert [d.digest for d in only.descriptors] == [sbom.digest]
        if any_registry.kind == "distribution":
            assert not listed.api and listed.tag_schema
            tags = await client.manifests.tags(repo)
            assert referrers_tag(subject.digest) in tags
            tag_index = await client.manifests.get(repo, referrers_tag(subject.digest))
            assert tag_index.media_type == mt.OCI_INDEX
            assert {m.digest for m in tag_index.parse().manifests} == {sig.digest, sbom.digest}
        else:
            assert listed.api
        # Pushing again does not duplicate the entry.
        await push(client, repo, sig)
        again = await client.referrers.list(repo, subject.digest)
        assert len(again.descriptors) == 2
        # Referrers of referrers.
        countersig = referrer(sig, mt.SIGSTORE_BUNDLE_V03)
        await push(client, repo, countersig)
        nested = await client.referrers.list(repo, sig.digest)
        assert [d.digest for d in nested.descriptors] == [countersig.digest]
        # Deleting a referrer removes it from the list.
        await client.delete_manifest(repo, sbom.digest)
        after = await client.referrers.list(repo, subject.digest)
        assert {d.digest for d in after.descriptors} == {sig.digest}
        # No referrers at all is an empty list.
        lonely = image()
        await push(client, repo, lonely, "lonely")
        assert (await client.referrers.list(repo, lonely.digest)).descriptors == ()


async def test_invalid_names_fail_before_any_request(any_registry: RegistryServer) -> None:
    async with RegistryClient(any_registry.host) as client:
        with pytest.raises(InvalidName):
            await client.manifests.tags("Upper/Case")
        with pytest.raises(InvalidTag):
            await client.manifests.put("ok/name", "bad tag!", b"{}", mt.OCI_MANIFEST)
        with pytest.raises(InvalidName):
            await client.push_manifest("../escape", "v1", image().raw)
        with pytest.raises(InvalidName):
            await client.blobs.exists("a/../../etc", Digest.of(b"x"))
        with pytest.raises(InvalidName):
            await client.referrers.list("UPPER", Digest.of(b"x"))
        with pytest.raises(InvalidTag):
            await client.manifests.get("ok/name", "../../v2/_catalog")
        with pytest.raises(InvalidDigest):
            await client.manifests.head("ok/name", "sha256:short")
        art = image()
        with pytest.raises(InvalidManifest, match="do not hash"):
            await client.manifests.put("ok/name", Digest.of(b"other"), art.raw, art.media_type)
