"""IdentityVerifier end to end: a CI token from the test issuer, verified and matched, and every
refusal the signing service must give, each with its code and reason."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from safeguard.identity import IdentityVerifier, OIDCRequirement, Platform, get_ci_token
from safeguard.identity.errors import (
    OIDCAlgorithmRefused,
    OIDCAudienceMismatch,
    OIDCIdentityNotMatched,
    OIDCIssuerMismatch,
    OIDCKeyUnknown,
    OIDCRequirementInvalid,
    OIDCTokenExpired,
    OIDCTokenMalformed,
)
from safeguard.identity.jwks import FileJWKS
from tests.fixtures.oidc import AUDIENCE, ServedIssuer, oidc_issuer, run_oidc_issuer

__all__ = ["oidc_issuer"]  # fixture used by name below


@pytest.fixture(scope="module")
def gitlab_issuer() -> Iterator[ServedIssuer]:
    with run_oidc_issuer() as served:
        yield served


@pytest.fixture
def verifier(
    oidc_issuer: ServedIssuer, gitlab_issuer: ServedIssuer, tmp_path: Path
) -> IdentityVerifier:
    (tmp_path / "gitlab-jwks.json").write_text(json.dumps(gitlab_issuer.jwks()))
    return IdentityVerifier(
        [
            OIDCRequirement(
                name="team-a-release",
                issuer=oidc_issuer.url,
                audience=AUDIENCE,
                repository="org/team-a",
                ref="refs/heads/main",
                workflow=".github/workflows/release.yml",
                platform=Platform.GITHUB,
            ),
            OIDCRequirement(
                name="team-a-tags",
                issuer=oidc_issuer.url,
                audience=AUDIENCE,
                repository="org/team-a",
                ref="refs/tags/v*",
                workflow=".github/workflows/release.yml",
                platform=Platform.GITHUB,
            ),
            OIDCRequirement(
                name="lab-release",
                issuer=gitlab_issuer.url,
                audience=AUDIENCE,
                project_path="my-group/my-project",
                ref="main",
                workflow=".gitlab-ci.yml",
                platform=Platform.GITLAB,
                jwks="gitlab-jwks.json",  # air-gapped: a copied JWKS file
            ),
        ],
        base_dir=tmp_path,
    )


async def test_token_from_the_actions_endpoint_matches(
    verifier: IdentityVerifier, oidc_issuer: ServedIssuer
) -> None:
    token = await get_ci_token(AUDIENCE, env=oidc_issuer.actions_env())
    match = await verifier.verify(token.value)
    assert match.name == "team-a-release"
    assert match.token.issuer == oidc_issuer.url
    assert match.claims.sha  # typed claims for the log entry and provenance


async def test_tag_release_matches_the_tag_identity(
    verifier: IdentityVerifier, oidc_issuer: ServedIssuer
) -> None:
    match = await verifier.verify(oidc_issuer.github_token(ref="refs/tags/v1.4.0"))
    assert match.name == "team-a-tags"


async def test_gitlab_token_with_a_jwks_file(
    verifier: IdentityVerifier, gitlab_issuer: ServedIssuer
) -> None:
    match = await verifier.verify(gitlab_issuer.gitlab_token(kid=gitlab_issuer.ec_kid))
    assert match.name == "lab-release"
    assert isinstance(verifier.source(gitlab_issuer.url), FileJWKS)
    assert gitlab_issuer.jwks_requests == 0  # the file, not the network


def reasons(exc: pytest.ExceptionInfo[OIDCIdentityNotMatched]) -> dict[str, list[str]]:
    assert isinstance(exc.value.detail, dict)
    return exc.value.detail


async def test_wrong_branch(verifier: IdentityVerifier, oidc_issuer: ServedIssuer) -> None:
    with pytest.raises(OIDCIdentityNotMatched) as info:
        await verifier.verify(oidc_issuer.github_token(ref="refs/heads/dev"))
    assert "ref is 'refs/heads/dev', expected 'refs/heads/main'" in reasons(info)["team-a-release"]
    assert "ref is 'refs/heads/dev', expected 'refs/tags/v*'" in reasons(info)["team-a-tags"]
    assert reasons(info)["lab-release"] == [
        f"issuer is '{oidc_issuer.url}', expected '{verifier.issuers[1]}'"
    ]


async def test_wrong_repository(verifier: IdentityVerifier, oidc_issuer: ServedIssuer) -> None:
    with pytest.raises(OIDCIdentityNotMatched) as info:
        await verifier.verify(oidc_issuer.github_token(repository="org/team-b"))
    assert "repository is 'org/team-b', expected 'org/team-a'" in reasons(info)["team-a-release"]


async def test_wrong_workflow(verifier: IdentityVerifier, oidc_issuer: ServedIssuer) -> None:
    with pytest.raises(OIDCIdentityNotMatched) as info:
        await verifier.verify(oidc_issuer.github_token(workflow=".github/workflows/ci.yml"))
    assert reasons(info)["team-a-release"][0].startswith(
        "workflow is '.github/workflows/ci.yml', expected '.github/workflows/release.yml'"
    )


async def test_reusable_workflow_from_elsewhere(
    verifier: IdentityVerifier, oidc_issuer: ServedIssuer
) -> None:
    token = oidc_issuer.github_token(
        job_workflow_ref="evil/tools/.github/workflows/release.yml@refs/heads/main"
    )
    with pytest.raises(OIDCIdentityNotMatched, match="workflow comes from 'evil/tools'"):
        await verifier.verify(token)


async def test_expired(verifier: IdentityVerifier, oidc_issuer: ServedIssuer) -> None:
    with pytest.raises(OIDCTokenExpired):
        await verifier.verify(oidc_issuer.github_token(issued_at=time.time() - 900))


async def test_wrong_audience(verifier: IdentityVerifier, oidc_issuer: ServedIssuer) -> None:
    with pytest.raises(OIDCAudienceMismatch, match="'sigstore'") as info:
        await verifier.verify(oidc_issuer.github_token(audience="sigstore"))
    assert info.value.code == "OIDC_AUDIENCE_MISMATCH"


@pytest.mark.parametrize("aud", [[{"a": 1}], 5, None, [["safeguard"]]])
async def test_hostile_audience_values(
    verifier: IdentityVerifier, oidc_issuer: ServedIssuer, aud: object
) -> None:
    body = oidc_issuer.github_claims()
    body["aud"] = aud
    with pytest.raises(OIDCAudienceMismatch):
        await verifier.verify(oidc_issuer.mint(body))


async def test_unknown_key(verifier: IdentityVerifier, oidc_issuer: ServedIssuer) -> None:
    token = oidc_issuer.unknown_kid_token(oidc_issuer.github_claims())
    with pytest.raises(OIDCKeyUnknown):
        await verifier.verify(token)


async def test_alg_none(verifier: IdentityVerifier, oidc_issuer: ServedIssuer) -> None:
    with pytest.raises(OIDCAlgorithmRefused):
        await verifier.verify(oidc_issuer.alg_none_token(oidc_issuer.github_claims()))


async def test_hmac_confusion(verifier: IdentityVerifier, oidc_issuer: ServedIssuer) -> None:
    token = oidc_issuer.hmac_confusion_token(oidc_issuer.github_claims())
    with pytest.raises(OIDCAlgorithmRefused, match="HS256"):
        await verifier.verify(token)


async def test_malformed(verifier: IdentityVerifier) -> None:
    with pytest.raises(OIDCTokenMalformed):
        await verifier.verify("a.b")


async def test_unconfigured_issuer_is_refused_without_fetching(
    verifier: IdentityVerifier, oidc_issuer: ServedIssuer
) -> None:
    before = oidc_issuer.discovery_requests + oidc_issuer.jwks_requests
    token = oidc_issuer.github_token(iss="https://evil.example")
    with pytest.raises(OIDCIssuerMismatch, match="not the issuer of any signer identity"):
        await verifier.verify(token)
    assert oidc_issuer.discovery_requests + oidc_issuer.jwks_requests == before


async def test_issuer_keys_cannot_sign_for_another_issuer(
    verifier: IdentityVerifier, oidc_issuer: ServedIssuer, gitlab_issuer: ServedIssuer
) -> None:
    # GitLab-shaped claims claiming the GitLab issuer, signed with the GitHub issuer's key
    token = oidc_issuer.mint(gitlab_issuer.gitlab_claims(), kid=oidc_issuer.rsa_kid)
    with pytest.raises(OIDCKeyUnknown):
        await verifier.verify(token)


def test_one_issuer_one_key_set() -> None:
    common = {"issuer": "https://gitlab.com", "audience": AUDIENCE, "project_path": "a/b"}
    with pytest.raises(OIDCRequirementInvalid, match="different key sets"):
        IdentityVerifier(
            [
                OIDCRequirement(name="a", jwks="one.json", **common),
                OIDCRequirement(name="b", jwks="two.json", **common),
            ]
        )
    with pytest.raises(OIDCRequirementInvalid, match="two identities"):
        IdentityVerifier([OIDCRequirement(name="a", **common), OIDCRequirement(name="a", **common)])
