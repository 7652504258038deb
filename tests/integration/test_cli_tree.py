"""``safeguard tree``: referrers grouped like ``cosign tree``, as text and JSON, and its errors."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

from typer.testing import CliRunner

from safeguard.cli.app import app
from safeguard.core import mediatypes as mt
from safeguard.oci.client import RegistryClient
from safeguard.oci.referrers import referrers_tag
from tests.fixtures.distribution import RegistryServer
from tests.fixtures.ports import free_port
from tests.unit.oci.artifacts import image, push, referrer

runner = CliRunner()


def _repo() -> str:
    return f"tree/{uuid.uuid4().hex[:10]}"


class Scene:
    def __init__(self) -> None:
        self.image = image()
        self.sig = referrer(
            self.image,
            mt.SIGSTORE_BUNDLE_V03,
            **{"dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1"},
        )
        self.att = referrer(self.image, mt.DSSE_ENVELOPE)
        self.bundle_att = referrer(
            self.image,
            mt.SIGSTORE_BUNDLE_V03,
            **{"dev.sigstore.bundle.predicateType": "https://slsa.dev/provenance/v1"},
        )
        self.sbom = referrer(self.image, "application/spdx+json")
        self.countersig = referrer(self.sig, mt.SIGSTORE_BUNDLE_V03)
        self.cosign_sig = image([b"sig-payload"], config=b"{}")
        self.cosign_att = image([b"att-payload"], config=b"{}")

    async def push(self, host: str, repo: str) -> None:
        async with RegistryClient(host) as client:
            await push(client, repo, self.image, "v1")
            for art in (self.sig, self.att, self.bundle_att, self.sbom, self.countersig):
                await push(client, repo, art)
            base = referrers_tag(self.image.digest)
            await push(client, repo, self.cosign_sig, base + ".sig")
            await push(client, repo, self.cosign_att, base + ".att")


def test_tree_json_groups_and_nests(any_registry: RegistryServer) -> None:
    repo = _repo()
    scene = Scene()
    asyncio.run(scene.push(any_registry.host, repo))
    result = runner.invoke(app, ["tree", f"{any_registry.host}/{repo}:v1", "--output", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["digest"] == str(scene.image.digest)
    digests = {g: {e["digest"] for e in data[g]} for g in ("signatures", "attestations", "other")}
    assert digests == {
        "signatures": {str(scene.sig.digest), str(scene.cosign_sig.digest)},
        "attestations": {
            str(scene.att.digest),
            str(scene.bundle_att.digest),
            str(scene.cosign_att.digest),
        },
        "other": {str(scene.sbom.digest)},
    }
    sig_entry = next(e for e in data["signatures"] if e["digest"] == str(scene.sig.digest))
    assert sig_entry["artifactType"] == mt.SIGSTORE_BUNDLE_V03
    expected_source = "tag-schema" if any_registry.kind == "distribution" else "referrers-api"
    assert sig_entry["source"] == expected_source
    nested = sig_entry["referrers"]["signatures"]
    assert [e["digest"] for e in nested] == [str(scene.countersig.digest)]
    cosign = next(e for e in data["signatures"] if e["source"] == "cosign-tag")
    assert cosign["tag"] == referrers_tag(scene.image.digest) + ".sig"


def test_tree_text(any_registry: RegistryServer) -> None:
    repo = _repo()
    scene = Scene()
    asyncio.run(scene.push(any_registry.host, repo))
    result = runner.invoke(app, ["tree", f"{any_registry.host}/{repo}:v1"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Signatures (2)" in out and "Attestations (3)" in out and "Other" in out
    for art in (scene.sig, scene.countersig, scene.sbom):
        assert str(art.digest) in out
    assert out.index(str(scene.sig.digest)) < out.index(str(scene.countersig.digest))


def test_tree_without_referrers(any_registry: RegistryServer) -> None:
    repo = _repo()
    art = image()

    async def setup() -> None:
        async with RegistryClient(any_registry.host) as client:
            await push(client, repo, art, "v1")

    asyncio.run(setup())
    result = runner.invoke(
        app, ["tree", f"{any_registry.host}/{repo}@{art.digest}"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0
    assert "No signatures, attestations or other referrers" in result.stdout


def test_tree_of_a_layout(distribution_registry: RegistryServer, tmp_path: Path) -> None:
    repo = _repo()
    scene = Scene()
    asyncio.run(scene.push(distribution_registry.host, repo))
    copied = runner.invoke(
        app, ["copy", f"{distribution_registry.host}/{repo}:v1", f"oci:{tmp_path}/l:v1"]
    )
    assert copied.exit_code == 0, copied.output
    result = runner.invoke(app, ["tree", f"oci:{tmp_path}/l:v1", "-o", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {e["digest"] for e in data["other"]} == {str(scene.sbom.digest)}
    assert len(data["signatures"]) == 2 and len(data["attestations"]) == 3


def test_tree_errors(distribution_registry: RegistryServer) -> None:
    bad = runner.invoke(app, ["tree", "127.0.0.1:5000/../etc:v1", "-o", "json"])
    assert bad.exit_code == 2
    assert json.loads(bad.stderr)["error"]["code"] == "NAME_INVALID"
    upper = runner.invoke(app, ["tree", "127.0.0.1:5000/Upper/Case:v1"])
    assert upper.exit_code == 2 and "NAME_INVALID" in upper.stderr
    gone = runner.invoke(app, ["tree", f"127.0.0.1:{free_port()}/a/b:v1"])
    assert gone.exit_code == 3 and "UNREACHABLE" in gone.stderr
    missing = runner.invoke(app, ["tree", f"{distribution_registry.host}/tree/none:v1"])
    assert missing.exit_code == 2 and "NOT_FOUND" in missing.stderr
    insecure = runner.invoke(app, ["tree", "http://registry.example.com/a/b:v1"])
    assert insecure.exit_code == 2 and "INSECURE_REGISTRY" in insecure.stderr
    assert "--allow-insecure-registry" in insecure.stderr


def test_tree_refuses_a_malformed_referrers_tag(distribution_registry: RegistryServer) -> None:
    """Someone pushed an image manifest under the subject's referrers tag: a clear error."""
    repo = _repo()
    art, squatter = image(), image()

    async def setup() -> None:
        async with RegistryClient(distribution_registry.host) as client:
            await push(client, repo, art, "v1")
            await push(client, repo, squatter, referrers_tag(art.digest))

    asyncio.run(setup())
    result = runner.invoke(app, ["tree", f"{distribution_registry.host}/{repo}:v1", "-o", "json"])
    assert result.exit_code == 2
    error = json.loads(result.stderr)["error"]
    assert error["code"] == "MANIFEST_INVALID"
    assert "not an OCI image index" in error["message"]
