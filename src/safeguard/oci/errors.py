"""Errors specific to talking to registries and layouts, and the mapping of registry answers.

A registry's error body (distribution spec v1.1, "Error Codes": ``{"errors": [{"code",
"message", "detail"}]}``) becomes a ``RegistryError`` that keeps the HTTP status and the OCI code;
a body that is not an OCI error envelope (distribution's plain-text 404 for unknown routes, an
HTML page from a proxy) still gives a ``RegistryError`` with a short excerpt of the text.
"""

from __future__ import annotations

import json
from typing import Any, Final

from safeguard.core.errors import InvalidInput, RegistryError, VerificationFailed

ERROR_BODY_LIMIT: Final = 64 * 1024
_EXCERPT: Final = 200


class DigestMismatch(VerificationFailed):
    """Content did not hash to the digest it was asked for: tampered or corrupted."""

    code = "DIGEST_MISMATCH"

    def __init__(self, what: str, expected: str, actual: str) -> None:
        super().__init__(
            f"{what}: expected digest {expected}, got {actual}",
            hint="the content was altered in storage or in transit; do not use it",
            detail={"expected": expected, "actual": actual},
        )
        self.expected = expected
        self.actual = actual


class SizeMismatch(VerificationFailed):
    """Content did not have the size its descriptor declared."""

    code = "SIZE_MISMATCH"


class InsecureRegistry(InvalidInput):
    """Plain HTTP to a registry that is not on loopback, without ``--allow-insecure-registry``."""

    code = "INSECURE_REGISTRY"


_STATUS_HINTS: Final[dict[int, str]] = {
    401: "log in: put credentials for this registry in ~/.docker/config.json "
    "(or $DOCKER_CONFIG, $REGISTRY_AUTH_FILE)",
    403: "the credentials used are not allowed to do this",
    404: "check the repository name, tag or digest",
    429: "the registry is rate limiting; retry later",
}


def registry_error(
    status: int,
    body: bytes,
    *,
    method: str,
    url: str,
    content_type: str | None = None,
) -> RegistryError:
    """Build the ``RegistryError`` for a failed response from its status and (bounded) body."""
    entries = _oci_errors(body)
    where = f"{method} {url}"
    hint = _STATUS_HINTS.get(status)
    if entries:
        first = entries[0]
        code = str(first.get("code") or "UNKNOWN")
        message = str(first.get("message") or code)
        return RegistryError(
            f"registry answered {status} {code}: {message} ({where})",
            status=status,
            oci_code=code,
            hint=hint,
            detail={"errors": entries},
        )
    text = body[:_EXCERPT].decode("utf-8", "replace").strip()
    suffix = f": {text}" if text else ""
    return RegistryError(
        f"registry answered {status} to {where}{suffix}",
        status=status,
        hint=hint,
        detail={"contentType": content_type} if content_type else None,
    )


def _oci_errors(body: bytes) -> list[dict[str, Any]]:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return []
    if not isinstance(doc, dict) or not isinstance(doc.get("errors"), list):
        return []
    return [e for e in doc["errors"] if isinstance(e, dict)]
