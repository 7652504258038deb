"""The signing service over real HTTP, and the CI client end to end.

``safeguard serve`` runs in a subprocess (registry, log and signing service in one process) with
the SoftHSM2 keys and a policy applied to its store; the test OIDC issuer plays GitHub Actions
and GitLab CI. Over raw HTTP: status codes, JSON errors, ``WWW-Authenticate`` and ``Retry-After``.
Through the CLI: ``safeguard sign/attest --signing-server`` in a "GitHub Actions job" (the token
request endpoint) and a "GitLab CI job" (``SIGSTORE_ID_TOKEN``), attached on the built-in
registry and on distribution 2.8 (no referrers API), then verified with ``safeguard verify
--key --trusted-root``, which checks the log entries; and the refusal outside CI (exit 2).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from safeguard.cli.app import app
from safeguard.core.digest import Digest
from safeguard.keys.pkcs11 import PKCS11Signer
from safeguard.oci.client import RegistryClient
from safeguard.policy import PolicyStore
from safeguard.store import default_database_url, open_database
from tests.fixtures import softhsm
from tests.fixtures.builtin import serve_command
from tests.fixtures.distribution import RegistryServer
from tests.fixtures.oidc import ServedIssuer, oidc_issuer
from tests.fixtures.ports import free_port, wait_for_port
from tests.fixtures.process import stop
from tests.unit.oci.artifacts import image, push
from tests.unit.signing.env import SigningHSM, policy_text
from tests.unit.signing.env import signing_hsm as make_hsm

__all__ = ["oidc_issuer"]
pytestmark = pytest.mark.skipif(not softhsm.available(), reason="SoftHSM2/OpenSC not installed")

runner = CliRunner()
REGISTRY_GLOB = "127.0.0.1:*"
CI_VARIABLES = (
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "SIGSTORE_ID_TOKEN",
    "SAFEGUARD_ID_TOKEN",
)


@dataclass(frozen=True)
class Node:
    registry: RegistryServer
    url: str
    trusted_root: Path
    keys: dict[str, Path]


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigningHSM]:
    with make_hsm(tmp_path_factory.mktemp("hsm")) as env:
        yield env


@pytest.fixture(scope="module")
def node(
    hsm: SigningHSM, oidc_issuer: ServedIssuer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Node]:
    work = tmp_path_factory.mktemp("signing-node")
    data = work / "data"
    data.mkdir()
    db = open_database(default_database_url(data))
    try:
        PolicyStore(db).apply(policy_text(hsm, oidc_issuer.url, registry=REGISTRY_GLOB), "test")
    finally:
        db.dispose()
    keys = {}
    for label in ("team-a", "gitlab"):
        with PKCS11Signer(hsm.key_ref(label)) as signer:
            keys[label] = work / f"{label}.pub"
            keys[label].write_bytes(signer.public_key_pem)
    port = free_port()
    host = f"127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "SAFEGUARD_DATABASE_URL"}
    env["SAFEGUARD_TLOG_HOSTNAME"] = host
    log_path = work / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(serve_command(port, data), stdout=log, stderr=log, env=env)
        try:
            try:
                wait_for_port(port, timeout=30)
            except TimeoutError:
                proc.kill()
                proc.wait()
                raise RuntimeError(log_path.read_text(errors="replace")[-4000:]) from None
            root = work / "trusted_root.json"
            exported = runner.invoke(
                app, ["tlog", "export-trusted-root", "--url", f"http://{host}", "--out", str(root)]
            )
            assert exported.exit_code == 0, exported.output
            yield Node(RegistryServer("builtin", host, data), f"http://{host}", root, keys)
        finally:
            stop(proc)


def post(node: Node, token: str | None, doc: Any, **headers: str) -> httpx.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    content = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return httpx.post(f"{node.url}/api/v1/signatures", content=content, headers=headers, timeout=30)


def request(repository: str, **extra: Any) -> dict[str, Any]:
    digest = Digest.of(uuid.uuid4().bytes)
    return {"digest": str(digest), "repository": repository, "kind": "signature", **extra}


def run(*args: str, env: dict[str, str | None] | None = None) -> Any:
    clean: dict[str, str | None] = {name: None for name in CI_VARIABLES}
    result = runner.invoke(app, list(args), env={**clean, **(env or {})})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def new_image(server: RegistryServer, team: str) -> tuple[str, Digest]:
    repo = f"{team}/app-{uuid.uuid4().hex[:8]}"
    art = image()

    async def go() -> None:
        async with RegistryClient(server.host) as client:
            await push(client, repo, art, "v1")

    asyncio.run(go())
    return repo, art.digest


# --- the HTTP API ----------------------------------------------------------------------------


def test_http_sign_answers_201_with_the_bundle(node: Node, oidc_issuer: ServedIssuer) -> None:
    response = post(node, oidc_issuer.github_token(), request(f"{node.registry.host}/team-a/x"))
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    doc = response.json()
    assert doc["identity"] == "team-a-release" and doc["kind"] == "signature"
    assert doc["bundle"]["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert doc["bundle"]["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]
    assert doc["legacy"]["tag"].startswith("sha256-") and doc["legacy"]["rekorBundle"]
    assert len(doc["logIndexes"]) == 2 and isinstance(doc["auditId"], int)


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("missing", 401, "SIGNING_TOKEN_MISSING"),
        ("expired", 401, "OIDC_TOKEN_EXPIRED"),
        ("alg-none", 401, "OIDC_ALGORITHM_REFUSED"),
        ("wrong-audience", 401, "OIDC_AUDIENCE_MISMATCH"),
        ("wrong-branch", 403, "OIDC_IDENTITY_NOT_MATCHED"),
        ("other-namespace", 403, "SIGNING_NOT_AUTHORIZED"),
        ("malformed", 400, "SIGNING_REQUEST_INVALID"),
    ],
)
def test_http_refusals_are_json_with_status(
    node: Node, oidc_issuer: ServedIssuer, case: str, status: int, code: str
) -> None:
    repository = f"{node.registry.host}/team-a/x"
    token: str | None = oidc_issuer.github_token()
    doc: Any = request(repository)
    if case == "missing":
        token = None
    elif case == "expired":
        token = oidc_issuer.github_token(issued_at=time.time() - 7200)
    elif case == "alg-none":
        token = oidc_issuer.alg_none_token(oidc_issuer.github_claims())
    elif case == "wrong-audience":
        token = oidc_issuer.github_token(audience="sigstore")
    elif case == "wrong-branch":
        token = oidc_issuer.github_token(ref="refs/heads/feature")
    elif case == "other-namespace":
        doc = request(f"{node.registry.host}/team-b/x")
    else:
        doc = b'{"digest": 1}'
    response = post(node, token, doc)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["code"] == code and error["message"]
    if status == 401:
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith('Bearer realm="safeguard"')
        if case != "missing":
            assert 'error="invalid_token"' in challenge
    if case == "other-namespace":
        assert "namespace of team-b-release" in error["message"] and error["hint"]


def test_http_rate_limit_is_429_with_retry_after(node: Node, oidc_issuer: ServedIssuer) -> None:
    token = oidc_issuer.github_token(repository="org/limited")
    statuses = []
    for _ in range(5):
        response = post(node, token, request(f"{node.registry.host}/limited/x", legacy=False))
        statuses.append(response.status_code)
    assert statuses[:3] == [201, 201, 201] and statuses[3] == 429
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["code"] == "SIGNING_RATE_LIMITED"


def test_http_method_and_size_limits(node: Node, oidc_issuer: ServedIssuer) -> None:
    got = httpx.get(f"{node.url}/api/v1/signatures")
    assert got.status_code == 405 and got.headers["allow"] == "POST"
    huge = post(node, oidc_issuer.github_token(), b"{" + b" " * (5 * 1024 * 1024) + b"}")
    assert huge.status_code == 413 and huge.json()["code"] == "SIGNING_REQUEST_INVALID"


# --- the CI client ---------------------------------------------------------------------------


def test_github_actions_job_signs_attaches_and_verifies(
    node: Node, oidc_issuer: ServedIssuer, any_registry: RegistryServer
) -> None:
    repo, digest = new_image(any_registry, "team-a")
    ref = f"{any_registry.host}/{repo}@{digest}"
    env: dict[str, str | None] = dict(oidc_issuer.actions_env())
    signed = run("sign", "--signing-server", node.url, ref, "-o", "json", env=env)
    assert signed.exit_code == 0, signed.output
    info = json.loads(signed.stdout)
    assert info["identity"] == "team-a-release" and info["digest"] == str(digest)
    assert info["legacyTag"] == f"sha256-{digest.hex}.sig" and len(info["logIndexes"]) == 2

    verified = run(
        "verify", "--key", str(node.keys["team-a"]), "--trusted-root", str(node.trusted_root),
        "-o", "json", ref,
    )  # fmt: skip
    assert verified.exit_code == 0, verified.output
    evidence = json.loads(verified.stdout)["evidence"]
    assert len(evidence) == 2 and all(e["verified"] for e in evidence)
    assert all(e["tlog"] and e["tlog"][0]["signedEntryTimestamp"] for e in evidence)
    bundled = [e for e in evidence if e["source"] != "cosign-tag"]
    assert bundled and bundled[0]["tlog"][0]["inclusionProof"]
    assert run("verify", "--key", str(node.keys["gitlab"]), ref).exit_code == 1

    attested = run("attest", "--signing-server", node.url, ref, "-o", "json", env=env)
    assert attested.exit_code == 0, attested.output
    checked = run(
        "verify-attestation", "--key", str(node.keys["team-a"]), "--trusted-root",
        str(node.trusted_root), "--type", "slsaprovenance1", "-o", "json", ref,
    )  # fmt: skip
    assert checked.exit_code == 0, checked.output
    payload = json.loads(checked.stdout)["evidence"][0]["payload"]
    builder = payload["predicate"]["runDetails"]["builder"]["id"]
    assert builder.endswith("/org/team-a/.github/workflows/release.yml@refs/heads/main")


def test_gitlab_job_signs_by_tag_with_a_given_predicate(
    node: Node, oidc_issuer: ServedIssuer, tmp_path: Path
) -> None:
    repo, digest = new_image(node.registry, "gitlab")
    token = oidc_issuer.gitlab_token()
    env: dict[str, str | None] = {"GITLAB_CI": "true", "SIGSTORE_ID_TOKEN": token}
    by_tag = f"{node.registry.host}/{repo}:v1"
    signed = run("sign", "--signing-server", node.url, by_tag, env=env)
    assert signed.exit_code == 0, signed.output
    assert "uses a tag, not a digest" in signed.stderr and "gitlab-release" in signed.stdout
    predicate = tmp_path / "result.json"
    predicate.write_text('{"passed": true}')
    attested = run(
        "attest", "--signing-server", node.url, "--predicate", str(predicate), "--type",
        "https://example.com/test/v1", by_tag, env=env,
    )  # fmt: skip
    assert attested.exit_code == 0, attested.output
    ref = f"{node.registry.host}/{repo}@{digest}"
    verified = run("verify", "--key", str(node.keys["gitlab"]), "--trusted-root",
                   str(node.trusted_root), ref)  # fmt: skip
    assert verified.exit_code == 0, verified.output


def test_explicit_token_and_token_file(
    node: Node, oidc_issuer: ServedIssuer, tmp_path: Path
) -> None:
    repo, digest = new_image(node.registry, "team-a")
    ref = f"{node.registry.host}/{repo}@{digest}"
    token = oidc_issuer.github_token()
    assert run("sign", "--signing-server", node.url, "--identity-token", token, ref).exit_code == 0
    path = tmp_path / "token"
    path.write_text(token)
    again = run("sign", "--signing-server", node.url, "--identity-token-file", str(path), ref)
    assert again.exit_code == 0, again.output


def test_outside_ci_signing_is_refused_with_exit_2(node: Node) -> None:
    repo, digest = new_image(node.registry, "team-a")
    result = run("sign", "--signing-server", node.url, f"{node.registry.host}/{repo}@{digest}")
    assert result.exit_code == 2
    assert "OIDC_CI_TOKEN_UNAVAILABLE" in result.stderr
    assert "signing happens in CI only" in " ".join(result.stderr.split())


def test_client_refusals_carry_the_server_code(node: Node, oidc_issuer: ServedIssuer) -> None:
    repo, digest = new_image(node.registry, "team-b")
    ref = f"{node.registry.host}/{repo}@{digest}"
    env: dict[str, str | None] = dict(oidc_issuer.actions_env())
    refused = run("sign", "--signing-server", node.url, ref, env=env)
    assert refused.exit_code == 1
    assert "SIGNING_NOT_AUTHORIZED" in refused.stderr and "team-b-release" in refused.stderr
    both = run("sign", "--signing-server", node.url, "--key", "cosign.key", ref, env=env)
    assert both.exit_code == 2 and "drop --key" in both.stderr
    insecure = run("sign", "--signing-server", "http://example.com", ref, env=env)
    assert insecure.exit_code == 2 and "plain http" in insecure.stderr
    down = run("sign", "--signing-server", f"http://127.0.0.1:{free_port()}", ref, env=env)
    assert down.exit_code == 3 and "SIGNING_SERVER_ERROR" in down.stderr
    no_key = run("sign", ref)
    assert no_key.exit_code == 2 and "--signing-server" in no_key.stderr
