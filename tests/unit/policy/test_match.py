"""Globs (`*` within a segment, `**` across), first-match rules, and who may publish where."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from safeguard.core.errors import InvalidReference
from safeguard.core.reference import Reference
from safeguard.policy.match import (
    GlobInvalid,
    check_glob,
    compile_glob,
    glob_matches,
    identity_may_publish,
    rule_for,
)
from safeguard.policy.schema import Identity


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("team-a/**", "team-a", True),
        ("team-a/**", "team-a/app", True),
        ("team-a/**", "team-a/x/y/app", True),
        ("team-a/**", "team-ab/app", False),
        ("team-a/**", "other/team-a/app", False),
        ("**/app", "app", True),
        ("**/app", "x/y/app", True),
        ("**/app", "x/myapp", False),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "a/x/y/c", False),
        ("**", "anything/at/all", True),
        ("*", "one", True),
        ("*", "one/two", False),
        ("team-*/app", "team-a/app", True),
        ("team-*/app", "team-a/b/app", False),
        ("v*", "v1.2.3", True),
        ("v*", "release-v1", False),
        ("prod-*", "prod-", True),
        ("a/*", "a/", False),
        ("registry.internal/team-a/**", "registry.internal/team-a/app", True),
        ("registry.internal/team-a/**", "registryxinternal/team-a/app", False),
        ("localhost:5000/**", "localhost:5000/x/y", True),
        ("refs/tags/v*", "refs/tags/v1.0", True),
        ("refs/tags/v*", "refs/tags/v1/rc", False),
        ("a.b", "axb", False),
    ],
)
def test_glob_semantics(pattern: str, name: str, expected: bool) -> None:
    assert glob_matches(pattern, name) is expected


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("", "empty glob"),
        ("team-a/", "empty segment"),
        ("/team-a", "empty segment"),
        ("a//b", "empty segment"),
        ("a**", "whole segment"),
        ("a/**b/c", "whole segment"),
        ("a/**/**", "repeats **"),
        ("team-?", "'?'"),
        ("team-[ab]", "'['"),
        ("{a,b}/x", "'{'"),
        ("a b", "' '"),
        ("a\\b", "'\\\\'"),
        ("x" * 600, "longer than"),
    ],
)
def test_invalid_globs(pattern: str, reason: str) -> None:
    with pytest.raises(GlobInvalid) as info:
        check_glob(pattern)
    assert reason in info.value.message
    with pytest.raises(GlobInvalid):
        compile_glob(pattern)


@dataclass(frozen=True)
class R:
    match: str
    label: str


def test_rule_for_returns_the_first_match_in_file_order() -> None:
    rules = [R("team-a/secret/**", "narrow"), R("team-a/**", "team"), R("**", "all")]
    assert rule_for(rules, "team-a/secret/x") == rules[0]
    assert rule_for(rules, "team-a/app") == rules[1]
    assert rule_for(rules, "team-b/app") == rules[2]
    assert rule_for(rules[:2], "team-b/app") is None
    assert rule_for([], "x") is None
    reordered = [rules[1], rules[0]]
    assert rule_for(reordered, "team-a/secret/x") == rules[1]  # order, not specificity


def _identity(*may_publish: str) -> Identity:
    return Identity.model_validate(
        {
            "name": "team-a-release",
            "trustRoot": "public",
            "keyless": {"issuer": "https://issuer.example", "subject": "x"},
            "mayPublish": list(may_publish),
        }
    )


def test_identity_may_publish() -> None:
    identity = _identity("registry.internal/team-a/**", "ghcr.io/org/*")
    assert identity_may_publish(identity, "registry.internal/team-a/app:v1")
    assert identity_may_publish(identity, "registry.internal/team-a/x/app@sha256:" + "a" * 64)
    assert identity_may_publish(identity, Reference.parse("ghcr.io/org/tool:1"))
    assert not identity_may_publish(identity, "ghcr.io/org/deep/tool:1")
    assert not identity_may_publish(identity, "registry.internal/team-b/app:v1")
    assert not identity_may_publish(_identity(), "registry.internal/team-a/app")
    # Docker Hub names are normalised before matching
    assert identity_may_publish(_identity("docker.io/library/*"), "alpine:3")
    with pytest.raises(InvalidReference):
        identity_may_publish(identity, "Not A Reference")


_LITERAL = st.text(alphabet="abcxyz019.-_:@", min_size=1, max_size=8)


@given(st.lists(_LITERAL, min_size=1, max_size=5))
def test_a_glob_without_wildcards_matches_only_itself(segments: list[str]) -> None:
    name = "/".join(segments)
    assert glob_matches(name, name)
    assert not glob_matches(name, name + "x")
    assert not glob_matches(name, "x/" + name)


@given(st.text(alphabet="ab*/?[.", max_size=12), st.text(alphabet="ab/.", max_size=12))
def test_any_pattern_is_refused_or_compiles(pattern: str, name: str) -> None:
    try:
        regex = compile_glob(pattern)
    except GlobInvalid:
        return
    matched = regex.match(name) is not None
    if "*" not in pattern:
        assert matched is (pattern == name)
    if matched and "**" not in pattern:
        assert name.count("/") == pattern.count("/")  # * never crosses a segment
