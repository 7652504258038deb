"""How a gateway is set up: which registry it fronts, its users, its policy, its timings.

``safeguard serve`` builds ``GatewaySettings`` from ``--upstream``, ``--auth``, ``--policy``,
``--public-url``, ``--blob-redirect``/``--upstream-public-url`` and the address it listens on;
with no ``--upstream`` the gateway fronts the built-in registry in the same process.

``registry_hosts`` are the names the fronted registry goes by, which decide whether a
``mayPublish`` glob that names a registry host (``registry.internal/team-a/**``) applies to the
repository paths the gateway sees (``safeguard.verify.from_policy.covers``): the host of
``--public-url``, the host of ``--upstream``, the address ``safeguard serve`` listens on, and
with the built-in registry also ``localhost`` (and ``localhost:PORT`` when it listens on a
loopback or any-address). Hosts compare case-insensitively; a URL on its scheme's default port
also goes by its host alone.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from safeguard.oci.transport.credentials import Credentials


@dataclass(frozen=True)
class GatewaySettings:
    upstream: str | None = None  # http(s)://HOST[:PORT]; None: the built-in registry
    upstream_credentials: Credentials | None = None
    allow_insecure_upstream: bool = False
    auth_file: Path | None = None  # users and roles; None: no authentication
    policy_file: Path | None = None  # a safeguard.yaml; None: the store's active policy
    public_url: str | None = None  # how clients reach the gateway (token realm)
    blob_redirect_url: str | None = None  # blob GETs answer 307 to here (None: relay them)
    listen: str | None = None  # HOST:PORT ``safeguard serve`` listens on (None: not serving)
    pull_log_flush_ms: int = 200  # pull log: flush at least this often...
    pull_log_batch: int = 500  # ...or when this many records are waiting
    tick_seconds: float = 1.0  # grace deadlines and quarantine purges are checked this often
    policy_refresh_seconds: float = 5.0  # how often the store's active policy is re-read


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _url_hosts(url: str) -> set[str]:
    parts = urlsplit(url)
    if not parts.netloc or parts.hostname is None:
        return set()
    netloc = parts.netloc.rpartition("@")[2].lower()
    names = {netloc}
    try:
        port = parts.port
    except ValueError:
        return names
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme):
        host = netloc.rsplit(":", 1)[0] if port is not None else netloc
        names |= {host, f"{host}:{_DEFAULT_PORTS.get(parts.scheme, 443)}"}
    return names


def _is_local(host: str) -> bool:
    bare = host.strip("[]")
    if bare == "localhost":
        return True
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def registry_hosts(settings: GatewaySettings) -> frozenset[str]:
    """The names the registry behind this gateway goes by (module doc)."""
    names: set[str] = set()
    if settings.public_url:
        names |= _url_hosts(settings.public_url)
    if settings.upstream:
        names |= _url_hosts(settings.upstream)
    if settings.listen:
        listen = settings.listen.lower()
        names.add(listen)
        host, _, port = listen.rpartition(":")
        if host and _is_local(host):
            names.add(f"localhost:{port}")
    if settings.upstream is None:
        names.add("localhost")
    return frozenset(names)
