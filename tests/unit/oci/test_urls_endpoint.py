"""Appending query parameters to registry URLs, and the plain-HTTP rule."""

from __future__ import annotations

import pytest

from safeguard.oci.errors import InsecureRegistry
from safeguard.oci.transport.endpoint import check_url_allowed, resolve_endpoint
from safeguard.oci.transport.urls import append_query


def test_digest_is_appended_to_a_location_with_a_query() -> None:
    url = append_query("http://r/v2/x/blobs/uploads/u?_state=abc%3D&x=1", [("digest", "sha256:00")])
    assert str(url) == "http://r/v2/x/blobs/uploads/u?_state=abc%3D&x=1&digest=sha256%3A00"


def test_digest_is_appended_to_a_location_without_query() -> None:
    assert (
        str(append_query("http://r/u", [("digest", "sha256:00")]))
        == "http://r/u?digest=sha256%3A00"
    )
    assert str(append_query("http://r/u?", [("a", "b")])) == "http://r/u?a=b"


def test_repeated_parameters_are_kept() -> None:
    url = append_query("https://auth/token?x=1", [("scope", "a:b:pull"), ("scope", "c:d:push")])
    assert url.params.get_list("scope") == ["a:b:pull", "c:d:push"]
    assert url.params["x"] == "1"


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:5000", "127.0.0.1:5000", "127.9.9.9", "[::1]:5000"]
)
def test_loopback_is_plain_http_without_flag(host: str) -> None:
    endpoint = resolve_endpoint(host)
    assert endpoint.scheme == "http"
    assert endpoint.base_url == f"http://{host}"


def test_other_hosts_are_https() -> None:
    endpoint = resolve_endpoint("registry.example.com")
    assert (endpoint.scheme, endpoint.verify_tls, endpoint.http_fallback) == ("https", True, False)


def test_insecure_flag_allows_unverified_tls_then_http() -> None:
    endpoint = resolve_endpoint("registry.example.com:5000", allow_insecure=True)
    assert (endpoint.scheme, endpoint.verify_tls, endpoint.http_fallback) == ("https", False, True)
    assert resolve_endpoint("r.example", allow_insecure=True, scheme="http").scheme == "http"


def test_http_to_a_remote_host_without_flag_is_refused() -> None:
    with pytest.raises(InsecureRegistry, match="refusing plain HTTP") as info:
        resolve_endpoint("registry.example.com", scheme="http")
    assert "--allow-insecure-registry" in (info.value.hint or "")
    assert info.value.exit_code == 2


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(InsecureRegistry):
        resolve_endpoint("r.example", scheme="ftp")


def test_credentials_never_go_over_http_to_remote_realms() -> None:
    check_url_allowed("https://auth.example/token", allow_insecure=False)
    check_url_allowed("http://127.0.0.1:9999/token", allow_insecure=False)
    check_url_allowed("http://[::1]:9999/token", allow_insecure=False)
    check_url_allowed("http://auth.example/token", allow_insecure=True)
    with pytest.raises(InsecureRegistry):
        check_url_allowed("http://auth.example/token", allow_insecure=False)
