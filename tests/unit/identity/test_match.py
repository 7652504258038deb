"""match_identity: exactly one identity, and per-identity reasons for every mismatch."""

from __future__ import annotations

from typing import Any

import pytest

from safeguard.identity.claims import GITHUB_ISSUER, GITLAB_ISSUER, GitHubClaims, Platform
from safeguard.identity.errors import (
    OIDCIdentityAmbiguous,
    OIDCIdentityNotMatched,
    OIDCRequirementInvalid,
    OIDCURLRefused,
)
from safeguard.identity.match import OIDCRequirement, glob_match, match_identity
from safeguard.identity.tokens import VerifiedToken
from tests.fixtures.oidc import AUDIENCE, OIDCIssuer

GH = OIDCIssuer(url=GITHUB_ISSUER)
GL = OIDCIssuer(url=GITLAB_ISSUER)

RELEASE = OIDCRequirement(
    name="team-a-release",
    issuer=GITHUB_ISSUER,
    audience=AUDIENCE,
    repository="org/team-a",
    ref="refs/heads/main",
    workflow=".github/workflows/release.yml",
)


def gh(**claims: Any) -> VerifiedToken:
    return VerifiedToken(claims=GH.github_claims(**claims), header={"alg": "RS256"}, key_id="k")


def gl(**claims: Any) -> VerifiedToken:
    return VerifiedToken(claims=GL.gitlab_claims(**claims), header={"alg": "RS256"}, key_id="k")


def refused(token: VerifiedToken, *reqs: OIDCRequirement) -> dict[str, list[str]]:
    with pytest.raises(OIDCIdentityNotMatched) as info:
        match_identity(token, reqs or [RELEASE])
    assert info.value.code == "OIDC_IDENTITY_NOT_MATCHED"
    assert isinstance(info.value.detail, dict)
    return info.value.detail


# --- GitHub Actions ---------------------------------------------------------------------


def test_the_release_workflow_on_main_matches() -> None:
    match = match_identity(gh(), [RELEASE])
    assert match.name == "team-a-release" and match.requirement is RELEASE
    assert isinstance(match.claims, GitHubClaims)
    assert match.build_signer_uri == (
        "https://github.com/org/team-a/.github/workflows/release.yml@refs/heads/main"
    )


def test_wrong_branch() -> None:
    reasons = refused(gh(ref="refs/heads/dev"))["team-a-release"]
    assert "ref is 'refs/heads/dev', expected 'refs/heads/main'" in reasons
    assert any(r.startswith("workflow ref is 'refs/heads/dev'") for r in reasons)


def test_refusal_message_names_each_identity() -> None:
    other = OIDCRequirement(
        name="team-b", issuer=GITHUB_ISSUER, audience=AUDIENCE, repository="org/team-b"
    )
    with pytest.raises(OIDCIdentityNotMatched) as info:
        match_identity(gh(ref="refs/heads/dev"), [RELEASE, other])
    msg = info.value.message
    assert "team-a-release: ref is 'refs/heads/dev', expected 'refs/heads/main'" in msg
    assert "team-b: repository is 'org/team-a', expected 'org/team-b'" in msg
    assert info.value.hint


def test_wrong_repository() -> None:
    reasons = refused(gh(repository="org/team-b"))["team-a-release"]
    assert "repository is 'org/team-b', expected 'org/team-a'" in reasons
    assert any("workflow comes from 'org/team-b'" in r for r in reasons)


def test_wrong_workflow() -> None:
    reasons = refused(gh(workflow=".github/workflows/ci.yml"))["team-a-release"]
    assert reasons == [
        "workflow is '.github/workflows/ci.yml', expected '.github/workflows/release.yml' "
        "(job_workflow_ref 'org/team-a/.github/workflows/ci.yml@refs/heads/main')"
    ]


