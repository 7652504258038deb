"""The gateway's users, passwords and tokens: good credentials in, typed refusals for bad ones."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import jwt
import pytest

from safeguard.gateway.auth import (
    SERVICE,
    AuthConfig,
    AuthConfigInvalid,
    check_password,
    hash_password,
)
from safeguard.gateway.routes import Route, classify, required_action


def _config(tmp_path: Path, **extra: object) -> AuthConfig:
    doc = {
        "anonymousPull": False,
        "users": [
            {"name": "ci", "passwordHash": hash_password("pw-ci"), "roles": ["push"]},
            {"name": "root", "passwordHash": hash_password("pw-root"), "roles": ["admin"]},
            {"name": "ro", "passwordHash": hash_password("pw-ro"), "roles": ["pull"]},
        ],
        **extra,
    }
    return AuthConfig.from_dict(doc, tmp_path / "users.yaml", tmp_path)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_password_hashes_check_and_are_salted() -> None:
    first, second = hash_password("secret"), hash_password("secret")
    assert first != second
    assert check_password("secret", first) and check_password("secret", second)
    assert not check_password("Secret", first)
    assert not check_password("secret", "scrypt$x$y")
    assert not check_password("secret", "plain-text")
    # a hash asking for absurd work is refused, not computed
    assert not check_password("secret", "scrypt$1073741824$8$1$AAAA$AAAA")


def test_basic_roles(tmp_path: Path) -> None:
    auth = _config(tmp_path)
    ci = auth.authenticate(_basic("ci", "pw-ci"))
    assert ci is not None and ci.may("push", "team/app") and not ci.is_admin
    assert auth.authenticate(_basic("ci", "wrong")) is None
    assert auth.authenticate(_basic("nobody", "pw-ci")) is None
    assert auth.authenticate("Basic !!!not-base64") is None
    assert auth.authenticate("Digest abc") is None
    ro = auth.authenticate(_basic("ro", "pw-ro"))
    assert ro is not None and ro.may("pull", "x") and not ro.may("push", "x")
    anonymous = auth.authenticate(None)
    assert anonymous is not None and not anonymous.may("pull", "x")
    assert _config(tmp_path, anonymousPull=True).anonymous().may("pull", "x")


def test_tokens_grant_at_most_the_roles(tmp_path: Path) -> None:
    auth = _config(tmp_path)
    ro = auth.authenticate(_basic("ro", "pw-ro"))
    assert ro is not None
    issued = auth.issue(ro, ["repository:team/app:pull,push"], SERVICE)
    principal = auth.authenticate(f"Bearer {issued['token']}")
    assert principal is not None and principal.name == "ro"
    assert principal.may("pull", "team/app")
    assert not principal.may("push", "team/app")
    assert not principal.may("pull", "team/other")
    # tampered, foreign-key and expired tokens are refused
    assert auth.authenticate(f"Bearer {issued['token']}x") is None
    forged = jwt.encode(
        {"sub": "root", "aud": SERVICE, "iss": SERVICE, "iat": 0, "exp": time.time() + 60},
        "another-secret-of-enough-length-000000",
        algorithm="HS256",
    )
    assert auth.authenticate(f"Bearer {forged}") is None
    expired = jwt.encode(
        {"sub": "ro", "aud": SERVICE, "iss": SERVICE, "iat": 0, "exp": 1},
        auth.secret,
        algorithm="HS256",
    )
    assert auth.authenticate(f"Bearer {expired}") is None
    none_alg = jwt.encode(
        {"sub": "root", "aud": SERVICE, "iss": SERVICE, "iat": 0, "exp": time.time() + 60},
        None,
        algorithm="none",
    )
    assert auth.authenticate(f"Bearer {none_alg}") is None


def test_secret_is_created_once_and_shared(tmp_path: Path) -> None:
    first = _config(tmp_path)
    second = _config(tmp_path)
    assert first.secret == second.secret
    assert (tmp_path / "gateway-token.secret").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"users": ["ci"]},
        {"users": [{"name": "ci", "passwordHash": "plain", "roles": ["push"]}]},
        {"users": [{"name": "ci", "passwordHash": "scrypt$1", "roles": ["owner"]}]},
        {"users": [{"name": "anonymous", "passwordHash": "scrypt$1", "roles": ["pull"]}]},
        {
            "users": [
                {"name": "ci", "passwordHash": "scrypt$1", "roles": ["pull"]},
                {"name": "ci", "passwordHash": "scrypt$1", "roles": ["pull"]},
            ]
        },
    ],
)
def test_bad_users_files_are_typed_errors(tmp_path: Path, doc: object) -> None:
    with pytest.raises(AuthConfigInvalid):
        AuthConfig.from_dict(doc, "users.yaml", tmp_path)


def test_unparseable_users_file(tmp_path: Path) -> None:
    path = tmp_path / "users.yaml"
    path.write_text("users: [\n")
    with pytest.raises(AuthConfigInvalid):
        AuthConfig.load(path, tmp_path)
    with pytest.raises(AuthConfigInvalid):
        AuthConfig.load(tmp_path / "missing.yaml", tmp_path)


def test_routes_and_actions() -> None:
    assert classify("/v2/") == Route("base")
    assert classify("/v2/a/b/c/manifests/v1") == Route("manifest", "a/b/c", "v1")
    assert classify("/v2/a/blobs/uploads/") == Route("upload", "a", "")
    route = classify("/v2/a/manifests/v1")
    assert required_action(route, "GET") == "pull"
    assert required_action(route, "PUT") == "push"
    assert required_action(route, "DELETE") == "delete"
    for bad in ("/v2/A/manifests/v1", "/v2/a/../b/manifests/v1", "/v2/a/manifests/sha256:zz"):
        with pytest.raises(Exception) as info:
            classify(bad)
        assert getattr(info.value, "status", 0) == 400
    with pytest.raises(Exception) as info:
        classify("/v2/a/blobs/uploads/../../etc")
    assert getattr(info.value, "status", 0) in (400, 404)
