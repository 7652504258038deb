"""Structural summaries and text diffs between two policies."""

from __future__ import annotations

from safeguard.policy.diff import Action, Change, files_diff, structural_changes, unified_text_diff
from safeguard.policy.load import load_policy_text
from tests.fixtures.policy import POLICY_DIR, example_text, variant


def normalized(text: str) -> dict[str, object]:
    return load_policy_text(text, base_dir=POLICY_DIR).policy.normalized()


def test_no_change_for_comments_and_formatting() -> None:
    reformatted = variant(
        ("mutateToDigest: true", "mutateToDigest: true   # changed comment"),
        ("graceSeconds: 60", "graceSeconds:   60"),
    )
    assert structural_changes(normalized(example_text()), normalized(reformatted)) == []


def test_identities_rules_and_sections() -> None:
    new = variant(
        ("ref: refs/heads/main", "ref: refs/tags/v*"),
        ('mayPublish: ["ghcr.io/org/**"]', 'mayPublish: ["ghcr.io/org/**", "ghcr.io/x/*"]'),
        ("- name: release-engineer-jdoe", "- name: release-engineer-asmith"),
        ("signers: [{identity: team-a-release}, {identity: release-engineer-jdoe}]",
         "signers: [{identity: team-a-release}, {identity: release-engineer-asmith}]"),
        ("failurePolicy: fail", "failurePolicy: ignore"),
        ("claimWindowDays: 30", "claimWindowDays: 14"),
        ("      - name: legacy-team-a", "      - name: legacy-team-a-2025"),
        ("tlog: {url: https://safeguard.internal", "tlog: {url: https://log.internal"),
    )  # fmt: skip
    changes = structural_changes(normalized(example_text()), normalized(new))
    assert set(map(str, changes)) == {
        "changed trustRoots internal: tlog.url",
        "removed trustRoots.internal.keys legacy-team-a",
        "added trustRoots.internal.keys legacy-team-a-2025",
        "changed identities team-a-release: oidc.ref",
        "changed identities oss-release: mayPublish",
        "removed identities release-engineer-jdoe",
        "added identities release-engineer-asmith",
        "changed registries team-a/**: signers",
        "changed admission admission: failurePolicy",
        "changed cleanup cleanup: claimWindowDays",
    }


def test_rules_added_removed_and_moved() -> None:
    extra = '  - match: "registry.internal/team-b/**"\n    signers: [{identity: oss-release}]\n'
    first = example_text().replace("\nadmission:", extra + "\nadmission:")
    swapped = example_text().replace(
        "verification:                               # asked by admission, CI gate, mirror and "
        "audit alike\n",
        "verification:\n" + extra,
    )
    old, new = normalized(first), normalized(swapped)
    assert set(map(str, structural_changes(old, new))) == {
        "moved verification registry.internal/team-a/**",
        "moved verification registry.internal/team-b/**",
    }
    assert structural_changes(normalized(example_text()), new) == [
        Change(Action.added, "verification", "registry.internal/team-b/**")
    ]
    assert structural_changes(new, normalized(example_text())) == [
        Change(Action.removed, "verification", "registry.internal/team-b/**")
    ]


def test_trust_roots_and_files() -> None:
    old = normalized(example_text())
    new = dict(old)
    new["trustRoots"] = {"internal": old["trustRoots"]["internal"]}  # type: ignore[index]
    changes = structural_changes(old, new, {"a": "1", "b": "2"}, {"b": "3", "c": "4"})
    assert [str(c) for c in changes] == [
        "removed trustRoots public",
        "removed files a",
        "changed files b",
        "added files c",
    ]
    assert changes[0].to_dict() == {
        "action": "removed",
        "section": "trustRoots",
        "name": "public",
        "fields": [],
    }


def test_text_diffs() -> None:
    diff = unified_text_diff("a\nb\n", "a\nc", "v1", "v2")
    assert diff.splitlines() == [
        "--- v1",
        "+++ v2",
        "@@ -1,2 +1,2 @@",
        " a",
        "-b",
        "+c",
        "\\ No newline at end of file",
    ]
    assert unified_text_diff("same\n", "same\n", "v1", "v2") == ""
    out = files_diff(
        {"k.pub": b"old\n", "bin": b"\xff"}, {"k.pub": b"new\n", "bin": b"\xfe"}, "v1", "v2"
    )
    assert "Binary file bin differs" in out and "--- v1:k.pub" in out and "+new" in out
    added = files_diff({}, {"n.pub": b"x\n"}, "v1", "v2")
    assert added.startswith("--- /dev/null\n+++ v2:n.pub")
