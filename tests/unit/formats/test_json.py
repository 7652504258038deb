from __future__ import annotations

import pytest

from safeguard.formats._json import Struct, b64decode, go_marshal, loads
from safeguard.formats.errors import FormatError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (8.314, "8.314"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1.5e-7, "1.5e-7"),
        (1e-6, "0.000001"),
        (123456789012345678.0, "123456789012345680"),
        (1.0, "1"),
        (-2.5, "-2.5"),
        (1458239713, "1458239713"),
    ],
)
def test_go_number_formatting(value: float, expected: str) -> None:
    assert go_marshal(value).decode() == expected


def test_go_marshal_escapes_like_encoding_json() -> None:
    assert go_marshal('<a>&\u2028\x01\n"\\') == b'"\\u003ca\\u003e\\u0026\\u2028\\u0001\\n\\"\\\\"'
    assert go_marshal("é") == '"é"'.encode()


def test_go_marshal_sorts_maps_keeps_struct_order() -> None:
    assert go_marshal({"b": 1, "a": [None, True]}) == b'{"a":[null,true],"b":1}'
    assert go_marshal(Struct(b=1, a=2)) == b'{"b":1,"a":2}'


def test_go_marshal_rejects_nan() -> None:
    with pytest.raises(ValueError):
        go_marshal(float("nan"))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b'{"a":1,"a":2}',
        b"NaN",
        b'{"a":Infinity}',
        b"\xff\xfe",
        b"[" * 100 + b"]" * 100,
        b"[" * 100000,
    ],
)
def test_loads_rejects_hostile_json(data: bytes) -> None:
    with pytest.raises(FormatError):
        loads(data, "thing")


def test_b64decode_is_strict() -> None:
    assert b64decode("aGk=", "x", FormatError) == b"hi"
    for bad in ("aGk", "a*k=", 5, None):
        with pytest.raises(FormatError):
            b64decode(bad, "x", FormatError)
    assert b64decode("-_8=", "x", FormatError, urlsafe=True) == b"\xfb\xff"
    with pytest.raises(FormatError):
        b64decode("-_8=", "x", FormatError)
