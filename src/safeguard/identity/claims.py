"""Typed claims of the two CI ID tokens Safeguard accepts: GitHub Actions and GitLab CI.

GitHub Actions (docs.github.com, "OpenID Connect reference", "OIDC token claims"; the claims an
issuer supports are listed in ``claims_supported`` of its discovery document): every custom
claim is a JSON string, numbers included (``"run_id": "7335215932"``). ``job_workflow_ref``
(``owner/repo/<path>@<ref>``) names the workflow file whose job asked for the token: for a job
of a reusable workflow it is the *called* workflow, otherwise the same as ``workflow_ref``.

GitLab CI (docs.gitlab.com, "OpenID Connect (OIDC) Authentication Using ID Tokens", "Token
payload"): strings as well, except ``runner_id`` (a number) and ``user_identities`` and
``groups_direct`` (arrays). ``ref`` is a short branch or tag name, ``ref_path`` the full ref;
``ci_config_ref_uri`` (``<host>/<project>//<config path>@<ref>``) names the pipeline
configuration, and is present only when the configuration lives in a repository of the instance.

Unknown claims are kept (``extra``) because both platforms add claims over time. The claims
Safeguard matches on are required; a token without them is not the kind of token it claims to
be and is refused with ``OIDC_CLAIM_INVALID``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, ClassVar, Final

from pydantic import BaseModel, ConfigDict, ValidationError

from safeguard.identity.errors import OIDCClaimInvalid, OIDCRequirementInvalid
from safeguard.identity.tokens import VerifiedToken

GITHUB_ISSUER: Final = "https://token.actions.githubusercontent.com"
GITLAB_ISSUER: Final = "https://gitlab.com"


class Platform(StrEnum):
    GITHUB = "github"
    GITLAB = "gitlab"


class _Claims(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", strict=True)

    iss: str
    sub: str
    aud: str | list[str]
    exp: int | float
    iat: int | float
    nbf: int | float | None = None
    jti: str | None = None


class GitHubClaims(_Claims):
    """A GitHub Actions ID token's claims (all custom claims are strings)."""

    repository: str
    repository_owner: str
    ref: str
    sha: str
    job_workflow_ref: str
    event_name: str
    run_id: str
    repository_id: str | None = None
    repository_owner_id: str | None = None
    repository_visibility: str | None = None
    ref_type: str | None = None
    ref_protected: str | None = None
    workflow: str | None = None
    workflow_ref: str | None = None
    workflow_sha: str | None = None
    job_workflow_sha: str | None = None
    run_attempt: str | None = None
    run_number: str | None = None
    environment: str | None = None
    actor: str | None = None
    actor_id: str | None = None
    head_ref: str | None = None
    base_ref: str | None = None
    runner_environment: str | None = None
    check_run_id: str | None = None
    enterprise: str | None = None
    enterprise_id: str | None = None

    platform: ClassVar[Platform] = Platform.GITHUB


class GitLabClaims(_Claims):
    """A GitLab CI ID token's claims."""

    project_path: str
    project_id: str
    namespace_path: str
    namespace_id: str
    ref: str
    ref_type: str
    sha: str
    pipeline_id: str
    pipeline_source: str
    job_id: str
    ref_path: str | None = None
    ref_protected: str | None = None
    ci_config_ref_uri: str | None = None
    ci_config_sha: str | None = None
    environment: str | None = None
    environment_protected: str | None = None
    deployment_tier: str | None = None
    environment_action: str | None = None
    user_id: str | None = None
    user_login: str | None = None
    user_email: str | None = None
    user_access_level: str | None = None
    user_identities: list[dict[str, Any]] | None = None
    groups_direct: list[str] | None = None
    runner_id: int | None = None
    runner_environment: str | None = None
    project_visibility: str | None = None
    job_project_path: str | None = None
    job_project_id: str | None = None
    job_namespace_path: str | None = None
    job_namespace_id: str | None = None

    platform: ClassVar[Platform] = Platform.GITLAB

    @property
    def full_ref(self) -> str:
        """``ref_path`` when the instance sends it, else built from ``ref_type`` and ``ref``."""
        if self.ref_path:
            return self.ref_path
        if self.ref_type == "tag":
            return f"refs/tags/{self.ref}"
        return f"refs/heads/{self.ref}"


CIClaims = GitHubClaims | GitLabClaims


def is_github_issuer(issuer: str) -> bool:
    """github.com's issuer, or a GitHub Enterprise Server one (``https://HOST/_services/token``)."""
    return issuer == GITHUB_ISSUER or (
        issuer.startswith("https://") and issuer.endswith("/_services/token")
    )


def platform_for_issuer(
    issuer: str, *, gitlab_issuers: Iterable[str] = (), github_issuers: Iterable[str] = ()
) -> Platform:
    """Which CI platform issues tokens as ``issuer``: GitHub's and gitlab.com's issuers are known;
    self-hosted GitLab (and GitHub Enterprise hosts not of the usual form) must be configured."""
    if issuer in set(github_issuers) or is_github_issuer(issuer):
        return Platform.GITHUB
    if issuer == GITLAB_ISSUER or issuer in set(gitlab_issuers):
        return Platform.GITLAB
    raise OIDCRequirementInvalid(
        f"the issuer {issuer!r} is not a known CI issuer",
        hint=f"GitHub Actions issues as {GITHUB_ISSUER}, gitlab.com as {GITLAB_ISSUER}; "
        "for a self-hosted GitLab, name its URL as a GitLab issuer (platform: gitlab)",
    )


def _describe_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "missing":
            parts.append(f"'{where}' is missing")
        else:
            parts.append(f"'{where}' has the wrong type ({err['msg']})")
    return "; ".join(parts)


def parse_claims(claims: Mapping[str, Any], platform: Platform) -> CIClaims:
    """Read ``claims`` as the ID-token claims of ``platform``; refuse a token that lacks them."""
    model: type[GitHubClaims] | type[GitLabClaims] = (
        GitHubClaims if platform is Platform.GITHUB else GitLabClaims
    )
    try:
        return model.model_validate(dict(claims))
    except ValidationError as exc:
        name = "GitHub Actions" if platform is Platform.GITHUB else "GitLab CI"
        raise OIDCClaimInvalid(
            f"the token is not a usable {name} ID token: {_describe_errors(exc)}",
            hint=f"send the ID token the {name} job issued, unmodified",
        ) from None


def claims_for(
    token: VerifiedToken,
    *,
    platform: Platform | None = None,
    gitlab_issuers: Iterable[str] = (),
    github_issuers: Iterable[str] = (),
) -> CIClaims:
    """The typed claims of a verified token, by ``platform`` or else by its issuer."""
    chosen = platform or platform_for_issuer(
        token.issuer, gitlab_issuers=gitlab_issuers, github_issuers=github_issuers
    )
    return parse_claims(token.claims, chosen)
