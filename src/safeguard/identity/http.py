"""Bounded HTTP reads for the identity room: the URL rule and a size- and time-limited JSON GET.

Every URL the room contacts (issuer discovery, JWKS, the CI token endpoint) must be ``https``;
plain ``http`` is allowed only to a loopback host, which is what tests and local issuers use. A
key set fetched over plain HTTP could be replaced in transit, and with it every identity, so the
rule has no opt-out (RFC 8725 §3.1 on trusting key material; OIDC Discovery 1.0 §4 requires TLS).

Redirects are not followed: a redirect could lead to a plain-HTTP or unexpected host, and issuers
publish their final URLs. Response bodies are read in chunks and refused beyond a byte limit, so a
hostile endpoint cannot make us buffer an unbounded body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from safeguard.core.errors import SafeguardError
from safeguard.core.reference import is_loopback_host
from safeguard.identity.errors import OIDCURLRefused

DEFAULT_TIMEOUT: Final = 10.0
DEFAULT_MAX_BYTES: Final = 256 * 1024
MAX_URL_LENGTH: Final = 2048


def check_url(url: str, *, what: str) -> str:
    """Return ``url`` if it is an absolute https URL (or http to loopback), else refuse it."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise OIDCURLRefused(
            f"the {what} URL is empty or too long",
            hint=f"give an https URL of at most {MAX_URL_LENGTH} characters",
        )
    try:
        parts = urlsplit(url)
        host = parts.hostname
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise OIDCURLRefused(f"the {what} URL {url!r} is not a valid URL: {exc}") from None
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise OIDCURLRefused(f"the {what} URL {url!r} contains whitespace or control characters")
    if not host:
        raise OIDCURLRefused(
            f"the {what} URL {url!r} has no host", hint="give an absolute https:// URL"
        )
    if parts.username is not None or parts.password is not None:
        raise OIDCURLRefused(
            f"the {what} URL must not carry credentials",
            hint="remove the user:password@ part",
        )
    if parts.fragment:
        raise OIDCURLRefused(f"the {what} URL {url!r} must not have a #fragment")
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and is_loopback_host(host if ":" not in host else f"[{host}]"):
        return url
    raise OIDCURLRefused(
        f"the {what} URL {url!r} is not https",
        hint="OIDC issuers, key sets and token endpoints must be reached over https "
        "(plain http is accepted for loopback addresses only)",
    )


async def get_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    what: str,
    headers: Mapping[str, str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    invalid: type[SafeguardError],
    unreachable: type[SafeguardError],
) -> tuple[int, Any]:
    """GET ``url`` and return ``(status, parsed JSON)`` for a 200 answer.

    A transport failure or a non-200 status raises ``unreachable``; a body over ``max_bytes`` or
    one that is not JSON raises ``invalid``. The caller checks the JSON's shape.
    """
    check_url(url, what=what)
    try:
        async with client.stream(
            "GET", url, headers=dict(headers or {}), follow_redirects=False
        ) as response:
            if response.status_code != 200:
                await response.aclose()
                hint = (
                    "the endpoint redirected; configure its final https URL"
                    if 300 <= response.status_code < 400
                    else "check the URL and that the service is up"
                )
                raise unreachable(
                    f"the {what} at {url} answered HTTP {response.status_code}",
                    hint=hint,
                    detail={"status": response.status_code},
                )
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise invalid(
                    f"the {what} at {url} is {declared} bytes, over the {max_bytes}-byte limit"
                )
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > max_bytes:
                    raise invalid(f"the {what} at {url} is over the {max_bytes}-byte limit")
    except SafeguardError:
        raise
    except httpx.TimeoutException:
        raise unreachable(
            f"the {what} at {url} did not answer in time",
            hint="retry; if it persists, check the network path to the issuer",
        ) from None
    except httpx.HTTPError as exc:
        raise unreachable(
            f"the {what} at {url} could not be reached: {type(exc).__name__}: {exc}",
            hint="retry; if it persists, check the URL and the network path to the issuer",
        ) from None
    try:
        return 200, json.loads(bytes(body))
    except (ValueError, RecursionError):
        raise invalid(f"the {what} at {url} is not JSON") from None
