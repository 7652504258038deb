"""Typed refusals of the signing service, the release-engineer flow and key custody.

Each has a stable code (listed in docs/signing-service.md), a hint, an exit code for the CLI and
an HTTP status for ``POST /api/v1/signatures``:

* the request cannot succeed as sent (``InvalidInput``: exit 2, HTTP 400); a missing bearer
  token is HTTP 401;
* the signer is who it says but may not do this (``VerificationFailed``: exit 1, HTTP 403):
  repository outside ``mayPublish``, a retired or revoked key, a wrong or replayed TOTP code;
* the service is overloaded or a dependency failed (``Unreachable``: exit 3): HTTP 429 with
  ``Retry-After`` for a rate limit, 503 for an HSM or log that does not answer.
"""

from __future__ import annotations

from typing import Any

from safeguard.core.errors import (
    InvalidInput,
    NotFound,
    SafeguardError,
    Unreachable,
    VerificationFailed,
)

# --- the request -----------------------------------------------------------------------------


class SigningRequestInvalid(InvalidInput):
    """The JSON body of a signing request is malformed or asks for something impossible."""

    code = "SIGNING_REQUEST_INVALID"


class SigningTokenMissing(InvalidInput):
    """No ``Authorization: Bearer <OIDC token>`` header (RFC 6750 §3: 401)."""

    code = "SIGNING_TOKEN_MISSING"
    http_status = 401


# --- authorisation ---------------------------------------------------------------------------


class SigningNotAuthorized(VerificationFailed):
    """The identity may not publish in the requested repository (``mayPublish``)."""

    code = "SIGNING_NOT_AUTHORIZED"


class SigningIdentityUnusable(VerificationFailed):
    """The matched identity cannot sign through this path (wrong kind, no key)."""

    code = "SIGNING_IDENTITY_UNUSABLE"


class SigningKeyRetired(VerificationFailed):
    """The identity's key is retired or revoked (custody or policy) and signs no more."""

    code = "SIGNING_KEY_RETIRED"


class RateLimited(Unreachable):
    """The identity exceeded its ``rateLimit``; ``retry_after`` seconds until a token frees."""

    code = "SIGNING_RATE_LIMITED"
    http_status = 429

    def __init__(self, message: str, *, retry_after: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint, detail={"retryAfter": retry_after})
        self.retry_after = retry_after


# --- dependencies ----------------------------------------------------------------------------


class SigningConfigInvalid(SafeguardError):
    """The policy names something the service cannot use (a key without a private ``ref``...)."""

    code = "SIGNING_CONFIG_INVALID"
    exit_code = 2
    http_status = 500


class SigningKeyUnavailable(Unreachable):
    """The HSM or token holding the key did not open or did not sign."""

    code = "SIGNING_KEY_UNAVAILABLE"


class SigningServerError(Unreachable):
    """The signing server could not be reached, or answered something unusable."""

    code = "SIGNING_SERVER_ERROR"


class SigningRefused(SafeguardError):
    """The signing server refused the request; ``code`` is the server's own (module doc)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int,
        hint: str | None = None,
        detail: Any = None,
    ) -> None:
        super().__init__(message, hint=hint, detail=detail)
        self.code = code  # type: ignore[misc]
        self.status = status
        self.exit_code = (  # type: ignore[misc]
            1 if status in (401, 403) else 3 if status in (429, 502, 503, 504) else 2
        )


# --- release engineers -----------------------------------------------------------------------


class ReleaseIdentityNotFound(VerificationFailed):
    """No ``kind: release-engineer`` identity of the policy holds the given token."""

    code = "RELEASE_IDENTITY_NOT_FOUND"


class ReleaseNotEnrolled(NotFound):
    code = "RELEASE_NOT_ENROLLED"


class ReleaseAlreadyEnrolled(InvalidInput):
    code = "RELEASE_ALREADY_ENROLLED"


class TicketInvalid(InvalidInput):
    code = "RELEASE_TICKET_INVALID"


class TOTPRequired(InvalidInput):
    code = "RELEASE_TOTP_REQUIRED"


class TOTPInvalid(VerificationFailed):
    code = "RELEASE_TOTP_INVALID"


class TOTPReplayed(VerificationFailed):
    code = "RELEASE_TOTP_REPLAYED"


class TOTPLocked(VerificationFailed):
    code = "RELEASE_TOTP_LOCKED"


class SecretsKeyInvalid(InvalidInput):
    code = "RELEASE_SECRETS_KEY_INVALID"


# --- custody ---------------------------------------------------------------------------------


class CustodyKeyNotFound(NotFound):
    code = "CUSTODY_KEY_NOT_FOUND"


class CustodyKeyExists(InvalidInput):
    code = "CUSTODY_KEY_EXISTS"


class CustodyTransitionInvalid(InvalidInput):
    code = "CUSTODY_TRANSITION_INVALID"
