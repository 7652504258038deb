"""Verifying an OIDC ID token (a JWS-signed JWT) against its issuer's keys.

The checks, in order, and the standard each follows:

1. **Form** (RFC 7515 §7.1 compact serialisation, RFC 7519 §7.2): three base64url segments
   without padding, a JSON-object header and payload with no duplicate member names (RFC 8725
   §3.10 asks verifiers to be strict), at most ``MAX_TOKEN_BYTES``.
   A ``crit`` header is refused (RFC 7515 §4.1.11: we understand no extensions); ``typ``, when
   present, must say JWT (RFC 8725 §3.11). ``jku``, ``x5u`` and ``jwk`` headers are never used:
   keys come only from the configured source.
2. **Algorithm** (RFC 8725 §3.1, §3.2): an allow-list of asymmetric algorithms only (RS256/384/
   512, PS256/384/512, ES256, ES384, EdDSA). ``none`` and every HMAC algorithm are refused before
   any key is looked up, which closes the classic confusion where an attacker signs HS256 with
   the issuer's *public* key as the secret. The algorithm must also be one the key permits: its
   type and curve (an ES256 token needs a P-256 key) and the JWK's own ``alg`` when it names one.
3. **Key**: the header's ``kid`` must name a key of the issuer's JWKS (``jwks.JWKSSource``
   refetches once, rate-limited, when it does not: key rotation).
4. **Signature**, with PyJWT's algorithm implementations over ``cryptography`` keys.
5. **Claims** (RFC 7519 §4.1, OIDC Core 1.0 §3.1.3.7), only once the signature holds: ``iss``
   equal to the expected issuer (exact string comparison); ``aud`` (a string or an array)
   containing the expected audience; ``exp`` required and not passed; ``iat`` required and not in
   the future; ``nbf`` if present not in the future (each with ``leeway`` seconds of clock skew);
   ``exp - iat`` at most ``max_lifetime``: CI ID tokens are minutes long, and a long-lived token
   presented as one is refused rather than trusted for its whole life.

Every refusal is a typed error from ``safeguard.identity.errors`` with a stable code.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms

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
from safeguard.identity.jwks import JWK, JWKSet, JWKSSource, StaticJWKS, key_from_set

MAX_TOKEN_BYTES: Final = 16 * 1024
DEFAULT_LEEWAY: Final = 60
DEFAULT_MAX_LIFETIME: Final = 3600

ALLOWED_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"}
)
_EC_CURVE_FOR_ALG: Final = {"ES256": "secp256r1", "ES384": "secp384r1"}
_JWT_TYPES: Final = frozenset({"jwt", "application/jwt"})
_B64URL: Final = re.compile(r"[A-Za-z0-9_-]*")
_ALGORITHMS: Final = get_default_algorithms()
_REFRESH_HINT: Final = "request a fresh ID token from the CI job and send it at once"


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """A token split and decoded, but NOT verified: never trust its claims."""

    header: Mapping[str, Any]
    claims: Mapping[str, Any]
    signing_input: bytes
    signature: bytes

    @property
    def alg(self) -> str:
        return str(self.header["alg"])

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A token whose signature, issuer, audience and time window have been checked."""

    claims: Mapping[str, Any]
    header: Mapping[str, Any]
    key_id: str

    @property
    def issuer(self) -> str:
        return str(self.claims["iss"])

    @property
    def subject(self) -> str | None:
        sub = self.claims.get("sub")
        return sub if isinstance(sub, str) else None

    @property
    def audiences(self) -> tuple[str, ...]:
        aud = self.claims.get("aud")
        return (aud,) if isinstance(aud, str) else tuple(a for a in aud or () if isinstance(a, str))

    @property
    def expires_at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(float(self.claims["exp"]), dt.UTC)

    @property
    def issued_at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(float(self.claims["iat"]), dt.UTC)

    @property
    def token_id(self) -> str | None:
        jti = self.claims.get("jti")
        return jti if isinstance(jti, str) else None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise OIDCTokenMalformed(
                f"the token repeats the JSON member {key!r}",
                hint="an ID token's header and claims must not repeat a member (RFC 8725 §3.10)",
            )
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise OIDCTokenMalformed(f"the token has {name}, which is not JSON (RFC 8259 §6)")


