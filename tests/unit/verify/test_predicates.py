"""Predicate requirements (builder, build type, source, ref) on real and generated provenance.

Real SLSA v1 provenance: sigstore-python's ``slsa_predicate_v1_0.json`` (GitHub's workflow build
type, as actions/attest-build-provenance writes it) and the statement inside the
sigstore-conformance ``intoto-with-custom-trust-root`` bundle (the SLSA community's GitHub
workflow build type); see tests/fixtures/vectors/SOURCES.md. Generated: ``formats.slsa
.provenance_from_env`` for GitHub Actions and GitLab CI. SLSA v0.2 in slsa-github-generator's
shape (``invocation.configSource``, ``materials``). Beside each accepted case, the hostile ones:
forks, look-alike repositories, other refs and builders, a resolved dependency that contradicts
the workflow, and predicate fields of the wrong type or size. Then the engine: an attestation
whose predicate falls short is refused with ``PREDICATE_REQUIREMENT_UNMET``, naming why.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from safeguard.core.digest import Digest
from safeguard.core.errors import InvalidInput
from safeguard.formats.intoto import Statement, Subject, build_statement
from safeguard.formats.slsa import provenance_from_env
from safeguard.keys import SoftwareSigner
from safeguard.policy.schema import AttestationRequirement
from safeguard.signing.sign import attest_blob
from safeguard.verify.checks import Artifact, Expectation
from safeguard.verify.engine import verify_bundle
from safeguard.verify.policy import TrustPolicy
from safeguard.verify.predicates import (
    SLSA_V02,
    SLSA_V1,
    PredicateRequirement,
    RequirementInvalid,
    parse_git_uri,
    provenance_facts,
    requirement_from_flags,
    requirement_from_policy,
)

VECTORS = Path(__file__).parents[2] / "fixtures" / "vectors"
GITHUB_V1 = json.loads((VECTORS / "sigstore-python" / "slsa_predicate_v1_0.json").read_text())
_BUNDLE = json.loads(
    (VECTORS / "conformance" / "intoto-with-custom-trust-root" / "bundle.sigstore.json").read_text()
)
CONFORMANCE = Statement.from_json(base64.b64decode(_BUNDLE["dsseEnvelope"]["payload"]))
OCTO_BUILDER = (
    "https://github.com/octo-org/octo-repo/.github/workflows/docker.yaml@refs/heads/development"
)
DIGEST = Digest.of(b"artifact")


def _statement(predicate: Any, predicate_type: str = SLSA_V1) -> Statement:
    return build_statement([Subject.for_digest("app", DIGEST)], predicate_type, predicate)


def _req(**kwargs: Any) -> PredicateRequirement:
    return PredicateRequirement(kwargs.pop("predicate_type", SLSA_V1), **kwargs)


# --- real provenance ----------------------------------------------------------------------------


def test_facts_of_real_provenance() -> None:
    facts = provenance_facts(_statement(GITHUB_V1))
    assert facts.builder_id == OCTO_BUILDER
    assert facts.build_type == "https://actions.github.io/buildtypes/workflow/v1"
    assert str(facts.source) == "https://github.com/octo-org/octo-repo@refs/tags/1.21.0"
    assert facts.conflict is None
    conformance = provenance_facts(CONFORMANCE)
    assert conformance.builder_id == "https://github.com/actions/runner/github-hosted"
    assert str(conformance.source) == (
        "https://github.com/sigstore/sigstore-conformance@refs/heads/main"
    )


@pytest.mark.parametrize(
    "requirement",
    [
        _req(builder_id=OCTO_BUILDER),
        _req(build_type="https://actions.github.io/buildtypes/workflow/v1"),
        _req(source_uri="github.com/octo-org/octo-repo"),
        _req(source_uri="https://github.com/octo-org/octo-repo"),
        _req(source_uri="git+https://github.com/octo-org/octo-repo.git"),
        _req(source_uri="https://GitHub.com/octo-org/octo-repo/"),
        _req(source_uri="git+https://github.com/octo-org/octo-repo@refs/tags/1.21.0"),
        _req(source_ref="refs/tags/1.21.0"),
        _req(source_ref="refs/tags/1.*"),
        _req(source_ref="refs/tags/**"),
        _req(predicate_type=None, source_uri="github.com/octo-org/octo-repo"),
        requirement_from_flags(
            None,
            builder_id=OCTO_BUILDER.split("@")[0],
            source_uri="github.com/octo-org/octo-repo",
            source_tag="1.21.0",
        ),
        requirement_from_flags(SLSA_V1, builder_id=OCTO_BUILDER),
    ],
)
def test_real_github_provenance_meets(requirement: PredicateRequirement | None) -> None:
    assert requirement is not None
    assert requirement.check(_statement(GITHUB_V1)) == []


@pytest.mark.parametrize(
    ("requirement", "reason"),
    [
        (_req(builder_id=OCTO_BUILDER.split("@")[0]), "the builder is"),  # the policy: exactly
        (_req(builder_id="https://github.com/actions/runner/github-hosted"), "the builder is"),
        (_req(build_type=SLSA_V1), "the build type is"),
        (_req(source_uri="github.com/evil-org/octo-repo"), "the source is"),
        (_req(source_uri="github.com/octo-org/octo-repo-evil"), "the source is"),
        (_req(source_uri="github.com/octo-org/octo"), "the source is"),
        (_req(source_uri="gitlab.com/octo-org/octo-repo"), "the source is"),
        (_req(source_uri="git+https://github.com/octo-org/octo-repo@refs/tags/1.2"), "ref"),
        (_req(source_ref="refs/heads/*"), "the source ref is"),
        (_req(source_ref="refs/tags/1.3*"), "the source ref is"),
        (_req(predicate_type=SLSA_V02, builder_id=OCTO_BUILDER), "predicate type"),
    ],
)
def test_real_github_provenance_falls_short(requirement: PredicateRequirement, reason: str) -> None:
    reasons = requirement.check(_statement(GITHUB_V1))
    assert reasons and reason in reasons[0], reasons


@pytest.mark.parametrize(
    ("flags", "ok"),
    [
        ({"builder_id": OCTO_BUILDER.split("@")[0]}, True),
        ({"builder_id": OCTO_BUILDER.split("@")[0] + "@refs/heads/development"}, True),
        ({"builder_id": OCTO_BUILDER.split("@")[0] + "@refs/heads/main"}, False),
        ({"builder_id": OCTO_BUILDER.split("@")[0] + "@main"}, False),
        ({"builder_id": OCTO_BUILDER.split("@")[0] + "@development"}, False),  # tags only
        ({"source_tag": "1.21.0"}, True),
        ({"source_tag": "1.21"}, False),
        ({"source_branch": "1.21.0"}, False),
        ({"source_tag": "1.*"}, False),  # flags match exactly, not as globs
    ],
)
def test_cli_flags_match_as_slsa_verifier(flags: dict[str, str], ok: bool) -> None:
    requirement = requirement_from_flags(SLSA_V1, **flags)
    assert requirement is not None
    assert (requirement.check(_statement(GITHUB_V1)) == []) is ok


def test_real_conformance_provenance() -> None:
    ok = requirement_from_flags(
        None,
        builder_id="https://github.com/actions/runner/github-hosted",
        source_uri="github.com/sigstore/sigstore-conformance",
        source_branch="main",
    )
    assert ok is not None and ok.check(CONFORMANCE) == []
    tag = requirement_from_flags(None, source_tag="main")
    assert tag is not None and "the source ref is" in tag.check(CONFORMANCE)[0]


# --- generated provenance -----------------------------------------------------------------------

GITHUB_ENV = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_REPOSITORY": "acme/app",
    "GITHUB_SHA": "a" * 40,
    "GITHUB_REF": "refs/tags/v2.0.0",
    "GITHUB_WORKFLOW_REF": "acme/app/.github/workflows/release.yml@refs/tags/v2.0.0",
    "GITHUB_RUN_ID": "42",
    "GITHUB_RUN_ATTEMPT": "1",
    "RUNNER_ENVIRONMENT": "github-hosted",
}
GITLAB_ENV = {
    "GITLAB_CI": "true",
    "CI_SERVER_URL": "https://gitlab.example",
    "CI_PROJECT_PATH": "acme/app",
    "CI_COMMIT_SHA": "b" * 40,
    "CI_JOB_ID": "7",
    "CI_COMMIT_BRANCH": "main",
    "CI_RUNNER_ID": "3",
    "CI_JOB_NAME": "build",
}


def test_generated_github_provenance() -> None:
    statement = provenance_from_env(GITHUB_ENV).statement([Subject.for_digest("app", DIGEST)])
    requirement = requirement_from_policy(
        AttestationRequirement.model_validate(
            {
                "type": SLSA_V1,
                "builderId": "https://github.com/actions/runner/github-hosted",
                "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "sourceUri": "git+https://github.com/acme/app",
                "sourceRef": "refs/tags/v*",
            }
        )
    )
    assert requirement.check(statement) == []
    fork = requirement_from_policy(
        AttestationRequirement.model_validate(
            {
                "type": SLSA_V1,
                "sourceUri": "git+https://github.com/acme/app",
                "sourceRef": "refs/heads/main",
            }
        )
    )
    assert fork.check(statement) == ["the source ref is 'refs/tags/v2.0.0', not 'refs/heads/main'"]
    forked = provenance_from_env({**GITHUB_ENV, "GITHUB_REPOSITORY": "mallory/app"})
    reasons = requirement.check(forked.statement([Subject.for_digest("app", DIGEST)]))
    assert reasons == [
        "the source is 'https://github.com/mallory/app', not 'https://github.com/acme/app'"
    ]


def test_generated_gitlab_provenance() -> None:
    statement = provenance_from_env(GITLAB_ENV).statement([Subject.for_digest("app", DIGEST)])
    ok = _req(
        builder_id="https://gitlab.example/acme/app/-/runners/3",
        source_uri="https://gitlab.example/acme/app",
        source_ref="refs/heads/main",
    )
    assert ok.check(statement) == []
    assert _req(source_uri="gitlab.example/acme/other").check(statement)
    # externalParameters.source contradicting the resolved source is no source at all.
    doc = copy.deepcopy(statement.predicate)
    assert doc is not None
    doc["buildDefinition"]["externalParameters"]["source"] = "https://gitlab.example/mallory/app"
    reasons = ok.check(_statement(doc))
    assert len(reasons) == 1 and "disagree" in reasons[0]


# --- SLSA v0.2 ----------------------------------------------------------------------------------

V02 = {
    "builder": {
        "id": "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
        "generator_generic_slsa3.yml@refs/tags/v1.9.0"
    },
    "buildType": "https://github.com/slsa-framework/slsa-github-generator/generic@v1",
    "invocation": {
        "configSource": {
            "uri": "git+https://github.com/acme/tool@refs/tags/v0.3.1",
            "digest": {"sha1": "c" * 40},
            "entryPoint": ".github/workflows/release.yml",
        }
    },
    "materials": [
        {"uri": "git+https://github.com/acme/tool@refs/tags/v0.3.1", "digest": {"sha1": "c" * 40}}
    ],
}


def test_v02_provenance() -> None:
    statement = _statement(V02, SLSA_V02)
    flags = requirement_from_flags(
        SLSA_V02,
        builder_id="https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
        "generator_generic_slsa3.yml@v1.9.0",
        source_uri="github.com/acme/tool",
        source_tag="v0.3.1",
    )
    assert flags is not None and flags.check(statement) == []
    assert _req(predicate_type=SLSA_V02, source_ref="refs/tags/v0.*").check(statement) == []
    assert _req(predicate_type=SLSA_V02, build_type=V02["buildType"]).check(statement) == []
    other = copy.deepcopy(V02)
    other["materials"][0]["uri"] = "git+https://github.com/mallory/tool@refs/tags/v0.3.1"  # type: ignore[index]
    reasons = _req(predicate_type=SLSA_V02, source_uri="github.com/acme/tool").check(
        _statement(other, SLSA_V02)
    )
    assert len(reasons) == 1 and "disagree" in reasons[0]


# --- hostile predicates -------------------------------------------------------------------------


def _mutate(path: list[Any], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(GITHUB_V1)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


ALL = _req(
    builder_id=OCTO_BUILDER,
    build_type="https://actions.github.io/buildtypes/workflow/v1",
    source_uri="github.com/octo-org/octo-repo",
    source_ref="refs/tags/*",
)


@pytest.mark.parametrize(
    ("predicate", "fragment"),
    [
        (None, "names no builder ID"),
        ([], "names no builder ID"),
        ("text", "names no builder ID"),
        (_mutate(["runDetails", "builder", "id"], {"id": OCTO_BUILDER}), "names no builder ID"),
        (_mutate(["runDetails", "builder", "id"], OCTO_BUILDER + " "), "names no builder ID"),
        (_mutate(["runDetails", "builder", "id"], "x" * 5000), "names no builder ID"),
        (_mutate(["runDetails", "builder"], None), "names no builder ID"),
        (_mutate(["buildDefinition", "buildType"], 7), "names no build type"),
        (
            _mutate(["buildDefinition", "externalParameters", "workflow", "repository"], None),
            "names no source repository",
        ),
        (
            _mutate(
                ["buildDefinition", "externalParameters", "workflow", "repository"],
                "https://github.com/octo-org/octo-repo@refs/heads/evil",
            ),
            "names no source repository",
        ),
        (
            _mutate(["buildDefinition", "externalParameters", "workflow", "ref"], ["refs/tags/x"]),
            "names no source ref",
        ),
        (
            _mutate(
                ["buildDefinition", "resolvedDependencies", 0, "uri"],
                "git+https://github.com/mallory/octo-repo@refs/tags/1.21.0",
            ),
            "disagree",
        ),
        (
            _mutate(
                ["buildDefinition", "resolvedDependencies", 0, "uri"],
                "git+https://github.com/octo-org/octo-repo@refs/heads/evil",
            ),
            "disagree",
        ),
        (_mutate(["buildDefinition", "resolvedDependencies", 0, "uri"], "git+"), "not a git URI"),
    ],
)
def test_hostile_predicates_are_reasons_not_errors(predicate: Any, fragment: str) -> None:
    statement = Statement((Subject.for_digest("app", DIGEST),), SLSA_V1, predicate)
    reasons = ALL.check(statement)
    assert any(fragment in r for r in reasons), reasons
    assert all(len(r) < 600 for r in reasons)


def test_resolved_dependencies_of_the_wrong_shape_do_not_matter_to_github_sources() -> None:
    for value in (None, "x", [], [None], [{"uri": 5}], {"uri": "git+https://x/y"}):
        doc = _mutate(["buildDefinition", "resolvedDependencies"], value)
        assert ALL.check(_statement(doc)) == []


def test_a_non_provenance_statement_meets_no_provenance_requirement() -> None:
    statement = _statement({"x": 1}, "https://spdx.dev/Document")
    assert PredicateRequirement("https://spdx.dev/Document").check(statement) == []
    reasons = _req(predicate_type=None, builder_id="b").check(statement)
    assert reasons == ["the predicate type 'https://spdx.dev/Document' is not SLSA provenance"]


# --- requirements that cannot be checked ------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: _req(source_uri=""),
        lambda: _req(source_uri="github.com"),
        lambda: _req(source_uri="https://"),
        lambda: _req(source_uri="github.com/a b/c"),
        lambda: _req(source_uri="github.com/acme/app@"),
        lambda: _req(source_ref="main"),
        lambda: _req(source_ref="refs/heads/ma?n"),
        lambda: _req(builder_id=""),
        lambda: _req(builder_id="a\nb"),
        lambda: _req(source_uri="github.com/a/b@refs/heads/x", source_ref="refs/heads/y"),
        lambda: PredicateRequirement("https://spdx.dev/Document", builder_id="x"),
        lambda: PredicateRequirement(""),
        lambda: requirement_from_flags(SLSA_V1, source_tag="v1", source_branch="main"),
        lambda: requirement_from_flags(SLSA_V1, source_tag="refs/tags/v1"),
        lambda: requirement_from_flags(SLSA_V1, source_branch=""),
        lambda: requirement_from_flags("https://cyclonedx.org/bom", builder_id="x"),
    ],
)
def test_unusable_requirements_are_usage_errors(make: Any) -> None:
    with pytest.raises(InvalidInput):
        make()


def test_requirement_errors_are_named() -> None:
    with pytest.raises(RequirementInvalid) as info:
        requirement_from_flags(SLSA_V1, source_tag="a", source_branch="b")
    assert info.value.code == "PREDICATE_REQUIREMENT_INVALID"
    assert info.value.exit_code == 2
    assert requirement_from_flags(SLSA_V1) is None


def test_git_uris() -> None:
    assert str(parse_git_uri("git+https://github.com/a/b.git@refs/tags/v@1")) == (
        "https://github.com/a/b@refs/tags/v@1"
    )
    assert str(parse_git_uri("https://user@host.example/a/b")) == "https://user@host.example/a/b"
    assert parse_git_uri("git+ssh://host/a/b") == parse_git_uri("ssh://HOST/a/b/")
    for bad in (None, 5, "", "https://", "/a/b", "host", "a b/c", "x" * 3000):
        assert parse_git_uri(bad) is None


# --- through the engine -------------------------------------------------------------------------


def test_the_engine_refuses_an_attestation_whose_predicate_falls_short() -> None:
    signer = SoftwareSigner.generate()
    data = b"release bytes\n"
    artifact = Artifact(Digest.of(data), data, "app")
    raw = attest_blob(artifact.digest, "app", signer, SLSA_V1, GITHUB_V1).to_json()
    policy = TrustPolicy(keys=(signer.public_key,))
    good = _req(builder_id=OCTO_BUILDER, source_uri="github.com/octo-org/octo-repo")
    verdict = verify_bundle(raw, artifact, policy, Expectation(True, SLSA_V1, requirement=good))
    assert verdict.allowed, verdict.reasons
    assert verdict.evidence[0]["detail"]["predicateRequirement"] == {
        "predicateType": SLSA_V1,
        "builderId": OCTO_BUILDER,
        "sourceUri": "https://github.com/octo-org/octo-repo",
    }
    fork = _req(builder_id=OCTO_BUILDER, source_uri="github.com/mallory/octo-repo")
    verdict = verify_bundle(raw, artifact, policy, Expectation(True, SLSA_V1, requirement=fork))
    assert not verdict.allowed
    assert verdict.evidence[0]["code"] == "PREDICATE_REQUIREMENT_UNMET"
    assert "the source is 'https://github.com/octo-org/octo-repo'" in verdict.reasons[0]
    # Without a requirement the same attestation passes, as before.
    assert verify_bundle(raw, artifact, policy, Expectation(True, SLSA_V1)).allowed
