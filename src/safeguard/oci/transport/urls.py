"""Adding query parameters to a URL the registry gave us, without losing the ones it had.

httpx's ``params=`` replaces a URL's whole query string, but an upload ``Location`` (distribution
puts ``_state=...`` there) and a token realm may carry parameters that must survive (distribution
spec v1.1, "POST then PUT": the location "MAY contain critical query parameters"). So parameters
are appended to the URL text, with ``&`` or ``?`` as needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote, urlencode

import httpx


def append_query(url: httpx.URL | str, params: Sequence[tuple[str, str]]) -> httpx.URL:
    text = str(url)
    if not params:
        return httpx.URL(text)
    fragment = ""
    if "#" in text:
        text, _, fragment = text.partition("#")
        fragment = "#" + fragment
    encoded = urlencode(list(params), quote_via=quote, safe="")
    sep = "?"
    if "?" in text:
        sep = "" if text.endswith(("?", "&")) else "&"
    return httpx.URL(f"{text}{sep}{encoded}{fragment}")
