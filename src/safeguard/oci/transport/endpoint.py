"""Which scheme reaches a registry: the rule Docker applies to "insecure registries".

Registries on ``localhost``, ``127.0.0.0/8`` and ``::1`` are reached over plain HTTP without any
flag (``safeguard.core.reference.is_loopback_host``). Every other host is HTTPS. With
``allow_insecure`` (CLI ``--allow-insecure-registry``) a non-loopback host is tried over HTTPS
without certificate verification first and over plain HTTP if TLS cannot be set up, as Docker does
for hosts listed in ``insecure-registries``. Asking for ``http`` to a non-loopback host without
the flag is an ``InsecureRegistry`` error, never a silent downgrade.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from safeguard.core.reference import is_loopback_host
from safeguard.oci.errors import InsecureRegistry

INSECURE_HINT = (
    "plain HTTP is only used without a flag for localhost and 127.0.0.0/8; "
    "pass --allow-insecure-registry (allow_insecure=True) if you trust this network"
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str  # host[:port] as in an image reference
    scheme: str  # "http" or "https"
    verify_tls: bool = True
    http_fallback: bool = False  # try plain HTTP when TLS cannot be established

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def downgraded(self) -> Endpoint:
        return Endpoint(self.host, "http", verify_tls=False, http_fallback=False)


def resolve_endpoint(
    host: str, *, allow_insecure: bool = False, scheme: str | None = None
) -> Endpoint:
    """The endpoint for ``host``; ``scheme`` forces ``http`` or ``https`` when given."""
    loopback = is_loopback_host(host)
    if scheme is not None:
        scheme = scheme.lower()
        if scheme not in ("http", "https"):
            raise InsecureRegistry(f"unsupported scheme {scheme!r} for registry {host}")
        if scheme == "http" and not (loopback or allow_insecure):
            raise InsecureRegistry(
                f"refusing plain HTTP to registry {host}: it is not on loopback",
                hint=INSECURE_HINT,
            )
        return Endpoint(host, scheme, verify_tls=not allow_insecure)
    if loopback:
        return Endpoint(host, "http", verify_tls=False)
    if allow_insecure:
        return Endpoint(host, "https", verify_tls=False, http_fallback=True)
    return Endpoint(host, "https")


def check_url_allowed(url: str, *, allow_insecure: bool) -> None:
    """Refuse an ``http://`` URL to a non-loopback host (used for token realms)."""
    parsed = httpx.URL(url)
    if parsed.scheme == "https":
        return
    if parsed.scheme != "http":
        raise InsecureRegistry(f"unsupported URL scheme in {url!r}")
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host  # IPv6 literal
    if not (is_loopback_host(host) or allow_insecure):
        raise InsecureRegistry(
            f"refusing to send credentials over plain HTTP to {parsed.host}", hint=INSECURE_HINT
        )
