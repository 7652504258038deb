from __future__ import annotations

import base64
import json

import pytest

from safeguard.formats.errors import CINotDetected, ProvenanceInvalid
from safeguard.formats.intoto import Subject
from safeguard.formats.slsa import (
    GITHUB_BUILD_TYPE,
    Provenance,
    detect_ci,
    provenance_from_env,
)
from tests.unit.formats.vectors import read

GITHUB_ENV = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "sigstore/sigstore-conformance",
    "GITHUB_REF": "refs/heads/main",
    "GITHUB_SHA": "c5f5fb255163ed85ddb32d54dcdd710ac3f04603",
    "GITHUB_WORKFLOW_REF": (
        "sigstore/sigstore-conformance/.github/workflows/conformance.yml@refs/heads/main"
    ),
    "GITHUB_RUN_ID": "7173620910",
    "GITHUB_RUN_ATTEMPT": "1",
    "GITHUB_EVENT_NAME": "push",
    "GITHUB_REPOSITORY_ID": "541893186",
    "GITHUB_REPOSITORY_OWNER_ID": "71096353",
    "RUNNER_ENVIRONMENT": "github-hosted",
    "AWS_SECRET_ACCESS_KEY": "never-copied",
}

GITLAB_ENV = {
    "GITLAB_CI": "true",
    "CI_SERVER_URL": "https://gitlab.com",
    "CI_PROJECT_PATH": "group/app",
    "CI_PROJECT_URL": "https://gitlab.com/group/app",
    "CI_COMMIT_SHA": "8bcd2df0dcd6ec07b34e5a48393a0c072065960a",
    "CI_COMMIT_REF_NAME": "main",
    "CI_COMMIT_BRANCH": "main",
    "CI_PIPELINE_ID": "1216772341",
    "CI_JOB_ID": "6412263894",
    "CI_JOB_NAME": "build",
    "CI_CONFIG_PATH": ".gitlab-ci.yml",
    "CI_RUNNER_ID": "12270831",
    "CI_RUNNER_VERSION": "17.0.0",
    "CI_JOB_STARTED_AT": "2024-05-01T10:00:00Z",
    "CI_JOB_TOKEN": "secret-token",
}


def _published_github_predicate() -> dict[str, object]:
    bundle = json.loads(read("conformance/intoto-with-custom-trust-root/bundle.sigstore.json"))
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    predicate: dict[str, object] = statement["predicate"]
    return predicate


def test_github_matches_published_provenance_but_for_build_type() -> None:
    """The conformance statement was written by actions/attest-build-provenance from this env
    (with the older slsa-framework buildType URI and no runner_environment)."""
    provenance = provenance_from_env(GITHUB_ENV)
    expected = _published_github_predicate()
    ours = provenance.to_dict()
    assert ours["buildDefinition"]["buildType"] == GITHUB_BUILD_TYPE
    ours["buildDefinition"]["buildType"] = expected["buildDefinition"]["buildType"]  # type: ignore[index]
    del ours["buildDefinition"]["internalParameters"]["github"]["runner_environment"]
    assert ours == expected
    assert b"never-copied" not in provenance.to_json()


def test_published_predicates_parse() -> None:
    Provenance.from_dict(_published_github_predicate())
    parsed = Provenance.from_json(read("sigstore-python/slsa_predicate_v1_0.json"))
    assert parsed.build_type


def test_gitlab_provenance() -> None:
    provenance = provenance_from_env(GITLAB_ENV, finished_on="2024-05-01T10:05:00Z")
    doc = provenance.to_dict()
    assert doc["buildDefinition"]["buildType"] == (
        "https://gitlab.com/gitlab-org/gitlab-runner/-/blob/v17.0.0/PROVENANCE.md"
    )
    assert doc["buildDefinition"]["externalParameters"]["source"] == "https://gitlab.com/group/app"
    assert doc["buildDefinition"]["resolvedDependencies"] == [
        {
            "uri": "git+https://gitlab.com/group/app@refs/heads/main",
            "digest": {"gitCommit": GITLAB_ENV["CI_COMMIT_SHA"]},
        }
    ]
    assert doc["runDetails"] == {
        "builder": {"id": "https://gitlab.com/group/app/-/runners/12270831"},
        "metadata": {
            "invocationId": "https://gitlab.com/group/app/-/jobs/6412263894",
            "startedOn": "2024-05-01T10:00:00Z",
            "finishedOn": "2024-05-01T10:05:00Z",
        },
    }
    assert b"secret-token" not in provenance.to_json()
    assert Provenance.from_json(provenance.to_json()) == provenance


def test_statement_wraps_provenance() -> None:
    statement = provenance_from_env(GITHUB_ENV).statement([Subject("img", {"sha256": "a" * 64})])
    assert statement.predicate_type == "https://slsa.dev/provenance/v1"


def test_no_ci_is_a_clear_error() -> None:
    assert detect_ci({}) is None
    with pytest.raises(CINotDetected) as info:
        provenance_from_env({"HOME": "/root"})
    assert info.value.hint and "GITHUB_ACTIONS" in info.value.hint


def test_detected_ci_with_missing_variables() -> None:
    env = dict(GITHUB_ENV)
    del env["GITHUB_SHA"]
    with pytest.raises(ProvenanceInvalid, match="GITHUB_SHA"):
        provenance_from_env(env)
    with pytest.raises(ProvenanceInvalid, match="CI_JOB_ID"):
        provenance_from_env(
            {
                "GITLAB_CI": "true",
                "CI_SERVER_URL": "x",
                "CI_PROJECT_PATH": "p",
                "CI_COMMIT_SHA": "s",
            }
        )


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {},
        {"buildDefinition": {}, "runDetails": {}},
        {"buildDefinition": {"buildType": "t"}, "runDetails": {"builder": {"id": "b"}}},
        {"buildDefinition": {"buildType": "t", "externalParameters": {}}, "runDetails": {}},
        {
            "buildDefinition": {
                "buildType": "t",
                "externalParameters": {},
                "resolvedDependencies": [{}],
            },
            "runDetails": {"builder": {"id": "b"}},
        },
        {
            "buildDefinition": {"buildType": "t", "externalParameters": {}},
            "runDetails": {"builder": {"id": "b"}, "metadata": {"startedOn": 5}},
        },
    ],
)
def test_hostile_provenance(doc: object) -> None:
    with pytest.raises(ProvenanceInvalid):
        Provenance.from_json(json.dumps(doc))