def _segment(segment: str, what: str) -> bytes:
    if not _B64URL.fullmatch(segment):
        raise OIDCTokenMalformed(
            f"the token's {what} is not base64url without padding",
            hint="pass the compact JWT exactly as the CI platform issued it",
        )
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise OIDCTokenMalformed(f"the token's {what} is not valid base64url") from None


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(
            raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant
        )
    except OIDCTokenMalformed:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise OIDCTokenMalformed(f"the token's {what} is not UTF-8 JSON") from None
    if not isinstance(value, dict):
        raise OIDCTokenMalformed(f"the token's {what} is not a JSON object")
    return value


def parse_token(token: str) -> ParsedToken:
    """Split and decode a compact JWT without verifying it; refuse anything malformed."""
    if not isinstance(token, str):
        raise OIDCTokenMalformed("the token is not a string")
    if not token:
        raise OIDCTokenMalformed("the token is empty", hint="pass the ID token the CI job issued")
    if len(token) > MAX_TOKEN_BYTES:
        raise OIDCTokenMalformed(
            f"the token is {len(token)} characters, over the {MAX_TOKEN_BYTES} limit",
            hint="CI ID tokens are a few kilobytes; this is not one",
        )
    if not token.isascii():
        raise OIDCTokenMalformed("the token has non-ASCII characters")
    parts = token.split(".")
    if len(parts) != 3:
        hint = (
            "this looks like an encrypted JWE, not a signed ID token"
            if len(parts) == 5
            else "an ID token has three dot-separated parts: header.payload.signature"
        )
        raise OIDCTokenMalformed(f"the token has {len(parts)} parts, not 3", hint=hint)
    header = _json_object(_segment(parts[0], "header"), "header")
    claims = _json_object(_segment(parts[1], "payload"), "payload")
    signature = _segment(parts[2], "signature")
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise OIDCTokenMalformed("the token header has no 'alg'")
    if "crit" in header:
        raise OIDCTokenMalformed(
            "the token header has 'crit' extensions, which Safeguard does not understand",
            hint="ID tokens from GitHub Actions and GitLab CI carry no critical headers",
        )
    typ = header.get("typ")
    if typ is not None and (
        not isinstance(typ, str) or typ.lower() not in {"jwt", "application/jwt"}
    ):
        raise OIDCTokenMalformed(f"the token's 'typ' is {typ!r}, not 'JWT'")
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid):
        raise OIDCTokenMalformed("the token header's 'kid' is not a non-empty string")
    return ParsedToken(
        header=MappingProxyType(header),
        claims=MappingProxyType(claims),
        signing_input=f"{parts[0]}.{parts[1]}".encode("ascii"),
        signature=signature,
    )


def check_algorithm(alg: str) -> None:
    """Refuse any algorithm outside the asymmetric allow-list (RFC 8725 §3.1)."""
    if alg in ALLOWED_ALGORITHMS:
        return
    if alg.lower() == "none":
        why = "it is unsigned ('alg: none')"
    elif alg.upper().startswith("HS"):
        why = f"{alg} is a shared-secret MAC, and an issuer's keys are public"
    else:
        why = f"{alg} is not on the allow-list"
    raise OIDCAlgorithmRefused(
        f"the token is refused because {why}",
        hint=f"ID tokens must be signed with one of {', '.join(sorted(ALLOWED_ALGORITHMS))}",
        detail={"alg": alg},
    )


