"""Bounded reads of HTTP response bodies: never buffer more than a limit from the network.

``httpx`` reads a whole body into memory on ``response.content`` (and on a non-streamed request),
so a hostile or broken server answering with an endless or huge body could exhaust memory before
any size check runs. Here a *streamed* response (``client.send(request, stream=True)`` or
``client.stream(...)``) is read chunk by chunk and refused as soon as it passes ``limit`` (or when
its ``Content-Length`` already says so), with the caller's typed error. The limit counts decoded
bytes, so a compressed answer cannot expand past it either.

``read_bounded``/``aread_bounded`` are the sync and async forms; ``with_body`` turns a streamed
response and the bytes read from it into an ordinary, fully read ``httpx.Response`` so that
callers keep using ``status_code``, ``headers``, ``content``, ``text`` and ``json()``.

Used by the transparency-log client (``safeguard.tlog.client``), the online log check
(``safeguard.verify.online_log``), the registry token flow (``safeguard.oci.transport.auth``) and
the registry transport's ``read_limited`` (``safeguard.oci.transport.session``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import httpx

TooLarge = Callable[[int], Exception]
"""``too_large(limit)`` builds the (typed) error to raise for a body over ``limit`` bytes."""

# Headers that describe the body on the wire; the copy's body is already decoded and complete.
_WIRE_HEADERS: Final = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def _declared_too_large(response: httpx.Response, limit: int) -> bool:
    declared = response.headers.get("content-length")
    return bool(declared) and declared.isdigit() and int(declared) > limit


def read_bounded(
    response: httpx.Response, limit: int, too_large: TooLarge, *, truncate: bool = False
) -> bytes:
    """Read a streamed response's body, refusing (or, with ``truncate``, cutting) past ``limit``.

    Transport errors while reading are ``httpx`` errors, for the caller to map.
    """
    if not truncate and _declared_too_large(response, limit):
        raise too_large(limit)
    buf = bytearray()
    for chunk in response.iter_bytes():
        buf += chunk
        if len(buf) > limit:
            if truncate:
                return bytes(buf[:limit])
            raise too_large(limit)
    return bytes(buf)


async def aread_bounded(
    response: httpx.Response, limit: int, too_large: TooLarge, *, truncate: bool = False
) -> bytes:
    """``read_bounded`` for an async streamed response."""
    if not truncate and _declared_too_large(response, limit):
        raise too_large(limit)
    buf = bytearray()
    async for chunk in response.aiter_bytes():
        buf += chunk
        if len(buf) > limit:
            if truncate:
                return bytes(buf[:limit])
            raise too_large(limit)
    return bytes(buf)


def with_body(response: httpx.Response, body: bytes) -> httpx.Response:
    """A fully read copy of the streamed ``response`` whose body is ``body`` (already decoded)."""
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _WIRE_HEADERS]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=body,
        request=response.request,
        extensions=response.extensions,
    )
