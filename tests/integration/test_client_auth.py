"""Auth flows against distribution 2.8: HTTP Basic (htpasswd) and bearer tokens (token server),
with credentials passed in or found in Docker's config.json."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest

from safeguard.core.errors import RegistryError
from safeguard.oci.client import RegistryClient
from safeguard.oci.transport.credentials import Credentials
from tests.fixtures.auth import USERS, TokenServer, htpasswd_registry, token_registry
from tests.fixtures.distribution import RegistryServer
from tests.unit.oci.artifacts import image, push

__all__ = ["htpasswd_registry", "token_registry"]  # fixtures used by name below

ALICE = Credentials("alice", USERS["alice"])


def _repo() -> str:
    return f"auth/{uuid.uuid4().hex[:10]}"


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated credentials environment: only $DOCKER_CONFIG/config.json counts."""
    for var in ("REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    return config_dir / "config.json"


def _write_config(path: Path, host: str, user: str, password: str) -> None:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": auth}}}))


async def test_basic_auth_with_explicit_credentials(htpasswd_registry: RegistryServer) -> None:
    repo = _repo()
    async with RegistryClient(htpasswd_registry.host, credentials=ALICE) as client:
        await client.ping()
        await push(client, repo, image(), "v1")
        assert await client.manifests.tags(repo) == ["v1"]
        assert repo in await client.manifests.catalog()


async def test_basic_auth_anonymous_is_refused_with_a_hint(
    htpasswd_registry: RegistryServer,
) -> None:
    async with RegistryClient(htpasswd_registry.host, credentials=None) as client:
        with pytest.raises(RegistryError) as info:
            await client.manifests.tags("auth/anything")
    assert info.value.status == 401
    assert "config.json" in (info.value.hint or "")
    assert info.value.exit_code == 2


async def test_basic_auth_wrong_password(htpasswd_registry: RegistryServer) -> None:
    wrong = Credentials("alice", "not-her-password")
    async with RegistryClient(htpasswd_registry.host, credentials=wrong) as client:
        with pytest.raises(RegistryError) as info:
            await client.ping()
    assert info.value.status == 401


async def test_basic_auth_from_docker_config(
    htpasswd_registry: RegistryServer, docker_config: Path
) -> None:
    _write_config(docker_config, htpasswd_registry.host, "bob", USERS["bob"])
    async with RegistryClient(htpasswd_registry.host) as client:  # looks the file up
        await push(client, _repo(), image(), "v1")


async def test_bearer_token_flow_and_cache(
    token_registry: tuple[RegistryServer, TokenServer],
) -> None:
    server, tokens = token_registry
    repo = _repo()
    before = tokens.requests.copy()
    async with RegistryClient(server.host, credentials=ALICE) as client:
        await push(client, repo, image(), "v1")
        await push(client, repo, image(), "v2")
        assert sorted(await client.manifests.tags(repo)) == ["v1", "v2"]
        assert repo in await client.manifests.catalog()
    fetched = tokens.requests - before
    # One token per scope, reused for every request of that scope.
    assert fetched[f"repository:{repo}:pull"] == 1
    assert fetched[f"repository:{repo}:pull,push"] == 1
    assert fetched["registry:catalog:*"] == 1
    assert "alice" in tokens.accounts


async def test_bearer_anonymous_pull_but_no_push(
    token_registry: tuple[RegistryServer, TokenServer],
) -> None:
    server, _ = token_registry
    repo = _repo()
    art = image()
    async with RegistryClient(server.host, credentials=ALICE) as client:
        await push(client, repo, art, "v1")
    async with RegistryClient(server.host, credentials=None) as anonymous:
        got = await anonymous.manifests.get(repo, "v1")  # anonymous token with pull
        assert got.raw == art.raw
        with pytest.raises(RegistryError) as info:
            await push(anonymous, repo, image(), "v2")
    assert info.value.status == 401


async def test_bearer_bad_credentials_are_refused_by_the_token_service(
    token_registry: tuple[RegistryServer, TokenServer],
) -> None:
    server, _ = token_registry
    async with RegistryClient(server.host, credentials=Credentials("alice", "wrong")) as client:
        with pytest.raises(RegistryError, match="refused the credentials") as info:
            await client.manifests.tags("auth/x")
    assert info.value.status == 401


async def test_bearer_credentials_from_registry_auth_file(
    token_registry: tuple[RegistryServer, TokenServer],
    docker_config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, tokens = token_registry
    auth_file = tmp_path / "auth.json"
    _write_config(auth_file, server.host, "bob", USERS["bob"])
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth_file))
    async with RegistryClient(server.host) as client:
        await push(client, _repo(), image(), "v1")
    assert "bob" in tokens.accounts