def _key_fits(alg: str, key: JWK) -> str | None:
    """None if ``key`` may verify ``alg``, else why not."""
    pub = key.public_key
    if alg.startswith(("RS", "PS")):
        if not isinstance(pub, rsa.RSAPublicKey):
            return f"{alg} needs an RSA key, and key {key.describe()} is not one"
    elif alg in _EC_CURVE_FOR_ALG:
        if not isinstance(pub, ec.EllipticCurvePublicKey):
            return f"{alg} needs an EC key, and key {key.describe()} is not one"
        if pub.curve.name != _EC_CURVE_FOR_ALG[alg]:
            return f"{alg} needs a {_EC_CURVE_FOR_ALG[alg]} key, not {pub.curve.name}"
    elif alg == "EdDSA" and not isinstance(pub, ed25519.Ed25519PublicKey):
        return f"EdDSA needs an Ed25519 key, and key {key.describe()} is not one"
    if alg not in key.algorithms:
        return f"key {key.describe()} is published for {sorted(key.algorithms)}, not {alg}"
    return None


def check_signature(parsed: ParsedToken, key: JWK) -> None:
    """Check the algorithm against the key, then the signature over ``header.payload``."""
    alg = parsed.alg
    check_algorithm(alg)
    unfit = _key_fits(alg, key)
    if unfit is not None:
        raise OIDCAlgorithmRefused(
            f"the token's algorithm does not match its key: {unfit}",
            hint="the token was not signed by the issuer's key it names",
            detail={"alg": alg, "kid": key.kid},
        )
    try:
        valid = _ALGORITHMS[alg].verify(parsed.signing_input, key.public_key, parsed.signature)
    except Exception:  # a malformed signature (wrong length...) is a bad signature
        valid = False
    if not valid:
        raise OIDCSignatureInvalid(
            f"the token's signature does not verify with the issuer's key {key.describe()}",
            hint="the token was altered or not issued by the configured issuer",
        )


