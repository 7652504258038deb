"""The GitHub Actions token request against the test issuer's ACTIONS_ID_TOKEN_REQUEST_URL."""

from __future__ import annotations

import httpx
import pytest

from safeguard.identity.ci_token import get_ci_token
from safeguard.identity.errors import CITokenRequestFailed
from safeguard.identity.jwks import DiscoveredJWKS
from safeguard.identity.tokens import parse_token, verify_token
from tests.fixtures.oidc import AUDIENCE, ServedIssuer, oidc_issuer
from tests.fixtures.ports import free_port

__all__ = ["oidc_issuer"]  # fixture used by name below


async def test_github_actions_request_appends_the_audience(oidc_issuer: ServedIssuer) -> None:
    got = await get_ci_token(AUDIENCE, env=oidc_issuer.actions_env())
    assert got.source == "github-actions"
    request = oidc_issuer.token_requests[-1]
    assert request["query"] == f"api-version=2.0&audience={AUDIENCE}"  # query kept, & appended
    verified = await verify_token(
        got.value, issuer=oidc_issuer.url, audience=AUDIENCE, jwks=DiscoveredJWKS(oidc_issuer.url)
    )
    assert verified.claims["repository"] == "org/team-a"


async def test_audience_is_url_encoded(oidc_issuer: ServedIssuer) -> None:
    audience = "https://safeguard.internal/sign?x=1&y=2"
    async with httpx.AsyncClient() as client:
        got = await get_ci_token(audience, env=oidc_issuer.actions_env(), client=client)
    assert oidc_issuer.token_requests[-1]["audience"] == audience
    assert parse_token(got.value).claims["aud"] == audience


async def test_request_url_without_a_query(oidc_issuer: ServedIssuer) -> None:
    env = oidc_issuer.actions_env()
    env["ACTIONS_ID_TOKEN_REQUEST_URL"] = f"{oidc_issuer.url}/_apis/actionstoken"
    with pytest.raises(CITokenRequestFailed, match="HTTP 400"):  # the endpoint wants api-version
        await get_ci_token(AUDIENCE, env=env)
    assert oidc_issuer.token_requests[-1]["query"] == f"audience={AUDIENCE}"  # joined with ?


async def test_wrong_request_token_explains_the_permission(oidc_issuer: ServedIssuer) -> None:
    env = oidc_issuer.actions_env(ACTIONS_ID_TOKEN_REQUEST_TOKEN="stolen")
    with pytest.raises(CITokenRequestFailed, match="HTTP 401") as info:
        await get_ci_token(AUDIENCE, env=env)
    assert info.value.hint and "id-token: write" in info.value.hint
    assert info.value.code == "OIDC_CI_TOKEN_REQUEST_FAILED" and info.value.exit_code == 3


async def test_token_endpoint_down() -> None:
    env = {
        "ACTIONS_ID_TOKEN_REQUEST_URL": f"http://127.0.0.1:{free_port()}/t?api-version=2.0",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "x",
    }
    with pytest.raises(CITokenRequestFailed, match="could not be reached"):
        await get_ci_token(AUDIENCE, env=env)


@pytest.mark.parametrize(
    ("path", "match"),
    [("/jwks", "without a token 'value'"), ("/hostile/notjson", "not JSON")],
)
async def test_token_endpoint_answers_garbage(
    oidc_issuer: ServedIssuer, path: str, match: str
) -> None:
    env = {
        "ACTIONS_ID_TOKEN_REQUEST_URL": f"{oidc_issuer.url}{path}?api-version=2.0",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "x",
    }
    with pytest.raises(CITokenRequestFailed, match=match):
        await get_ci_token(AUDIENCE, env=env)
