"""Typed claims: the example payloads of GitHub's and GitLab's docs, and tokens lacking claims."""

from __future__ import annotations

from typing import Any

import pytest

from safeguard.identity.claims import (
    GITHUB_ISSUER,
    GITLAB_ISSUER,
    GitHubClaims,
    GitLabClaims,
    Platform,
    claims_for,
    parse_claims,
    platform_for_issuer,
)
from safeguard.identity.errors import OIDCClaimInvalid, OIDCRequirementInvalid
from safeguard.identity.tokens import VerifiedToken

# docs.github.com, "OpenID Connect reference" > "Understanding the OIDC token" (example payload).
GITHUB_DOCS_EXAMPLE: dict[str, Any] = {
    "jti": "example-id",
    "sub": "repo:octo-org/octo-repo:environment:prod",
    "environment": "prod",
    "aud": "https://github.com/octo-org",
    "ref": "refs/heads/main",
    "sha": "example-sha",
    "repository": "octo-org/octo-repo",
    "repository_owner": "octo-org",
    "actor_id": "12",
    "repository_visibility": "private",
    "repository_id": "74",
    "repository_owner_id": "65",
    "run_id": "example-run-id",
    "run_number": "10",
    "run_attempt": "2",
    "runner_environment": "github-hosted",
    "actor": "octocat",
    "workflow": "example-workflow",
    "head_ref": "",
    "base_ref": "",
    "event_name": "workflow_dispatch",
    "ref_type": "branch",
    "job_workflow_ref": "octo-org/octo-automation/.github/workflows/oidc.yml@refs/heads/main",
    "iss": "https://token.actions.githubusercontent.com",
    "nbf": 1632492967,
    "exp": 1632493867,
    "iat": 1632493567,
}

# docs.gitlab.com, "OpenID Connect (OIDC) Authentication Using ID Tokens" > "Token payload".
GITLAB_DOCS_EXAMPLE: dict[str, Any] = {
    "namespace_id": "72",
    "namespace_path": "my-group",
    "project_id": "20",
    "project_path": "my-group/my-project",
    "user_id": "1",
    "user_login": "sample-user",
    "user_email": "sample-user@example.com",
    "user_identities": [
        {"provider": "github", "extern_uid": "2435223452345"},
        {"provider": "bitbucket", "extern_uid": "john.smith"},
    ],
    "pipeline_id": "574",
    "pipeline_source": "push",
    "job_id": "302",
    "ref": "feature-branch-1",
    "ref_type": "branch",
    "ref_path": "refs/heads/feature-branch-1",
    "ref_protected": "false",
    "groups_direct": ["mygroup/mysubgroup", "myothergroup/myothersubgroup"],
    "environment": "test-environment2",
    "environment_protected": "false",
    "deployment_tier": "testing",
    "environment_action": "start",
    "runner_id": 1,
    "runner_environment": "self-hosted",
    "sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
    "project_visibility": "public",
    "ci_config_ref_uri": "gitlab.example.com/my-group/my-project//.gitlab-ci.yml@refs/heads/main",
    "ci_config_sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
    "jti": "235b3a54-b797-45c7-ae9a-f72d7bc6ef5b",
    "iss": "https://gitlab.example.com",
    "iat": 1681395193,
    "nbf": 1681395188,
    "exp": 1681398793,
    "sub": "project_path:my-group/my-project:ref_type:branch:ref:feature-branch-1",
    "aud": "https://vault.example.com",
}


def test_github_docs_example() -> None:
    claims = parse_claims(GITHUB_DOCS_EXAMPLE, Platform.GITHUB)
    assert isinstance(claims, GitHubClaims)
    assert claims.platform is Platform.GITHUB
    assert claims.repository == "octo-org/octo-repo"
    assert claims.job_workflow_ref.startswith("octo-org/octo-automation/")
    assert claims.environment == "prod"
    assert claims.runner_environment == "github-hosted"
    assert claims.workflow_ref is None  # older payloads lack it; matching does not need it


