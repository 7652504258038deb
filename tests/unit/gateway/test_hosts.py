"""The names the registry behind a gateway goes by (``gateway.config.registry_hosts``), which
decide whether a ``mayPublish`` glob naming a host applies to the paths the gateway sees."""

from __future__ import annotations

from safeguard.cli.serve import gateway_settings
from safeguard.gateway.config import GatewaySettings, registry_hosts


def test_embedded_default_goes_by_its_address_and_localhost() -> None:
    hosts = registry_hosts(GatewaySettings(listen="127.0.0.1:8080"))
    assert hosts == {"127.0.0.1:8080", "localhost:8080", "localhost"}
    assert registry_hosts(GatewaySettings()) == {"localhost"}
    wide = registry_hosts(GatewaySettings(listen="[::]:9000"))
    assert wide == {"[::]:9000", "localhost:9000", "localhost"}


def test_public_url_and_upstream_name_the_registry() -> None:
    hosts = registry_hosts(
        GatewaySettings(
            upstream="http://10.0.0.5:5000",
            public_url="https://Registry.Internal",
            listen="0.0.0.0:8080",
        )
    )
    assert hosts == {
        "registry.internal",
        "registry.internal:443",
        "10.0.0.5:5000",
        "0.0.0.0:8080",
        "localhost:8080",
    }
    assert "localhost" not in hosts  # an upstream registry is not "localhost"
    explicit = registry_hosts(GatewaySettings(public_url="https://gw.example:443/", listen=None))
    assert explicit == {"gw.example", "gw.example:443", "localhost"}
    other_port = registry_hosts(GatewaySettings(public_url="https://gw.example:8443"))
    assert other_port == {"gw.example:8443", "localhost"}


def test_a_routable_listen_address_is_not_localhost() -> None:
    assert registry_hosts(GatewaySettings(listen="192.0.2.7:80", upstream="https://r.example")) == {
        "192.0.2.7:80",
        "r.example",
        "r.example:443",
    }


def test_serve_passes_the_address_it_listens_on() -> None:
    settings = gateway_settings(None, None, None, None, "127.0.0.1:5555")
    assert settings.listen == "127.0.0.1:5555"
    assert "127.0.0.1:5555" in registry_hosts(settings)
