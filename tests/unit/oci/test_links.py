"""Link header parsing and pagination targets (RFC 8288; distribution spec "Listing Tags")."""

from __future__ import annotations

import httpx
import pytest

from safeguard.core.errors import RegistryError
from safeguard.oci.links import next_page, parse_links, resolve_next


def test_distribution_style_next_link() -> None:
    [link] = parse_links('</v2/_catalog?last=b&n=2>; rel="next"')
    assert link.target == "/v2/_catalog?last=b&n=2"
    assert link.rels == ("next",)


def test_several_links_and_params() -> None:
    links = parse_links(
        '<https://r/v2/x/tags/list?n=1&last=a>; rel="next"; title="t", </prev>; rel=prev'
    )
    assert [link.target for link in links] == ["https://r/v2/x/tags/list?n=1&last=a", "/prev"]
    assert links[0].params["title"] == "t"
    assert links[1].rels == ("prev",)


def test_rel_with_several_values() -> None:
    [link] = parse_links('</a>; rel="first next"')
    assert "next" in link.rels


def test_relative_next_is_resolved_against_the_response_url() -> None:
    headers = httpx.Headers({"link": '</v2/team/app/tags/list?last=v1&n=1>; rel="next"'})
    url = httpx.URL("http://127.0.0.1:5000/v2/team/app/tags/list?n=1")
    assert str(next_page(headers, url)) == "http://127.0.0.1:5000/v2/team/app/tags/list?last=v1&n=1"


def test_no_next_link_means_last_page() -> None:
    url = httpx.URL("http://r/v2/_catalog")
    assert next_page(httpx.Headers({}), url) is None
    assert next_page(httpx.Headers({"link": '</x>; rel="prev"'}), url) is None


def test_next_link_to_another_origin_is_refused() -> None:
    with pytest.raises(RegistryError, match="another origin"):
        resolve_next(httpx.URL("http://127.0.0.1:5000/v2/_catalog"), "http://evil.example/v2/")


def test_malformed_links_are_ignored() -> None:
    assert parse_links("garbage") == []
    assert parse_links('<unterminated; rel="next"') == []