def test_gitlab_docs_example() -> None:
    claims = parse_claims(GITLAB_DOCS_EXAMPLE, Platform.GITLAB)
    assert isinstance(claims, GitLabClaims)
    assert claims.project_path == "my-group/my-project"
    assert claims.runner_id == 1
    assert claims.full_ref == "refs/heads/feature-branch-1"
    assert claims.user_identities and claims.user_identities[1]["extern_uid"] == "john.smith"
    assert claims.ci_config_ref_uri and "//.gitlab-ci.yml@" in claims.ci_config_ref_uri


def test_gitlab_full_ref_without_ref_path() -> None:
    body = {k: v for k, v in GITLAB_DOCS_EXAMPLE.items() if k != "ref_path"}
    assert parse_claims(body, Platform.GITLAB).full_ref == "refs/heads/feature-branch-1"  # type: ignore[union-attr]
    body.update(ref="v1.2.0", ref_type="tag")
    assert parse_claims(body, Platform.GITLAB).full_ref == "refs/tags/v1.2.0"  # type: ignore[union-attr]


def test_unknown_claims_are_kept() -> None:
    claims = parse_claims(
        {**GITHUB_DOCS_EXAMPLE, "enterprise_id": "2", "new_claim": [1]}, Platform.GITHUB
    )
    assert claims.model_extra == {"new_claim": [1]}
    assert claims.enterprise_id == "2"  # type: ignore[union-attr]


@pytest.mark.parametrize("missing", ["repository", "ref", "job_workflow_ref", "sha"])
def test_github_token_without_a_needed_claim(missing: str) -> None:
    body = {k: v for k, v in GITHUB_DOCS_EXAMPLE.items() if k != missing}
    with pytest.raises(OIDCClaimInvalid, match=f"'{missing}' is missing") as info:
        parse_claims(body, Platform.GITHUB)
    assert info.value.code == "OIDC_CLAIM_INVALID"


def test_github_numbers_must_be_strings() -> None:
    with pytest.raises(OIDCClaimInvalid, match="'run_id' has the wrong type"):
        parse_claims({**GITHUB_DOCS_EXAMPLE, "run_id": 7335215932}, Platform.GITHUB)


@pytest.mark.parametrize("missing", ["project_path", "ref_type", "pipeline_source"])
def test_gitlab_token_without_a_needed_claim(missing: str) -> None:
    body = {k: v for k, v in GITLAB_DOCS_EXAMPLE.items() if k != missing}
    with pytest.raises(OIDCClaimInvalid, match="GitLab CI"):
        parse_claims(body, Platform.GITLAB)


def test_a_gitlab_token_is_not_a_github_token() -> None:
    with pytest.raises(OIDCClaimInvalid, match="GitHub Actions"):
        parse_claims(GITLAB_DOCS_EXAMPLE, Platform.GITHUB)


def test_platform_by_issuer() -> None:
    assert platform_for_issuer(GITHUB_ISSUER) is Platform.GITHUB
    assert platform_for_issuer("https://ghe.example.com/_services/token") is Platform.GITHUB
    assert platform_for_issuer(GITLAB_ISSUER) is Platform.GITLAB
    assert (
        platform_for_issuer(
            "https://gitlab.example.com", gitlab_issuers=["https://gitlab.example.com"]
        )
        is Platform.GITLAB
    )
    with pytest.raises(OIDCRequirementInvalid, match="not a known CI issuer"):
        platform_for_issuer("https://gitlab.example.com")


def test_claims_for_chooses_by_issuer() -> None:
    token = VerifiedToken(claims=GITHUB_DOCS_EXAMPLE, header={"alg": "RS256"}, key_id="k")
    assert isinstance(claims_for(token), GitHubClaims)
    lab = VerifiedToken(claims=GITLAB_DOCS_EXAMPLE, header={"alg": "RS256"}, key_id="k")
    assert isinstance(claims_for(lab, gitlab_issuers=["https://gitlab.example.com"]), GitLabClaims)
    assert isinstance(claims_for(lab, platform=Platform.GITLAB), GitLabClaims)