def test_reusable_workflow_from_another_repository_is_refused() -> None:
    """repository, ref and even workflow_ref are right; the job ran evil/tools' workflow."""
    token = gh(job_workflow_ref="evil/tools/.github/workflows/release.yml@refs/heads/main")
    assert token.claims["workflow_ref"].startswith("org/team-a/.github/workflows/release.yml@")
    reasons = refused(token)["team-a-release"]
    assert len(reasons) == 1
    assert reasons[0].startswith("workflow comes from 'evil/tools'")


def test_caller_named_release_calling_another_workflow_is_refused() -> None:
    token = gh(job_workflow_ref="org/team-a/.github/workflows/anything.yml@refs/heads/main")
    reasons = refused(token)["team-a-release"]
    assert reasons[0].startswith("workflow is '.github/workflows/anything.yml'")


def test_reusable_release_workflow_in_the_same_repository_matches() -> None:
    token = gh(
        workflow=".github/workflows/on-push.yml",
        job_workflow_ref="org/team-a/.github/workflows/release.yml@refs/heads/main",
    )
    assert match_identity(token, [RELEASE]).name == "team-a-release"


def test_reusable_workflow_at_another_ref_is_refused() -> None:
    token = gh(job_workflow_ref="org/team-a/.github/workflows/release.yml@refs/heads/evil")
    assert refused(token)["team-a-release"][0].startswith("workflow ref is 'refs/heads/evil'")


@pytest.mark.parametrize(
    "claims",
    [
        {"repository": "org/team-ab"},
        {"repository": "org/team", "job_workflow_ref": "org/team-a/x"},
        {"workflow": ".github/workflows/release.yml.bak"},
        {"workflow": ".github/workflows/release.ymlx"},
        {"job_workflow_ref": "org/team-a/.github/workflows/release.yml"},
        {"job_workflow_ref": "org/team-a/.github/workflows/release.yml@refs/heads/main2"},
        {"ref": "refs/heads/main/x"},
    ],
)
def test_near_misses_do_not_match(claims: dict[str, Any]) -> None:
    refused(gh(**claims))


def test_workflow_path_may_be_written_with_dot_slash() -> None:
    req = OIDCRequirement(
        name="r",
        issuer=GITHUB_ISSUER,
        audience=AUDIENCE,
        repository="org/team-a",
        workflow="./.github/workflows/release.yml",
    )
    assert req.workflow == ".github/workflows/release.yml"
    assert match_identity(gh(ref="refs/heads/anything"), [req]).name == "r"


@pytest.mark.parametrize(
    ("pattern", "ref", "ok"),
    [
        ("refs/tags/v*", "refs/tags/v1.2.3", True),
        ("refs/tags/v*", "refs/tags/v1/evil", False),
        ("refs/tags/v*", "refs/heads/v1", False),
        ("refs/tags/**", "refs/tags/a/b", True),
        ("refs/heads/release/*", "refs/heads/release/1.x", True),
        ("refs/heads/main", "refs/heads/main", True),
        ("refs/heads/m.in", "refs/heads/main", False),
    ],
)
def test_ref_globs(pattern: str, ref: str, ok: bool) -> None:
    assert glob_match(pattern, ref) is ok
    req = OIDCRequirement(
        name="tags",
        issuer=GITHUB_ISSUER,
        audience=AUDIENCE,
        repository="org/team-a",
        ref=pattern,
        workflow=".github/workflows/release.yml",
    )
    token = gh(ref=ref)
    if ok:
        assert match_identity(token, [req]).name == "tags"
    else:
        refused(token, req)


def test_environment() -> None:
    req = OIDCRequirement(
        name="prod",
        issuer=GITHUB_ISSUER,
        audience=AUDIENCE,
        repository="org/team-a",
        environment="prod",
    )
    assert match_identity(gh(environment="prod"), [req]).name == "prod"
    assert refused(gh(), req)["prod"] == ["environment is not set, expected 'prod'"]
    assert refused(gh(environment="staging"), req)["prod"] == [
        "environment is 'staging', expected 'prod'"
    ]


