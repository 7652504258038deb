"""Matching a verified CI ID token to exactly one configured signer identity (a build role).

An ``OIDCRequirement`` is what one policy identity asks of a token: its issuer and audience, and
for GitHub Actions the repository, ref, workflow file and environment, or for GitLab CI the
project path, ref, ref type, CI configuration and pipeline source. ``match_identity`` checks a
token against every requirement and succeeds only when exactly one matches: none is a refusal
that says, per identity, what differed; two or more is an ambiguity refusal, because a signature
must be attributable to one build role.

**Which workflow ran.** For GitHub the workflow is checked against ``job_workflow_ref``
(``owner/repo/<path>@<ref>``), not ``workflow_ref``. For a job that runs a reusable workflow,
``workflow_ref`` and ``repository`` describe the *caller*, while ``job_workflow_ref`` names the
workflow file whose steps actually run and asked for the token; for an ordinary job both are the
same. Matching on ``workflow_ref`` would let any workflow of the named repository sign by
calling a reusable workflow from anywhere, including another repository. So the requirement
``repository: org/team-a, workflow: .github/workflows/release.yml, ref: refs/heads/main`` holds
only when ``job_workflow_ref`` is exactly
``org/team-a/.github/workflows/release.yml@<a ref matching refs/heads/main>`` *and* the token's
``repository`` is ``org/team-a`` and its ``ref`` matches: a workflow from another repository is
refused even when ``repository`` matches. This is the same field Fulcio puts in a GitHub
certificate's subject (``https://github.com/`` + ``job_workflow_ref``) and its Build Signer URI.
For GitLab the analogue is ``ci_config_ref_uri`` (``<host>/<project>//<path>@<ref>``), Fulcio's
GitLab Build Signer URI.

Refs are matched exactly, or as globs when they contain ``*``, with ``safeguard.core.glob``, the
one glob implementation (``*`` within a path segment, a lone ``*`` one non-empty segment, ``**``
zero or more whole segments, as everywhere in ``safeguard.yaml``): ``refs/tags/v*``. A
``ci_config_ref_uri`` requirement may glob only its ref (after the last ``@``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from safeguard.core.glob import GlobInvalid, check_glob, exact_or_glob, glob_matches
from safeguard.identity.claims import (
    CIClaims,
    GitHubClaims,
    GitLabClaims,
    Platform,
    parse_claims,
    platform_for_issuer,
)
from safeguard.identity.errors import (
    OIDCClaimInvalid,
    OIDCIdentityAmbiguous,
    OIDCIdentityNotMatched,
    OIDCRequirementInvalid,
)
from safeguard.identity.jwks import check_issuer
from safeguard.identity.tokens import VerifiedToken

_GITLAB_ONLY: Final = ("project_path", "ci_config_ref_uri", "pipeline_source")
_GITHUB_ONLY: Final = ("event_name",)


def glob_match(pattern: str, value: str) -> bool:
    """Exact match, or a glob (``safeguard.core.glob``) when ``pattern`` has ``*``."""
    return exact_or_glob(pattern, value)


def _config_uri_match(pattern: str, value: str) -> bool:
    """``ci_config_ref_uri``: the ``<host>/<project>//<path>`` part exactly, the ref after the
    last ``@`` as a glob (the URI's ``//`` is an empty segment, which no glob may have)."""
    if "*" not in pattern:
        return pattern == value
    head, _, ref = pattern.rpartition("@")
    actual_head, at, actual_ref = value.rpartition("@")
    return bool(at) and head == actual_head and glob_matches(ref, actual_ref)


def _check_pattern(field: str, value: str, *, uri: bool = False) -> str | None:
    """Why ``value`` (a ``*`` pattern) is not a glob this field can use, or ``None``."""
    if "*" not in value:
        return None
    if uri:
        head, at, ref = value.rpartition("@")
        if not at or "*" in head:
            return f"{field} {value!r} may use * only in the ref after its last '@'"
        value = ref
    try:
        check_glob(value)
    except GlobInvalid as exc:
        return f"{field}: {exc.message}"
    return None


@dataclass(frozen=True, slots=True)
class OIDCRequirement:
    """What one signer identity requires of a CI ID token. ``None`` fields are not checked.

    ``platform`` is inferred from the issuer when not given (GitHub's issuer, GitHub Enterprise
    ``https://HOST/_services/token``, ``https://gitlab.com``); a self-hosted GitLab needs
    ``platform=Platform.GITLAB``. For GitLab, ``repository`` is accepted as another name for
    ``project_path``. ``jwks`` is where the issuer's keys come from (``None``: discovery from the
    issuer; an https URL; or a file path): see ``safeguard.identity.jwks.jwks_source``.
    """

    name: str
    issuer: str
    audience: str
    repository: str | None = None
    ref: str | None = None
    workflow: str | None = None
    environment: str | None = None
    ref_type: str | None = None
    ref_protected: bool | None = None
    event_name: str | None = None
    project_path: str | None = None
    ci_config_ref_uri: str | None = None
    pipeline_source: str | None = None
    platform: Platform | None = None
    jwks: str | None = None

    def __post_init__(self) -> None:
        def bad(message: str, hint: str | None = None) -> OIDCRequirementInvalid:
            return OIDCRequirementInvalid(f"identity {self.name!r}: {message}", hint=hint)

        if not isinstance(self.name, str) or not self.name:
            raise OIDCRequirementInvalid("an identity has no name")
        check_issuer(self.issuer)
        if not isinstance(self.audience, str) or not self.audience:
            raise bad("no audience", "name the audience the CI job requests its token for")
        try:
            platform = Platform(self.platform or platform_for_issuer(self.issuer))
        except ValueError:
            raise bad(f"platform {self.platform!r} is not 'github' or 'gitlab'") from None
        object.__setattr__(self, "platform", platform)
        for field_name in ("repository", "ref", "workflow", "environment", "project_path"):
            value = getattr(self, field_name)
            if value is not None and (not value or any(c.isspace() for c in value)):
                raise bad(f"{field_name} {value!r} is empty or has whitespace")
        for field_name, uri in (("ref", False), ("ci_config_ref_uri", True)):
            value = getattr(self, field_name)
            problem = _check_pattern(field_name, value, uri=uri) if value is not None else None
            if problem:
                raise bad(problem, "globs know * (within a segment) and ** (whole segments)")
        if self.workflow is not None:
            workflow = self.workflow.removeprefix("./")
            if workflow.startswith("/") or "@" in workflow or not workflow:
                raise bad(
                    f"workflow {self.workflow!r} must be a path inside the repository without '@'",
                    "for example .github/workflows/release.yml; the ref goes in 'ref'",
                )
            object.__setattr__(self, "workflow", workflow)
        if platform is Platform.GITHUB:
            wrong = [f for f in _GITLAB_ONLY if getattr(self, f) is not None]
            if wrong:
                raise bad(f"{', '.join(wrong)} apply to GitLab CI tokens, not GitHub Actions")
            if not self.repository or self.repository.count("/") != 1:
                raise bad(
                    "a GitHub Actions identity needs 'repository' as owner/name",
                    "without it any repository on the platform would match",
                )
        else:
            wrong = [f for f in _GITHUB_ONLY if getattr(self, f) is not None]
            if wrong:
                raise bad(f"{', '.join(wrong)} apply to GitHub Actions tokens, not GitLab CI")
            if self.repository and self.project_path and self.repository != self.project_path:
                raise bad("repository and project_path differ; give one")
            if not (self.project_path or self.repository):
                raise bad(
                    "a GitLab CI identity needs 'project_path' (group/project)",
                    "without it any project on the instance would match",
                )

    @property
    def resolved_platform(self) -> Platform:
        assert self.platform is not None
        return self.platform

    @property
    def project(self) -> str:
        """The repository (GitHub) or project path (GitLab) this identity names."""
        value = self.project_path or self.repository
        assert value is not None
        return value


@dataclass(frozen=True, slots=True)
class IdentityMatch:
    """The one identity a token matched, with its typed claims."""

    requirement: OIDCRequirement
    claims: CIClaims
    token: VerifiedToken

    @property
    def name(self) -> str:
        return self.requirement.name

    @property
    def build_signer_uri(self) -> str | None:
        """The workflow that signed, as Fulcio's Build Signer URI writes it."""
        if isinstance(self.claims, GitHubClaims):
            return f"https://github.com/{self.claims.job_workflow_ref}"
        if self.claims.ci_config_ref_uri:
            return f"https://{self.claims.ci_config_ref_uri}"
        return None


def _is(field: str, actual: str | None, expected: str) -> str:
    shown = "not set" if actual is None else f"{actual!r}"
    return f"{field} is {shown}, expected {expected!r}"


def _ref_forms(req_ref: str) -> list[str]:
    if req_ref.startswith("refs/"):
        return [req_ref]
    return [f"refs/heads/{req_ref}", f"refs/tags/{req_ref}"]


def _workflow_mismatch(
    *,
    field: str,
    actual: str | None,
    project: str,
    separator: str,
    workflow: str,
    ref_patterns: list[str] | None,
    what: str,
) -> str | None:
    """Check ``<project><separator><workflow>@<ref>`` (GitHub ``/``, GitLab ``//``)."""
    expected = f"{project}{separator}{workflow}@{ref_patterns[0] if ref_patterns else '*'}"
    if actual is None:
        return f"{field} is not in the token, expected {expected!r}"
    if not actual.startswith(project + separator):
        gitlab = separator == "//"
        source = actual.partition("//")[0] if gitlab else "/".join(actual.split("/")[:2])
        return (
            f"{what} comes from {source!r} ({field} {actual!r}), expected one of {project!r}"
            f" ({expected!r})"
        )
    rest = actual[len(project + separator) :]
    prefix = f"{project}{separator}{workflow}@"
    if not actual.startswith(prefix):
        path = rest.partition("@")[0]
        return f"{what} is {path!r}, expected {workflow!r} ({field} {actual!r})"
    ran_at = actual[len(prefix) :]
    if ref_patterns and not any(glob_match(p, ran_at) for p in ref_patterns):
        return f"{what} ref is {ran_at!r}, expected {ref_patterns[0]!r} ({field} {actual!r})"
    return None


def _github_mismatches(req: OIDCRequirement, c: GitHubClaims) -> list[str]:
    out: list[str] = []
    assert req.repository is not None
    if c.repository != req.repository:
        out.append(_is("repository", c.repository, req.repository))
    if req.ref is not None and not glob_match(req.ref, c.ref):
        out.append(_is("ref", c.ref, req.ref))
    if req.ref_type is not None and c.ref_type != req.ref_type:
        out.append(_is("ref_type", c.ref_type, req.ref_type))
    if req.workflow is not None:
        problem = _workflow_mismatch(
            field="job_workflow_ref",
            actual=c.job_workflow_ref,
            project=req.repository,
            separator="/",
            workflow=req.workflow,
            ref_patterns=[req.ref] if req.ref is not None else None,
            what="workflow",
        )
        if problem:
            out.append(problem)
    if req.environment is not None and c.environment != req.environment:
        out.append(_is("environment", c.environment, req.environment))
    if req.event_name is not None and c.event_name != req.event_name:
        out.append(_is("event_name", c.event_name, req.event_name))
    if req.ref_protected is not None and (c.ref_protected == "true") != req.ref_protected:
        out.append(_is("ref_protected", c.ref_protected, str(req.ref_protected).lower()))
    return out


def _gitlab_mismatches(req: OIDCRequirement, c: GitLabClaims) -> list[str]:
    out: list[str] = []
    project = req.project
    if c.project_path != project:
        out.append(_is("project_path", c.project_path, project))
    if req.ref is not None:
        actual = c.full_ref if req.ref.startswith("refs/") else c.ref
        if not glob_match(req.ref, actual):
            out.append(_is("ref", actual, req.ref))
    if req.ref_type is not None and c.ref_type != req.ref_type:
        out.append(_is("ref_type", c.ref_type, req.ref_type))
    if req.ref_protected is not None and (c.ref_protected == "true") != req.ref_protected:
        out.append(_is("ref_protected", c.ref_protected, str(req.ref_protected).lower()))
    if req.ci_config_ref_uri is not None and (
        c.ci_config_ref_uri is None
        or not _config_uri_match(req.ci_config_ref_uri, c.ci_config_ref_uri)
    ):
        out.append(_is("ci_config_ref_uri", c.ci_config_ref_uri, req.ci_config_ref_uri))
    if req.workflow is not None:
        host = urlsplit(req.issuer).netloc
        problem = _workflow_mismatch(
            field="ci_config_ref_uri",
            actual=c.ci_config_ref_uri,
            project=f"{host}/{project}",
            separator="//",
            workflow=req.workflow,
            ref_patterns=_ref_forms(req.ref) if req.ref is not None else None,
            what="CI configuration",
        )
        if problem:
            out.append(problem)
    if req.pipeline_source is not None and c.pipeline_source != req.pipeline_source:
        out.append(_is("pipeline_source", c.pipeline_source, req.pipeline_source))
    if req.environment is not None and c.environment != req.environment:
        out.append(_is("environment", c.environment, req.environment))
    return out


def mismatches(token: VerifiedToken, req: OIDCRequirement) -> tuple[list[str], CIClaims | None]:
    """What in ``token`` does not satisfy ``req`` (empty when it matches), and its claims."""
    out: list[str] = []
    if token.issuer != req.issuer:
        out.append(_is("issuer", token.issuer, req.issuer))
        return out, None
    if req.audience not in token.audiences:
        out.append(f"audience is {list(token.audiences)!r}, expected {req.audience!r}")
    try:
        claims = parse_claims(token.claims, req.resolved_platform)
    except OIDCClaimInvalid as exc:
        out.append(exc.message)
        return out, None
    if isinstance(claims, GitHubClaims):
        out.extend(_github_mismatches(req, claims))
    else:
        out.extend(_gitlab_mismatches(req, claims))
    return out, claims


def _check_unique_names(requirements: Sequence[OIDCRequirement]) -> None:
    seen: set[str] = set()
    for req in requirements:
        if req.name in seen:
            raise OIDCRequirementInvalid(f"two identities are named {req.name!r}")
        seen.add(req.name)


def match_identity(token: VerifiedToken, requirements: Iterable[OIDCRequirement]) -> IdentityMatch:
    """The single requirement ``token`` satisfies; refuse none (saying why per identity) or many."""
    reqs = list(requirements)
    _check_unique_names(reqs)
    if not reqs:
        raise OIDCIdentityNotMatched(
            "no signer identities are configured, so no token can match",
            hint="add an identity with an oidc section to the policy",
        )
    matched: list[IdentityMatch] = []
    reasons: dict[str, list[str]] = {}
    for req in reqs:
        problems, claims = mismatches(token, req)
        if problems:
            reasons[req.name] = problems
        else:
            assert claims is not None
            matched.append(IdentityMatch(requirement=req, claims=claims, token=token))
    if len(matched) == 1:
        return matched[0]
    if matched:
        names = [m.name for m in matched]
        raise OIDCIdentityAmbiguous(
            f"the token matches {len(names)} identities ({', '.join(names)}); "
            "a signature must belong to exactly one build role",
            hint="make the identities' repository/ref/workflow/environment requirements disjoint",
            detail={"matched": names},
        )
    lines = [f"  {name}: {'; '.join(problems)}" for name, problems in reasons.items()]
    raise OIDCIdentityNotMatched(
        "the token matches no signer identity:\n" + "\n".join(lines),
        hint="sign from the repository, ref and workflow the identity names, or update the "
        "identity in the policy",
        detail=reasons,
    )
