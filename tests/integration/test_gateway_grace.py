"""Grace mode through the gateway, in front of the built-in registry and of docker-registry 2.8,
in skopeo's real order (the image by tag first, then its signature from ``safeguard sign``):
the tag stays invisible — through the gateway and to clients that bypass it — until a signature
by an allowed signer arrives; unsigned, it expires into the quarantine namespace with a
finding; a wrong signature releases nothing; a newer push supersedes a pending one."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from safeguard.core import mediatypes as mt
from tests.fixtures.distribution import RegistryServer
from tests.integration.test_gateway_reject import audit, copy_to, sign
from tests.integration.test_skopeo_roundtrip import build_layout
from tests.unit.gateway.harness import (
    GatewayServer,
    KeyFiles,
    basic,
    make_keys,
    run_gateway,
    skopeo_available,
    write_policy,
    write_users,
)

pytestmark = pytest.mark.skipif(not skopeo_available(), reason="skopeo is not installed")
ACCEPT = {"accept": f"{mt.OCI_MANIFEST}, {mt.DOCKER_MANIFEST}"}


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
    workdir = tmp_path_factory.mktemp(f"gw-grace-{request.param}")
    users = write_users(workdir / "users.yaml")
    policy = write_policy(workdir, keys)
    with run_gateway(workdir, upstream, auth_file=users, policy_file=policy) as server:
        yield server


def visible(gateway: GatewayServer, repo: str, tag: str) -> int:
    with httpx.Client(base_url=gateway.url, headers={"authorization": basic("viewer")}) as c:
        return c.get(f"/v2/{repo}/manifests/{tag}", headers=ACCEPT).status_code


def tags(gateway: GatewayServer, repo: str) -> list[str]:
    with httpx.Client(base_url=gateway.url, headers={"authorization": basic("viewer")}) as c:
        response = c.get(f"/v2/{repo}/tags/list")
        if response.status_code == 404:
            return []
        return list(response.json().get("tags") or [])


def upstream_status(gateway: GatewayServer, repo: str, reference: str) -> int | None:
    """What a client that bypasses the gateway sees (distribution only)."""
    if gateway.upstream is None:
        return None
    with httpx.Client(base_url=gateway.upstream.url) as c:
        return c.get(f"/v2/{repo}/manifests/{reference}", headers=ACCEPT).status_code


def admin_get(gateway: GatewayServer, path: str) -> dict[str, Any]:
    with httpx.Client(base_url=gateway.url, headers={"authorization": basic("root")}) as c:
        response = c.get(f"/_safeguard/gateway/{path}")
        assert response.status_code == 200, response.text
        doc: dict[str, Any] = response.json()
        return doc


def test_pending_until_signed_in_skopeos_order(
    gateway: GatewayServer, tmp_path: Path, keys: KeyFiles
) -> None:
    repo = f"team-a/grace/{uuid.uuid4().hex[:8]}"
    built = build_layout(tmp_path / "layout", "v1")
    pushed = copy_to(gateway, tmp_path / "layout", f"{repo}:v1")
    assert pushed.returncode == 0, pushed.stderr
    assert visible(gateway, repo, "v1") == 404
    assert "v1" not in tags(gateway, repo)
    assert upstream_status(gateway, repo, "v1") in (None, 404)
    assert visible(gateway, repo, built["digest"]) == 200  # by digest it is there
    # a signature by an identity the rule does not name releases nothing
    wrong = sign(gateway, tmp_path, f"{repo}@{built['digest']}", keys.team_b)
    assert wrong.exit_code == 0, wrong.output
    assert visible(gateway, repo, "v1") == 404
    signed = sign(gateway, tmp_path, f"{repo}@{built['digest']}", keys.team_a)
    assert signed.exit_code == 0, signed.output
    assert visible(gateway, repo, "v1") == 200
    assert "v1" in tags(gateway, repo)
    assert upstream_status(gateway, repo, "v1") in (None, 200)
    decisions = [(e["action"], e["decision"]) for e in audit(gateway, repo)]
    assert ("push", "pending") in decisions and ("grace", "released") in decisions
    (entry,) = admin_get(gateway, "pending?repository=" + repo)["pending"]
    assert entry["state"] == "released" and entry["identity"] == "ci"


def test_unsigned_push_expires_into_quarantine(gateway: GatewayServer, tmp_path: Path) -> None:
    repo = f"team-a/fastgrace/{uuid.uuid4().hex[:8]}"
    built = build_layout(tmp_path / "layout", "v1")
    pushed = copy_to(gateway, tmp_path / "layout", f"{repo}:v1")
    assert pushed.returncode == 0, pushed.stderr
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        states = [e["state"] for e in admin_get(gateway, "pending?repository=" + repo)["pending"]]
        if states == ["expired"]:
            break
        time.sleep(0.2)
    assert states == ["expired"]
    assert visible(gateway, repo, "v1") == 404
    assert visible(gateway, repo, built["digest"]) == 404  # gone from the repository...
    held = f"held/{repo}"
    assert visible(gateway, held, built["digest"]) == 200  # ...into quarantine, whole
    assert visible(gateway, held, "v1") == 200
    assert upstream_status(gateway, repo, built["digest"]) in (None, 404)
    (entry,) = [
        e for e in admin_get(gateway, "quarantine")["entries"] if e["target"].startswith(held)
    ]
    assert entry["kind"] == "grace" and entry["state"] == "removed" and not entry["served"]
    (event,) = [e for e in audit(gateway, repo) if e["decision"] == "expired"]
    assert held in event["reason"]
    with sqlite3.connect(gateway.data_dir / "safeguard.db") as db:
        findings = db.execute(
            "SELECT kind, tag, digest FROM gateway_findings WHERE repository = ?", (repo,)
        ).fetchall()
    assert findings == [("unsigned-push-expired", "v1", built["digest"])]


def test_a_newer_push_supersedes_a_pending_one(
    gateway: GatewayServer, tmp_path: Path, keys: KeyFiles
) -> None:
    repo = f"team-a/grace/{uuid.uuid4().hex[:8]}"
    first = build_layout(tmp_path / "one", "v1")
    second = build_layout(tmp_path / "two", "v1")
    assert copy_to(gateway, tmp_path / "one", f"{repo}:v1").returncode == 0
    assert copy_to(gateway, tmp_path / "two", f"{repo}:v1").returncode == 0
    # signing the first (superseded) image does not release the tag
    assert sign(gateway, tmp_path, f"{repo}@{first['digest']}", keys.team_a).exit_code == 0
    assert visible(gateway, repo, "v1") == 404
    assert sign(gateway, tmp_path, f"{repo}@{second['digest']}", keys.team_a).exit_code == 0
    with httpx.Client(base_url=gateway.url, headers={"authorization": basic("viewer")}) as c:
        got = c.get(f"/v2/{repo}/manifests/v1", headers=ACCEPT)
    assert got.status_code == 200
    assert got.headers["docker-content-digest"] == second["digest"]
    states = {
        e["digest"]: e["state"] for e in admin_get(gateway, f"pending?repository={repo}")["pending"]
    }
    assert states == {first["digest"]: "superseded", second["digest"]: "released"}


def test_pending_push_answer(gateway: GatewayServer) -> None:
    from tests.integration.test_gateway_immutability import put
    from tests.integration.test_gateway_reject import _push_by_digest

    repo = f"team-a/grace/{uuid.uuid4().hex[:8]}"
    artifact = _push_by_digest(gateway, repo)
    answer = put(gateway, repo, "v1", artifact)
    assert answer.status_code == 201, answer.text
    assert answer.headers["docker-content-digest"] == str(artifact.digest)
    assert answer.headers["location"].endswith(f"/manifests/{artifact.digest}")
    assert "is pending" in answer.headers["warning"]
    assert visible(gateway, repo, "v1") == 404


def test_registry_down_mid_push_leaves_nothing_behind(tmp_path: Path, keys: KeyFiles) -> None:
    from tests.unit.gateway.harness import run_owned_registry
    from tests.unit.oci.artifacts import image

    users = write_users(tmp_path / "users.yaml")
    policy = write_policy(tmp_path, keys)
    artifact = image()
    with (
        run_owned_registry(tmp_path / "upstream") as upstream,
        run_gateway(tmp_path, upstream.server, auth_file=users, policy_file=policy) as server,
        httpx.Client(base_url=server.url, headers={"authorization": basic("ci")}) as client,
    ):
        for repo in ("team-a/grace/down", "team-a/reject/down"):
            for digest, blob in artifact.blobs.items():
                done = client.post(f"/v2/{repo}/blobs/uploads/?digest={digest}", content=blob)
                assert done.status_code in (201, 202)
                if done.status_code == 202:
                    location = done.headers["location"]
                    sep = "&" if "?" in location else "?"
                    assert (
                        client.put(f"{location}{sep}digest={digest}", content=blob).status_code
                        == 201
                    )
        upstream.stop()
        for repo in ("team-a/grace/down", "team-a/reject/down"):
            response = client.put(
                f"/v2/{repo}/manifests/v1",
                content=artifact.raw,
                headers={"content-type": artifact.media_type},
            )
            assert response.status_code == 503, response.text
            assert response.json()["errors"][0]["code"] == "UNAVAILABLE"
        assert admin_get(server, "pending")["pending"] == []
        assert admin_get(server, "audit")["events"] == []


def test_a_signature_pushed_around_the_gateway_is_found_at_the_deadline(
    gateway: GatewayServer, tmp_path: Path, keys: KeyFiles
) -> None:
    if gateway.upstream is None:
        pytest.skip("the built-in registry has no way around the gateway")
    repo = f"team-a/midgrace/{uuid.uuid4().hex[:8]}"
    built = build_layout(tmp_path / "layout", "v1")
    assert copy_to(gateway, tmp_path / "layout", f"{repo}:v1").returncode == 0
    # the signature goes straight to the registry: the gateway learns of it at the deadline
    direct = sign_direct(gateway.upstream, tmp_path, f"{repo}@{built['digest']}", keys.team_a)
    assert direct.exit_code == 0, direct.output
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and visible(gateway, repo, "v1") != 200:
        time.sleep(0.2)
    assert visible(gateway, repo, "v1") == 200
    (entry,) = admin_get(gateway, "pending?repository=" + repo)["pending"]
    assert entry["state"] == "released"


def sign_direct(upstream: RegistryServer, tmp_path: Path, reference: str, key: Path) -> Any:
    from typer.testing import CliRunner

    from safeguard.cli.app import app
    from tests.unit.gateway.harness import KEY_PASSWORD

    env = {"COSIGN_PASSWORD": KEY_PASSWORD, "REGISTRY_AUTH_FILE": str(tmp_path / "none.json")}
    return CliRunner().invoke(
        app, ["sign", "--key", str(key), f"{upstream.host}/{reference}"], env=env
    )
