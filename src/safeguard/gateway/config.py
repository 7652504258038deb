"""How a gateway is set up: which registry it fronts, its users, its policy, its timings.

``safeguard serve`` builds ``GatewaySettings`` from ``--upstream``, ``--auth`` and ``--policy``;
with no ``--upstream`` the gateway fronts the built-in registry in the same process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from safeguard.oci.transport.credentials import Credentials


@dataclass(frozen=True)
class GatewaySettings:
    upstream: str | None = None  # http(s)://HOST[:PORT]; None: the built-in registry
    upstream_credentials: Credentials | None = None
    allow_insecure_upstream: bool = False
    auth_file: Path | None = None  # users and roles; None: no authentication
    policy_file: Path | None = None  # a safeguard.yaml; None: the store's active policy
    public_url: str | None = None  # how clients reach the gateway (token realm)
    pull_log_flush_ms: int = 200  # pull log: flush at least this often...
    pull_log_batch: int = 500  # ...or when this many records are waiting
    tick_seconds: float = 1.0  # grace deadlines and quarantine purges are checked this often
    policy_refresh_seconds: float = 5.0  # how often the store's active policy is re-read
