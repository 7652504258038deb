from __future__ import annotations

import pytest

from safeguard.core.errors import InvalidName, InvalidReference, InvalidTag
from safeguard.core.reference import Reference, is_loopback_host, validate_repository

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("alpine", "docker.io", "library/alpine", "latest", None),
        ("alpine:3.20", "docker.io", "library/alpine", "3.20", None),
        ("docker.io/alpine", "docker.io", "library/alpine", "latest", None),
        ("index.docker.io/org/app:v1", "docker.io", "org/app", "v1", None),
        ("org/app", "docker.io", "org/app", "latest", None),
        ("localhost/app", "localhost", "app", "latest", None),
        ("localhost:5000/team/app:v1", "localhost:5000", "team/app", "v1", None),
        ("127.0.0.1:41234/a/b/c@" + DIGEST, "127.0.0.1:41234", "a/b/c", None, DIGEST),
        ("ghcr.io/org/app:v1@" + DIGEST, "ghcr.io", "org/app", "v1", DIGEST),
        ("[::1]:5000/app", "[::1]:5000", "app", "latest", None),
        ("reg.example/a__b/c-d/e.f:T_1", "reg.example", "a__b/c-d/e.f", "T_1", None),
    ],
)
def test_parse(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = Reference.parse(text)
    assert ref.registry == registry
    assert ref.repository == repository
    assert ref.tag == tag
    assert (str(ref.digest) if ref.digest else None) == digest


def test_reference_property_prefers_digest() -> None:
    ref = Reference.parse("ghcr.io/org/app:v1@" + DIGEST)
    assert ref.reference == DIGEST
    assert Reference.parse("ghcr.io/org/app:v1").reference == "v1"
    assert str(ref) == "ghcr.io/org/app:v1@" + DIGEST
    assert Reference.parse("alpine").api_host == "registry-1.docker.io"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", InvalidReference),
        ("has space/app", InvalidReference),
        ("localhost:5000/../etc", InvalidName),
        ("localhost:5000/Team/app", InvalidName),
        ("localhost:5000/app/", InvalidName),
        ("localhost:5000/a--", InvalidName),
        ("localhost:5000/a:" + "t" * 129, InvalidTag),
        ("localhost:5000/a:.hidden", InvalidTag),
        ("localhost:5000/a@sha256:abc", InvalidReference),
        ("localhost:5000/" + "a" * 250, InvalidName),
    ],
)
def test_rejects_hostile(text: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        Reference.parse(text)


def test_validate_repository_limits() -> None:
    assert validate_repository("a/b") == "a/b"
    with pytest.raises(InvalidName):
        validate_repository("a" * 256)
    with pytest.raises(InvalidName):
        validate_repository("")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.9.9.9", True),
        ("[::1]:5000", True),
        ("10.0.0.1:5000", False),
        ("ghcr.io", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback
