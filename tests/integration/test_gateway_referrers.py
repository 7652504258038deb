"""Referrers emulation: docker-registry 2.8 has no referrers API, but through the gateway it looks
like an OCI 1.1 registry — ``OCI-Subject`` on pushes with a subject, ``GET /referrers`` with the
``artifactType`` filter, the tag-schema index kept up to date for clients that bypass the
gateway, referrers pushed around the gateway merged in, deletes reflected."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from safeguard.core import mediatypes as mt
from safeguard.oci.client import RegistryClient
from safeguard.oci.referrers import referrers_tag
from tests.fixtures.distribution import RegistryServer
from tests.unit.gateway.harness import GatewayServer, run_gateway
from tests.unit.oci.artifacts import image, push, referrer

SBOM = "application/spdx+json"
SIG = "application/vnd.example.signature"


@pytest.fixture(scope="module")
def gateway(
    distribution_registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    with run_gateway(tmp_path_factory.mktemp("gw-referrers"), distribution_registry) as server:
        yield server


@pytest.fixture
async def through(gateway: GatewayServer) -> AsyncIterator[RegistryClient]:
    async with RegistryClient(gateway.host, credentials=None) as client:
        yield client


@pytest.fixture
async def direct(distribution_registry: RegistryServer) -> AsyncIterator[RegistryClient]:
    async with RegistryClient(distribution_registry.host, credentials=None) as client:
        yield client


def _repo() -> str:
    return f"refs/{uuid.uuid4().hex[:10]}"


async def test_distribution_itself_has_no_referrers_api(
    direct: RegistryClient,
) -> None:
    repo = _repo()
    subject = image()
    await push(direct, repo, subject, "v1")
    assert await direct.referrers.from_api(repo, subject.digest) is None


async def test_push_with_subject_gets_oci_subject_and_is_listed(
    gateway: GatewayServer, through: RegistryClient, direct: RegistryClient
) -> None:
    repo = _repo()
    subject = image()
    await push(through, repo, subject, "v1")
    sbom = referrer(subject, SBOM, note="sbom")
    for digest, data in sbom.blobs.items():
        await through.blobs.upload(repo, digest, data)
    async with httpx.AsyncClient(base_url=gateway.url) as raw:
        put = await raw.put(
            f"/v2/{repo}/manifests/{sbom.digest}",
            content=sbom.raw,
            headers={"content-type": mt.OCI_MANIFEST},
        )
        assert put.status_code == 201, put.text
        assert put.headers["oci-subject"] == str(subject.digest)
        listed = await raw.get(f"/v2/{repo}/referrers/{subject.digest}")
        assert listed.status_code == 200
        assert listed.headers["content-type"] == mt.OCI_INDEX
        (entry,) = listed.json()["manifests"]
        assert entry["digest"] == str(sbom.digest)
        assert entry["artifactType"] == SBOM
        assert entry["size"] == len(sbom.raw)
        assert entry["annotations"] == {"note": "sbom"}
        assert "oci-filters-applied" not in listed.headers
        filtered = await raw.get(
            f"/v2/{repo}/referrers/{subject.digest}", params={"artifactType": SIG}
        )
        assert filtered.json()["manifests"] == []
        assert filtered.headers["oci-filters-applied"] == "artifactType"
    # the client saw OCI-Subject, so it left the tag index to the gateway, which wrote it
    signature = referrer(subject, SIG)
    result = await push_referrer(through, repo, signature)
    assert result is False
    tagged = await direct.referrers.from_tag(repo, subject.digest)
    assert tagged is not None
    assert {d.digest for d in tagged} == {sbom.digest, signature.digest}
    listed_api = await through.referrers.from_api(repo, subject.digest, SIG)
    assert listed_api is not None and [d.digest for d in listed_api] == [signature.digest]


async def push_referrer(client: RegistryClient, repo: str, artifact: object) -> bool:
    from tests.unit.oci.artifacts import Artifact

    assert isinstance(artifact, Artifact)
    for digest, data in artifact.blobs.items():
        if not await client.blobs.exists(repo, digest):
            await client.blobs.upload(repo, digest, data)
    pushed = await client.push_manifest(repo, artifact.digest, artifact.raw, artifact.media_type)
    return pushed.tag_schema_updated


async def test_referrers_pushed_around_the_gateway_are_merged(
    through: RegistryClient, direct: RegistryClient
) -> None:
    repo = _repo()
    subject = image()
    await push(direct, repo, subject, "v1")
    bypass = referrer(subject, SBOM)
    assert await push_referrer(direct, repo, bypass) is True  # the client wrote the tag index
    listed = await through.referrers.from_api(repo, subject.digest)
    assert listed is not None and [d.digest for d in listed] == [bypass.digest]


async def test_deleting_a_referrer_removes_it_everywhere(
    through: RegistryClient, direct: RegistryClient
) -> None:
    repo = _repo()
    subject = image()
    await push(through, repo, subject, "v1")
    first, second = referrer(subject, SIG), referrer(subject, SBOM)
    await push_referrer(through, repo, first)
    await push_referrer(through, repo, second)
    await through.manifests.delete(repo, first.digest)
    listed = await through.referrers.from_api(repo, subject.digest)
    assert listed is not None and [d.digest for d in listed] == [second.digest]
    tagged = await direct.referrers.from_tag(repo, subject.digest)
    assert tagged is not None and [d.digest for d in tagged] == [second.digest]


async def test_unknown_subject_and_hostile_requests(
    gateway: GatewayServer, direct: RegistryClient
) -> None:
    repo = _repo()
    subject = image()
    await push(direct, repo, subject, "v1")
    async with httpx.AsyncClient(base_url=gateway.url) as raw:
        empty = await raw.get(f"/v2/{repo}/referrers/sha256:{'0' * 64}")
        assert empty.status_code == 200 and empty.json()["manifests"] == []
        bad = await raw.get(f"/v2/{repo}/referrers/sha256:short")
        assert bad.status_code == 400
        assert bad.json()["errors"][0]["code"] == "DIGEST_INVALID"
        # something that is not an index under the subject's tag-schema tag, pushed around
        # the gateway: the gateway still answers from its own index, and does not fail
        junk = image()
        await push(direct, repo, junk, referrers_tag(subject.digest))
        still = await raw.get(f"/v2/{repo}/referrers/{subject.digest}")
        assert still.status_code == 200 and still.json()["manifests"] == []


async def test_builtin_registry_answers_for_itself(tmp_path: Path) -> None:
    with run_gateway(tmp_path, None) as server:
        async with RegistryClient(server.host, credentials=None) as client:
            repo = _repo()
            subject = image()
            await push(client, repo, subject, "v1")
            assert await push_referrer(client, repo, referrer(subject, SBOM)) is False
            listed = await client.referrers.from_api(repo, subject.digest)
            assert listed is not None and len(listed) == 1
            # nothing was recorded in the gateway's own index: the registry has the API
            assert await client.referrers.from_tag(repo, subject.digest) is None
