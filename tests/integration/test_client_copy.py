"""Copying artifacts with their children and referrers: registry to registry (ours and
distribution, both ways), through OCI layouts, and with skopeo reading and writing layouts."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from safeguard.core import mediatypes as mt
from safeguard.core.digest import Digest
from safeguard.core.errors import InvalidInput
from safeguard.core.manifest import Descriptor
from safeguard.oci import stores
from safeguard.oci.client import RegistryClient
from safeguard.oci.copy import CopyReport, copy_artifact
from safeguard.oci.errors import DigestMismatch
from safeguard.oci.layout import OCILayout
from safeguard.oci.location import parse_location
from safeguard.oci.referrers import referrers_tag
from safeguard.oci.stores import open_store
from tests.fixtures.distribution import RegistryServer
from tests.unit.oci.artifacts import Artifact, image, index, layer_tgz, push, referrer

SBOM = "application/spdx+json"


def _repo() -> str:
    return f"copy/{uuid.uuid4().hex[:10]}"


async def copy(src: str, dst: str, **kwargs: object) -> CopyReport:
    async with (
        open_store(parse_location(src)) as source,
        open_store(parse_location(dst), write=True) as destination,
    ):
        return await copy_artifact(source, destination, **kwargs)  # type: ignore[arg-type]


class Attached:
    """An image with a signature, an SBOM, a counter-signature on the signature, and a cosign
    ``.sig`` tag: everything ``copy`` must bring along."""

    def __init__(self) -> None:
        self.image = image()
        self.sig = referrer(self.image, mt.SIGSTORE_BUNDLE_V03)
        self.sbom = referrer(self.image, SBOM)
        self.countersig = referrer(self.sig, mt.SIGSTORE_BUNDLE_V03)
        self.cosign = image([b'{"critical":{}}'], config=b"{}", config_type=mt.OCI_CONFIG)
        self.cosign_tag = referrers_tag(self.image.digest) + ".sig"

    async def push(self, client: RegistryClient, repo: str, tag: str = "v1") -> None:
        await push(client, repo, self.image, tag)
        for art in (self.sig, self.sbom, self.countersig):
            await push(client, repo, art)
        await push(client, repo, self.cosign, self.cosign_tag)

    async def check(self, client: RegistryClient, repo: str, tag: str = "v1") -> None:
        got = await client.manifests.get(repo, tag)
        assert got.raw == self.image.raw and got.digest == self.image.digest
        listed = await client.referrers.list(repo, self.image.digest)
        assert listed.digests() == {self.sig.digest, self.sbom.digest}
        for art in (self.sig, self.sbom):
            assert (await client.manifests.get(repo, art.digest)).raw == art.raw
        nested = await client.referrers.list(repo, self.sig.digest)
        assert nested.digests() == {self.countersig.digest}
        assert (await client.manifests.get(repo, self.cosign_tag)).raw == self.cosign.raw
        for digest, data in {**self.image.blobs, **self.sig.blobs, **self.countersig.blobs}.items():
            assert await client.blobs.get(repo, digest) == data


async def test_copy_within_one_registry_mounts_and_brings_referrers(
    any_registry: RegistryServer,
) -> None:
    src, dst = _repo(), _repo()
    attached = Attached()
    async with RegistryClient(any_registry.host) as client:
        await attached.push(client, src)
        report = await copy(f"{any_registry.host}/{src}:v1", f"{any_registry.host}/{dst}:v2")
        await attached.check(client, dst, "v2")
    assert report.digest == attached.image.digest
    assert report.blobs_mounted > 0 and report.blobs_copied == 0
    assert set(report.referrers) == {
        attached.sig.digest,
        attached.sbom.digest,
        attached.countersig.digest,
        attached.cosign.digest,
    }
    # A second copy finds everything in place.
    again = await copy(f"{any_registry.host}/{src}:v1", f"{any_registry.host}/{dst}:v2")
    assert again.manifests_copied == 0 and again.blobs_copied == 0 and again.blobs_mounted == 0
    assert again.manifests_skipped == report.manifests_copied


@pytest.mark.parametrize("direction", ["distribution-to-builtin", "builtin-to-distribution"])
async def test_copy_between_the_two_registries(
    direction: str, distribution_registry: RegistryServer, builtin_registry: RegistryServer
) -> None:
    source, target = (
        (distribution_registry, builtin_registry)
        if direction == "distribution-to-builtin"
        else (builtin_registry, distribution_registry)
    )
    repo = _repo()
    attached = Attached()
    async with RegistryClient(source.host) as client:
        await attached.push(client, repo)
    report = await copy(f"{source.host}/{repo}:v1", f"{target.host}/{repo}:v1")
    assert report.blobs_copied == len(
        {
            **attached.image.blobs,
            **attached.sig.blobs,
            **attached.sbom.blobs,
            **attached.countersig.blobs,
            **attached.cosign.blobs,
        }
    )
    async with RegistryClient(target.host) as client:
        await attached.check(client, repo)
        if target.kind == "distribution":
            assert referrers_tag(attached.image.digest) in await client.manifests.tags(repo)


async def test_registry_to_layout_and_back(any_registry: RegistryServer, tmp_path: Path) -> None:
    src, back = _repo(), _repo()
    attached = Attached()
    layout_dir = tmp_path / "layout"
    async with RegistryClient(any_registry.host) as client:
        await attached.push(client, src)
        to_disk = await copy(f"{any_registry.host}/{src}:v1", f"oci:{layout_dir}:v1")
        assert to_disk.digest == attached.image.digest
        layout = OCILayout.open(layout_dir)
        assert layout.resolve("v1").digest == attached.image.digest
        assert layout.find_tag(attached.cosign_tag) is not None
        refs = {d.digest for d, _ in layout.referrers(attached.image.digest)}
        assert refs == {attached.sig.digest, attached.sbom.digest}
        from_disk = await copy(f"oci:{layout_dir}:v1", f"{any_registry.host}/{back}:v1")
        assert from_disk.digest == attached.image.digest
        await attached.check(client, back)


async def test_copy_an_index_with_children(any_registry: RegistryServer, tmp_path: Path) -> None:
    repo, dst = _repo(), _repo()
    children = [image(), image()]
    idx = index(children)
    child_sig = referrer(children[0], mt.SIGSTORE_BUNDLE_V03)  # a per-platform signature
    async with RegistryClient(any_registry.host) as client:
        await push(client, repo, idx, "multi")
        await push(client, repo, child_sig)
        await copy(f"{any_registry.host}/{repo}:multi", f"oci:{tmp_path / 'l'}")
        report = await copy(f"oci:{tmp_path / 'l'}", f"{any_registry.host}/{dst}:multi")
        assert report.digest == idx.digest
        assert (await client.manifests.get(dst, "multi")).raw == idx.raw
        for child in children:
            assert (await client.manifests.get(dst, child.digest)).raw == child.raw
        listed = await client.referrers.list(dst, children[0].digest)
        assert listed.digests() == {child_sig.digest}


async def test_no_referrers_and_progress(any_registry: RegistryServer, tmp_path: Path) -> None:
    repo = _repo()
    attached = Attached()

    class Recorder:
        def __init__(self) -> None:
            self.total = self.items = self.done = self.moved = 0
            self.actions: list[str] = []

        def planned(self, total_bytes: int, total_items: int) -> None:
            self.total, self.items = total_bytes, total_items

        def advanced(self, nbytes: int) -> None:
            self.moved += nbytes

        def item_done(self, kind: str, descriptor: Descriptor, action: str) -> None:
            self.done += 1
            self.actions.append(action)

    recorder = Recorder()
    async with RegistryClient(any_registry.host) as client:
        await attached.push(client, repo)
    report = await copy(
        f"{any_registry.host}/{repo}:v1",
        f"oci:{tmp_path / 'plain'}:v1",
        referrers=False,
        progress=recorder,
    )
    assert report.referrers == []
    assert report.manifests_copied == 1 and report.blobs_copied == len(attached.image.blobs)
    assert recorder.items == recorder.done == 1 + len(attached.image.blobs)
    assert (
        recorder.total
        == recorder.moved
        == len(attached.image.raw) + sum(len(b) for b in attached.image.blobs.values())
    )
    assert [e.digest for e in OCILayout.open(tmp_path / "plain").entries()] == [
        attached.image.digest
    ]


async def test_large_blobs_go_through_a_scratch_file(
    any_registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stores, "IN_MEMORY_LIMIT", 100)
    src, dst = _repo(), _repo()
    art = image([layer_tgz(data=b"y" * 5000)])
    async with RegistryClient(any_registry.host) as client:
        await push(client, src, art, "v1")
        await copy(f"{any_registry.host}/{src}:v1", f"oci:{tmp_path / 'l'}:v1")
        await copy(f"oci:{tmp_path / 'l'}:v1", f"{any_registry.host}/{dst}:v1")
        for digest, data in art.blobs.items():
            assert await client.blobs.get(dst, digest) == data


async def test_tampered_layout_is_refused(any_registry: RegistryServer, tmp_path: Path) -> None:
    dst = _repo()
    art = image()  # exists only in the layout, so the copy has to read every blob
    layout = OCILayout.create(tmp_path / "l")
    for digest, data in art.blobs.items():
        layout.write_blob(digest, data)
    layout.put_manifest(art.raw, art.descriptor(), "v1")
    layer = Digest.parse(json.loads(art.raw)["layers"][0]["digest"])
    path = layout.blob_path(layer)
    tampered = bytearray(path.read_bytes())
    tampered[20] ^= 0xFF
    path.write_bytes(bytes(tampered))
    with pytest.raises(DigestMismatch, match=str(layer)):
        await copy(f"oci:{tmp_path / 'l'}:v1", f"{any_registry.host}/{dst}:v1")
    async with RegistryClient(any_registry.host) as client:
        assert await client.manifests.head(dst, "v1") is None


async def test_destination_digest_must_match(any_registry: RegistryServer) -> None:
    repo = _repo()
    art = image()
    async with RegistryClient(any_registry.host) as client:
        await push(client, repo, art, "v1")
    wrong = Digest.of(b"other")
    with pytest.raises(InvalidInput, match="names digest"):
        await copy(f"{any_registry.host}/{repo}:v1", f"{any_registry.host}/{repo}@{wrong}")


skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")


def _skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["skopeo", *args], capture_output=True, text=True, timeout=120, check=False
    )


@skopeo
async def test_skopeo_reads_the_layout_we_write(
    distribution_registry: RegistryServer, tmp_path: Path
) -> None:
    repo = _repo()
    attached = Attached()
    async with RegistryClient(distribution_registry.host) as client:
        await attached.push(client, repo)
    await copy(f"{distribution_registry.host}/{repo}:v1", f"oci:{tmp_path / 'l'}:v1")
    done = _skopeo("inspect", f"oci:{tmp_path / 'l'}:v1")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["Digest"] == str(attached.image.digest)
    # And skopeo can copy it back out to a registry, unchanged.
    done = _skopeo(
        "copy",
        "--dest-tls-verify=false",
        f"oci:{tmp_path / 'l'}:v1",
        f"docker://{distribution_registry.host}/{repo}-skopeo:v1",
    )
    assert done.returncode == 0, done.stderr
    async with RegistryClient(distribution_registry.host) as client:
        assert (await client.manifests.get(f"{repo}-skopeo", "v1")).digest == attached.image.digest


@skopeo
async def test_we_read_the_layout_skopeo_writes(
    distribution_registry: RegistryServer, builtin_registry: RegistryServer, tmp_path: Path
) -> None:
    repo = _repo()
    art: Artifact = image()
    async with RegistryClient(distribution_registry.host) as client:
        await push(client, repo, art, "v1")
    done = _skopeo(
        "copy",
        "--src-tls-verify=false",
        f"docker://{distribution_registry.host}/{repo}:v1",
        f"oci:{tmp_path / 'sk'}:tagged",
    )
    assert done.returncode == 0, done.stderr
    written = OCILayout.open(tmp_path / "sk").resolve("tagged")
    assert written.digest == art.digest  # skopeo kept the digest (real gzip layers)
    report = await copy(f"oci:{tmp_path / 'sk'}:tagged", f"{builtin_registry.host}/{repo}:v1")
    assert report.digest == art.digest
    async with RegistryClient(builtin_registry.host) as client:
        assert (await client.manifests.get(repo, "v1")).raw == art.raw


async def test_copy_lists_a_referrer_the_destination_already_had(
    distribution_registry: RegistryServer, builtin_registry: RegistryServer
) -> None:
    """The referrer manifest is there but was pushed without tag-schema upkeep: copy repairs it."""
    repo = _repo()
    art = image()
    sig = referrer(art, mt.SIGSTORE_BUNDLE_V03)
    async with RegistryClient(builtin_registry.host) as source:
        await push(source, repo, art, "v1")
        await push(source, repo, sig)
    async with RegistryClient(distribution_registry.host) as target:
        for digest, data in sig.blobs.items():
            await target.blobs.upload(repo, digest, data)
        await target.manifests.put(repo, sig.digest, sig.raw, sig.media_type)  # no upkeep
        assert (await target.referrers.list(repo, art.digest)).descriptors == ()
        report = await copy(
            f"{builtin_registry.host}/{repo}:v1", f"{distribution_registry.host}/{repo}:v1"
        )
        assert report.manifests_skipped == 1  # the referrer itself was not pushed again
        assert (await target.referrers.list(repo, art.digest)).digests() == {sig.digest}
