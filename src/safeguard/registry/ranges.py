"""Byte ranges: the ``Range`` request header on blob GET (RFC 9110 section 14.2, one range of
the ``bytes`` unit) and the ``Content-Range`` header of chunked uploads (distribution-spec v1.1,
"Pushing a blob in chunks": ``^[0-9]+-[0-9]+$``, inclusive on both ends).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from safeguard.core.errors import OCIError, OCIErrorCode

_MAX_DIGITS: Final = 19  # fits a signed 64-bit offset, as every HTTP stack we talk to does
_RANGE_SPEC: Final = re.compile(rf"^(\d{{0,{_MAX_DIGITS}}})-(\d{{0,{_MAX_DIGITS}}})$")
_CONTENT_RANGE: Final = re.compile(
    rf"^(?:bytes[ =])?(\d{{1,{_MAX_DIGITS}}})-(\d{{1,{_MAX_DIGITS}}})$"
)


@dataclass(frozen=True, slots=True)
class ByteRange:
    """An inclusive range of byte offsets ``start``..``end``."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


class RangeNotSatisfiable(OCIError):
    """416 for a ``Range`` we cannot serve; carries the blob size for ``Content-Range: */N``."""

    def __init__(self, message: str, size: int) -> None:
        super().__init__(
            OCIErrorCode.RANGE_INVALID,
            message,
            status=416,
            hint="ask for one range, bytes=START-END, within the blob",
        )
        self.size = size


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The range of a blob of ``size`` bytes that ``header`` asks for, or ``None`` for all of it.

    A unit other than ``bytes`` is ignored (RFC 9110 14.2: "MUST ignore a Range header field that
    contains a range unit it does not understand"); a malformed, multiple or unsatisfiable byte
    range is rejected with 416, which the RFC allows for an invalid ranges-specifier.
    """
    if header is None:
        return None
    text = header.strip()
    if not text:
        return None
    unit, sep, spec = text.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    spec = spec.replace(" ", "").replace("\t", "")
    if "," in spec:
        raise RangeNotSatisfiable("multiple ranges are not supported", size)
    match = _RANGE_SPEC.match(spec)
    if not match or (not match.group(1) and not match.group(2)):
        raise RangeNotSatisfiable(f"malformed Range header {header!r}", size)
    first, last = match.group(1), match.group(2)
    if not first:  # suffix range: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(f"range {header!r} selects no bytes", size)
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if end < start:
        raise RangeNotSatisfiable(f"range {header!r} ends before it starts", size)
    if start >= size:
        raise RangeNotSatisfiable(f"range {header!r} starts beyond the blob's {size} bytes", size)
    return ByteRange(start, min(end, size - 1))


def parse_content_range(header: str) -> ByteRange:
    """Parse a chunk's ``Content-Range``; malformed values are a 416 ``BLOB_UPLOAD_INVALID``."""
    match = _CONTENT_RANGE.match(header.strip())
    if not match:
        raise OCIError(
            OCIErrorCode.BLOB_UPLOAD_INVALID,
            f"malformed Content-Range {header!r}",
            status=416,
            hint="send Content-Range: START-END (inclusive), starting at the current offset",
        )
    start, end = int(match.group(1)), int(match.group(2))
    if end < start:
        raise OCIError(
            OCIErrorCode.BLOB_UPLOAD_INVALID,
            f"Content-Range {header!r} ends before it starts",
            status=416,
        )
    return ByteRange(start, end)
