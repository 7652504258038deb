"""Tag listing and the catalog (distribution-spec v1.1, "Listing Tags", with ``n``/``last``
pagination and an RFC 5988 ``Link: <...>; rel="next"`` header; the catalog follows distribution's
``/v2/_catalog`` with the same pagination). Both are in byte ("ASCIIbetical") order.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlencode

import anyio.to_thread

from safeguard.core.errors import OCIError, OCIErrorCode
from safeguard.registry.context import RegistryContext
from safeguard.registry.http import Headers, Request, Responder

_run = anyio.to_thread.run_sync
MAX_PAGE: Final = 10_000
DEFAULT_CATALOG_PAGE: Final = 1_000


def _page_size(req: Request, default: int) -> int:
    text = req.query_one("n")
    if text is None or text == "":
        return default
    if not text.isdigit() or len(text) > 9:
        raise OCIError(
            OCIErrorCode.UNSUPPORTED,
            f"invalid page size n={text[:32]!r}",
            status=400,
            hint="n is a non-negative integer",
        )
    return min(int(text), MAX_PAGE)


def _link(path: str, size: int, last: str) -> tuple[bytes, bytes]:
    query = urlencode({"n": size, "last": last})
    return (b"link", f'<{path}?{query}>; rel="next"'.encode())


async def list_tags(ctx: RegistryContext, req: Request, out: Responder, name: str) -> None:
    size = _page_size(req, MAX_PAGE)
    last = req.query_one("last") or None
    tags = await _run(ctx.meta.list_tags, name, size + 1 if size else 0, last)
    if tags is None:
        raise OCIError(OCIErrorCode.NAME_UNKNOWN, f"repository {name} is not known", status=404)
    headers: Headers = []
    if size and len(tags) > size:
        tags = tags[:size]
        headers.append(_link(f"/v2/{name}/tags/list", size, tags[-1]))
    await out.json(200, {"name": name, "tags": tags}, headers)


async def catalog(ctx: RegistryContext, req: Request, out: Responder) -> None:
    size = _page_size(req, DEFAULT_CATALOG_PAGE)
    last = req.query_one("last") or None
    names = await _run(ctx.meta.list_repositories, size + 1 if size else 0, last)
    headers: Headers = []
    if size and len(names) > size:
        names = names[:size]
        headers.append(_link("/v2/_catalog", size, names[-1]))
    await out.json(200, {"repositories": names}, headers)
