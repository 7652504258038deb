"""WWW-Authenticate parsing (RFC 7235 grammar, Docker token-auth challenges)."""

from __future__ import annotations

from safeguard.oci.transport.challenge import parse_challenges


def test_bearer_challenge_of_distribution() -> None:
    header = (
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
        'scope="repository:team/app:pull,push"'
    )
    [c] = parse_challenges(header)
    assert c.scheme == "bearer"
    assert c.realm == "https://auth.example.com/token"
    assert c.service == "registry.example.com"
    assert c.scopes == ("repository:team/app:pull,push",)


def test_basic_challenge() -> None:
    [c] = parse_challenges('Basic realm="safeguard test"')
    assert c.scheme == "basic"
    assert c.realm == "safeguard test"


def test_scheme_and_param_names_are_case_insensitive() -> None:
    [c] = parse_challenges('BEARER Realm="r", SERVICE=svc')
    assert c.scheme == "bearer"
    assert c.params == {"realm": "r", "service": "svc"}


def test_several_challenges_in_one_header() -> None:
    challenges = parse_challenges(
        'Basic realm="one", Bearer realm="https://a/token",service="s",scope="x:y:pull", '
        "Negotiate abc123=="
    )
    assert [c.scheme for c in challenges] == ["basic", "bearer", "negotiate"]
    assert challenges[1].params["scope"] == "x:y:pull"
    assert challenges[2].token68 == "abc123=="


def test_several_header_values() -> None:
    challenges = parse_challenges(['Basic realm="a"', 'Bearer realm="b"'])
    assert [(c.scheme, c.realm) for c in challenges] == [("basic", "a"), ("bearer", "b")]


def test_quoted_string_escapes_and_commas_inside_quotes() -> None:
    [c] = parse_challenges(r'Bearer realm="a\"b,c",scope="repository:x:pull repository:y:pull"')
    assert c.realm == 'a"b,c'
    assert c.scopes == ("repository:x:pull", "repository:y:pull")


def test_spaces_around_equals_and_empty_values() -> None:
    [c] = parse_challenges('Bearer realm = "r" , service=""')
    assert c.params == {"realm": "r", "service": ""}


def test_scheme_without_parameters() -> None:
    assert [c.scheme for c in parse_challenges("Basic, Bearer")] == ["basic", "bearer"]


def test_junk_does_not_raise() -> None:
    for junk in ["", ",,,", '"unterminated', "=oops", 'Bearer realm="open', "Bearer @@@"]:
        parse_challenges(junk)  # no exception
    [c] = parse_challenges('Bearer realm="open')
    assert c.realm == "open"
