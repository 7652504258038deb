from __future__ import annotations

import hashlib

import pytest

from safeguard.core.digest import Digest, is_digest
from safeguard.core.errors import InvalidDigest

SHA256_EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_parse_and_format_round_trip() -> None:
    d = Digest.parse(SHA256_EMPTY)
    assert d.algorithm == "sha256"
    assert str(d) == SHA256_EMPTY
    assert d.tag_form == SHA256_EMPTY.replace(":", "-")


def test_of_and_matches() -> None:
    assert str(Digest.of(b"")) == SHA256_EMPTY
    d512 = Digest.of(b"abc", "sha512")
    assert d512.hex == hashlib.sha512(b"abc").hexdigest()
    assert d512.matches(b"abc")
    assert not d512.matches(b"abd")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sha256",
        "sha256:",
        ":abc",
        "sha256:" + "A" * 64,  # upper case hex is not allowed for registered algorithms
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha512:" + "a" * 64,
        "md5:" + "a" * 32,  # well-formed but not registered
        "SHA256:" + "a" * 64,
        "sha256:" + "g" * 64,
        "sha256:../../etc/passwd",
    ],
)
def test_rejects_invalid(text: str) -> None:
    with pytest.raises(InvalidDigest) as info:
        Digest.parse(text)
    assert info.value.code == "DIGEST_INVALID"
    assert info.value.hint
    assert not is_digest(text)