def test_event_name_ref_type_and_protection() -> None:
    req = OIDCRequirement(
        name="r",
        issuer=GITHUB_ISSUER,
        audience=AUDIENCE,
        repository="org/team-a",
        event_name="push",
        ref_type="branch",
        ref_protected=True,
    )
    assert match_identity(gh(), [req]).name == "r"
    reasons = refused(
        gh(event_name="pull_request_target", ref_type="tag", ref_protected="false"), req
    )["r"]
    assert reasons == [
        "ref_type is 'tag', expected 'branch'",
        "event_name is 'pull_request_target', expected 'push'",
        "ref_protected is 'false', expected 'true'",
    ]


def test_audience_and_issuer_are_checked_per_identity() -> None:
    assert refused(gh(audience="sigstore"))["team-a-release"] == [
        "audience is ['sigstore'], expected 'safeguard'"
    ]
    lab = OIDCRequirement(
        name="lab", issuer=GITLAB_ISSUER, audience=AUDIENCE, project_path="my-group/my-project"
    )
    assert refused(gh(), lab)["lab"] == [f"issuer is '{GITHUB_ISSUER}', expected '{GITLAB_ISSUER}'"]


def test_token_lacking_github_claims() -> None:
    token = VerifiedToken(
        claims={"iss": GITHUB_ISSUER, "aud": AUDIENCE, "sub": "x", "exp": 2, "iat": 1},
        header={},
        key_id="k",
    )
    assert "not a usable GitHub Actions ID token" in refused(token)["team-a-release"][-1]


def test_two_matching_identities_are_ambiguous() -> None:
    broad = OIDCRequirement(
        name="team-a-any", issuer=GITHUB_ISSUER, audience=AUDIENCE, repository="org/team-a"
    )
    with pytest.raises(OIDCIdentityAmbiguous) as info:
        match_identity(gh(), [RELEASE, broad])
    assert info.value.code == "OIDC_IDENTITY_AMBIGUOUS"
    assert info.value.detail == {"matched": ["team-a-release", "team-a-any"]}
    # a dev-branch token matches only the broad one: fine
    assert match_identity(gh(ref="refs/heads/dev"), [RELEASE, broad]).name == "team-a-any"


