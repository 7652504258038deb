"""Unsigned-push policy ``reject`` (and ``warn``, ``off``) through the gateway, in front of the
built-in registry and of docker-registry 2.8, with real skopeo pushes and ``safeguard sign``:
an unsigned tag is refused with a hint skopeo shows its user; pushing by digest, signing, then
tagging works; forged signatures, signatures by another team's identity, signatures for
another digest and signature tags for foreign digests do not open the door; oversized and
malformed manifests are refused before the registry sees them; every decision is audited."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from safeguard.cli.app import app
from safeguard.core import mediatypes as mt
from safeguard.core.digest import Digest
from safeguard.core.manifest import Descriptor
from safeguard.formats.bundle import dsse_bundle
from safeguard.keys.cosign_keys import load_signer
from safeguard.oci.client import RegistryClient
from safeguard.oci.signatures import attach_bundle
from safeguard.oci.transport.credentials import Credentials
from safeguard.signing.sign import cosign_sign_statement, sign_envelope
from tests.fixtures.distribution import RegistryServer
from tests.integration.test_skopeo_roundtrip import build_layout
from tests.unit.gateway.harness import (
    KEY_PASSWORD,
    USERS,
    GatewayServer,
    KeyFiles,
    auth_file_for,
    basic,
    creds,
    make_keys,
    run_gateway,
    skopeo_available,
    write_policy,
    write_users,
)
from tests.unit.oci.artifacts import image, push

pytestmark = pytest.mark.skipif(not skopeo_available(), reason="skopeo is not installed")
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
    workdir = tmp_path_factory.mktemp(f"gw-reject-{request.param}")
    users = write_users(workdir / "users.yaml")
    policy = write_policy(workdir, keys)
    with run_gateway(workdir, upstream, auth_file=users, policy_file=policy) as server:
        yield server


def skopeo_try(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["skopeo", "--insecure-policy", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_to(
    gateway: GatewayServer, layout: Path, reference: str
) -> subprocess.CompletedProcess[str]:
    return skopeo_try(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        creds("ci"),
        f"oci:{layout}:v1",
        f"docker://{gateway.host}/{reference}",
    )


def sign(gateway: GatewayServer, tmp_path: Path, reference: str, key: Path) -> Any:
    env = {
        "COSIGN_PASSWORD": KEY_PASSWORD,
        "REGISTRY_AUTH_FILE": str(auth_file_for(tmp_path, gateway.host)),
    }
    result = runner.invoke(
        app, ["sign", "--key", str(key), f"{gateway.host}/{reference}", "-o", "json"], env=env
    )
    return result


def audit(gateway: GatewayServer, repository: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=gateway.url, headers={"authorization": basic("root")}) as client:
        response = client.get("/_safeguard/gateway/audit", params={"repository": repository})
        assert response.status_code == 200, response.text
        events: list[dict[str, Any]] = response.json()["events"]
        return events


def _repo(prefix: str) -> str:
    return f"{prefix}/{uuid.uuid4().hex[:8]}"


def test_unsigned_tag_push_is_refused_with_a_hint_skopeo_shows(
    gateway: GatewayServer, tmp_path: Path, keys: KeyFiles
) -> None:
    repo = _repo("team-a/reject")
    built = build_layout(tmp_path / "layout", "v1")
    refused = copy_to(gateway, tmp_path / "layout", f"{repo}:v1")
    assert refused.returncode != 0
    assert "push by digest, sign, then tag" in refused.stderr
    assert "safeguard push" in refused.stderr
    # the way out: by digest, sign, then the same tag push goes through
    by_digest = copy_to(gateway, tmp_path / "layout", f"{repo}@{built['digest']}")
    assert by_digest.returncode == 0, by_digest.stderr
    signed = sign(gateway, tmp_path, f"{repo}@{built['digest']}", keys.team_a)
    assert signed.exit_code == 0, signed.output
    tagged = copy_to(gateway, tmp_path / "layout", f"{repo}:v1")
    assert tagged.returncode == 0, tagged.stderr
    raw = skopeo_try(
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        creds("viewer"),
        f"docker://{gateway.host}/{repo}:v1",
    )
    assert raw.returncode == 0 and raw.stdout.encode() == built["manifest"]
    events = audit(gateway, repo)
    decisions = [(e["action"], e["decision"], e["tag"]) for e in events]
    assert ("push", "denied", "v1") in decisions
    assert ("push", "allowed", "v1") in decisions
    allowed = next(e for e in events if e["decision"] == "allowed")
    assert allowed["identity"] == "ci" and allowed["client"] == "127.0.0.1"
    assert allowed["digest"] == built["digest"] and allowed["mode"] == "reject"
    assert "accepted" in allowed["reason"]


def _push_by_digest(gateway: GatewayServer, repo: str) -> Any:
    import asyncio

    artifact = image()

    async def run() -> None:
        async with RegistryClient(gateway.host, credentials=CI) as client:
            await push(client, repo, artifact)

    asyncio.run(run())
    return artifact


def _tag(gateway: GatewayServer, repo: str, tag: str, artifact: Any) -> httpx.Response:
    with httpx.Client(base_url=gateway.url, headers={"authorization": basic("ci")}) as client:
        return client.put(
            f"/v2/{repo}/manifests/{tag}",
            content=artifact.raw,
            headers={"content-type": artifact.media_type},
        )


def _denied(response: httpx.Response) -> str:
    assert response.status_code == 403, response.text
    (error,) = response.json()["errors"]
    assert error["code"] == "DENIED"
    return str(error["message"])


def test_signature_by_another_identity_does_not_count(
    gateway: GatewayServer, tmp_path: Path, keys: KeyFiles
) -> None:
    repo = _repo("team-a/reject")
    artifact = _push_by_digest(gateway, repo)
    result = sign(gateway, tmp_path, f"{repo}@{artifact.digest}", keys.team_b)
    assert result.exit_code == 0, result.output  # the signature itself may be attached...
    message = _denied(_tag(gateway, repo, "v1", artifact))  # ...but it does not count here
    assert "unsigned push refused" in message
    denied = [e for e in audit(gateway, repo) if e["decision"] == "denied"]
    assert denied and "refused" in denied[0]["reason"]


def test_forged_and_misdirected_signatures_do_not_count(
    gateway: GatewayServer, keys: KeyFiles
) -> None:
    import asyncio

    repo = _repo("team-a/reject")
    target = _push_by_digest(gateway, repo)
    other = _push_by_digest(gateway, repo)
    signer = load_signer(keys.team_a, password=KEY_PASSWORD.encode())

    async def attach() -> None:
        async with RegistryClient(gateway.host, credentials=CI) as client:
            subject = Descriptor(target.media_type, target.digest, len(target.raw))
            # 1. a real team-a signature, but over the other image's digest
            envelope, _ = sign_envelope(signer, cosign_sign_statement(other.digest), None)
            misdirected = dsse_bundle(envelope, public_key_hint=signer.key_id).to_json()
            await attach_bundle(client, repo, subject, misdirected, predicate_type=None)
            # 2. a signature whose bytes were altered
            envelope, _ = sign_envelope(signer, cosign_sign_statement(target.digest), None)
            doc = json.loads(dsse_bundle(envelope, public_key_hint=signer.key_id).to_json())
            sig = doc["dsseEnvelope"]["signatures"][0]
            sig["sig"] = ("A" if sig["sig"][0] != "A" else "B") + sig["sig"][1:]
            forged = json.dumps(doc).encode()
            await attach_bundle(client, repo, subject, forged, predicate_type=None)

    asyncio.run(attach())
    _denied(_tag(gateway, repo, "v1", target))


def test_signature_tag_for_a_foreign_digest_is_refused(gateway: GatewayServer) -> None:
    repo = _repo("team-a/reject")
    artifact = _push_by_digest(gateway, repo)
    stranger = Digest.of(os.urandom(32))
    message = _denied(_tag(gateway, repo, f"{stranger.tag_form}.sig", artifact))
    assert "not a manifest of" in message
    # for a digest that is there, a .sig tag is fine without any signature
    response = _tag(gateway, repo, f"{artifact.digest.tag_form}.sig", artifact)
    assert response.status_code == 201, response.text


def test_oversized_and_malformed_manifests(gateway: GatewayServer) -> None:
    repo = _repo("team-a/reject")
    with httpx.Client(base_url=gateway.url, headers={"authorization": basic("ci")}) as client:
        big = client.put(
            f"/v2/{repo}/manifests/v1",
            content=b'{"schemaVersion":2,"x":"' + b"a" * (5 * 1024 * 1024) + b'"}',
            headers={"content-type": mt.OCI_MANIFEST},
        )
        assert big.status_code == 413
        assert big.json()["errors"][0]["code"] == "MANIFEST_INVALID"
        for body in (b"{not json", b"[]", b'{"schemaVersion": 1}', b"\xff\xfe"):
            bad = client.put(
                f"/v2/{repo}/manifests/v1", content=body, headers={"content-type": mt.OCI_MANIFEST}
            )
            assert bad.status_code == 400, bad.text
            assert bad.json()["errors"][0]["code"] == "MANIFEST_INVALID"
        artifact = image()
        wrong = client.put(
            f"/v2/{repo}/manifests/sha256:{'1' * 64}",
            content=artifact.raw,
            headers={"content-type": mt.OCI_MANIFEST},
        )
        assert wrong.status_code == 400
        assert wrong.json()["errors"][0]["code"] == "DIGEST_INVALID"
        assert client.get(f"/v2/{repo}/tags/list").status_code == 404  # nothing reached it


def test_tags_in_a_push_by_digest_are_judged_too(gateway: GatewayServer) -> None:
    repo = _repo("team-a/reject")
    artifact = _push_by_digest(gateway, repo)
    with httpx.Client(base_url=gateway.url, headers={"authorization": basic("ci")}) as client:
        response = client.put(
            f"/v2/{repo}/manifests/{artifact.digest}?tag=v9",
            content=artifact.raw,
            headers={"content-type": artifact.media_type},
        )
    _denied(response)


def test_warn_and_off_modes(gateway: GatewayServer) -> None:
    repo = _repo("team-a/warn")
    artifact = _push_by_digest(gateway, repo)
    warned = _tag(gateway, repo, "latest", artifact)
    assert warned.status_code == 201, warned.text
    assert warned.headers["warning"].startswith('299 - "')
    assert "warn mode" in warned.headers["warning"]
    (event,) = [e for e in audit(gateway, repo) if e["action"] == "push"]
    assert event["decision"] == "warned" and event["mode"] == "warn"
    repo = _repo("team-a/off")
    artifact = _push_by_digest(gateway, repo)
    quiet = _tag(gateway, repo, "latest", artifact)
    assert quiet.status_code == 201 and "warning" not in quiet.headers
    repo = _repo("unruled")
    artifact = _push_by_digest(gateway, repo)
    assert _tag(gateway, repo, "latest", artifact).status_code == 201
    assert audit(gateway, repo) == []


def test_quarantine_namespace_is_read_only(gateway: GatewayServer) -> None:
    with httpx.Client(base_url=gateway.url, headers={"authorization": basic("root")}) as client:
        started = client.post("/v2/quarantine/team-a/app/blobs/uploads/")
        _denied(started)
        artifact = image()
        put = client.put(
            "/v2/quarantine/team-a/app/manifests/v1",
            content=artifact.raw,
            headers={"content-type": artifact.media_type},
        )
        _denied(put)


def test_policy_applied_to_the_store_takes_effect_without_restart(
    tmp_path: Path, keys: KeyFiles
) -> None:
    import time

    users = write_users(tmp_path / "users.yaml")
    data = tmp_path / "node"
    with run_gateway(data, None, auth_file=users) as server:
        repo = _repo("team-a/reject")
        artifact = _push_by_digest(server, repo)
        assert _tag(server, repo, "before", artifact).status_code == 201  # no policy yet
        policy = write_policy(tmp_path, keys)
        applied = runner.invoke(
            app, ["policy", "apply", str(policy), "--data-dir", str(server.data_dir)]
        )
        assert applied.exit_code == 0, applied.output
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            response = _tag(server, repo, "after", artifact)
            if response.status_code == 403:
                break
            time.sleep(0.5)
        _denied(response)
