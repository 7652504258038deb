"""``safeguard serve --upstream URL --blob-redirect`` in front of docker-registry 2.8: an allowed
blob GET is answered ``307`` to the upstream (distribution-spec v1.1, "Pulling blobs"), and
Safeguard's client and skopeo follow it to identical digests; HEAD, refused requests and
quarantined names are unchanged (relayed, or refused), and without the flag nothing changes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from safeguard.cli.app import app
from safeguard.oci.client import RegistryClient
from safeguard.oci.transport.credentials import Credentials
from tests.fixtures.distribution import RegistryServer
from tests.integration.test_skopeo_roundtrip import build_layout, skopeo
from tests.unit.gateway.harness import (
    USERS,
    GatewayServer,
    auth_file_for,
    basic,
    creds,
    run_gateway,
    skopeo_available,
    write_users,
)
from tests.unit.oci.artifacts import Artifact, image, push

runner = CliRunner()


@pytest.fixture(scope="module")
def gateways(
    distribution_registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayServer, GatewayServer]]:
    """(with --blob-redirect, without) in front of the same docker-registry."""
    workdir = tmp_path_factory.mktemp("gw-redirect")
    users = write_users(workdir / "users.yaml")
    with (
        run_gateway(
            workdir / "on", distribution_registry, auth_file=users, extra_args=["--blob-redirect"]
        ) as on,
        run_gateway(workdir / "off", distribution_registry, auth_file=users) as off,
    ):
        yield on, off


def _pushed(gateway: GatewayServer, repo: str) -> Artifact:
    art = image()

    async def go() -> None:
        async with RegistryClient(gateway.host, credentials=Credentials("ci", USERS["ci"][0])) as c:
            await push(c, repo, art, "v1")

    asyncio.run(go())
    return art


def _blob_get(gateway: GatewayServer, repo: str, digest: str, user: str | None = "viewer") -> Any:
    headers = {"authorization": basic(user)} if user else {}
    with httpx.Client(base_url=gateway.url, headers=headers, follow_redirects=False) as client:
        return client.get(f"/v2/{repo}/blobs/{digest}"), client.head(f"/v2/{repo}/blobs/{digest}")


def test_blob_get_redirects_to_the_upstream_only_with_the_flag(
    gateways: tuple[GatewayServer, GatewayServer], distribution_registry: RegistryServer
) -> None:
    on, off = gateways
    repo = f"redirect/{uuid.uuid4().hex[:10]}"
    art = _pushed(on, repo)
    (digest, data), *_ = art.blobs.items()
    got, head = _blob_get(on, repo, str(digest))
    assert got.status_code == 307, got.text
    assert got.headers["location"] == f"{distribution_registry.url}/v2/{repo}/blobs/{digest}"
    assert got.headers["docker-content-digest"] == str(digest)
    assert got.content == b""
    assert head.status_code == 200 and head.headers["docker-content-digest"] == str(digest)
    assert httpx.get(got.headers["location"]).content == data
    # manifests are still relayed (and logged); refused requests are refused, not redirected
    with httpx.Client(base_url=on.url, headers={"authorization": basic("viewer")}) as client:
        manifest = client.get(f"/v2/{repo}/manifests/v1", headers={"accept": art.media_type})
        assert manifest.status_code == 200 and manifest.content == art.raw
    anonymous, _ = _blob_get(on, repo, str(digest), user=None)
    assert anonymous.status_code == 401
    missing, _ = _blob_get(on, "redirect/UPPER", str(digest))
    assert missing.status_code == 400
    # without the flag: relayed, byte for byte
    got, head = _blob_get(off, repo, str(digest))
    assert got.status_code == 200 and got.content == data
    assert head.status_code == 200


def test_safeguard_copy_through_the_redirecting_gateway(
    gateways: tuple[GatewayServer, GatewayServer], tmp_path: Path
) -> None:
    on, _ = gateways
    repo = f"redirect/{uuid.uuid4().hex[:10]}"
    art = _pushed(on, repo)
    auth = auth_file_for(tmp_path, on.host)
    env = {"REGISTRY_AUTH_FILE": str(auth), "DOCKER_CONFIG": str(tmp_path / "none")}
    copied = runner.invoke(
        app, ["copy", f"{on.host}/{repo}:v1", f"oci:{tmp_path}/l:v1", "-o", "json"], env=env
    )
    assert copied.exit_code == 0, copied.output
    assert json.loads(copied.stdout)["digest"] == str(art.digest)
    for digest, data in art.blobs.items():
        assert (tmp_path / "l/blobs/sha256" / digest.hex).read_bytes() == data
    back = f"redirect/{uuid.uuid4().hex[:10]}"
    pushed = runner.invoke(
        app, ["copy", f"{on.host}/{repo}:v1", f"{on.host}/{back}:v1", "-o", "json"], env=env
    )
    assert pushed.exit_code == 0, pushed.output
    assert json.loads(pushed.stdout)["digest"] == str(art.digest)


@pytest.mark.skipif(not skopeo_available(), reason="skopeo is not installed")
def test_skopeo_copy_through_the_redirecting_gateway(
    gateways: tuple[GatewayServer, GatewayServer], tmp_path: Path
) -> None:
    on, _ = gateways
    source = tmp_path / "layout"
    built = build_layout(source, "v1")
    target = f"docker://{on.host}/redirect/{uuid.uuid4().hex[:10]}:v1"
    skopeo(
        "copy", "--dest-tls-verify=false", "--dest-creds", creds("ci"), f"oci:{source}:v1", target
    )
    out = tmp_path / "out"
    skopeo(
        "copy", "--src-tls-verify=false", "--src-creds", creds("viewer"), target, f"oci:{out}:v1"
    )
    index = json.loads((out / "index.json").read_text())
    manifest_hex = index["manifests"][0]["digest"].split(":")[1]
    assert hashlib.sha256(built["manifest"]).hexdigest() == manifest_hex
    for name in built["blobs"]:
        hex_ = name.split(":")[1]
        assert (out / "blobs/sha256" / hex_).read_bytes() == (
            source / "blobs/sha256" / hex_
        ).read_bytes()


def test_a_quarantined_names_blob_is_still_relayed(
    gateways: tuple[GatewayServer, GatewayServer],
) -> None:
    on, _ = gateways
    repo = f"redirect/{uuid.uuid4().hex[:10]}"
    art = _pushed(on, repo)
    until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    moved = runner.invoke(
        app,
        [
            "quarantine", "move", f"{on.host}/{repo}:v1", "--until", until, "--reason", "CVE-1",
            "--username", "root", "-o", "json",
        ],
        env={"SAFEGUARD_GATEWAY_PASSWORD": USERS["root"][0]},
    )  # fmt: skip
    assert moved.exit_code == 0, moved.output
    for digest, data in art.blobs.items():
        got, head = _blob_get(on, repo, str(digest))
        assert got.status_code == 200, got.text
        assert got.content == data
        assert head.status_code == 200
