"""Tag immutability through the gateway, in front of the built-in registry and of
docker-registry 2.8: a tag matching ``immutableTags`` or pointing at a signed digest cannot be
moved or deleted by a push or a DELETE, not even by an admin through the registry API; only
``safeguard gateway retag|untag`` by an admin moves it, and that is logged with the actor, both
digests and the reason."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from safeguard.cli.app import app
from safeguard.oci.client import RegistryClient
from safeguard.oci.transport.credentials import Credentials
from tests.fixtures.distribution import RegistryServer
from tests.integration.test_gateway_reject import audit, sign
from tests.unit.gateway.harness import (
    USERS,
    GatewayServer,
    KeyFiles,
    basic,
    make_keys,
    run_gateway,
    write_policy,
    write_users,
)
from tests.unit.oci.artifacts import Artifact, image, push

runner = CliRunner()
CI = Credentials("ci", USERS["ci"][0])


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    return make_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module", params=["builtin", "distribution"])
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, keys: KeyFiles
) -> Iterator[GatewayServer]:
    upstream: RegistryServer | None = None
    if request.param == "distribution":
        upstream = request.getfixturevalue("distribution_registry")
    workdir = tmp_path_factory.mktemp(f"gw-immutable-{request.param}")
    users = write_users(workdir / "users.yaml")
    policy = write_policy(workdir, keys)
    with run_gateway(workdir, upstream, auth_file=users, policy_file=policy) as server:
        yield server


def signed_image(gateway: GatewayServer, tmp_path: Path, keys: KeyFiles, repo: str) -> Artifact:
    artifact = image()

    async def run() -> None:
        async with RegistryClient(gateway.host, credentials=CI) as client:
            await push(client, repo, artifact)

    asyncio.run(run())
    result = sign(gateway, tmp_path, f"{repo}@{artifact.digest}", keys.team_a)
    assert result.exit_code == 0, result.output
    return artifact


def put(gateway: GatewayServer, repo: str, tag: str, artifact: Artifact, user: str = "ci") -> Any:
    with httpx.Client(base_url=gateway.url, headers={"authorization": basic(user)}) as client:
        return client.put(
            f"/v2/{repo}/manifests/{tag}",
            content=artifact.raw,
            headers={"content-type": artifact.media_type},
        )


def head(gateway: GatewayServer, repo: str, tag: str) -> str | None:
    with httpx.Client(base_url=gateway.url, headers={"authorization": basic("viewer")}) as c:
        response = c.head(
            f"/v2/{repo}/manifests/{tag}",
            headers={"accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        return (
            response.headers.get("docker-content-digest") if response.status_code == 200 else None
        )


def admin(*args: str, user: str = "root") -> Any:
    env = {"SAFEGUARD_GATEWAY_PASSWORD": USERS[user][0]}
    return runner.invoke(app, ["gateway", *args, "--username", user, "-o", "json"], env=env)


def test_signed_and_immutable_tags_do_not_move(
    gateway: GatewayServer, tmp_path: Path, keys: KeyFiles
) -> None:
    repo = f"team-a/reject/{uuid.uuid4().hex[:8]}"
    first = signed_image(gateway, tmp_path, keys, repo)
    second = signed_image(gateway, tmp_path, keys, repo)
    for tag in ("v1", "stable"):
        assert put(gateway, repo, tag, first).status_code == 201
    for tag, why in (("v1", "immutable"), ("stable", "points at signed")):
        moved = put(gateway, repo, tag, second)
        assert moved.status_code == 403, moved.text
        message = moved.json()["errors"][0]["message"]
        assert why in message and "safeguard gateway retag" in message
        assert put(gateway, repo, tag, second, user="root").status_code == 403  # admin too
        assert head(gateway, repo, tag) == str(first.digest)
        assert put(gateway, repo, tag, first).status_code == 201  # same digest: no move
    with httpx.Client(base_url=gateway.url, headers={"authorization": basic("root")}) as client:
        assert client.delete(f"/v2/{repo}/manifests/stable").status_code == 403
        assert client.delete(f"/v2/{repo}/manifests/{first.digest}").status_code == 403
    assert head(gateway, repo, "stable") == str(first.digest)
    denied = [e for e in audit(gateway, repo) if e["decision"] == "denied"]
    assert any(e["old_digest"] == str(first.digest) for e in denied)


def test_admin_retag_and_untag_are_logged(
    gateway: GatewayServer, tmp_path: Path, keys: KeyFiles
) -> None:
    repo = f"team-a/reject/{uuid.uuid4().hex[:8]}"
    first = signed_image(gateway, tmp_path, keys, repo)
    second = signed_image(gateway, tmp_path, keys, repo)
    for tag in ("v1", "also-v1"):
        assert put(gateway, repo, tag, first).status_code == 201
    target = f"{gateway.host}/{repo}:v1"
    refused = admin("retag", target, "--to", str(second.digest), "--reason", "x", user="ci")
    assert refused.exit_code == 2, refused.output
    assert head(gateway, repo, "v1") == str(first.digest)
    done = admin("retag", target, "--to", str(second.digest), "--reason", "CVE-2026-1 rebuild")
    assert done.exit_code == 0, done.output
    doc = json.loads(done.stdout)
    assert doc["oldDigest"] == str(first.digest) and doc["newDigest"] == str(second.digest)
    assert doc["actor"] == "root"
    assert head(gateway, repo, "v1") == str(second.digest)
    (event,) = [e for e in audit(gateway, repo) if e["action"] == "retag"]
    assert event["identity"] == "root" and event["reason"] == "CVE-2026-1 rebuild"
    assert event["old_digest"] == str(first.digest) and event["digest"] == str(second.digest)
    # untag: on distribution 2.8 (no tag deletion) the manifest's other tags stay
    assert put(gateway, repo, "v2", second).status_code == 201
    removed = admin("untag", f"{gateway.host}/{repo}:v1", "--reason", "withdrawn")
    assert removed.exit_code == 0, removed.output
    assert head(gateway, repo, "v1") is None
    assert head(gateway, repo, "v2") == str(second.digest)
    assert head(gateway, repo, "also-v1") == str(first.digest)
    with httpx.Client(base_url=gateway.url, headers={"authorization": basic("viewer")}) as c:
        accept = {"accept": second.media_type}
        assert c.get(f"/v2/{repo}/manifests/{second.digest}", headers=accept).status_code == 200
    (event,) = [e for e in audit(gateway, repo) if e["action"] == "untag"]
    assert event["old_digest"] == str(second.digest) and event["reason"] == "withdrawn"
    gone = admin("untag", f"{gateway.host}/{repo}:nope", "--reason", "x")
    assert gone.exit_code == 2


def test_admin_cli_input_errors(gateway: GatewayServer) -> None:
    for bad in (
        "team/app:v1",
        f"{gateway.host}/team/app",
        f"{gateway.host}/team/app@sha256:{'a' * 64}",
    ):
        assert admin("untag", bad, "--reason", "x").exit_code == 2
    result = admin("retag", f"{gateway.host}/team/app:v1", "--to", "sha256:zz", "--reason", "x")
    assert result.exit_code == 2
    unreachable = admin("untag", "127.0.0.1:1/team/app:v1", "--reason", "x")
    assert unreachable.exit_code == 3
