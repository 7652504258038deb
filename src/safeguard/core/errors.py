"""Typed errors with a stable code, a hint for the user, and their mapping to each surface.

One exception hierarchy serves the CLI (exit codes: 0 ok, 1 verification failed, 2 usage or input
error, 3 unreachable dependency), the HTTP APIs (status codes) and the registry API, where the
OCI distribution-spec v1.1 "Error Codes" section defines the codes a client must understand.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

EXIT_OK = 0
EXIT_VERIFICATION_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


class OCIErrorCode(StrEnum):
    """The error codes of the OCI distribution spec v1.1, plus distribution's range code."""

    BLOB_UNKNOWN = "BLOB_UNKNOWN"
    BLOB_UPLOAD_INVALID = "BLOB_UPLOAD_INVALID"
    BLOB_UPLOAD_UNKNOWN = "BLOB_UPLOAD_UNKNOWN"
    DIGEST_INVALID = "DIGEST_INVALID"
    MANIFEST_BLOB_UNKNOWN = "MANIFEST_BLOB_UNKNOWN"
    MANIFEST_INVALID = "MANIFEST_INVALID"
    MANIFEST_UNKNOWN = "MANIFEST_UNKNOWN"
    NAME_INVALID = "NAME_INVALID"
    NAME_UNKNOWN = "NAME_UNKNOWN"
    SIZE_INVALID = "SIZE_INVALID"
    TAG_INVALID = "TAG_INVALID"
    UNAUTHORIZED = "UNAUTHORIZED"
    DENIED = "DENIED"
    UNSUPPORTED = "UNSUPPORTED"
    TOOMANYREQUESTS = "TOOMANYREQUESTS"
    RANGE_INVALID = "RANGE_INVALID"
    UNAVAILABLE = "UNAVAILABLE"


class SafeguardError(Exception):
    """Base of every error Safeguard raises on purpose.

    ``code`` is stable and documented so scripts can match on it; ``hint`` tells the user what to
    do next. Subclasses choose the exit code and HTTP status that fit their meaning.
    """

    code: ClassVar[str] = "SAFEGUARD_ERROR"
    exit_code: ClassVar[int] = EXIT_USAGE
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, hint: str | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.detail = detail

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.hint:
            body["hint"] = self.hint
        if self.detail is not None:
            body["detail"] = self.detail
        return body

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


class InvalidInput(SafeguardError):
    """Input that can never succeed as given: fix the input, do not retry."""

    code = "INVALID_INPUT"
    exit_code = EXIT_USAGE
    http_status = 400


class InvalidDigest(InvalidInput):
    code = OCIErrorCode.DIGEST_INVALID.value


class InvalidReference(InvalidInput):
    code = "REFERENCE_INVALID"


class InvalidName(InvalidReference):
    code = OCIErrorCode.NAME_INVALID.value


class InvalidTag(InvalidReference):
    code = OCIErrorCode.TAG_INVALID.value


class InvalidManifest(InvalidInput):
    code = OCIErrorCode.MANIFEST_INVALID.value


class NotFound(SafeguardError):
    code = "NOT_FOUND"
    exit_code = EXIT_USAGE
    http_status = 404


class VerificationFailed(SafeguardError):
    """The artifact or signature is well formed but does not satisfy what was asked."""

    code = "VERIFICATION_FAILED"
    exit_code = EXIT_VERIFICATION_FAILED
    http_status = 403


class Unreachable(SafeguardError):
    """A dependency (registry, database, log, HSM) could not be reached; retrying may help."""

    code = "UNREACHABLE"
    exit_code = EXIT_UNREACHABLE
    http_status = 503


class RegistryError(SafeguardError):
    """An error answered by an OCI registry, keeping the spec code, status and detail it sent."""

    code = "REGISTRY_ERROR"
    exit_code = EXIT_USAGE

    def __init__(
        self,
        message: str,
        *,
        status: int,
        oci_code: str | None = None,
        hint: str | None = None,
        detail: Any = None,
    ) -> None:
        super().__init__(message, hint=hint, detail=detail)
        self.status = status
        self.oci_code = oci_code

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        body["status"] = self.status
        if self.oci_code:
            body["ociCode"] = self.oci_code
        return body


class OCIError(SafeguardError):
    """An error the built-in registry or the gateway answers with an OCI error body.

    The status is per instance because the spec pairs one code with several statuses (for example
    ``BLOB_UPLOAD_INVALID`` is 400 for a bad body and 416 for a bad ``Content-Range``).
    """

    code = "OCI_ERROR"

    def __init__(
        self,
        oci_code: OCIErrorCode,
        message: str,
        *,
        status: int,
        detail: Any = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint, detail=detail)
        self.oci_code = oci_code
        self.status = status

    def body(self) -> dict[str, Any]:
        """The spec's error envelope: ``{"errors": [{"code", "message", "detail"}]}``."""
        entry: dict[str, Any] = {"code": self.oci_code.value, "message": self.message}
        detail = (
            self.detail if self.detail is not None else ({"hint": self.hint} if self.hint else None)
        )
        if detail is not None:
            entry["detail"] = detail
        return {"errors": [entry]}
