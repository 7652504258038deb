"""JWKS parsing (RFC 7517 §5): usable key types, skipped keys with reasons, refused sets."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import RSAAlgorithm

from safeguard.identity.errors import OIDCJWKSInvalid, OIDCKeyUnknown
from safeguard.identity.jwks import JWKSet, StaticJWKS, parse_jwks
from tests.fixtures.oidc import OIDCIssuer, b64url, new_key, public_jwk

ISSUER = OIDCIssuer()


def test_parses_rsa_ec_and_ed25519_keys() -> None:
    es384 = public_jwk(new_key("ES384"), "p384")
    doc = {"keys": [*ISSUER.jwks()["keys"], es384]}
    jwks = parse_jwks(json.dumps(doc).encode())
    assert len(jwks.keys) == 4 and not jwks.skipped
    rsa_key = jwks.get(ISSUER.rsa_kid)
    assert rsa_key is not None and isinstance(rsa_key.public_key, rsa.RSAPublicKey)
    assert rsa_key.algorithms == {"RS256"}  # the JWK names its alg
    ec_key = jwks.get(ISSUER.ec_kid)
    assert ec_key is not None and isinstance(ec_key.public_key, ec.EllipticCurvePublicKey)
    assert ec_key.algorithms == {"ES256"}
    okp = jwks.get(ISSUER.kid_for("EdDSA"))
    assert okp is not None and isinstance(okp.public_key, ed25519.Ed25519PublicKey)
    p384 = jwks.get("p384")
    assert p384 is not None and p384.algorithms == {"ES384"}


def test_rsa_key_without_alg_allows_every_rsa_algorithm() -> None:
    jwk = public_jwk(new_key("RS256"), "noalg")
    jwks = parse_jwks({"keys": [jwk]})
    key = jwks.get("noalg")
    assert key is not None and {"RS256", "PS256", "RS512"} <= key.algorithms


@pytest.mark.parametrize(
    ("jwk", "reason"),
    [
        ({"kty": "oct", "kid": "s", "k": "c2VjcmV0"}, None),  # refused, see below
        ({"kty": "EC", "kid": "x", "crv": "P-521", "x": "AA", "y": "AA"}, "P-521"),
        ({"kty": "OKP", "kid": "x", "crv": "X25519", "x": "AA"}, "X25519"),
        ({"kty": "RSA", "kid": "x", "use": "enc", "n": "AQAB", "e": "AQAB"}, "use"),
        ({"kty": "RSA", "kid": "x", "key_ops": ["encrypt"], "n": "AQAB", "e": "AQAB"}, "key_ops"),
        ({"kty": "RSA", "kid": "x", "n": "!!", "e": "AQAB"}, "cannot be read"),
        ({"kty": "RSA", "kid": "x", "e": "AQAB"}, "'n'"),
        ({"kty": "ML-DSA", "kid": "x"}, "key type"),
    ],
)
def test_unusable_keys_are_skipped_with_a_reason(jwk: dict[str, Any], reason: str | None) -> None:
    good = ISSUER.jwks()["keys"][0]
    if reason is None:  # a symmetric key in a published set is refused outright
        with pytest.raises(OIDCJWKSInvalid, match="private or symmetric"):
            parse_jwks({"keys": [good, jwk]})
        return
    jwks = parse_jwks({"keys": [good, jwk]})
    assert len(jwks.keys) == 1
    assert jwks.skipped_reason("x") is not None
    assert reason in (jwks.skipped_reason("x") or "")


def test_small_rsa_key_is_skipped() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    jwks = parse_jwks({"keys": [public_jwk(small, "small")]})
    assert not jwks.keys and "1024 bits" in (jwks.skipped_reason("small") or "")


def test_alg_not_fitting_the_key_is_skipped() -> None:
    jwk = public_jwk(new_key("ES256"), "ec", alg="ES384")
    jwks = parse_jwks({"keys": [jwk]})
    assert not jwks.keys and "ES384" in (jwks.skipped_reason("ec") or "")
    jwk = public_jwk(new_key("RS256"), "hs", alg="HS256")
    assert not parse_jwks({"keys": [jwk]}).keys


def test_private_key_material_is_refused() -> None:
    private = RSAAlgorithm.to_jwk(new_key("RS256"), as_dict=True)  # includes d, p, q...
    private["kid"] = "leak"
    with pytest.raises(OIDCJWKSInvalid, match="private") as info:
        parse_jwks({"keys": [private]})
    assert info.value.code == "OIDC_JWKS_INVALID"


def test_duplicate_kid_is_refused() -> None:
    a = public_jwk(new_key("RS256"), "same")
    b = public_jwk(new_key("RS256"), "same")
    with pytest.raises(OIDCJWKSInvalid, match="two keys"):
        parse_jwks({"keys": [a, b]})


@pytest.mark.parametrize(
    "doc",
    [
        b"not json",
        b"[]",
        b'{"keys": {}}',
        b"{}",
        b'{"keys": [1]}',
        b'{"keys": [{"kid": "x"}]}',
        b'{"keys": [{"kty": "RSA", "kid": 5}]}',
        json.dumps({"keys": [{"kty": "oct"}] * 65}).encode(),
        b"[" * 100000 + b"]" * 100000,
        b" " * (300 * 1024),
    ],
)
def test_hostile_documents_are_refused(doc: bytes) -> None:
    with pytest.raises(OIDCJWKSInvalid):
        parse_jwks(doc)


async def test_static_source_reports_unknown_and_skipped_kids() -> None:
    p521 = public_jwk(ec.generate_private_key(ec.SECP521R1()), "p521")
    source = StaticJWKS(JWKSet.parse({"keys": [*ISSUER.jwks()["keys"], p521]}))
    assert (await source.key(ISSUER.rsa_kid)).kid == ISSUER.rsa_kid
    with pytest.raises(OIDCKeyUnknown, match="not in the configured key set"):
        await source.key("nope")
    with pytest.raises(OIDCKeyUnknown, match="cannot be used"):
        await source.key("p521")


def test_b64url_helper_has_no_padding() -> None:
    assert "=" not in b64url(b"ab")
