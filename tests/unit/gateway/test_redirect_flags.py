"""``safeguard serve``'s ``--blob-redirect``/``--upstream-public-url``: where blob GETs are sent,
and the typed refusals of combinations that make no sense."""

from __future__ import annotations

import pytest

from safeguard.cli.serve import gateway_settings
from safeguard.core.errors import InvalidInput

UP = "http://registry.internal:5000"


def test_off_by_default() -> None:
    assert gateway_settings(UP, None, None, None).blob_redirect_url is None


def test_redirects_to_the_upstream_or_its_public_url() -> None:
    on = gateway_settings(UP + "/", None, None, None, blob_redirect=True)
    assert on.blob_redirect_url == UP
    public = gateway_settings(
        UP, None, None, None, blob_redirect=True, upstream_public_url="https://cdn.example/"
    )
    assert public.blob_redirect_url == "https://cdn.example"


@pytest.mark.parametrize(
    ("upstream", "redirect", "public"),
    [
        (None, True, None),  # the built-in registry: nothing to redirect to
        (UP, False, "https://cdn.example"),  # a public URL without the flag
        (UP, True, "cdn.example"),  # not a URL
        (UP, True, "https://cdn.example/?x=1"),  # not a base URL
    ],
)
def test_refused_combinations(upstream: str | None, redirect: bool, public: str | None) -> None:
    with pytest.raises(InvalidInput):
        gateway_settings(
            upstream, None, None, None, blob_redirect=redirect, upstream_public_url=public
        )
