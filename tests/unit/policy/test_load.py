"""Loading and validating policies: the shared example, defaults, and hostile input, where every
problem names its field path and line and says what to do."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from safeguard.core.errors import InvalidInput
from safeguard.policy import (
    FailurePolicy,
    IdentityKind,
    PolicyInvalid,
    PolicyIssue,
    UnsignedPush,
    VerificationMode,
    load_policy,
    load_policy_text,
)
from safeguard.policy.files import StoredFiles
from safeguard.policy.schema import DEFAULT_TICKET_PATTERN, Policy
from safeguard.verify.from_policy import keyless_identity
from tests.fixtures.policy import EXAMPLE, POLICY_DIR, example_text, policy_dir, variant

MINIMAL = "apiVersion: safeguard.dev/v1\nkind: Policy\n"


def problems(text: str | bytes, base_dir: Path = POLICY_DIR) -> list[PolicyIssue]:
    with pytest.raises(PolicyInvalid) as info:
        load_policy_text(text, base_dir=base_dir)
    return list(info.value.issues)


def problem(text: str | bytes, base_dir: Path = POLICY_DIR) -> PolicyIssue:
    found = problems(text, base_dir)
    assert len(found) == 1, [str(i) for i in found]
    return found[0]


# -- the good file ---------------------------------------------------------------------------


def test_the_shared_example_validates() -> None:
    loaded = load_policy(EXAMPLE)
    policy = loaded.policy
    assert loaded.text == example_text()
    assert sorted(loaded.files) == [
        "keys/legacy-team-a.pub",
        "trust/github-jwks.json",
        "trust/public-good.trusted_root.json",
        "trust/tlog.pub",
    ]
    assert loaded.files["trust/tlog.pub"] == (POLICY_DIR / "trust/tlog.pub").read_bytes()
    assert set(policy.trust_roots) == {"public", "internal"}
    internal = policy.trust_roots["internal"]
    assert [k.name for k in internal.keys] == ["team-a-2026", "legacy-team-a"]
    assert internal.keys[1].retired_at == datetime(2026, 6, 30, tzinfo=UTC)
    assert internal.tlog is not None and internal.tlog.url == "https://safeguard.internal"

    team_a = policy.identity("team-a-release")
    assert team_a is not None and team_a.kind is IdentityKind.ci and team_a.oidc is not None
    assert team_a.oidc.audience == "safeguard"  # the default
    assert team_a.oidc.ref == "refs/heads/main"
    key = policy.signing_key(team_a)
    assert key is not None and key.ref is not None and key.ref.startswith("pkcs11:")

    oss = policy.identity("oss-release")
    assert oss is not None and oss.keyless is not None
    identity_policy = keyless_identity(oss.keyless)
    assert identity_policy.issuer.exact == "https://token.actions.githubusercontent.com"
    assert identity_policy.subject.regexp is not None

    jdoe = policy.identity("release-engineer-jdoe")
    assert jdoe is not None and jdoe.kind is IdentityKind.release_engineer
    assert jdoe.ticket_pattern == DEFAULT_TICKET_PATTERN
    assert jdoe.ticket_regex is not None and jdoe.ticket_regex.match("REL-42")
    assert jdoe.accepted_in_globs == ["registry.internal/firmware/**"]

    rule = policy.registry_rule("team-a/app")
    assert rule is not None and rule.unsigned_push is UnsignedPush.reject
    assert rule.grace_seconds == 60 and rule.immutable_tags == ["v*"]
    assert rule.quarantine is not None and rule.quarantine.deprecation_days == 90
    assert policy.registry_rule("team-b/app") is None

    verification = policy.verification_rule("registry.internal/team-a/app")
    assert verification is not None and verification.mode is VerificationMode.enforce
    assert verification.attestations[0].builder_id is not None

    assert policy.admission.failure_policy is FailurePolicy.fail
    assert policy.admission.namespaces.include == ["prod-*"]
    assert policy.cleanup.categories.occasional_within_days == 180


def test_defaults_of_an_empty_policy() -> None:
    policy = load_policy_text(MINIMAL).policy
    assert policy.identities == [] and policy.registries == [] and policy.trust_roots == {}
    assert policy.admission.namespaces.include == ["*"]
    assert policy.admission.mutate_to_digest is True
    assert policy.cleanup.categories.active_within_days == 30
    assert policy.cleanup.occasional_deadline_days == 60
    assert policy.cleanup.claim_window_days == 30
    normalized = policy.normalized()
    assert normalized["admission"]["failurePolicy"] == "fail"
    assert Policy.model_validate(normalized) == policy


def test_normalised_form_round_trips_and_omits_unset_fields() -> None:
    policy = load_policy(EXAMPLE).policy
    normalized = policy.normalized()
    assert "publicKey" not in normalized["trustRoots"]["internal"]["keys"][0]
    assert normalized["registries"][0]["unsignedPush"] == "reject"
    assert normalized["trustRoots"]["internal"]["keys"][1]["retiredAt"] == "2026-06-30T00:00:00Z"
    assert Policy.model_validate(normalized) == policy
    assert Policy.model_validate_json(policy.model_dump_json(by_alias=True)) == policy


def test_snake_case_names_are_accepted_in_code() -> None:
    policy = Policy.model_validate(
        {"api_version": "safeguard.dev/v1", "kind": "Policy", "cleanup": {"claim_window_days": 7}}
    )
    assert policy.cleanup.claim_window_days == 7


def test_unquoted_off_is_the_off_mode() -> None:
    text = variant(("unsignedPush: reject", "unsignedPush: off"))
    rule = load_policy_text(text, base_dir=POLICY_DIR).policy.registries[0]
    assert rule.unsigned_push is UnsignedPush.off


def test_files_can_come_from_a_stored_version() -> None:
    loaded = load_policy(EXAMPLE)
    again = load_policy_text(loaded.text, files=StoredFiles(loaded.files))
    assert again.policy == loaded.policy and again.files == loaded.files
    missing = dict(loaded.files)
    del missing["trust/tlog.pub"]
    with pytest.raises(PolicyInvalid) as info:
        load_policy_text(loaded.text, files=StoredFiles(missing))
    assert "not stored with this policy version" in info.value.issues[0].message


# -- hostile input: one problem each, with its path and line -------------------------------


def test_typo_in_a_field_name() -> None:
    issue = problem(variant(("unsignedPush: reject", "unsginedPush: reject")))
    assert issue.path == "registries[0].unsginedPush" and issue.line == 45
    assert issue.message == "unknown field 'unsginedPush'"
    assert issue.hint == "did you mean 'unsignedPush'?"
    assert str(issue).startswith("registries[0].unsginedPush (line 45, column 5): ")


def test_unknown_field_lists_the_known_ones() -> None:
    issue = problem(MINIMAL + "cleanup:\n  zzz: 1\n")
    assert issue.path == "cleanup.zzz" and issue.line == 4
    assert issue.hint is not None and "claimWindowDays" in issue.hint


def test_wrong_enum_value() -> None:
    issue = problem(variant(("mode: enforce", "mode: enforced")))
    assert issue.path == "verification[0].mode" and issue.line == 53
    assert issue.message == "expected one of 'enforce', 'warn'; got the text 'enforced'"
    issue = problem(variant(("kind: release-engineer", "kind: person")))
    assert issue.path == "identities[2].kind" and "'release-engineer'" in issue.message


def test_wrong_types_are_not_coerced() -> None:
    issue = problem(variant(("graceSeconds: 60", 'graceSeconds: "60"')))
    assert issue.path == "registries[0].graceSeconds" and "whole number" in issue.message
    issue = problem(variant(("mutateToDigest: true", "mutateToDigest: yes")))
    assert issue.path == "admission.mutateToDigest" and issue.line == 63
    assert "true or false" in issue.message and "yes/no" in (issue.hint or "")
    issue = problem(MINIMAL + "registries:\n")
    assert issue.path == "registries" and "got nothing (null)" in issue.message
    issue = problem(MINIMAL + "identities: {name: x}\n")
    assert "expected a list" in issue.message


def test_bounds() -> None:
    issue = problem(variant(("graceSeconds: 60", "graceSeconds: 0")))
    assert issue.message == "must be at least 1; got 0"
    issue = problem(
        MINIMAL + "cleanup:\n  categories: {activeWithinDays: 90, occasionalWithinDays: 30}\n"
    )
    assert issue.path == "cleanup.categories.occasionalWithinDays" and issue.line == 4


def test_header_fields() -> None:
    issue = problem("apiVersion: safeguard.dev/v2\nkind: Policy\n")
    assert issue.path == "apiVersion" and "'safeguard.dev/v1'" in issue.message
    found = problems("trustRoots: {}\n")
    assert [i.path for i in found] == ["apiVersion", "kind"]
    assert found[0].hint == "add apiVersion: safeguard.dev/v1"


def test_duplicate_identity_names() -> None:
    issue = problem(variant(("- name: oss-release", "- name: team-a-release")))
    assert issue.path == "identities[1].name" and issue.line == 31
    assert "duplicate identity name 'team-a-release' (also identities[0])" in issue.message


def test_duplicate_key_names_in_a_trust_root() -> None:
    issue = problem(variant(("- name: legacy-team-a", "- name: team-a-2026")))
    assert issue.path == "trustRoots.internal.keys[1].name" and issue.line == 15


def test_duplicate_trust_roots_are_duplicate_yaml_keys() -> None:
    text = variant(("  internal:", "  public:"))
    issue = problems(text)[0]
    assert issue.path == "trustRoots.public" and "duplicate key 'public'" in issue.message


def test_dangling_identity_reference() -> None:
    issue = problem(
        variant(("signers: [{identity: team-a-release}]", "signers: [{identity: team-b}]"))
    )
    assert issue.path == "verification[0].signers[0].identity" and issue.line == 54
    assert "identity 'team-b' is not defined" in issue.message
    assert "release-engineer-jdoe" in issue.message


def test_dangling_trust_root_and_key() -> None:
    issue = problem(variant(("trustRoot: public", "trustRoot: publik")))
    assert issue.path == "identities[1].trustRoot" and issue.line == 32
    assert "trust root 'publik' is not defined (defined: internal, public)" in issue.message
    issue = problem(variant(("key: team-a-2026", "key: team-a-2027")))
    assert issue.path == "identities[0].key" and issue.line == 23
    assert "has no key 'team-a-2027'" in issue.message


def test_oidc_identity_must_sign_with_a_private_key() -> None:
    issue = problem(variant(("key: team-a-2026", "key: legacy-team-a")))
    assert issue.path == "identities[0].key" and "only a publicKey" in issue.message


def test_keyless_identity_needs_a_keyless_trust_root() -> None:
    issue = problem(variant(("    trustRoot: public\n", "    trustRoot: internal\n")))
    assert issue.path == "identities[1].trustRoot" and "no keyless root or ca" in issue.message


def test_bad_glob() -> None:
    issue = problem(
        variant(('"registry.internal/firmware/**"', '"registry.internal/firm[a]ware/**"'))
    )
    assert issue.path == "identities[2].mayPublish[0]" and issue.line == 41
    assert "contains '[' ']'" in issue.message and "**" in (issue.hint or "")
    issue = problem(variant(('match: "team-a/**"', 'match: "team-a**"')))
    assert issue.path == "registries[0].match" and "whole segment" in issue.message
    issue = problem(variant(('immutableTags: ["v*"]', 'immutableTags: ["release/v*"]')))
    assert issue.path == "registries[0].immutableTags[0]" and issue.line == 48


def test_bad_regexp() -> None:
    issue = problem(variant(('subjectRegExp: "^https', 'subjectRegExp: "(^https')))
    assert issue.path == "identities[1].keyless.subjectRegExp" and issue.line == 35
    assert issue.message.startswith("invalid regular expression")
    text = variant(("    token:", "    ticketPattern: '[A-Z'\n    token:"))
    assert problem(text).path == "identities[2].ticketPattern"


def test_bad_pkcs11_uri() -> None:
    issue = problem(variant(("object=release", "object=release;bogus=1")))
    assert issue.path == "identities[2].token" and issue.line == 40
    assert "invalid PKCS#11 URI: unknown PKCS#11 URI path attribute 'bogus'" in issue.message
    issue = problem(variant(('token: "pkcs11:', 'token: "pkcs12:')))
    assert "not a PKCS#11 URI" in issue.message
    issue = problem(variant(("pin-source=file:/run/secrets/hsm-pin", "pin-value=1234")))
    assert issue.path == "trustRoots.internal.keys[0].ref" and issue.line == 14
    assert "carries a PIN" in issue.message


def test_key_needs_ref_or_public_key_and_may_have_both() -> None:
    text = variant(("        publicKey: keys/legacy-team-a.pub\n", ""))
    issue = problem(text)
    assert issue.path == "trustRoots.internal.keys[1]" and issue.line == 15
    assert "needs one of ref, publicKey" in issue.message
    text = variant(
        (
            "        publicKey: keys/legacy-team-a.pub\n",
            "        publicKey: keys/legacy-team-a.pub\n        ref: cosign.key\n",
        )
    )
    loaded = load_policy_text(text, base_dir=POLICY_DIR)
    key = loaded.policy.trust_root("internal").key("legacy-team-a")  # type: ignore[union-attr]
    assert key is not None and key.ref == "cosign.key" and key.public_key is not None


def test_retired_at_needs_a_time_zone() -> None:
    issue = problem(variant(("retiredAt: 2026-06-30T00:00:00Z", "retiredAt: 2026-06-30T00:00:00")))
    assert issue.path == "trustRoots.internal.keys[1].retiredAt" and issue.line == 17
    assert "no time zone" in issue.message
    issue = problem(variant(("retiredAt: 2026-06-30T00:00:00Z", "retiredAt: next tuesday")))
    assert "RFC 3339" in issue.message


def test_revocation_needs_a_reason() -> None:
    issue = problem(variant(("retiredAt: 2026-06-30T00:00:00Z", "revokedAt: 2026-06-30T00:00:00Z")))
    assert (
        issue.path == "trustRoots.internal.keys[1].revokedAt"
        and "revocationReason" in issue.message
    )
    text = variant(
        (
            "retiredAt: 2026-06-30T00:00:00Z",
            "revokedAt: 2026-06-30T00:00:00Z\n        revocationReason: leaked",
        )
    )
    key = load_policy_text(text, base_dir=POLICY_DIR).policy.trust_roots["internal"].keys[1]
    assert key.revocation_reason == "leaked"


def test_oidc_ref_must_be_a_full_ref() -> None:
    issue = problem(variant(("ref: refs/heads/main", "ref: main")))
    assert str(issue).startswith("identities[0].oidc.ref (line 28, column 12): ")
    assert "refs/heads/... or refs/tags/..." in (issue.hint or "")
    text = variant(("ref: refs/heads/main", "ref: refs/tags/v*"))
    assert load_policy_text(text, base_dir=POLICY_DIR).policy.identities[0].oidc is not None


def test_oidc_rules() -> None:
    issue = problem(variant(("      repository: org/team-a\n", "")))
    assert issue.path == "identities[0].oidc.repository" and "any project" in (issue.hint or "")
    issue = problem(
        variant(("repository: org/team-a", "repository: org/team-a\n      projectPath: g/p"))
    )
    assert issue.path == "identities[0].oidc.projectPath"
    issue = problem(
        variant(
            (
                "workflow: .github/workflows/release.yml",
                "workflow: .github/workflows/release.yml@refs/heads/main",
            )
        )
    )
    assert issue.path == "identities[0].oidc.workflow"
    issue = problem(variant(("ref: refs/heads/main", "ref: refs/heads/main\n      refType: tag")))
    assert issue.path == "identities[0].oidc.refType" and "contradicts" in issue.message
    issue = problem(variant(("issuer: https://token.actions", "issuer: http://token.actions")))
    assert issue.path == "identities[0].oidc.issuer" and "plain http" in issue.message
    issue = problem(
        variant(("repository: org/team-a", "repository: org/team-a\n      pipelineSource: push"))
    )
    assert issue.path == "identities[0].oidc.pipelineSource" and "GitLab" in issue.message


def test_gitlab_identity() -> None:
    text = variant(
        (
            "      repository: org/team-a\n",
            "      projectPath: org/team-a/app\n      pipelineSource: push\n",
        ),
        ("      workflow: .github/workflows/release.yml\n", "      refType: branch\n"),
        (
            "issuer: https://token.actions.githubusercontent.com\n      jwks",
            "issuer: https://gitlab.example.com\n      jwks",
        ),
    )
    oidc = load_policy_text(text, base_dir=POLICY_DIR).policy.identities[0].oidc
    assert oidc is not None and oidc.project_path == "org/team-a/app"


def test_ci_identity_needs_exactly_one_way_to_sign() -> None:
    both = variant(
        (
            '    mayPublish: ["ghcr.io/org/**"]',
            "    oidc: {issuer: https://x.example, repository: a/b}\n"
            '    mayPublish: ["ghcr.io/org/**"]',
        )
    )
    issue = problems(both)[0]
    assert issue.path == "identities[1].keyless" and "both given" in issue.message
    root = "trustRoots: {p: {keyless: {trustedRoot: trust/public-good.trusted_root.json}}}\n"
    issue = problem(MINIMAL + root + "identities:\n  - {name: a, trustRoot: p}\n")
    assert issue.path == "identities[0]" and "needs one of oidc, keyless" in issue.message


def test_release_engineer_rules() -> None:
    issue = problem(variant(('    token: "pkcs11:token=jdoe-yubikey;object=release"\n', "")))
    assert issue.path == "identities[2].token" and "hardware token" in issue.message
    text = variant(
        (
            "kind: release-engineer",
            "kind: release-engineer\n    oidc: {issuer: https://x.example, repository: a/b}",
        )
    )
    issue = problem(text)
    assert issue.path == "identities[2].oidc" and "may not have oidc" in issue.message
    issue = problem(
        variant(("    trustRoot: public\n", "    trustRoot: public\n    ticketPattern: X\n"))
    )
    assert issue.path == "identities[1].ticketPattern"


def test_keyless_identity_rules() -> None:
    issue = problem(
        variant(
            (
                '      subjectRegExp: "^https://github.com/org/[^/]+/.github/workflows/release.yml@refs/tags/v.*$"\n',
                "",
            )
        )
    )
    assert issue.path == "identities[1].keyless" and "subject, subjectRegExp" in issue.message
    issue = problem(variant(("    trustRoot: public\n", "    trustRoot: public\n    key: k\n")))
    assert issue.path == "identities[1].key" and "keyless identity has no key" in issue.message
    text = variant(
        (
            "      subjectRegExp:",
            "      extensions: {sourceRepositoryUri: https://github.com/org/x}\n"
            "      subjectRegExp:",
        )
    )
    keyless = load_policy_text(text, base_dir=POLICY_DIR).policy.identities[1].keyless
    assert keyless is not None
    assert keyless_identity(keyless).extensions == {
        "source-repository-uri": "https://github.com/org/x"
    }
    issue = problem(text.replace("sourceRepositoryUri", "sourceRepoUri"))
    assert issue.hint == "did you mean 'sourceRepositoryUri'?"


def test_signer_needs_exactly_one_of_identity_and_key() -> None:
    issue = problem(variant(("signers: [{identity: team-a-release}]", "signers: [{}]")))
    assert (
        issue.path == "verification[0].signers[0]" and "needs one of identity, key" in issue.message
    )
    issue = problem(variant(("signers: [{identity: team-a-release}]", "signers: []")))
    assert issue.path == "verification[0].signers" and "at least 1" in issue.message


def test_signer_key_files_must_be_public_keys(tmp_path: Path) -> None:
    base = policy_dir(tmp_path)
    text = variant(
        ("signers: [{identity: team-a-release}]", "signers: [{key: keys/legacy-team-a.pub}]")
    )
    assert "keys/legacy-team-a.pub" in load_policy_text(text, base_dir=base).files
    (base / "keys" / "junk.pub").write_text("not a key\n")
    issue = problem(text.replace("legacy-team-a.pub}", "junk.pub}"), base)
    assert issue.path == "verification[0].signers[0].key" and issue.line == 54
    assert "is not a valid public key" in issue.message
    issue = problem(text.replace("legacy-team-a.pub}", "nope.pub}"), base)
    assert "does not exist" in issue.message and "relative to the policy file" in (issue.hint or "")


def test_referenced_files_must_hold_what_they_say(tmp_path: Path) -> None:
    base = policy_dir(tmp_path)
    (base / "trust" / "public-good.trusted_root.json").write_text('{"mediaType": "x"}')
    (base / "trust" / "github-jwks.json").write_text("[]")
    (base / "trust" / "tlog.pub").write_bytes((base / "trust" / "github-jwks.json").read_bytes())
    found = {i.path: i.message for i in problems(example_text(), base)}
    assert set(found) == {
        "trustRoots.public.keyless.trustedRoot",
        "trustRoots.internal.tlog.publicKey",
        "identities[0].oidc.jwks",
    }
    assert "not a valid Sigstore trusted root" in found["trustRoots.public.keyless.trustedRoot"]
    assert "not a JWKS document" in found["identities[0].oidc.jwks"]


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    base = policy_dir(tmp_path)
    issue = problem(variant(("keys/legacy-team-a.pub", "keys")), base)
    assert "not a regular file" in issue.message


def test_jwks_may_be_a_url() -> None:
    text = variant(
        (
            "jwks: trust/github-jwks.json",
            "jwks: https://token.actions.githubusercontent.com/.well-known/jwks",
        )
    )
    assert "trust/github-jwks.json" not in load_policy_text(text, base_dir=POLICY_DIR).files


def test_rules_that_never_apply() -> None:
    text = variant(("registries:", 'registries:\n  - {match: "**"}'))
    issue = problem(text)
    assert issue.path == "registries[1].match" and "matches everything first" in issue.message
    rule = '  - match: "registry.internal/team-a/**"\n    signers: [{identity: oss-release}]\n'
    issue = problem(example_text().replace("\nadmission:", rule + "\nadmission:"))
    assert issue.path == "verification[1].match" and "same match" in issue.message


def test_attestation_rules() -> None:
    issue = problem(
        variant(("type: https://slsa.dev/provenance/v1", "type: https://spdx.dev/Document"))
    )
    assert issue.path == "verification[0].attestations[0].builderId"
    assert "SLSA provenance only" in issue.message
    issue = problem(variant(("type: https://slsa.dev/provenance/v1", "type: provenance")))
    assert issue.path == "verification[0].attestations[0].type"


def test_names_and_paths() -> None:
    issue = problem(variant(("- name: oss-release", "- name: OSS Release")))
    assert issue.path == "identities[1].name" and "not a valid name" in issue.message
    issue = problem(
        MINIMAL
        + "trustRoots:\n  Bad_Name: {keyless: {trustedRoot: trust/public-good.trusted_root.json}}\n"
    )
    assert issue.path == "trustRoots.Bad_Name" and issue.line == 4 and issue.column == 3
    issue = problem(
        variant(("publicKey: keys/legacy-team-a.pub", "publicKey: https://example.com/k.pub"))
    )
    assert "is a URL" in issue.message
    issue = problem(variant(("namespace: quarantine", "namespace: Quarantine")))
    assert (
        issue.path == "registries[0].quarantine.namespace"
        and "invalid repository name" in issue.message
    )


def test_empty_trust_root() -> None:
    issue = problem(MINIMAL + "trustRoots:\n  empty: {}\n")
    assert issue.path == "trustRoots.empty" and "trusts nothing" in issue.message


def test_every_problem_is_reported_at_once() -> None:
    text = variant(
        ("unsignedPush: reject", "unsginedPush: reject"),
        ("ref: refs/heads/main", "ref: main"),
        ("signers: [{identity: team-a-release}]", "signers: [{identity: team-b}]"),
        ("mode: enforce", "mode: enforced"),
        ("object=release", "object=release;bogus=1"),
        ("keys/legacy-team-a.pub", "keys/missing.pub"),
        ("- name: oss-release", "- name: team-a-release"),
        ("claimWindowDays: 30", "claimWindowDays: 30\n  claimWindowDays: 31"),
    )
    found = problems(text)
    assert [(i.path, i.line) for i in found] == [
        ("trustRoots.internal.keys[1].publicKey", 16),
        ("identities[0].oidc.ref", 28),
        ("identities[1].name", 31),
        ("identities[2].token", 40),
        ("registries[0].unsginedPush", 45),
        ("verification[0].mode", 53),
        ("verification[0].signers[0].identity", 54),
        ("cleanup.claimWindowDays", 69),
    ]
    with pytest.raises(PolicyInvalid) as info:
        load_policy_text(text, base_dir=POLICY_DIR, source="safeguard.yaml")
    assert info.value.message == "safeguard.yaml is not a valid policy (8 problems)"
    assert info.value.exit_code == 2
    assert info.value.to_dict()["detail"][0]["path"] == "trustRoots.internal.keys[1].publicKey"


def test_hostile_documents_through_the_loader(tmp_path: Path) -> None:
    assert (
        "tab"
        in problem(
            "apiVersion: safeguard.dev/v1\nkind: Policy\ncleanup:\n\tclaimWindowDays: 3\n"
        ).message
    )
    issue = problem("- apiVersion: safeguard.dev/v1\n- kind: Policy\n")
    assert "must be a mapping, not a list" in issue.message
    bomb = [
        "apiVersion: safeguard.dev/v1",
        "kind: Policy",
        'a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]',
    ]
    for i in range(1, 9):
        bomb.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    assert "expands to more than" in problem("\n".join(bomb) + "\n").message
    big = tmp_path / "big.yaml"
    big.write_bytes(MINIMAL.encode() + b"# " + b"x" * (10 * 1024 * 1024) + b"\n")
    with pytest.raises(PolicyInvalid) as info:
        load_policy(big)
    assert "10.0 MiB" in info.value.issues[0].message


def test_policy_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        load_policy(tmp_path / "nope.yaml")
    assert "no policy file" in info.value.message
    with pytest.raises(InvalidInput):
        load_policy(tmp_path)
