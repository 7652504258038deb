"""The gateway as a plain proxy, in front of the built-in registry and of docker-registry 2.8:
real clients (skopeo, Safeguard's client) push and pull through it byte for byte, upload and
range headers survive, its own auth (Basic, bearer tokens from /token, roles) guards the API,
and a registry that is down is a 503 with an OCI error body."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from safeguard.core.errors import RegistryError
from safeguard.oci.client import RegistryClient
from safeguard.oci.transport.credentials import Credentials
from tests.fixtures import distribution
from tests.fixtures.distribution import RegistryServer
from tests.integration.test_skopeo_roundtrip import build_layout, skopeo
from tests.unit.gateway.harness import (
    USERS,
    GatewayServer,
    basic,
    creds,
    run_gateway,
    run_owned_registry,
    skopeo_available,
    write_users,
)
from tests.unit.oci.artifacts import image, push


@pytest.fixture(scope="module", params=["builtin", "distribution"])
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    upstream: RegistryServer | None = None
    if request.param == "distribution":
        upstream = request.getfixturevalue("distribution_registry")
    workdir = tmp_path_factory.mktemp(f"gw-proxy-{request.param}")
    users = write_users(workdir / "users.yaml")
    with run_gateway(workdir, upstream, auth_file=users) as server:
        yield server


def _repo(prefix: str = "proxy") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:10]}"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.skipif(not skopeo_available(), reason="skopeo is not installed")
def test_skopeo_round_trip_through_the_gateway(gateway: GatewayServer, tmp_path: Path) -> None:
    source = tmp_path / "layout"
    built = build_layout(source, "v1")
    target = f"docker://{gateway.host}/{_repo()}:v1"
    skopeo(
        "copy", "--dest-tls-verify=false", "--dest-creds", creds("ci"), f"oci:{source}:v1", target
    )
    raw = skopeo(
        "inspect", "--raw", "--tls-verify=false", "--creds", creds("viewer"), target
    ).stdout
    assert raw == built["manifest"]
    out = tmp_path / "out"
    skopeo(
        "copy", "--src-tls-verify=false", "--src-creds", creds("viewer"), target, f"oci:{out}:v1"
    )
    for name in built["blobs"]:
        hex_ = name.split(":")[1]
        assert (out / "blobs/sha256" / hex_).read_bytes() == (
            source / "blobs/sha256" / hex_
        ).read_bytes()


def test_chunked_upload_and_range_headers_pass_through(gateway: GatewayServer) -> None:
    repo = _repo()
    data = os.urandom(3 * 1024 * 1024 + 17)
    with httpx.Client(base_url=gateway.url, headers={"authorization": basic("ci")}) as client:
        started = client.post(f"/v2/{repo}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = started.headers["location"]
        assert location.startswith(f"/v2/{repo}/blobs/uploads/")  # made relative to us
        assert started.headers["docker-upload-uuid"]
        assert started.headers["range"] == "0-0"
        half = len(data) // 2

        def body(chunk: bytes) -> Iterator[bytes]:
            for i in range(0, len(chunk), 65536):
                yield chunk[i : i + 65536]

        patched = client.patch(
            location,
            content=body(data[:half]),
            headers={"content-type": "application/octet-stream"},
        )
        assert patched.status_code == 202, patched.text
        assert patched.headers["range"] == f"0-{half - 1}"
        location = patched.headers["location"]
        assert location.startswith("/v2/")
        sep = "&" if "?" in location else "?"
        done = client.put(f"{location}{sep}digest={_sha(data)}", content=data[half:])
        assert done.status_code == 201, done.text
        assert done.headers["docker-content-digest"] == _sha(data)
        blob = f"/v2/{repo}/blobs/{_sha(data)}"
        assert client.get(blob).content == data
        head = client.head(blob)
        assert head.status_code == 200 and int(head.headers["content-length"]) == len(data)
        ranged = client.get(blob, headers={"range": "bytes=10-19"})
        assert ranged.status_code == 206
        assert ranged.content == data[10:20]
        assert ranged.headers["content-range"] == f"bytes 10-19/{len(data)}"


async def test_safeguard_client_gets_a_token_and_pushes(gateway: GatewayServer) -> None:
    repo = _repo()
    ci = Credentials("ci", USERS["ci"][0])
    async with RegistryClient(gateway.host, credentials=ci) as client:
        await push(client, repo, image(), "v1")
        assert await client.manifests.tags(repo) == ["v1"]
    viewer = Credentials("viewer", USERS["viewer"][0])
    async with RegistryClient(gateway.host, credentials=viewer) as client:
        assert await client.manifests.tags(repo) == ["v1"]
        with pytest.raises(RegistryError) as info:
            await push(client, repo, image(), "v2")
        assert info.value.status in (401, 403)


def test_anonymous_and_wrong_credentials_are_challenged(gateway: GatewayServer) -> None:
    with httpx.Client(base_url=gateway.url) as client:
        response = client.get("/v2/team/app/manifests/v1")
        assert response.status_code == 401
        assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
        value = response.headers["www-authenticate"]
        assert value.startswith(f'Bearer realm="http://{gateway.host}/token"')
        assert 'scope="repository:team/app:pull"' in value
        assert client.get("/v2/").status_code == 401
        wrong = client.get("/v2/", headers={"authorization": "Basic " + "eDp5"})
        assert wrong.status_code == 401
        assert client.get("/token", auth=("ci", "nope")).status_code == 401
        assert client.get("/v2/", headers={"authorization": "Bearer not.a.jwt"}).status_code == 401


def test_token_grants_only_what_roles_allow(gateway: GatewayServer) -> None:
    repo = _repo()
    with httpx.Client(base_url=gateway.url) as client:
        issued = client.get(
            "/token",
            params={"service": "safeguard-gateway", "scope": f"repository:{repo}:pull,push"},
            auth=("viewer", USERS["viewer"][0]),
        )
        assert issued.status_code == 200, issued.text
        token = issued.json()["token"]
        bearer = {"authorization": f"Bearer {token}"}
        assert client.get(f"/v2/{repo}/tags/list", headers=bearer).status_code == 404
        denied = client.post(f"/v2/{repo}/blobs/uploads/", headers=bearer)
        assert denied.status_code == 403
        assert denied.json()["errors"][0]["code"] == "DENIED"
        # a token for one repository does not open another
        other = client.get(f"/v2/{_repo()}/tags/list", headers=bearer)
        assert other.status_code == 403


def test_anonymous_pull_when_allowed(tmp_path: Path, distribution_registry: RegistryServer) -> None:
    users = write_users(tmp_path / "users.yaml", anonymous_pull=True)
    with run_gateway(tmp_path, distribution_registry, auth_file=users) as server:
        repo = _repo()
        with httpx.Client(base_url=server.url) as client:
            assert client.get("/v2/").status_code == 200
            assert client.get(f"/v2/{repo}/tags/list").status_code == 404  # reached upstream
            refused = client.post(f"/v2/{repo}/blobs/uploads/")
            assert refused.status_code == 401
            assert "push" in refused.headers["www-authenticate"]


@pytest.mark.skipif(not distribution.available(), reason="docker-registry is not installed")
def test_upstream_down_is_503_with_an_oci_error(tmp_path: Path) -> None:
    with (
        run_owned_registry(tmp_path / "upstream") as upstream,
        run_gateway(tmp_path, upstream.server) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        repo = _repo()
        started = client.post(f"/v2/{repo}/blobs/uploads/")
        assert started.status_code == 202
        location = started.headers["location"]
        upstream.stop()  # the registry goes away in the middle of the push
        patched = client.patch(location, content=b"x" * 100_000)
        assert patched.status_code == 503
        error = patched.json()["errors"][0]
        assert error["code"] == "UNAVAILABLE"
        assert "unreachable" in error["message"]
        assert client.get(f"/v2/{repo}/manifests/v1").status_code == 503
        head = client.head(f"/v2/{repo}/manifests/v1")
        assert head.status_code == 503 and head.content == b""
