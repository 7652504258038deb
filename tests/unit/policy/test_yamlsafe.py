"""The bounded YAML 1.2 reader: values, positions, and hostile documents with their messages."""

from __future__ import annotations

import math

import pytest
import yaml

from safeguard.policy import yamlsafe
from safeguard.policy.errors import PolicyInvalid, PolicyIssue
from safeguard.policy.yamlsafe import MAX_BYTES, MAX_DEPTH, parse_policy_yaml


@pytest.fixture(autouse=True, params=["libyaml", "python"])
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs on libyaml (the default when present) and on PyYAML's pure Python."""
    if request.param == "libyaml":
        if not yaml.__with_libyaml__:
            pytest.skip("PyYAML was built without libyaml")
        monkeypatch.setattr(yamlsafe, "_Loader", yamlsafe._CLoader)
    else:
        monkeypatch.setattr(yamlsafe, "_Loader", yamlsafe._PyLoader)


def only_issue(text: str | bytes) -> PolicyIssue:
    with pytest.raises(PolicyInvalid) as info:
        parse_policy_yaml(text)
    assert len(info.value.issues) == 1, info.value.issues
    return info.value.issues[0]


def test_yaml_1_2_core_schema_scalars() -> None:
    parsed = parse_policy_yaml(
        "a: off\nb: yes\nc: true\nd: 012\ne: 0x1f\nf: 0o17\ng: 1.5\nh: ~\ni:\n"
        "j: 2026-06-30T00:00:00Z\nk: 'true'\nl: !!str 12\nm: .inf\nn: -.inf\no: FALSE\n"
    )
    data = parsed.data
    assert data["a"] == "off" and data["b"] == "yes"  # YAML 1.1 booleans stay strings
    assert data["c"] is True and data["o"] is False
    assert data["d"] == 12 and data["e"] == 31 and data["f"] == 15
    assert data["g"] == 1.5 and data["h"] is None and data["i"] is None
    assert data["j"] == "2026-06-30T00:00:00Z"  # no implicit timestamps
    assert data["k"] == "true" and data["l"] == "12"
    assert data["m"] == math.inf and data["n"] == -math.inf
    assert parsed.issues == ()


def test_positions_of_values_and_keys() -> None:
    parsed = parse_policy_yaml("a:\n  b: [x, {c: 1}]\n")
    m = parsed.source_map
    assert m.value(("a", "b", 1, "c")) == m.values[("a", "b", 1, "c")]
    assert (m.values[("a", "b", 1, "c")].line, m.values[("a", "b", 1, "c")].column) == (2, 14)
    assert m.keys[("a", "b")].line == 2 and m.keys[("a", "b")].column == 3
    # unknown deeper paths fall back to the nearest ancestor
    assert m.value(("a", "b", 1, "zzz", 3)) == m.values[("a", "b", 1)]


def test_duplicate_keys_are_reported_with_both_lines() -> None:
    parsed = parse_policy_yaml("a: 1\nb:\n  c: 2\n  c: 3\na: 4\n")
    assert parsed.data == {"a": 1, "b": {"c": 2}}
    messages = [str(i) for i in parsed.issues]
    assert messages == [
        "b.c (line 4, column 3): duplicate key 'c' (first at line 3)",
        "a (line 5, column 1): duplicate key 'a' (first at line 1)",
    ]


def test_tabs_are_a_syntax_error_with_a_hint() -> None:
    issue = only_issue("a:\n\tb: 1\n")
    assert issue.line == 2 and "tab" in issue.message
    assert issue.hint is not None and "spaces" in issue.hint


@pytest.mark.parametrize(
    ("text", "what"),
    [("- a\n- b\n", "a list"), ("just text\n", "a single value (str)"), ("42\n", "(int)")],
)
def test_root_must_be_a_mapping(text: str, what: str) -> None:
    issue = only_issue(text)
    assert "top level of a policy must be a mapping" in issue.message and what in issue.message
    assert issue.line == 1


def test_alias_bomb_stops_at_the_node_limit() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    issue = only_issue("\n".join(lines) + "\n")
    assert "expands to more than" in issue.message and "alias" in (issue.hint or "")


def test_recursive_alias_is_refused() -> None:
    issue = only_issue("a: &x [1, *x]\n")
    assert "recursive" in issue.message and issue.line == 1


def test_deep_nesting_is_refused_before_composition() -> None:
    issue = only_issue("a: " + "[" * 5000 + "]" * 5000 + "\n")
    assert f"deeper than {MAX_DEPTH}" in issue.message
    issue = only_issue("a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 80)))
    assert "deeper" in issue.message


def test_size_limit() -> None:
    issue = only_issue(b"a: " + b"x" * (10 * 1024 * 1024) + b"\n")
    assert "10.0 MiB" in issue.message and "at most 1 MiB" in issue.message
    assert len(b"x" * MAX_BYTES) == MAX_BYTES


def test_more_than_one_document() -> None:
    issue = only_issue("a: 1\n---\nb: 2\n")
    assert "more than one YAML document" in issue.message and issue.line == 2


def test_empty_document() -> None:
    assert "empty" in only_issue("").message
    assert "empty" in only_issue("# only a comment\n").message


def test_encoding_and_control_characters() -> None:
    issue = only_issue(b"a: b\nc: \xff\n")
    assert "not UTF-8" in issue.message and issue.line == 2
    issue = only_issue("a: b\nc: \x01\n")
    assert "U+0001" in issue.message and issue.line == 2
    assert parse_policy_yaml("\ufeffa: 1\n".encode()).data == {"a": 1}


def test_unsupported_tags_and_merge_keys() -> None:
    issue = only_issue("a: !!python/object/apply:os.system [echo]\n")
    assert "unsupported YAML tag" in issue.message
    issue = only_issue("a: !custom x\n")
    assert "unsupported YAML tag" in issue.message
    assert "not a valid int" in only_issue("a: !!int abc\n").message
    parsed = parse_policy_yaml("base: &b {x: 1}\nother:\n  <<: *b\n")
    assert [i.message for i in parsed.issues] == ["YAML merge keys (<<) are not supported"]
    assert parse_policy_yaml("'<<': 1\n").data == {"<<": 1}  # a quoted key is just a key


def test_keys_must_be_strings() -> None:
    parsed = parse_policy_yaml("1: a\ntrue: b\nok: c\n")
    assert parsed.data == {"ok": "c"}
    assert [i.line for i in parsed.issues] == [1, 2]
    assert all("keys must be strings" in i.message for i in parsed.issues)


def test_syntax_errors_carry_positions() -> None:
    issue = only_issue("a: [1, 2\n")
    assert issue.message.startswith("YAML syntax error") and issue.line == 2
    issue = only_issue("a: *nope\n")
    assert "undefined alias" in issue.message and issue.line == 1
