"""The identity room: proving that a signer is a CI build role by its short-lived OIDC ID token.

``get_ci_token`` (in the CI job) obtains the token; on the service side ``IdentityVerifier``
verifies it against the issuer's keys (``verify_token``: RFC 7519, RFC 8725) and matches it to
exactly one configured identity (``match_identity``), using the typed GitHub Actions and GitLab
CI claims of ``safeguard.identity.claims``. See ``docs/identity.md``.
"""

from safeguard.identity.ci_token import CIToken, get_ci_token
from safeguard.identity.claims import (
    GITHUB_ISSUER,
    GITLAB_ISSUER,
    CIClaims,
    GitHubClaims,
    GitLabClaims,
    Platform,
    claims_for,
    parse_claims,
)
from safeguard.identity.jwks import (
    JWK,
    URLJWKS,
    DiscoveredJWKS,
    FileJWKS,
    JWKSet,
    JWKSSource,
    StaticJWKS,
    jwks_source,
    parse_jwks,
)
from safeguard.identity.match import IdentityMatch, OIDCRequirement, match_identity
from safeguard.identity.tokens import (
    ALLOWED_ALGORITHMS,
    VerifiedToken,
    parse_token,
    verify_token,
    verify_token_with_keys,
)
from safeguard.identity.verifier import IdentityVerifier

__all__ = [
    "ALLOWED_ALGORITHMS",
    "GITHUB_ISSUER",
    "GITLAB_ISSUER",
    "JWK",
    "URLJWKS",
    "CIClaims",
    "CIToken",
    "DiscoveredJWKS",
    "FileJWKS",
    "GitHubClaims",
    "GitLabClaims",
    "IdentityMatch",
    "IdentityVerifier",
    "JWKSSource",
    "JWKSet",
    "OIDCRequirement",
    "Platform",
    "StaticJWKS",
    "VerifiedToken",
    "claims_for",
    "get_ci_token",
    "jwks_source",
    "match_identity",
    "parse_claims",
    "parse_jwks",
    "parse_token",
    "verify_token",
    "verify_token_with_keys",
]
