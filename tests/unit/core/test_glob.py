"""The one glob implementation (``safeguard.core.glob``): the policy's semantics, used by both the
policy and the CI token matching, including the cases on which the two used to disagree."""

from __future__ import annotations

import pytest

from safeguard.core.glob import (
    GlobInvalid,
    any_glob_matches,
    check_glob,
    compile_glob,
    exact_or_glob,
    glob_matches,
)
from safeguard.identity import match as identity_match
from safeguard.policy import match as policy_match


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        # The two cases policy and identity matching used to answer differently:
        ("refs/**/main", "refs/main", True),  # ** is zero or more whole segments
        ("refs/heads/*", "refs/heads/", False),  # a lone * is one non-empty segment
        ("refs/**/main", "refs/heads/main", True),
        ("refs/**/main", "refs/heads/x/main", True),
        ("refs/**/main", "refs/heads/xmain", False),
        ("refs/heads/*", "refs/heads/main", True),
        ("refs/heads/*", "refs/heads/a/b", False),
        ("refs/tags/v*", "refs/tags/v", True),  # * inside a segment may be empty
        ("refs/tags/v*", "refs/tags/v1.2.3", True),
        ("refs/tags/v*", "refs/tags/v1/evil", False),
        ("team-a/**", "team-a", True),
        ("team-a/**", "team-ab/app", False),
        ("**", "a/b/c", True),
        ("a.b", "axb", False),
        ("refs/heads/main", "refs/heads/main\n", False),  # no end-of-line slack
        ("refs/heads/*", "refs/heads/main\n", True),  # ...but a segment may hold any character
    ],
)
def test_one_semantics_everywhere(pattern: str, name: str, expected: bool) -> None:
    assert glob_matches(pattern, name) is expected
    assert exact_or_glob(pattern, name) is expected
    # policy and identity re-export the same implementation
    assert policy_match.glob_matches(pattern, name) is expected
    assert identity_match.glob_match(pattern, name) is expected


def test_policy_reexports_are_the_core_functions() -> None:
    assert policy_match.glob_matches is glob_matches
    assert policy_match.check_glob is check_glob
    assert policy_match.compile_glob is compile_glob
    assert policy_match.any_glob_matches is any_glob_matches
    assert policy_match.GlobInvalid is GlobInvalid


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("", "empty glob"),
        ("refs/heads/", "empty segment"),
        ("refs//main", "empty segment"),
        ("refs/**x", "whole segment"),
        ("refs/**/**", "repeats **"),
        ("refs/heads/ma?n", "'?'"),
        ("refs/heads/[ab]", "'['"),
        ("refs/heads/a b", "' '"),
        ("x" * 600, "longer than"),
    ],
)
def test_hostile_patterns_are_refused(pattern: str, reason: str) -> None:
    with pytest.raises(GlobInvalid) as info:
        check_glob(pattern)
    assert reason in info.value.message
    assert info.value.code == "POLICY_GLOB_INVALID" and info.value.exit_code == 2
    with pytest.raises(GlobInvalid):
        glob_matches(pattern, "refs/heads/main")


def test_exact_or_glob_takes_wildcard_free_patterns_literally() -> None:
    uri = "gitlab.com/g/p//.gitlab-ci.yml@refs/heads/main"
    assert exact_or_glob(uri, uri)  # '//' is no glob, but without * it is compared as text
    assert not exact_or_glob(uri, uri + "x")
    assert exact_or_glob("a?b", "a?b") and not exact_or_glob("a?b", "axb")
    assert any_glob_matches(["x/*", "refs/**"], "refs/a/b")
    assert not any_glob_matches([], "x")
