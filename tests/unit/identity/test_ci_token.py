"""get_ci_token without a network: explicit tokens, files, environment variables, and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from safeguard.identity.ci_token import get_ci_token
from safeguard.identity.errors import CITokenUnavailable, OIDCTokenMalformed, OIDCURLRefused
from tests.fixtures.oidc import AUDIENCE, OIDCIssuer

ISSUER = OIDCIssuer()
TOKEN = ISSUER.github_token()
SIGSTORE_TOKEN = ISSUER.github_token(audience="sigstore")


async def test_explicit_token_value() -> None:
    got = await get_ci_token(AUDIENCE, identity_token=TOKEN + "\n", env={})
    assert got.value == TOKEN and got.source == "--identity-token"
    assert TOKEN not in repr(got)


async def test_explicit_token_file_path(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    got = await get_ci_token(AUDIENCE, identity_token=str(path), env={})
    assert got.value == TOKEN and got.source == f"file {path}"
    got = await get_ci_token(AUDIENCE, token_file=path, env={})
    assert got.value == TOKEN


async def test_token_file_problems(tmp_path: Path) -> None:
    with pytest.raises(CITokenUnavailable, match="cannot read"):
        await get_ci_token(AUDIENCE, token_file=tmp_path / "missing", env={})
    binary = tmp_path / "bin"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(OIDCTokenMalformed):
        await get_ci_token(AUDIENCE, token_file=binary, env={})
    empty = tmp_path / "empty"
    empty.write_text("")
    with pytest.raises(OIDCTokenMalformed, match="empty"):
        await get_ci_token(AUDIENCE, token_file=empty, env={})


async def test_explicit_token_for_another_audience() -> None:
    with pytest.raises(CITokenUnavailable, match="for audience") as info:
        await get_ci_token(AUDIENCE, identity_token=SIGSTORE_TOKEN, env={})
    assert info.value.code == "OIDC_CI_TOKEN_UNAVAILABLE"


async def test_explicit_garbage_is_malformed() -> None:
    with pytest.raises(OIDCTokenMalformed):
        await get_ci_token(AUDIENCE, identity_token="not-a-token", env={})


async def test_gitlab_style_environment_variable() -> None:
    got = await get_ci_token(AUDIENCE, env={"GITLAB_CI": "true", "SIGSTORE_ID_TOKEN": TOKEN})
    assert got.value == TOKEN and got.source == "$SIGSTORE_ID_TOKEN"


async def test_safeguard_variable_first_and_wrong_audience_skipped() -> None:
    env = {"SAFEGUARD_ID_TOKEN": SIGSTORE_TOKEN, "SIGSTORE_ID_TOKEN": TOKEN}
    assert (await get_ci_token(AUDIENCE, env=env)).source == "$SIGSTORE_ID_TOKEN"
    env = {"SAFEGUARD_ID_TOKEN": TOKEN, "SIGSTORE_ID_TOKEN": SIGSTORE_TOKEN}
    assert (await get_ci_token(AUDIENCE, env=env)).source == "$SAFEGUARD_ID_TOKEN"


async def test_only_wrong_audience_tokens_are_reported() -> None:
    env = {"GITLAB_CI": "true", "SIGSTORE_ID_TOKEN": SIGSTORE_TOKEN}
    with pytest.raises(CITokenUnavailable) as info:
        await get_ci_token(AUDIENCE, env=env)
    assert "$SIGSTORE_ID_TOKEN" in info.value.message and "'sigstore'" in info.value.message
    assert info.value.hint and "id_tokens" in info.value.hint and AUDIENCE in info.value.hint


async def test_explicit_beats_environment() -> None:
    other = ISSUER.github_token(repository="org/other")
    got = await get_ci_token(AUDIENCE, identity_token=other, env={"SIGSTORE_ID_TOKEN": TOKEN})
    assert got.value == other


async def test_laptop_cannot_sign() -> None:
    with pytest.raises(CITokenUnavailable) as info:
        await get_ci_token(AUDIENCE, env={"HOME": "/home/dev"})
    err = info.value
    assert "signing happens in CI only" in err.message and "laptop" in err.message
    assert err.hint and "id-token: write" in err.hint and "id_tokens" in err.hint
    assert err.exit_code == 2


async def test_github_job_without_id_token_permission() -> None:
    with pytest.raises(CITokenUnavailable, match="GitHub Actions job") as info:
        await get_ci_token(AUDIENCE, env={"GITHUB_ACTIONS": "true"})
    assert info.value.hint and "permissions: id-token: write" in info.value.hint


async def test_gitlab_job_without_id_tokens() -> None:
    with pytest.raises(CITokenUnavailable, match="GitLab CI job") as info:
        await get_ci_token(AUDIENCE, env={"GITLAB_CI": "true"})
    assert info.value.hint and f"aud: {AUDIENCE}" in info.value.hint


async def test_half_configured_github_request() -> None:
    env = {"ACTIONS_ID_TOKEN_REQUEST_URL": "https://example.invalid/token?api-version=2.0"}
    with pytest.raises(CITokenUnavailable, match="ACTIONS_ID_TOKEN_REQUEST_TOKEN"):
        await get_ci_token(AUDIENCE, env=env)


async def test_plain_http_request_url_is_refused() -> None:
    env = {
        "ACTIONS_ID_TOKEN_REQUEST_URL": "http://pipelines.example/token?api-version=2.0",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "x",
    }
    with pytest.raises(OIDCURLRefused):
        await get_ci_token(AUDIENCE, env=env)


async def test_no_audience() -> None:
    with pytest.raises(CITokenUnavailable, match="no audience"):
        await get_ci_token("", env={})
