"""``safeguard push``: push by digest, sign, then tag — through a gateway in ``reject`` mode in
front of the built-in registry and of docker-registry 2.8, from an OCI layout and from another
registry; with a key the rule does not accept, the tag is refused and nothing is tagged."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from safeguard.cli.app import app
from tests.fixtures.distribution import RegistryServer
from tests.integration.test_skopeo_roundtrip import build_layout, skopeo
from tests.unit.gateway.harness import (
    KEY_PASSWORD,
    GatewayServer,
    KeyFiles,
    auth_file_for,
    basic,
    make_keys,
    run_gateway,
    skopeo_available,
    write_policy,
    write_users,
)

runner = CliRunner()


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
    workdir = tmp_path_factory.mktemp(f"gw-push-{request.param}")
    users = write_users(workdir / "users.yaml")
    policy = write_policy(workdir, keys)
    with run_gateway(workdir, upstream, auth_file=users, policy_file=policy) as server:
        yield server


def push(gateway: GatewayServer, tmp_path: Path, key: Path, *args: str) -> Any:
    env = {
        "COSIGN_PASSWORD": KEY_PASSWORD,
        "REGISTRY_AUTH_FILE": str(auth_file_for(tmp_path, gateway.host)),
    }
    return runner.invoke(app, ["push", "--key", str(key), *args, "-o", "json"], env=env)


def tag_digest(gateway: GatewayServer, repo: str, tag: str) -> str | None:
    with httpx.Client(base_url=gateway.url, headers={"authorization": basic("viewer")}) as c:
        response = c.head(
            f"/v2/{repo}/manifests/{tag}",
            headers={"accept": "application/vnd.oci.image.manifest.v1+json"},
        )
    return response.headers.get("docker-content-digest") if response.status_code == 200 else None


def test_push_from_a_layout_signs_before_tagging(
    gateway: GatewayServer, tmp_path: Path, keys: KeyFiles
) -> None:
    repo = f"team-a/reject/{uuid.uuid4().hex[:8]}"
    built = build_layout(tmp_path / "layout", "v1")
    result = push(gateway, tmp_path, keys.team_a, f"oci:{tmp_path / 'layout'}:v1",
                  f"{gateway.host}/{repo}:v1")  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["digest"] == built["digest"]
    assert doc["signature"]["referrer"]
    assert tag_digest(gateway, repo, "v1") == built["digest"]


@pytest.mark.skipif(not skopeo_available(), reason="skopeo is not installed")
def test_push_from_another_registry(
    gateway: GatewayServer,
    distribution_registry: RegistryServer,
    tmp_path: Path,
    keys: KeyFiles,
) -> None:
    source = f"{distribution_registry.host}/elsewhere/{uuid.uuid4().hex[:8]}:1.0"
    built = build_layout(tmp_path / "layout", "v1")
    skopeo("copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'layout'}:v1", f"docker://{source}")
    repo = f"team-a/reject/{uuid.uuid4().hex[:8]}"
    result = push(gateway, tmp_path, keys.team_a, source, f"{gateway.host}/{repo}:v2")
    assert result.exit_code == 0, result.output
    assert tag_digest(gateway, repo, "v2") == built["digest"]


def test_push_with_a_key_the_rule_does_not_accept(
    gateway: GatewayServer, tmp_path: Path, keys: KeyFiles
) -> None:
    repo = f"team-a/reject/{uuid.uuid4().hex[:8]}"
    build_layout(tmp_path / "layout", "v1")
    result = push(gateway, tmp_path, keys.team_b, f"oci:{tmp_path / 'layout'}:v1",
                  f"{gateway.host}/{repo}:v1")  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "push by digest, sign, then tag" in result.output
    assert tag_digest(gateway, repo, "v1") is None
    for bad in (f"{gateway.host}/{repo}", f"{gateway.host}/{repo}@sha256:{'a' * 64}", "oci:x:y"):
        refused = push(gateway, tmp_path, keys.team_a, f"oci:{tmp_path / 'layout'}:v1", bad)
        assert refused.exit_code == 2, refused.output
