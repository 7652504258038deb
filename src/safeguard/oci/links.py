"""``Link`` header parsing for pagination (RFC 8288, which replaced RFC 5988).

Tag listing, the catalog and the referrers API page with ``Link: <url>; rel="next"`` (distribution
spec v1.1, "Listing Tags" and "Listing Referrers"). The target is usually relative
(``</v2/_catalog?last=b&n=2>``) and is resolved against the URL of the response that carried it.
A next page on another origin is refused: following it would let a registry send the client, and
the credentials it holds for that host's realm, somewhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

import httpx

from safeguard.core.errors import RegistryError

_LINK: Final = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]+)*)")
_PARAM: Final = re.compile(
    r"""\s*;\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)\s*(?:=\s*("[^"]*"|[^;,\s]*))?"""
)


@dataclass(frozen=True, slots=True)
class Link:
    target: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def rels(self) -> tuple[str, ...]:
        return tuple(self.params.get("rel", "").lower().split())


def parse_links(values: list[str] | str) -> list[Link]:
    """Every link in one or more ``Link`` header values."""
    texts = [values] if isinstance(values, str) else values
    out: list[Link] = []
    for text in texts:
        for m in _LINK.finditer(text):
            params: dict[str, str] = {}
            for pm in _PARAM.finditer(m.group(2)):
                value = pm.group(2) or ""
                if value.startswith('"') and value.endswith('"') and len(value) >= 2:
                    value = value[1:-1]
                params.setdefault(pm.group(1).lower(), value)
            out.append(Link(m.group(1).strip(), params))
    return out


def next_page(headers: httpx.Headers, url: httpx.URL) -> httpx.URL | None:
    """The absolute URL of the next page after the response at ``url``, or ``None``."""
    for link in parse_links(headers.get_list("link")):
        if "next" in link.rels:
            return resolve_next(url, link.target)
    return None


def resolve_next(base: httpx.URL, target: str) -> httpx.URL:
    try:
        url = base.join(target)
    except httpx.InvalidURL as exc:
        raise RegistryError(
            f"registry sent an invalid pagination link {target!r}", status=200
        ) from exc
    if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
        raise RegistryError(
            f"registry sent a pagination link to another origin: {target!r}",
            status=200,
            hint="the registry (or a proxy in front of it) is misconfigured or hostile",
        )
    return url
