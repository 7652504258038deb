"""SLSA Provenance v1 predicates (slsa.dev ``spec/v1.0/provenance``) and their CI generators.

The predicate (``predicateType: https://slsa.dev/provenance/v1``) is::

    {"buildDefinition": {"buildType", "externalParameters", "internalParameters",
                         "resolvedDependencies": [ResourceDescriptor]},
     "runDetails": {"builder": {"id", "version", "builderDependencies"},
                    "metadata": {"invocationId", "startedOn", "finishedOn"}, "byproducts"}}

``provenance_from_env`` fills it from a CI job's environment (passed in as a mapping, so it is
testable and never reads ``os.environ`` itself):

* GitHub Actions (``GITHUB_ACTIONS=true``): buildType
  ``https://actions.github.io/buildtypes/workflow/v1`` as actions/attest-build-provenance writes
  it: ``externalParameters.workflow{ref, repository, path}``, ``internalParameters.github
  {event_name, repository_id, repository_owner_id, runner_environment}``, the source commit as
  ``git+<server>/<repo>@<ref>``, builder ``https://github.com/actions/runner/<environment>``,
  invocation ``<server>/<repo>/actions/runs/<id>/attempts/<n>``.
* GitLab CI (``GITLAB_CI=true``): the GitLab runner's buildType
  (``https://gitlab.com/gitlab-org/gitlab-runner/-/blob/<version>/PROVENANCE.md``):
  ``externalParameters{source, entryPoint, variables}`` (only a fixed list of non-secret
  ``CI_*`` variables, never the whole environment), ``internalParameters{name, executor,
  architecture, job}``, builder ``<server>/<project>/-/runners/<id>``, invocation
  ``<server>/<project>/-/jobs/<id>``.

Anywhere else it raises ``CINotDetected``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from safeguard.formats._json import compact, loads
from safeguard.formats.errors import CINotDetected, ProvenanceInvalid
from safeguard.formats.intoto import Statement, Subject, build_statement

PREDICATE_TYPE: Final = "https://slsa.dev/provenance/v1"
GITHUB_BUILD_TYPE: Final = "https://actions.github.io/buildtypes/workflow/v1"
GITHUB_LEGACY_BUILD_TYPE: Final = (
    "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1"
)
GITLAB_BUILD_TYPE: Final = (
    "https://gitlab.com/gitlab-org/gitlab-runner/-/blob/{version}/PROVENANCE.md"
)
GITLAB_VARIABLES: Final = (
    "CI_COMMIT_REF_NAME",
    "CI_COMMIT_SHA",
    "CI_CONFIG_PATH",
    "CI_JOB_NAME",
    "CI_PIPELINE_ID",
    "CI_PIPELINE_SOURCE",
    "CI_PROJECT_PATH",
)


@dataclass(frozen=True, slots=True)
class ResourceDescriptor:
    uri: str | None = None
    digest: dict[str, str] = field(default_factory=dict)
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.name is not None:
            out["name"] = self.name
        if self.uri is not None:
            out["uri"] = self.uri
        if self.digest:
            out["digest"] = dict(self.digest)
        return out

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> ResourceDescriptor:
        if not isinstance(raw, Mapping):
            raise ProvenanceInvalid(f"{where} is not an object")
        uri, name, digest = raw.get("uri"), raw.get("name"), raw.get("digest", {})
        if uri is not None and not isinstance(uri, str):
            raise ProvenanceInvalid(f"{where}.uri is not a string")
        if name is not None and not isinstance(name, str):
            raise ProvenanceInvalid(f"{where}.name is not a string")
        if not isinstance(digest, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in digest.items()
        ):
            raise ProvenanceInvalid(f"{where}.digest is not a map of strings")
        if uri is None and not digest and name is None:
            raise ProvenanceInvalid(f"{where} has neither uri, digest nor name")
        return cls(uri, dict(digest), name)


@dataclass(frozen=True, slots=True)
class Provenance:
    """A SLSA Provenance v1 predicate."""

    build_type: str
    external_parameters: dict[str, Any]
    builder_id: str
    internal_parameters: dict[str, Any] | None = None
    resolved_dependencies: tuple[ResourceDescriptor, ...] = ()
    invocation_id: str | None = None
    started_on: str | None = None
    finished_on: str | None = None

    def to_dict(self) -> dict[str, Any]:
        definition: dict[str, Any] = {
            "buildType": self.build_type,
            "externalParameters": self.external_parameters,
        }
        if self.internal_parameters:
            definition["internalParameters"] = self.internal_parameters
        if self.resolved_dependencies:
            definition["resolvedDependencies"] = [d.to_dict() for d in self.resolved_dependencies]
        run: dict[str, Any] = {"builder": {"id": self.builder_id}}
        metadata = {
            key: value
            for key, value in (
                ("invocationId", self.invocation_id),
                ("startedOn", self.started_on),
                ("finishedOn", self.finished_on),
            )
            if value
        }
        if metadata:
            run["metadata"] = metadata
        return {"buildDefinition": definition, "runDetails": run}

    def to_json(self) -> bytes:
        return compact(self.to_dict())

    @classmethod
    def from_json(cls, data: bytes | str) -> Provenance:
        return cls.from_dict(loads(data, "SLSA provenance", ProvenanceInvalid))

    @classmethod
    def from_dict(cls, doc: Any) -> Provenance:
        if not isinstance(doc, Mapping):
            raise ProvenanceInvalid("SLSA provenance is not an object")
        definition, run = doc.get("buildDefinition"), doc.get("runDetails")
        if not isinstance(definition, Mapping) or not isinstance(run, Mapping):
            raise ProvenanceInvalid("SLSA provenance needs buildDefinition and runDetails objects")
        build_type = definition.get("buildType")
        if not isinstance(build_type, str) or not build_type:
            raise ProvenanceInvalid("SLSA provenance has no buildDefinition.buildType")
        external = definition.get("externalParameters")
        if not isinstance(external, dict):
            raise ProvenanceInvalid("SLSA provenance has no buildDefinition.externalParameters")
        internal = definition.get("internalParameters")
        if internal is not None and not isinstance(internal, dict):
            raise ProvenanceInvalid("buildDefinition.internalParameters is not an object")
        deps_raw = definition.get("resolvedDependencies", [])
        if not isinstance(deps_raw, list):
            raise ProvenanceInvalid("buildDefinition.resolvedDependencies is not a list")
        deps = tuple(
            ResourceDescriptor.from_dict(d, f"resolvedDependencies[{i}]")
            for i, d in enumerate(deps_raw)
        )
        builder = run.get("builder")
        if not isinstance(builder, Mapping) or not isinstance(builder.get("id"), str):
            raise ProvenanceInvalid("SLSA provenance has no runDetails.builder.id")
        metadata = run.get("metadata") or {}
        if not isinstance(metadata, Mapping):
            raise ProvenanceInvalid("runDetails.metadata is not an object")
        values = []
        for key in ("invocationId", "startedOn", "finishedOn"):
            value = metadata.get(key)
            if value is not None and not isinstance(value, str):
                raise ProvenanceInvalid(f"runDetails.metadata.{key} is not a string")
            values.append(value)
        return cls(
            build_type, external, builder["id"], internal, deps, values[0], values[1], values[2]
        )

    def statement(self, subjects: Sequence[Subject]) -> Statement:
        """This predicate in an in-toto v1 Statement about ``subjects``."""
        return build_statement(subjects, PREDICATE_TYPE, self.to_dict())


def detect_ci(env: Mapping[str, str]) -> str | None:
    """``"github"``, ``"gitlab"`` or ``None`` for the CI system ``env`` comes from."""
    if env.get("GITHUB_ACTIONS") == "true":
        return "github"
    if env.get("GITLAB_CI") == "true":
        return "gitlab"
    return None


def _need(env: Mapping[str, str], ci: str, *names: str) -> list[str]:
    missing = [n for n in names if not env.get(n)]
    if missing:
        raise ProvenanceInvalid(
            f"{ci} was detected but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
            "not set",
            hint="generate provenance inside the CI job itself, where the runner sets these",
        )
    return [env[n] for n in names]


def github_provenance(env: Mapping[str, str], *, finished_on: str | None = None) -> Provenance:
    repo, sha, ref, workflow_ref, run_id, attempt = _need(
        env,
        "GitHub Actions",
        "GITHUB_REPOSITORY",
        "GITHUB_SHA",
        "GITHUB_REF",
        "GITHUB_WORKFLOW_REF",
        "GITHUB_RUN_ID",
        "GITHUB_RUN_ATTEMPT",
    )
    server = env.get("GITHUB_SERVER_URL") or "https://github.com"
    repository_url = f"{server}/{repo}"
    workflow_path, _, workflow_git_ref = workflow_ref.rpartition("@")
    if workflow_path.startswith(f"{repo}/"):
        workflow_path = workflow_path[len(repo) + 1 :]
    github: dict[str, Any] = {"event_name": env.get("GITHUB_EVENT_NAME", "")}
    for key, var in (
        ("repository_id", "GITHUB_REPOSITORY_ID"),
        ("repository_owner_id", "GITHUB_REPOSITORY_OWNER_ID"),
        ("runner_environment", "RUNNER_ENVIRONMENT"),
    ):
        if env.get(var):
            github[key] = env[var]
    runner = "self-hosted" if env.get("RUNNER_ENVIRONMENT") == "self-hosted" else "github-hosted"
    return Provenance(
        build_type=GITHUB_BUILD_TYPE,
        external_parameters={
            "workflow": {
                "ref": workflow_git_ref or ref,
                "repository": repository_url,
                "path": workflow_path,
            }
        },
        internal_parameters={"github": github},
        resolved_dependencies=(
            ResourceDescriptor(uri=f"git+{repository_url}@{ref}", digest={"gitCommit": sha}),
        ),
        builder_id=f"https://github.com/actions/runner/{runner}",
        invocation_id=f"{repository_url}/actions/runs/{run_id}/attempts/{attempt}",
        finished_on=finished_on,
    )


def gitlab_provenance(env: Mapping[str, str], *, finished_on: str | None = None) -> Provenance:
    server, project, sha, job_id = _need(
        env, "GitLab CI", "CI_SERVER_URL", "CI_PROJECT_PATH", "CI_COMMIT_SHA", "CI_JOB_ID"
    )
    project_url = env.get("CI_PROJECT_URL") or f"{server}/{project}"
    if env.get("CI_COMMIT_TAG"):
        git_ref = f"refs/tags/{env['CI_COMMIT_TAG']}"
    elif env.get("CI_COMMIT_BRANCH") or env.get("CI_COMMIT_REF_NAME"):
        git_ref = f"refs/heads/{env.get('CI_COMMIT_BRANCH') or env['CI_COMMIT_REF_NAME']}"
    else:
        git_ref = sha
    version = env.get("CI_RUNNER_VERSION")
    version = f"v{version}" if version and not version.startswith("v") else (version or "main")
    internal = {
        key: env[var]
        for key, var in (
            ("name", "CI_RUNNER_DESCRIPTION"),
            ("executor", "CI_RUNNER_EXECUTOR"),
            ("architecture", "CI_RUNNER_EXECUTABLE_ARCH"),
        )
        if env.get(var)
    }
    internal["job"] = job_id
    runner_id = env.get("CI_RUNNER_ID")
    return Provenance(
        build_type=GITLAB_BUILD_TYPE.format(version=version),
        external_parameters={
            "source": project_url,
            "entryPoint": env.get("CI_JOB_NAME", ""),
            "variables": {name: env[name] for name in GITLAB_VARIABLES if name in env},
        },
        internal_parameters=internal,
        resolved_dependencies=(
            ResourceDescriptor(uri=f"git+{project_url}@{git_ref}", digest={"gitCommit": sha}),
        ),
        builder_id=f"{project_url}/-/runners/{runner_id}" if runner_id else f"{server}/-/runners",
        invocation_id=f"{project_url}/-/jobs/{job_id}",
        started_on=env.get("CI_JOB_STARTED_AT") or None,
        finished_on=finished_on,
    )


def provenance_from_env(env: Mapping[str, str], *, finished_on: str | None = None) -> Provenance:
    """The provenance of the CI job ``env`` belongs to (see the module docstring).

    ``finished_on`` is an RFC 3339 time the caller supplies (this module reads no clock).
    """
    ci = detect_ci(env)
    if ci == "github":
        return github_provenance(env, finished_on=finished_on)
    if ci == "gitlab":
        return gitlab_provenance(env, finished_on=finished_on)
    raise CINotDetected(
        "no CI system detected: provenance describes a CI build, and this is not one",
        hint="run inside GitHub Actions (GITHUB_ACTIONS=true) or GitLab CI (GITLAB_CI=true)",
    )
