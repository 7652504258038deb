"""Range parsing for blob GETs (RFC 9110 14.2) and chunk uploads (distribution-spec v1.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from safeguard.core.errors import OCIError, OCIErrorCode
from safeguard.registry.ranges import (
    ByteRange,
    RangeNotSatisfiable,
    parse_content_range,
    parse_range,
)


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("", 10, None),
        ("items=0-5", 10, None),  # unknown units are ignored
        ("bytes=0-0", 10, ByteRange(0, 0)),
        ("bytes=0-9", 10, ByteRange(0, 9)),
        ("bytes=2-100", 10, ByteRange(2, 9)),  # clamped to the end
        ("bytes=3-", 10, ByteRange(3, 9)),
        ("bytes=-4", 10, ByteRange(6, 9)),
        ("bytes=-400", 10, ByteRange(0, 9)),
        ("Bytes = 1-2", 10, ByteRange(1, 2)),
    ],
)
def test_good_ranges(header: str | None, size: int, expected: ByteRange | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=5-2", 10),
        ("bytes=10-", 10),
        ("bytes=10-20", 10),
        ("bytes=-0", 10),
        ("bytes=-", 10),
        ("bytes=a-b", 10),
        ("bytes=0-1,2-3", 10),
        ("bytes=0-1-2", 10),
        ("bytes=0-5", 0),
        ("bytes=-1", 0),
        ("bytes=" + "9" * 30 + "-", 10),
    ],
)
def test_bad_ranges_are_416(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as info:
        parse_range(header, size)
    assert info.value.status == 416
    assert info.value.oci_code is OCIErrorCode.RANGE_INVALID
    assert info.value.size == size


@given(size=st.integers(1, 10_000), a=st.integers(0, 20_000), b=st.integers(0, 20_000))
def test_ranges_stay_inside_the_blob(size: int, a: int, b: int) -> None:
    try:
        got = parse_range(f"bytes={a}-{b}", size)
    except RangeNotSatisfiable:
        assert a > b or a >= size
        return
    assert got is not None
    assert 0 <= got.start <= got.end < size
    assert got.start == a and got.end == min(b, size - 1)
    assert got.content_range(size) == f"bytes {got.start}-{got.end}/{size}"


@pytest.mark.parametrize(
    ("header", "expected"),
    [("0-9", ByteRange(0, 9)), ("10-10", ByteRange(10, 10)), ("bytes 5-6", ByteRange(5, 6))],
)
def test_content_range(header: str, expected: ByteRange) -> None:
    assert parse_content_range(header) == expected
    assert expected.length == expected.end - expected.start + 1


@pytest.mark.parametrize("header", ["", "5", "-5", "5-", "a-b", "9-3", "1-2-3", "0x1-0x2"])
def test_bad_content_range(header: str) -> None:
    with pytest.raises(OCIError) as info:
        parse_content_range(header)
    assert info.value.status == 416
    assert info.value.oci_code is OCIErrorCode.BLOB_UPLOAD_INVALID
