"""Typed refusals of the identity room, each with a stable code and a hint that says what to do.

Three families, by what the caller should do about them:

* the token or a configuration value is unusable as given (``InvalidInput``, exit 2, HTTP 400):
  a malformed token, an unusable JWKS or discovery document, a refused URL, an invalid identity
  requirement, no CI token available to this process;
* the token is well formed but refused (``VerificationFailed``, exit 1, HTTP 403): algorithm,
  key, signature, issuer, audience, time window, lifetime, claims, identity matching;
* an issuer endpoint did not answer (``Unreachable``, exit 3, HTTP 503): retrying may help.

The codes are listed in ``docs/identity.md``; scripts may match on them.
"""

from __future__ import annotations

from safeguard.core.errors import InvalidInput, Unreachable, VerificationFailed

# --- the token itself -----------------------------------------------------------------------


class OIDCTokenMalformed(InvalidInput):
    """Not a compact JWS JWT (RFC 7515 §7.1, RFC 7519 §7.2): segments, base64url, JSON, size."""

    code = "OIDC_TOKEN_MALFORMED"


class OIDCTokenRefused(VerificationFailed):
    """Base of every refusal of a well-formed token."""

    code = "OIDC_TOKEN_REFUSED"


class OIDCAlgorithmRefused(OIDCTokenRefused):
    code = "OIDC_ALGORITHM_REFUSED"


class OIDCKeyUnknown(OIDCTokenRefused):
    code = "OIDC_KEY_UNKNOWN"


class OIDCSignatureInvalid(OIDCTokenRefused):
    code = "OIDC_SIGNATURE_INVALID"


class OIDCIssuerMismatch(OIDCTokenRefused):
    code = "OIDC_ISSUER_MISMATCH"


class OIDCAudienceMismatch(OIDCTokenRefused):
    code = "OIDC_AUDIENCE_MISMATCH"


class OIDCTokenExpired(OIDCTokenRefused):
    code = "OIDC_TOKEN_EXPIRED"


class OIDCNotYetValid(OIDCTokenRefused):
    code = "OIDC_NOT_YET_VALID"


class OIDCLifetimeTooLong(OIDCTokenRefused):
    code = "OIDC_TOKEN_LIFETIME_TOO_LONG"


class OIDCClaimInvalid(OIDCTokenRefused):
    """A claim the checks need is missing or has the wrong JSON type."""

    code = "OIDC_CLAIM_INVALID"


class OIDCIdentityNotMatched(OIDCTokenRefused):
    """The token matches none of the identities; ``detail`` maps each name to its mismatches."""

    code = "OIDC_IDENTITY_NOT_MATCHED"


class OIDCIdentityAmbiguous(OIDCTokenRefused):
    """The token matches more than one identity; ``detail`` lists their names."""

    code = "OIDC_IDENTITY_AMBIGUOUS"


# --- configuration: keys, discovery, URLs, requirements --------------------------------------


class OIDCURLRefused(InvalidInput):
    """Issuer, discovery, JWKS or token-request URLs must be https (plain http on loopback only)."""

    code = "OIDC_URL_REFUSED"


class OIDCJWKSInvalid(InvalidInput):
    """A JWKS (RFC 7517 §5) that cannot be used: not JSON, too large, private keys, duplicates."""

    code = "OIDC_JWKS_INVALID"


class OIDCDiscoveryInvalid(OIDCJWKSInvalid):
    """An OpenID Provider configuration document (OIDC Discovery 1.0 §3, §4.3) that is unusable."""

    code = "OIDC_DISCOVERY_INVALID"


class OIDCJWKSUnreachable(Unreachable):
    """The issuer's discovery or JWKS endpoint did not answer, or answered with an error status."""

    code = "OIDC_JWKS_UNREACHABLE"


class OIDCRequirementInvalid(InvalidInput):
    """An identity requirement that cannot be matched safely (for example, no repository)."""

    code = "OIDC_REQUIREMENT_INVALID"


# --- getting a token in CI -----------------------------------------------------------------


class CITokenUnavailable(InvalidInput):
    """No CI identity token is available to this process: signing happens in CI only."""

    code = "OIDC_CI_TOKEN_UNAVAILABLE"


class CITokenRequestFailed(Unreachable):
    """The CI platform's token endpoint did not answer, or answered with an error."""

    code = "OIDC_CI_TOKEN_REQUEST_FAILED"
