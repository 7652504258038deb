"""Credentials from Docker's config.json and containers' auth.json."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from safeguard.core.errors import InvalidInput
from safeguard.oci.transport.credentials import (
    Credentials,
    auth_file_paths,
    credentials_from_auth_file,
    lookup_credentials,
)


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _write(path: Path, auths: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"auths": auths}))


def test_docker_config_in_home(tmp_path: Path) -> None:
    _write(tmp_path / ".docker" / "config.json", {"r.example:5000": {"auth": _auth("u", "p:w")}})
    found = lookup_credentials("r.example:5000", env={}, home=tmp_path)
    assert found == Credentials("u", "p:w")  # password may contain ':'
    assert lookup_credentials("other.example", env={}, home=tmp_path) is None


def test_docker_config_env_and_url_keys(tmp_path: Path) -> None:
    _write(tmp_path / "cfg" / "config.json", {"https://r.example/v1/": {"auth": _auth("a", "b")}})
    env = {"DOCKER_CONFIG": str(tmp_path / "cfg")}
    assert lookup_credentials("r.example", env=env, home=tmp_path / "nohome") == Credentials(
        "a", "b"
    )


def test_registry_auth_file_comes_first(tmp_path: Path) -> None:
    _write(tmp_path / "auth.json", {"r.example": {"auth": _auth("first", "1")}})
    _write(tmp_path / ".docker" / "config.json", {"r.example": {"auth": _auth("second", "2")}})
    env = {"REGISTRY_AUTH_FILE": str(tmp_path / "auth.json")}
    assert lookup_credentials("r.example", env=env, home=tmp_path) == Credentials("first", "1")
    paths = auth_file_paths(env=env, home=tmp_path)
    assert paths[0] == tmp_path / "auth.json"
    assert paths[-1] == tmp_path / ".docker" / "config.json"


def test_containers_auth_json_in_runtime_dir(tmp_path: Path) -> None:
    _write(tmp_path / "run" / "containers" / "auth.json", {"r.example": {"auth": _auth("c", "d")}})
    env = {"XDG_RUNTIME_DIR": str(tmp_path / "run")}
    assert lookup_credentials("r.example", env=env, home=tmp_path) == Credentials("c", "d")


def test_docker_hub_key(tmp_path: Path) -> None:
    _write(
        tmp_path / ".docker" / "config.json",
        {"https://index.docker.io/v1/": {"auth": _auth("h", "i")}},
    )
    assert lookup_credentials("docker.io", env={}, home=tmp_path) == Credentials("h", "i")
    assert lookup_credentials("registry-1.docker.io", env={}, home=tmp_path) == Credentials(
        "h", "i"
    )


def test_username_password_fields_and_helpers_only(tmp_path: Path) -> None:
    data = json.dumps(
        {"auths": {"a.example": {"username": "x", "password": "y"}, "b.example": {}}}
    ).encode()
    assert credentials_from_auth_file(data, "a.example", source="t") == Credentials("x", "y")
    assert credentials_from_auth_file(data, "b.example", source="t") is None


def test_password_is_not_in_repr() -> None:
    assert "secret" not in repr(Credentials("u", "secret"))
    assert Credentials("u", "p").basic_header() == "Basic " + _auth("u", "p")


@pytest.mark.parametrize(
    "data",
    [
        b"{not json",
        b"[]",
        b'{"auths": []}',
        b'{"auths": {"r.example": "x"}}',
        b'{"auths": {"r.example": {"auth": "%%%not-base64"}}}',
        json.dumps(
            {"auths": {"r.example": {"auth": base64.b64encode(b"nocolon").decode()}}}
        ).encode(),
    ],
)
def test_malformed_files_are_clear_errors(data: bytes) -> None:
    with pytest.raises(InvalidInput, match="credentials file"):
        credentials_from_auth_file(data, "r.example", source="/x/config.json")


def test_empty_file_is_no_credentials() -> None:
    assert credentials_from_auth_file(b"  ", "r.example", source="t") is None
