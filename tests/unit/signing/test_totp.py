"""RFC 6238 TOTP against the RFC's own test vectors, and the verifier's window and input rules."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pytest

from safeguard.signing import totp

# RFC 6238 Appendix B: SHA-1 seed "12345678901234567890", 8 digits, 30 s steps.
SEED = b"12345678901234567890"
VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


@pytest.mark.parametrize(("when", "code"), VECTORS)
def test_rfc6238_appendix_b_sha1(when: int, code: str) -> None:
    assert totp.totp(SEED, when, digits=8) == code
    assert totp.totp(SEED, when) == code[-6:]  # 6 digits: the same number modulo 10^6


def test_rfc4226_appendix_d_hotp() -> None:
    expected = ["755224", "287082", "359152", "969429", "338314", "254676", "287922",
                "162583", "399871", "520489"]  # fmt: skip
    assert [totp.hotp(SEED, c) for c in range(10)] == expected


def test_match_accepts_one_step_either_side_only() -> None:
    now = 1_700_000_015.0
    counter = totp.counter_at(now)
    for delta in (-1, 0, 1):
        code = totp.hotp(SEED, counter + delta)
        assert totp.match(SEED, code, now) == counter + delta
    assert totp.match(SEED, totp.hotp(SEED, counter + 2), now) is None
    assert totp.match(SEED, totp.hotp(SEED, counter - 2), now) is None


@pytest.mark.parametrize("bad", ["", "12345", "1234567", "12a456", "١٢٣٤٥٦", "-12345"])
def test_match_refuses_malformed_codes(bad: str) -> None:
    assert totp.match(SEED, bad, 59) is None


def test_spaces_in_a_typed_code_are_ignored() -> None:
    code = totp.totp(SEED, 59)
    assert totp.match(SEED, f" {code[:3]} {code[3:]} ", 59) == 1


def test_otpauth_uri() -> None:
    secret = totp.new_secret()
    assert len(secret) == 20
    uri = totp.otpauth_uri(secret, "jdoe")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc, parts.path) == ("otpauth", "totp", "/Safeguard:jdoe")
    query = parse_qs(parts.query)
    assert query["algorithm"] == ["SHA1"] and query["digits"] == ["6"]
    assert query["period"] == ["30"] and query["issuer"] == ["Safeguard"]
    encoded = query["secret"][0]
    assert base64.b32decode(encoded + "=" * (-len(encoded) % 8)) == secret
