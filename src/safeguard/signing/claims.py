"""What a signature says about the build that asked for it: claims, annotations, provenance.

The signing service signs for a *build role*; which run of that role it was is in the verified
CI token. Three views of those claims:

* ``audit_claims``: the subset kept in the audit event (``signing_events.claims``): issuer,
  subject, repository or project, ref, commit, the workflow that ran (GitHub
  ``job_workflow_ref``, GitLab ``ci_config_ref_uri``), run/pipeline/job ids, event, environment
  and who triggered it. Never the token itself.
* ``signature_annotations``: the claims that go *into the signed statement* as annotations of its
  subject (cosign's ``-a key=value``; in-toto ResourceDescriptor ``annotations``) and into the
  legacy simple-signing payload's ``optional`` map, under ``safeguard.dev/`` keys whose names
  follow Fulcio's certificate extensions (``docs/oid-info.md``: Build Signer URI, Source
  Repository URI/Digest/Ref, Run Invocation URI, Build Trigger). Rekor's ``dsse`` and
  ``hashedrekord`` bodies store only hashes of what was signed, so this is how the claims reach
  the transparency log: bound by the payload hash the log entry commits to, readable by anyone
  who has the bundle, and covered by the signature. Personal data (actor, e-mail) stays out.
* ``provenance_from_claims``: a SLSA Provenance v1 predicate (``safeguard.formats.slsa``) built
  from *verified* claims, for attestation requests that send no statement: the signing service,
  not the build, vouches for it, and its ``builder.id`` is the Build Signer URI, which is what a
  policy's ``attestations[].builderId`` names.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Final
from urllib.parse import urlsplit

from safeguard.formats.slsa import Provenance, github_provenance, gitlab_provenance
from safeguard.identity import GitHubClaims, GitLabClaims, IdentityMatch
from safeguard.identity.claims import GITHUB_ISSUER

ANNOTATION_PREFIX: Final = "safeguard.dev/"
IDENTITY: Final = ANNOTATION_PREFIX + "identity"
ISSUER: Final = ANNOTATION_PREFIX + "issuer"
BUILD_SIGNER_URI: Final = ANNOTATION_PREFIX + "build-signer-uri"
SOURCE_REPOSITORY_URI: Final = ANNOTATION_PREFIX + "source-repository-uri"
SOURCE_REPOSITORY_DIGEST: Final = ANNOTATION_PREFIX + "source-repository-digest"
SOURCE_REPOSITORY_REF: Final = ANNOTATION_PREFIX + "source-repository-ref"
RUN_INVOCATION_URI: Final = ANNOTATION_PREFIX + "run-invocation-uri"
BUILD_TRIGGER: Final = ANNOTATION_PREFIX + "build-trigger"
TICKET: Final = ANNOTATION_PREFIX + "ticket"
RELEASE_ENGINEER: Final = ANNOTATION_PREFIX + "release-engineer"

_GITHUB_AUDIT: Final = (
    "repository",
    "ref",
    "sha",
    "job_workflow_ref",
    "workflow_ref",
    "run_id",
    "run_attempt",
    "event_name",
    "environment",
    "actor",
    "runner_environment",
)
_GITLAB_AUDIT: Final = (
    "project_path",
    "ref_path",
    "sha",
    "ci_config_ref_uri",
    "pipeline_id",
    "job_id",
    "pipeline_source",
    "environment",
    "user_login",
    "runner_environment",
)


def server_url(match: IdentityMatch) -> str:
    """The web address of the CI platform (for links to runs and repositories)."""
    issuer = match.requirement.issuer
    if isinstance(match.claims, GitHubClaims):
        if issuer == GITHUB_ISSUER or not issuer.endswith("/_services/token"):
            return "https://github.com"
        return issuer.removesuffix("/_services/token")
    parts = urlsplit(issuer)
    return f"{parts.scheme}://{parts.netloc}"


def audit_claims(match: IdentityMatch) -> dict[str, Any]:
    """The claims kept in the audit event (module doc)."""
    claims = match.claims
    out: dict[str, Any] = {"iss": claims.iss, "sub": claims.sub}
    names = _GITHUB_AUDIT if isinstance(claims, GitHubClaims) else _GITLAB_AUDIT
    for name in names:
        value = getattr(claims, name, None)
        if value is not None and value != "":
            out[name] = value
    return out


def signature_annotations(match: IdentityMatch) -> dict[str, str]:
    """The ``safeguard.dev/`` annotations a service signature carries (module doc)."""
    claims = match.claims
    server = server_url(match)
    out = {IDENTITY: match.name, ISSUER: claims.iss}
    signer = match.build_signer_uri
    if signer:
        out[BUILD_SIGNER_URI] = signer
    if isinstance(claims, GitHubClaims):
        repository = f"{server}/{claims.repository}"
        out[SOURCE_REPOSITORY_URI] = repository
        out[SOURCE_REPOSITORY_DIGEST] = claims.sha
        out[SOURCE_REPOSITORY_REF] = claims.ref
        attempt = claims.run_attempt or "1"
        out[RUN_INVOCATION_URI] = f"{repository}/actions/runs/{claims.run_id}/attempts/{attempt}"
        out[BUILD_TRIGGER] = claims.event_name
    else:
        project = f"{server}/{claims.project_path}"
        out[SOURCE_REPOSITORY_URI] = project
        out[SOURCE_REPOSITORY_DIGEST] = claims.sha
        out[SOURCE_REPOSITORY_REF] = claims.full_ref
        out[RUN_INVOCATION_URI] = f"{project}/-/jobs/{claims.job_id}"
        out[BUILD_TRIGGER] = claims.pipeline_source
    return out


def provenance_from_claims(match: IdentityMatch, *, finished_on: str | None = None) -> Provenance:
    """SLSA Provenance v1 for the build the token belongs to (module doc)."""
    claims = match.claims
    server = server_url(match)
    if isinstance(claims, GitHubClaims):
        env = {
            "GITHUB_ACTIONS": "true",
            "GITHUB_SERVER_URL": server,
            "GITHUB_REPOSITORY": claims.repository,
            "GITHUB_SHA": claims.sha,
            "GITHUB_REF": claims.ref,
            "GITHUB_WORKFLOW_REF": claims.job_workflow_ref,
            "GITHUB_RUN_ID": claims.run_id,
            "GITHUB_RUN_ATTEMPT": claims.run_attempt or "1",
            "GITHUB_EVENT_NAME": claims.event_name,
            "GITHUB_REPOSITORY_ID": claims.repository_id or "",
            "GITHUB_REPOSITORY_OWNER_ID": claims.repository_owner_id or "",
            "RUNNER_ENVIRONMENT": claims.runner_environment or "",
        }
        provenance = github_provenance(env, finished_on=finished_on)
        workflow_path = claims.job_workflow_ref.partition("@")[0]
        owner_repo = "/".join(workflow_path.split("/")[:2])
        if owner_repo != claims.repository:
            # A reusable workflow from another repository ran: name the one that ran.
            external = dict(provenance.external_parameters)
            external["workflow"] = {
                **external["workflow"],
                "repository": f"{server}/{owner_repo}",
                "path": workflow_path[len(owner_repo) + 1 :],
            }
            provenance = replace(provenance, external_parameters=external)
    else:
        assert isinstance(claims, GitLabClaims)
        tag = claims.full_ref.startswith("refs/tags/")
        env = {
            "GITLAB_CI": "true",
            "CI_SERVER_URL": server,
            "CI_PROJECT_PATH": claims.project_path,
            "CI_COMMIT_SHA": claims.sha,
            "CI_JOB_ID": claims.job_id,
            "CI_PIPELINE_ID": claims.pipeline_id,
            "CI_PIPELINE_SOURCE": claims.pipeline_source,
            "CI_COMMIT_REF_NAME": claims.ref,
            ("CI_COMMIT_TAG" if tag else "CI_COMMIT_BRANCH"): claims.ref,
        }
        if claims.runner_id is not None:
            env["CI_RUNNER_ID"] = str(claims.runner_id)
        provenance = gitlab_provenance(env, finished_on=finished_on)
    signer = match.build_signer_uri
    return replace(provenance, builder_id=signer) if signer else provenance