def test_no_identities_and_duplicate_names() -> None:
    with pytest.raises(OIDCIdentityNotMatched, match="no signer identities"):
        match_identity(gh(), [])
    with pytest.raises(OIDCRequirementInvalid, match="two identities"):
        match_identity(gh(), [RELEASE, RELEASE])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"repository": None}, OIDCRequirementInvalid, "needs 'repository'"),
        ({"repository": "org"}, OIDCRequirementInvalid, "owner/name"),
        ({"repository": "org/a/b"}, OIDCRequirementInvalid, "owner/name"),
        ({"pipeline_source": "push"}, OIDCRequirementInvalid, "GitLab CI"),
        ({"workflow": "release.yml@main"}, OIDCRequirementInvalid, "without '@'"),
        ({"workflow": "/abs.yml"}, OIDCRequirementInvalid, "path inside"),
        ({"ref": ""}, OIDCRequirementInvalid, "empty"),
        ({"ref": "refs/heads/ main"}, OIDCRequirementInvalid, "whitespace"),
        ({"audience": ""}, OIDCRequirementInvalid, "no audience"),
        ({"name": ""}, OIDCRequirementInvalid, "no name"),
        ({"issuer": "https://idp.example"}, OIDCRequirementInvalid, "not a known CI issuer"),
        ({"issuer": "http://idp.example", "platform": Platform.GITHUB}, OIDCURLRefused, "https"),
    ],
)
def test_invalid_requirements(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    args: dict[str, Any] = {
        "name": "r",
        "issuer": GITHUB_ISSUER,
        "audience": AUDIENCE,
        "repository": "org/team-a",
    }
    args.update(kwargs)
    with pytest.raises(error, match=match):
        OIDCRequirement(**args)


# --- GitLab CI ---------------------------------------------------------------------------

LAB = OIDCRequirement(
    name="lab-release",
    issuer=GITLAB_ISSUER,
    audience=AUDIENCE,
    project_path="my-group/my-project",
    ref="refs/heads/main",
    workflow=".gitlab-ci.yml",
    pipeline_source="push",
)


def test_gitlab_release_pipeline_matches() -> None:
    match = match_identity(gl(), [LAB])
    assert match.name == "lab-release"
    assert match.claims.platform is Platform.GITLAB
    assert (
        match.build_signer_uri
        == "https://gitlab.com/my-group/my-project//.gitlab-ci.yml@refs/heads/main"
    )


def test_gitlab_short_ref_and_ref_type() -> None:
    req = OIDCRequirement(
        name="tags",
        issuer=GITLAB_ISSUER,
        audience=AUDIENCE,
        repository="my-group/my-project",
        ref="v*",
        ref_type="tag",
        workflow=".gitlab-ci.yml",
    )
    assert match_identity(gl(ref="v1.2.0", ref_type="tag"), [req]).name == "tags"
    reasons = refused(gl(ref="main"), req)["tags"]
    assert "ref is 'main', expected 'v*'" in reasons
    assert "ref_type is 'branch', expected 'tag'" in reasons


def test_gitlab_wrong_project_branch_and_source() -> None:
    reasons = refused(
        gl(project_path="my-group/other", ref="dev", pipeline_source="merge_request_event"), LAB
    )["lab-release"]
    assert "project_path is 'my-group/other', expected 'my-group/my-project'" in reasons
    assert "ref is 'refs/heads/dev', expected 'refs/heads/main'" in reasons
    assert "pipeline_source is 'merge_request_event', expected 'push'" in reasons
    assert any(
        r.startswith("CI configuration comes from 'gitlab.com/my-group/other'") for r in reasons
    )


def test_gitlab_ci_configuration_from_another_project_is_refused() -> None:
    token = gl(ci_config_ref_uri="gitlab.com/evil/ci//.gitlab-ci.yml@refs/heads/main")
    reasons = refused(token, LAB)["lab-release"]
    assert len(reasons) == 1 and reasons[0].startswith(
        "CI configuration comes from 'gitlab.com/evil/ci'"
    )


def test_gitlab_other_config_path_or_missing_config_uri() -> None:
    reasons = refused(gl(config_path="ci/other.yml"), LAB)["lab-release"]
    assert reasons[0].startswith("CI configuration is 'ci/other.yml', expected '.gitlab-ci.yml'")
    body = GL.gitlab_claims()
    del body["ci_config_ref_uri"]
    token = VerifiedToken(claims=body, header={}, key_id="k")
    assert refused(token, LAB)["lab-release"] == [
        "ci_config_ref_uri is not in the token, expected "
        "'gitlab.com/my-group/my-project//.gitlab-ci.yml@refs/heads/main'"
    ]


def test_gitlab_exact_ci_config_ref_uri_environment_and_protection() -> None:
    req = OIDCRequirement(
        name="r",
        issuer=GITLAB_ISSUER,
        audience=AUDIENCE,
        project_path="my-group/my-project",
        ci_config_ref_uri="gitlab.com/my-group/my-project//.gitlab-ci.yml@refs/heads/main",
        environment="production",
        ref_protected=True,
    )
    assert match_identity(gl(environment="production"), [req]).name == "r"
    reasons = refused(gl(ref="dev", ref_protected="false"), req)["r"]
    assert reasons == [
        "ref_protected is 'false', expected 'true'",
        "ci_config_ref_uri is 'gitlab.com/my-group/my-project//.gitlab-ci.yml@refs/heads/dev', "
        "expected 'gitlab.com/my-group/my-project//.gitlab-ci.yml@refs/heads/main'",
        "environment is not set, expected 'production'",
    ]


def test_self_hosted_gitlab_needs_the_platform() -> None:
    host = OIDCIssuer(url="https://gitlab.example.com")
    token = VerifiedToken(claims=host.gitlab_claims(), header={}, key_id="k")
    with pytest.raises(OIDCRequirementInvalid):
        OIDCRequirement(name="x", issuer=host.url, audience=AUDIENCE, project_path="a/b")
    req = OIDCRequirement(
        name="x",
        issuer=host.url,
        audience=AUDIENCE,
        project_path="my-group/my-project",
        workflow=".gitlab-ci.yml",
        ref="main",
        platform=Platform.GITLAB,
    )
    assert match_identity(token, [req]).name == "x"


def test_platform_may_be_given_as_a_string() -> None:
    req = OIDCRequirement(
        name="x",
        issuer="https://gitlab.example.com",
        audience=AUDIENCE,
        project_path="a/b",
        platform="gitlab",  # type: ignore[arg-type]  (as a policy file spells it)
    )
    assert req.platform is Platform.GITLAB
    with pytest.raises(OIDCRequirementInvalid, match="not 'github' or 'gitlab'"):
        OIDCRequirement(
            name="x",
            issuer=GITLAB_ISSUER,
            audience=AUDIENCE,
            project_path="a/b",
            platform="bitbucket",  # type: ignore[arg-type]
        )


def test_invalid_gitlab_requirements() -> None:
    with pytest.raises(OIDCRequirementInvalid, match="needs 'project_path'"):
        OIDCRequirement(name="x", issuer=GITLAB_ISSUER, audience=AUDIENCE)
    with pytest.raises(OIDCRequirementInvalid, match="GitHub Actions"):
        OIDCRequirement(
            name="x", issuer=GITLAB_ISSUER, audience=AUDIENCE, project_path="a/b", event_name="push"
        )
    with pytest.raises(OIDCRequirementInvalid, match="differ"):
        OIDCRequirement(
            name="x", issuer=GITLAB_ISSUER, audience=AUDIENCE, project_path="a/b", repository="a/c"
        )


def test_ref_globs_mean_what_they_mean_in_the_policy() -> None:
    """``**`` is zero or more segments and a lone ``*`` one non-empty segment, as in the policy
    (safeguard.core.glob); a pattern that is no glob is refused when the identity is built."""

    def req(ref: str) -> OIDCRequirement:
        return OIDCRequirement(
            name="g", issuer=GITHUB_ISSUER, audience=AUDIENCE, repository="org/team-a", ref=ref
        )

    assert match_identity(gh(ref="refs/main"), [req("refs/**/main")]).name == "g"
    assert match_identity(gh(ref="refs/heads/main"), [req("refs/**/main")]).name == "g"
    assert "g" in refused(gh(ref="refs/heads/"), req("refs/heads/*"))
    assert match_identity(gh(ref="refs/heads/dev"), [req("refs/heads/*")]).name == "g"
    for hostile in ("refs/heads/*/", "refs/**x/*", "refs/heads/[ab]*", "refs//*"):
        with pytest.raises(OIDCRequirementInvalid):
            req(hostile)


def test_gitlab_ci_config_ref_uri_globs_only_its_ref() -> None:
    def lab(uri: str) -> OIDCRequirement:
        return OIDCRequirement(
            name="lab",
            issuer=GITLAB_ISSUER,
            audience=AUDIENCE,
            project_path="my-group/my-project",
            ci_config_ref_uri=uri,
        )

    base = "gitlab.com/my-group/my-project//.gitlab-ci.yml@"
    token = gl(ci_config_ref_uri=base + "refs/tags/v1.2")
    assert match_identity(token, [lab(base + "refs/tags/v*")]).name == "lab"
    assert "lab" in refused(
        gl(ci_config_ref_uri=base + "refs/heads/v1"), lab(base + "refs/tags/v*")
    )
    for hostile in ("gitlab.com/my-group/*//.gitlab-ci.yml@refs/heads/main", base + "refs//*"):
        with pytest.raises(OIDCRequirementInvalid):
            lab(hostile)
