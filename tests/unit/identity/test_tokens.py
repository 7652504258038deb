"""verify_token: good tokens of every allowed algorithm, and every refusal with its code."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safeguard.core.errors import InvalidInput, SafeguardError, VerificationFailed
from safeguard.identity.errors import (
    OIDCAlgorithmRefused,
    OIDCAudienceMismatch,
    OIDCClaimInvalid,
    OIDCIssuerMismatch,
    OIDCKeyUnknown,
    OIDCLifetimeTooLong,
    OIDCNotYetValid,
    OIDCSignatureInvalid,
    OIDCTokenExpired,
    OIDCTokenMalformed,
)
from safeguard.identity.jwks import JWKSet
from safeguard.identity.tokens import (
    MAX_TOKEN_BYTES,
    parse_token,
    verify_token,
    verify_token_with_keys,
)
from tests.fixtures.oidc import AUDIENCE, OIDCIssuer, b64url, public_jwk

ISSUER = OIDCIssuer()  # https://token.actions.githubusercontent.com, not served
PS_KID = ISSUER.add_key("PS256")
ES384_KID = ISSUER.add_key("ES384")
KEYS = JWKSet.parse(ISSUER.jwks())


async def verify(token: str, **kwargs: Any) -> Any:
    args: dict[str, Any] = {"issuer": ISSUER.url, "audience": AUDIENCE, "jwks": KEYS}
    args.update(kwargs)
    return await verify_token(token, **args)


def claims(**overrides: Any) -> dict[str, Any]:
    return ISSUER.github_claims(**overrides)


def split(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    h, p, s = token.split(".")
    pad = lambda x: x + "=" * (-len(x) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(h))),
        json.loads(base64.urlsafe_b64decode(pad(p))),
        s,
    )


# --- good tokens -------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA", "PS256", "ES384"])
async def test_good_token_of_each_algorithm(alg: str) -> None:
    kid = ISSUER.kid_for(alg)
    token = ISSUER.mint(claims(), kid=kid)
    verified = await verify(token)
    assert verified.key_id == kid
    assert verified.claims["repository"] == "org/team-a"
    assert verified.header["alg"] == alg
    assert verified.issuer == ISSUER.url
    assert verified.subject == "repo:org/team-a:ref:refs/heads/main"
    assert verified.audiences == (AUDIENCE,)
    assert verified.expires_at > dt.datetime.now(dt.UTC)


async def test_audience_may_be_an_array() -> None:
    token = ISSUER.mint(claims(audience=["other", AUDIENCE]))
    assert (await verify(token)).audiences == ("other", AUDIENCE)


async def test_now_may_be_given_as_datetime_or_epoch() -> None:
    at = 1_700_000_000
    token = ISSUER.mint(claims(issued_at=at))
    await verify(token, now=at + 10)
    await verify(token, now=dt.datetime.fromtimestamp(at + 10, dt.UTC))
    with pytest.raises(OIDCTokenExpired):
        await verify(token)  # real now: long expired


def test_sync_variant_with_a_key_set_in_hand() -> None:
    token = ISSUER.mint(claims())
    assert verify_token_with_keys(token, issuer=ISSUER.url, audience=AUDIENCE, keys=KEYS)
    with pytest.raises(OIDCKeyUnknown):
        verify_token_with_keys(
            ISSUER.unknown_kid_token(claims()), issuer=ISSUER.url, audience=AUDIENCE, keys=KEYS
        )


# --- time window and lifetime ------------------------------------------------------------


async def test_expired_token() -> None:
    token = ISSUER.mint(claims(issued_at=time.time() - 1000, lifetime=300))
    with pytest.raises(OIDCTokenExpired) as info:
        await verify(token)
    assert info.value.code == "OIDC_TOKEN_EXPIRED"
    assert "expired at" in info.value.message and info.value.hint
    assert isinstance(info.value, VerificationFailed) and info.value.exit_code == 1


async def test_expiry_within_leeway_is_accepted_and_beyond_is_not() -> None:
    at = 1_700_000_000
    token = ISSUER.mint(claims(issued_at=at, lifetime=300))
    await verify(token, now=at + 300 + 59)
    with pytest.raises(OIDCTokenExpired):
        await verify(token, now=at + 300 + 60)
    with pytest.raises(OIDCTokenExpired):
        await verify(token, now=at + 301, leeway=0)


async def test_future_nbf_is_not_yet_valid() -> None:
    now = time.time()
    token = ISSUER.mint(claims(nbf=int(now + 600)))
    with pytest.raises(OIDCNotYetValid, match="not valid before") as info:
        await verify(token)
    assert info.value.code == "OIDC_NOT_YET_VALID"


async def test_future_iat_is_not_yet_valid() -> None:
    body = claims(issued_at=time.time() + 600)
    del body["nbf"]  # nbf is optional (RFC 7519 §4.1.5); iat alone must still be checked
    token = ISSUER.mint(body)
    with pytest.raises(OIDCNotYetValid, match="issued at"):
        await verify(token)


async def test_small_clock_skew_is_tolerated() -> None:
    token = ISSUER.mint(claims(issued_at=time.time() + 30, nbf=int(time.time() + 30)))
    await verify(token)


async def test_long_lived_token_is_refused() -> None:
    token = ISSUER.mint(claims(lifetime=7200))
    with pytest.raises(OIDCLifetimeTooLong) as info:
        await verify(token)
    assert info.value.code == "OIDC_TOKEN_LIFETIME_TOO_LONG"
    await verify(ISSUER.mint(claims(lifetime=3600)))  # GitLab's default job timeout
    await verify(token, max_lifetime=7200)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"exp": None}, "no 'exp'"),
        ({"iat": None}, "no 'iat'"),
        ({"exp": "1700000000"}, "NumericDate"),
        ({"exp": True}, "NumericDate"),
        ({"iat": -5}, "out of range"),
        ({"exp": 10**13}, "out of range"),
        ({"sub": 5}, "'sub'"),
    ],
)
async def test_missing_or_mistyped_time_claims(change: dict[str, Any], match: str) -> None:
    body = claims()
    for k, v in change.items():
        if v is None:
            del body[k]
        else:
            body[k] = v
    with pytest.raises(OIDCClaimInvalid, match=match) as info:
        await verify(ISSUER.mint(body))
    assert info.value.code == "OIDC_CLAIM_INVALID"


async def test_exp_before_iat_is_refused() -> None:
    body = claims()
    body["exp"] = body["iat"] - 1
    with pytest.raises((OIDCClaimInvalid, OIDCTokenExpired)):
        await verify(ISSUER.mint(body), now=body["iat"] - 10)


# --- issuer and audience ------------------------------------------------------------------


async def test_wrong_audience() -> None:
    token = ISSUER.mint(claims(audience="https://github.com/org"))
    with pytest.raises(OIDCAudienceMismatch) as info:
        await verify(token)
    assert info.value.code == "OIDC_AUDIENCE_MISMATCH"
    assert "'https://github.com/org'" in info.value.message and AUDIENCE in info.value.message


@pytest.mark.parametrize("aud", [None, 5, ["a", 5], [], {"x": 1}])
async def test_missing_or_mistyped_audience(aud: Any) -> None:
    body = claims()
    if aud is None:
        del body["aud"]
    else:
        body["aud"] = aud
    with pytest.raises(OIDCAudienceMismatch):
        await verify(ISSUER.mint(body))


@pytest.mark.parametrize(
    "iss",
    [
        "https://evil.example",
        "https://token.actions.githubusercontent.com/",
        "http://token.actions.githubusercontent.com",
        "https://TOKEN.actions.githubusercontent.com",
        None,
    ],
)
async def test_issuer_must_match_exactly(iss: str | None) -> None:
    body = claims(iss=iss)
    if iss is None:
        del body["iss"]
    with pytest.raises(OIDCIssuerMismatch) as info:
        await verify(ISSUER.mint(body))
    assert info.value.code == "OIDC_ISSUER_MISMATCH"


# --- keys, algorithms, signatures ----------------------------------------------------------


async def test_unknown_kid() -> None:
    with pytest.raises(OIDCKeyUnknown) as info:
        await verify(ISSUER.unknown_kid_token(claims()))
    assert info.value.code == "OIDC_KEY_UNKNOWN"
    assert ISSUER.rsa_kid in info.value.message  # lists the known kids


async def test_token_without_kid() -> None:
    signing = ISSUER.keys[ISSUER.rsa_kid]
    token = jwt.encode(claims(), signing.key, algorithm="RS256")  # PyJWT adds no kid
    with pytest.raises(OIDCKeyUnknown, match="no key"):
        await verify(token)


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_alg_none_is_refused(alg: str) -> None:
    token = ISSUER.unsigned({"alg": alg, "typ": "JWT", "kid": ISSUER.rsa_kid}, claims())
    with pytest.raises(OIDCAlgorithmRefused, match="unsigned") as info:
        await verify(token)
    assert info.value.code == "OIDC_ALGORITHM_REFUSED"


@pytest.mark.parametrize("secret", ["pem", "jwk"])
async def test_hmac_with_the_public_key_as_secret_is_refused(secret: str) -> None:
    """The key-confusion attack (RFC 8725 §2.1): HS256 keyed with the issuer's public key.

    The attacker knows the public key, so the MAC is valid for a verifier that feeds the key
    it looked up into whatever algorithm the header names; the allow-list refuses it first.
    """
    token = ISSUER.hmac_confusion_token(claims(repository="attacker/repo"), secret=secret)
    header, _, sig = split(token)
    assert header["alg"] == "HS256" and header["kid"] == ISSUER.rsa_kid
    if secret == "pem":  # the MAC really is keyed with the published public key
        signing_input = token.rsplit(".", 1)[0].encode()
        pem = ISSUER.keys[ISSUER.rsa_kid].public_pem()
        assert b64url(hmac.new(pem, signing_input, hashlib.sha256).digest()) == sig
    with pytest.raises(OIDCAlgorithmRefused, match="shared-secret") as info:
        await verify(token)
    assert info.value.code == "OIDC_ALGORITHM_REFUSED"


@pytest.mark.parametrize("alg", ["HS384", "HS512", "ES512", "RS1", "ES256K", "Ed25519"])
async def test_algorithms_outside_the_allow_list(alg: str) -> None:
    token = ISSUER.unsigned({"alg": alg, "kid": ISSUER.rsa_kid}, claims(), b"sig")
    with pytest.raises(OIDCAlgorithmRefused):
        await verify(token)


async def test_algorithm_must_fit_the_key_type() -> None:
    # an ES256 signature presented under the RSA key's kid
    ec_signed = ISSUER.mint(claims(), kid=ISSUER.ec_kid)
    header, _, _ = split(ec_signed)
    h = b64url(json.dumps({**header, "kid": ISSUER.rsa_kid}).encode())
    forged = ".".join([h, *ec_signed.split(".")[1:]])
    with pytest.raises(OIDCAlgorithmRefused, match="needs an EC key"):
        await verify(forged)


async def test_algorithm_must_be_the_one_the_jwk_names() -> None:
    # the RSA key is published with alg RS256; a PS256 signature by that same key is refused
    signing = ISSUER.keys[ISSUER.rsa_kid]
    token = jwt.encode(claims(), signing.key, algorithm="PS256", headers={"kid": signing.kid})
    with pytest.raises(OIDCAlgorithmRefused, match="published for"):
        await verify(token)


async def test_es384_header_with_a_p256_key_is_refused() -> None:
    token = ISSUER.unsigned({"alg": "ES384", "kid": ISSUER.ec_kid}, claims(), b"x" * 96)
    with pytest.raises(OIDCAlgorithmRefused, match="secp384r1"):
        await verify(token)


async def test_tampered_payload_fails_the_signature() -> None:
    token = ISSUER.mint(claims())
    h, _, s = token.split(".")
    evil = b64url(json.dumps(claims(repository="attacker/repo")).encode())
    with pytest.raises(OIDCSignatureInvalid) as info:
        await verify(f"{h}.{evil}.{s}")
    assert info.value.code == "OIDC_SIGNATURE_INVALID"


@pytest.mark.parametrize("kid_alg", ["RS256", "ES256", "EdDSA"])
async def test_signature_by_another_key_under_the_issuers_kid(kid_alg: str) -> None:
    other = OIDCIssuer(keys={})
    other.add_key(kid_alg, kid=ISSUER.kid_for(kid_alg))
    token = other.mint(claims(), kid=ISSUER.kid_for(kid_alg))
    with pytest.raises(OIDCSignatureInvalid):
        await verify(token)


@pytest.mark.parametrize("sig", [b"", b"\x00" * 64, b"\x01" * 63, b"\x02" * 512])
async def test_empty_or_wrong_length_signatures(sig: bytes) -> None:
    for kid in (ISSUER.rsa_kid, ISSUER.ec_kid, ISSUER.kid_for("EdDSA")):
        alg = ISSUER.keys[kid].alg
        token = ISSUER.unsigned({"alg": alg, "typ": "JWT", "kid": kid}, claims(), sig)
        with pytest.raises(OIDCSignatureInvalid):
            await verify(token)


async def test_embedded_jwk_and_jku_headers_are_ignored() -> None:
    attacker = OIDCIssuer(keys={})
    kid = attacker.add_key("RS256", kid=ISSUER.rsa_kid)
    jwk = public_jwk(attacker.keys[kid].key, kid, "RS256")
    token = attacker.mint(
        claims(), kid=kid, headers={"jwk": jwk, "jku": "https://evil.example/jwks"}
    )
    with pytest.raises(OIDCSignatureInvalid):
        await verify(token)


async def test_signature_checked_before_claims() -> None:
    # an unsigned-by-us token with an expired exp reports the signature, not the expiry
    other = OIDCIssuer(keys={})
    other.add_key("RS256", kid=ISSUER.rsa_kid)
    token = other.mint(claims(issued_at=time.time() - 5000), kid=ISSUER.rsa_kid)
    with pytest.raises(OIDCSignatureInvalid):
        await verify(token)


# --- malformed tokens ---------------------------------------------------------------------

GOOD = ISSUER.mint(claims())
H, P, S = GOOD.split(".")


def seg(obj: Any) -> str:
    return b64url(json.dumps(obj).encode())


NOT_UTF8 = b64url(b"\xff\xfe")
DUP_HEADER = b64url(b'{"alg":"RS256","alg":"none"}')
DUP_CLAIMS = b64url(b'{"iss":"a","iss":"b"}')
NAN_CLAIMS = b64url(b'{"exp": NaN}')
INF_CLAIMS = b64url(b'{"exp": -Infinity}')


@pytest.mark.parametrize(
    ("token", "match"),
    [
        ("", "empty"),
        ("abc", "1 parts"),
        (f"{H}.{P}", "2 parts"),
        (f"{H}.{P}.{S}.x", "4 parts"),
        (f"{H}.{P}.{S}.x.y", "JWE"),
        (f"{H}=.{P}.{S}", "base64url"),
        (f"{H}.{P}==.{S}", "base64url"),
        (f"{H}.{P}.{S}+", "base64url"),
        (f"{H}.{P[:-1]}*.{S}", "base64url"),
        (f"{H}.A.{S}", "base64url"),
        (f"{b64url(b'not json')}.{P}.{S}", "not UTF-8 JSON"),
        (f"{b64url(b'[1,2]')}.{P}.{S}", "not a JSON object"),
        (f"{H}.{NOT_UTF8}.{S}", "not UTF-8 JSON"),
        (f"{H}.{b64url(b'null')}.{S}", "not a JSON object"),
        (f"{DUP_HEADER}.{P}.{S}", "repeats"),
        (f"{H}.{DUP_CLAIMS}.{S}", "repeats"),
        (f"{H}.{NAN_CLAIMS}.{S}", "not JSON"),
        (f"{H}.{INF_CLAIMS}.{S}", "not JSON"),
        (f"{seg({'kid': 'x'})}.{P}.{S}", "no 'alg'"),
        (f"{seg({'alg': 5})}.{P}.{S}", "no 'alg'"),
        (f"{seg({'alg': 'RS256', 'kid': 'k', 'crit': ['b64']})}.{P}.{S}", "crit"),
        (f"{seg({'alg': 'RS256', 'kid': 'k', 'typ': 'at+jwt'})}.{P}.{S}", "typ"),
        (f"{seg({'alg': 'RS256', 'kid': 7})}.{P}.{S}", "kid"),
        (f"{seg({'alg': 'RS256', 'kid': ''})}.{P}.{S}", "kid"),
        ("é" + GOOD, "non-ASCII"),
        (f" {GOOD}", "base64url"),
        ("A" * (MAX_TOKEN_BYTES + 1), "over the"),
    ],
)
async def test_malformed_tokens(token: str, match: str) -> None:
    with pytest.raises(OIDCTokenMalformed, match=match) as info:
        await verify(token)
    assert info.value.code == "OIDC_TOKEN_MALFORMED"
    assert isinstance(info.value, InvalidInput) and info.value.http_status == 400


async def test_deeply_nested_json_is_malformed_not_a_crash() -> None:
    deep = b'{"a":' * 3000 + b"1" + b"}" * 3000
    token = f"{H}.{b64url(deep)}.{S}"
    with pytest.raises(OIDCTokenMalformed):
        await verify(token)


async def test_non_string_token() -> None:
    with pytest.raises(OIDCTokenMalformed):
        await verify(b"bytes")  # type: ignore[arg-type]


def test_parse_token_exposes_unverified_parts() -> None:
    parsed = parse_token(GOOD)
    assert parsed.alg == "RS256" and parsed.kid == ISSUER.rsa_kid
    assert parsed.claims["repository"] == "org/team-a"
    with pytest.raises(TypeError):
        parsed.claims["repository"] = "x"  # type: ignore[index]


# --- fuzz: hostile input yields a typed error, never a traceback --------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_arbitrary_text(token: str) -> None:
    with pytest.raises(SafeguardError):
        verify_token_with_keys(token, issuer=ISSUER.url, audience=AUDIENCE, keys=KEYS)


_HEADERS = _JSON | st.fixed_dictionaries(
    {
        "alg": st.sampled_from(["RS256", "PS256", "ES256", "ES384", "EdDSA", "HS256", "none", ""]),
        "kid": st.sampled_from([*KEYS.kids, "", "nope"]) | _JSON,
    },
    optional={"typ": st.sampled_from(["JWT", "jwt", "JOSE"]), "crit": _JSON},
)


@settings(max_examples=300, deadline=None)
@given(_HEADERS, _JSON, st.binary(max_size=300))
def test_fuzz_structured_tokens(header: Any, body: Any, sig: bytes) -> None:
    h = b64url(json.dumps(header).encode())
    p = b64url(json.dumps(body).encode())
    with pytest.raises(SafeguardError):  # typed, and a random signature never verifies
        verify_token_with_keys(
            f"{h}.{p}.{b64url(sig)}", issuer=ISSUER.url, audience=AUDIENCE, keys=KEYS
        )


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["iss", "aud", "exp", "iat", "nbf", "sub"]), _JSON))
def test_fuzz_signed_claims(body: dict[str, Any]) -> None:
    signing = ISSUER.keys[ISSUER.ec_kid]
    payload = json.dumps(body).encode()
    token = jwt.api_jws.encode(
        payload, signing.key, algorithm="ES256", headers={"kid": signing.kid}
    )
    with pytest.raises(SafeguardError):  # no random claim set is a valid token for us
        verify_token_with_keys(token, issuer=ISSUER.url, audience=AUDIENCE, keys=KEYS)
