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


SHA384_ABC = hashlib.sha384(b"abc").hexdigest()


def test_sha384_only_where_signatures_need_it() -> None:
    """P-384 signatures and log entries use sha384; OCI content keeps sha256/sha512 only."""
    from safeguard.core.digest import OCI_ALGORITHMS, SIGNATURE_ALGORITHMS

    d = Digest.of(b"abc", "sha384")
    assert d.hex == SHA384_ABC and len(d.hex) == 96 and d.matches(b"abc")
    assert Digest.parse(f"sha384:{SHA384_ABC}", algorithms=SIGNATURE_ALGORITHMS) == d
    assert is_digest(f"sha384:{SHA384_ABC}", algorithms=SIGNATURE_ALGORITHMS)
    # The OCI default (descriptors, manifests, the registry) still refuses it.
    assert "sha384" not in OCI_ALGORITHMS
    with pytest.raises(InvalidDigest, match="unsupported digest algorithm 'sha384'"):
        Digest.parse(f"sha384:{SHA384_ABC}")
    assert not is_digest(f"sha384:{SHA384_ABC}")
    for hostile in (
        "sha384:" + SHA384_ABC.upper(),
        "sha384:" + SHA384_ABC[:-1],
        "sha384:" + SHA384_ABC + "a",
        "sha384:" + "a" * 64,
        "sha384:" + "g" * 96,
    ):
        with pytest.raises(InvalidDigest):
            Digest.parse(hostile, algorithms=SIGNATURE_ALGORITHMS)