def _numeric_date(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise OIDCClaimInvalid(
                f"the token has no '{name}' claim",
                hint="CI ID tokens always carry exp and iat; this token is not one",
            )
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise OIDCClaimInvalid(f"the token's '{name}' claim is not a NumericDate")
    if not 0 <= value < 2**40:
        raise OIDCClaimInvalid(f"the token's '{name}' claim is out of range")
    return float(value)


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now(now: dt.datetime | float | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, dt.datetime):
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return now.timestamp()
    return float(now)


def check_claims(
    claims: Mapping[str, Any],
    *,
    issuer: str,
    audience: str,
    now: dt.datetime | float | None = None,
    leeway: float = DEFAULT_LEEWAY,
    max_lifetime: float = DEFAULT_MAX_LIFETIME,
) -> None:
    """The registered-claim checks of a token whose signature already verified."""
    current = _now(now)
    iss = claims.get("iss")
    if iss != issuer:
        raise OIDCIssuerMismatch(
            f"the token's issuer is {iss!r}, expected {issuer!r}",
            hint="use a token from the configured issuer; issuers are compared exactly",
            detail={"iss": iss, "expected": issuer},
        )
    aud = claims.get("aud")
    auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else None
    if auds is None or not all(isinstance(a, str) for a in auds):
        raise OIDCAudienceMismatch(
            f"the token has no usable 'aud' claim (got {aud!r}), expected {audience!r}",
            hint=f"request the token with audience {audience!r}",
        )
    if audience not in auds:
        raise OIDCAudienceMismatch(
            f"the token's audience is {aud!r}, expected {audience!r}",
            hint=f"request the token with audience {audience!r} (GitHub: the audience parameter "
            "of the token request; GitLab: id_tokens.<NAME>.aud)",
            detail={"aud": aud, "expected": audience},
        )
    exp = _numeric_date(claims, "exp", required=True)
    iat = _numeric_date(claims, "iat", required=True)
    nbf = _numeric_date(claims, "nbf", required=False)
    assert exp is not None and iat is not None
    if current >= exp + leeway:
        raise OIDCTokenExpired(
            f"the token expired at {_when(exp)} ({current - exp:.0f}s ago)",
            hint=_REFRESH_HINT,
            detail={"exp": exp, "now": current},
        )
    if nbf is not None and nbf > current + leeway:
        raise OIDCNotYetValid(
            f"the token is not valid before {_when(nbf)} ({nbf - current:.0f}s from now)",
            hint="check the clocks of the CI runner and of this host",
            detail={"nbf": nbf, "now": current},
        )
    if iat > current + leeway:
        raise OIDCNotYetValid(
            f"the token claims to be issued at {_when(iat)}, {iat - current:.0f}s in the future",
            hint="check the clocks of the CI runner and of this host",
            detail={"iat": iat, "now": current},
        )
    if exp < iat:
        raise OIDCClaimInvalid("the token expires before it was issued")
    if exp - iat > max_lifetime:
        raise OIDCLifetimeTooLong(
            f"the token lives {exp - iat:.0f}s (iat {_when(iat)} to exp {_when(exp)}), "
            f"over the {max_lifetime:.0f}s maximum for a CI ID token",
            hint="CI ID tokens are short-lived; for GitLab, keep the job timeout within the "
            "maximum or raise the verifier's max_lifetime",
            detail={"lifetime": exp - iat, "max": max_lifetime},
        )
    sub = claims.get("sub")
    if sub is not None and not isinstance(sub, str):
        raise OIDCClaimInvalid("the token's 'sub' claim is not a string")


def _verify_parsed(
    parsed: ParsedToken,
    key: JWK,
    *,
    issuer: str,
    audience: str,
    now: dt.datetime | float | None,
    leeway: float,
    max_lifetime: float,
) -> VerifiedToken:
    check_signature(parsed, key)
    check_claims(
        parsed.claims,
        issuer=issuer,
        audience=audience,
        now=now,
        leeway=leeway,
        max_lifetime=max_lifetime,
    )
    assert parsed.kid is not None
    return VerifiedToken(claims=parsed.claims, header=parsed.header, key_id=parsed.kid)


def _kid(parsed: ParsedToken) -> str:
    kid = parsed.kid
    if kid is None:
        raise OIDCKeyUnknown(
            "the token header names no key ('kid')",
            hint="GitHub Actions and GitLab CI ID tokens always carry a kid; this is not one",
        )
    return kid


async def verify_token(
    token: str,
    *,
    issuer: str,
    audience: str,
    jwks: JWKSSource | JWKSet,
    now: dt.datetime | float | None = None,
    leeway: float = DEFAULT_LEEWAY,
    max_lifetime: float = DEFAULT_MAX_LIFETIME,
) -> VerifiedToken:
    """Verify ``token`` as an ID token of ``issuer`` for ``audience``; see the module docstring.

    ``jwks`` is the issuer's key source (``jwks.jwks_source``) or a fixed ``JWKSet``.
    """
    parsed = parse_token(token)
    check_algorithm(parsed.alg)
    source = StaticJWKS(jwks) if isinstance(jwks, JWKSet) else jwks
    key = await source.key(_kid(parsed))
    return _verify_parsed(
        parsed,
        key,
        issuer=issuer,
        audience=audience,
        now=now,
        leeway=leeway,
        max_lifetime=max_lifetime,
    )


def verify_token_with_keys(
    token: str,
    *,
    issuer: str,
    audience: str,
    keys: JWKSet,
    now: dt.datetime | float | None = None,
    leeway: float = DEFAULT_LEEWAY,
    max_lifetime: float = DEFAULT_MAX_LIFETIME,
) -> VerifiedToken:
    """``verify_token`` for a key set already in hand, without I/O (and so without refetching)."""
    parsed = parse_token(token)
    check_algorithm(parsed.alg)
    key = key_from_set(keys, _kid(parsed), "the given key set")
    return _verify_parsed(
        parsed,
        key,
        issuer=issuer,
        audience=audience,
        now=now,
        leeway=leeway,
        max_lifetime=max_lifetime,
    )


def unverified_claims(token: str) -> Mapping[str, Any]:
    """The claims of a token WITHOUT verification: for choosing an issuer or for diagnostics."""
    return parse_token(token).claims
