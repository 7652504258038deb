"""JWKS sources against a real test issuer: discovery, URL, file, rotation, limits, failures."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest

from safeguard.identity.errors import (
    OIDCDiscoveryInvalid,
    OIDCJWKSInvalid,
    OIDCJWKSUnreachable,
    OIDCKeyUnknown,
    OIDCURLRefused,
)
from safeguard.identity.jwks import (
    URLJWKS,
    DiscoveredJWKS,
    FileJWKS,
    discovery_url,
    jwks_source,
)
from safeguard.identity.tokens import verify_token
from tests.fixtures.oidc import AUDIENCE, ServedIssuer, oidc_issuer, run_oidc_issuer
from tests.fixtures.ports import free_port

__all__ = ["oidc_issuer"]  # fixture used by name below


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_discovery_finds_the_jwks(oidc_issuer: ServedIssuer) -> None:
    source = DiscoveredJWKS(oidc_issuer.url)
    keys = await source.keys()
    assert set(keys.kids) == {k.kid for k in oidc_issuer.keys.values() if k.published}
    assert source.jwks_uri == oidc_issuer.jwks_url
    token = oidc_issuer.github_token()
    verified = await verify_token(token, issuer=oidc_issuer.url, audience=AUDIENCE, jwks=source)
    assert verified.key_id == oidc_issuer.rsa_kid


async def test_discovery_url_drops_a_trailing_slash() -> None:
    assert (
        discovery_url("https://gitlab.com/")
        == "https://gitlab.com/.well-known/openid-configuration"
    )
    assert (
        discovery_url("https://ghe.example/_services/token")
        == "https://ghe.example/_services/token/.well-known/openid-configuration"
    )


async def test_jwks_url_source(oidc_issuer: ServedIssuer) -> None:
    async with httpx.AsyncClient() as client:
        source = URLJWKS(oidc_issuer.jwks_url, client=client)
        token = oidc_issuer.github_token(kid=oidc_issuer.ec_kid)
        verified = await verify_token(token, issuer=oidc_issuer.url, audience=AUDIENCE, jwks=source)
        assert verified.header["alg"] == "ES256"


async def test_jwks_file_source_for_air_gapped_sites(
    oidc_issuer: ServedIssuer, tmp_path: Path
) -> None:
    path = tmp_path / "github-jwks.json"
    path.write_text(json.dumps(oidc_issuer.jwks()))
    source = jwks_source(oidc_issuer.url, "github-jwks.json", base_dir=tmp_path)
    assert isinstance(source, FileJWKS)
    token = oidc_issuer.github_token(kid=oidc_issuer.kid_for("EdDSA"))
    verified = await verify_token(token, issuer=oidc_issuer.url, audience=AUDIENCE, jwks=source)
    assert verified.header["alg"] == "EdDSA"


async def test_file_source_rereads_on_a_new_kid(tmp_path: Path) -> None:
    with run_oidc_issuer() as issuer:
        path = tmp_path / "jwks.json"
        path.write_text(json.dumps(issuer.jwks()))
        clock = Clock()
        source = FileJWKS(path, clock=clock, min_refetch_interval=30)
        await source.keys()
        new_kid = issuer.rotate()
        path.write_text(json.dumps(issuer.jwks()))  # the operator copies the new JWKS in
        token = issuer.github_token(kid=new_kid)
        with pytest.raises(OIDCKeyUnknown, match="refetching at most every 30s"):
            await verify_token(token, issuer=issuer.url, audience=AUDIENCE, jwks=source)
        clock.now += 31
        await verify_token(token, issuer=issuer.url, audience=AUDIENCE, jwks=source)


async def test_missing_or_bad_jwks_file(tmp_path: Path) -> None:
    with pytest.raises(OIDCJWKSInvalid, match="cannot read"):
        await FileJWKS(tmp_path / "nope.json").keys()
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(OIDCJWKSInvalid, match="not JSON"):
        await FileJWKS(bad).keys()
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 2048)
    with pytest.raises(OIDCJWKSInvalid, match="limit"):
        await FileJWKS(big, max_bytes=1024).keys()


def test_jwks_source_kinds(tmp_path: Path) -> None:
    assert isinstance(jwks_source("https://gitlab.com"), DiscoveredJWKS)
    assert isinstance(jwks_source("https://gitlab.com", ""), DiscoveredJWKS)
    url = jwks_source("https://gitlab.com", "https://gitlab.com/oauth/discovery/keys")
    assert isinstance(url, URLJWKS) and not isinstance(url, DiscoveredJWKS)
    abs_file = jwks_source("https://gitlab.com", str(tmp_path / "k.json"), base_dir=Path("/x"))
    assert isinstance(abs_file, FileJWKS) and abs_file.path == tmp_path / "k.json"


async def test_key_rotation_refetches_once_then_rate_limits() -> None:
    with run_oidc_issuer() as issuer:
        clock = Clock()
        source = URLJWKS(issuer.jwks_url, clock=clock, ttl=300, min_refetch_interval=30)
        old = issuer.github_token()
        await verify_token(old, issuer=issuer.url, audience=AUDIENCE, jwks=source)
        assert issuer.jwks_requests == 1

        clock.now += 60  # past the rate-limit window, within the TTL
        new_kid = issuer.rotate("ES256")
        new = issuer.github_token(kid=new_kid)
        await verify_token(new, issuer=issuer.url, audience=AUDIENCE, jwks=source)
        assert issuer.jwks_requests == 2  # the new kid triggered one refetch

        # a made-up kid right after: refused without another fetch
        stranger = issuer.unknown_kid_token(issuer.github_claims())
        with pytest.raises(OIDCKeyUnknown, match="refetching at most every 30s"):
            await verify_token(stranger, issuer=issuer.url, audience=AUDIENCE, jwks=source)
        assert issuer.jwks_requests == 2

        # a burst of made-up kids after the window: one refetch for all of them
        clock.now += 31
        results = await asyncio.gather(
            *(
                verify_token(
                    issuer.unknown_kid_token(issuer.github_claims()),
                    issuer=issuer.url,
                    audience=AUDIENCE,
                    jwks=source,
                )
                for _ in range(10)
            ),
            return_exceptions=True,
        )
        assert all(isinstance(r, OIDCKeyUnknown) for r in results)
        assert issuer.jwks_requests == 3
        assert any("just refetched" in str(r) for r in results)


async def test_ttl_expiry_drops_a_retired_key() -> None:
    with run_oidc_issuer() as issuer:
        clock = Clock()
        source = URLJWKS(issuer.jwks_url, clock=clock, ttl=300, min_refetch_interval=30)
        old_kid = issuer.rsa_kid
        token = issuer.github_token(kid=old_kid)
        await verify_token(token, issuer=issuer.url, audience=AUDIENCE, jwks=source)
        issuer.rotate("RS256", retire=old_kid)
        await verify_token(token, issuer=issuer.url, audience=AUDIENCE, jwks=source)  # cached
        clock.now += 301
        with pytest.raises(OIDCKeyUnknown):
            await verify_token(token, issuer=issuer.url, audience=AUDIENCE, jwks=source)
        assert issuer.jwks_requests == 2


async def test_stale_set_is_kept_briefly_when_the_issuer_is_down() -> None:
    clock = Clock()
    with run_oidc_issuer() as issuer:
        source = URLJWKS(
            issuer.jwks_url, clock=clock, ttl=300, min_refetch_interval=30, stale_if_error=600
        )
        token = issuer.github_token()
        url = issuer.url
        await source.keys()
    clock.now += 301  # expired, and the issuer is gone
    await verify_token(token, issuer=url, audience=AUDIENCE, jwks=source, now=time.time())
    clock.now += 700  # past ttl + stale_if_error
    with pytest.raises(OIDCJWKSUnreachable):
        await source.keys()


async def test_unreachable_issuer_backs_off() -> None:
    clock = Clock()
    source = URLJWKS(f"http://127.0.0.1:{free_port()}/jwks", clock=clock, error_backoff=5)
    with pytest.raises(OIDCJWKSUnreachable) as info:
        await source.keys()
    assert info.value.code == "OIDC_JWKS_UNREACHABLE" and info.value.exit_code == 3
    with pytest.raises(OIDCJWKSUnreachable):
        await source.keys()
    assert source.fetches == 1  # the second call re-raised without a fetch
    clock.now += 6
    with pytest.raises(OIDCJWKSUnreachable):
        await source.keys()
    assert source.fetches == 2


@pytest.mark.parametrize(
    ("path", "error", "match"),
    [
        ("/hostile/huge", OIDCJWKSInvalid, "limit"),
        ("/hostile/redirect", OIDCJWKSUnreachable, "HTTP 302"),
        ("/hostile/error", OIDCJWKSUnreachable, "HTTP 500"),
        ("/hostile/notjson", OIDCJWKSInvalid, "not JSON"),
        ("/hostile/slow", OIDCJWKSUnreachable, "in time"),
        ("/nowhere", OIDCJWKSUnreachable, "HTTP 404"),
    ],
)
async def test_hostile_jwks_endpoints(
    oidc_issuer: ServedIssuer, path: str, error: type[Exception], match: str
) -> None:
    source = URLJWKS(oidc_issuer.url + path, timeout=0.3)
    with pytest.raises(error, match=match):
        await source.keys()


async def test_discovery_naming_another_issuer_is_refused(oidc_issuer: ServedIssuer) -> None:
    source = DiscoveredJWKS(oidc_issuer.url + "/impostor")
    with pytest.raises(OIDCDiscoveryInvalid, match=r"names issuer 'https://evil\.example'") as info:
        await source.keys()
    assert info.value.code == "OIDC_DISCOVERY_INVALID"


@pytest.mark.parametrize(
    "url",
    [
        "http://token.actions.githubusercontent.com",
        "ftp://example.com/jwks",
        "https://user:pw@example.com/jwks",
        "https:///jwks",
        "https://example.com/jwks#frag",
        "https://exa mple.com/jwks",
        "jwks.json",
    ],
)
def test_urls_must_be_https(url: str) -> None:
    with pytest.raises(OIDCURLRefused) as info:
        URLJWKS(url)
    assert info.value.code == "OIDC_URL_REFUSED"


def test_issuer_with_query_is_refused() -> None:
    with pytest.raises(OIDCURLRefused, match="query"):
        DiscoveredJWKS("https://issuer.example?x=1")


def test_loopback_http_is_allowed() -> None:
    URLJWKS("http://127.0.0.1:1/jwks")
    URLJWKS("http://localhost:1/jwks")
    URLJWKS("http://[::1]:1/jwks")
