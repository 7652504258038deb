"""Wiring the gateway into a Safeguard node (``safeguard.server.SafeguardApp``).

``mount_gateway`` builds the upstream (the node's own registry in-process, or ``--upstream``),
the users, and the gateway's services over the node's store (among them the key custody records
signatures are judged by, ``safeguard.signing.custody.KeyCustody``), puts the gateway on
``/v2``, its token and admin endpoints on their paths, and its background work (pull-log
flushing, grace deadlines, quarantine purges) on the node's start-up and shutdown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from safeguard.gateway.auth import AuthConfig
from safeguard.gateway.config import GatewaySettings
from safeguard.gateway.core import Gateway
from safeguard.gateway.site import is_gateway_site_path
from safeguard.gateway.upstream import HttpUpstream, InProcessUpstream, Upstream

if TYPE_CHECKING:
    from safeguard.server import SafeguardApp


def build_upstream(app: SafeguardApp, settings: GatewaySettings) -> Upstream:
    if settings.upstream is None:
        return InProcessUpstream(app.registry)
    return HttpUpstream(
        settings.upstream,
        credentials=settings.upstream_credentials,
        allow_insecure=settings.allow_insecure_upstream,
    )


def mount_gateway(app: SafeguardApp, settings: GatewaySettings) -> Gateway:
    auth = (
        AuthConfig.load(settings.auth_file, app.data_dir)
        if settings.auth_file is not None
        else AuthConfig.disabled()
    )
    from safeguard.signing.custody import KeyCustody

    custody = KeyCustody(app.db)
    gateway = Gateway(app.db, build_upstream(app, settings), auth, settings, custody=custody)
    app.v2 = gateway.app
    app.mounts.append((is_gateway_site_path, gateway.site))
    app.startups.append(gateway.start)
    app.shutdowns.append(gateway.stop)
    return gateway
