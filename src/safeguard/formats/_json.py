"""JSON helpers shared by the format modules: Go-compatible output and strict, safe input.

Much of the ecosystem's bytes are produced by Go's ``encoding/json`` (cosign's payloads and
manifests, go-containerregistry's configs, Rekor's bodies). ``go_marshal`` reproduces
``json.Marshal`` byte for byte for the values we emit: compact output, map keys sorted, struct
fields in declaration order (``Struct``), HTML-safe escaping of ``<``, ``>``, ``&``, U+2028 and
U+2029, ``\\u00XX`` for other control characters, and Go's float formatting.

``loads`` is the one entry point for parsing untrusted JSON: UTF-8 only, no duplicate keys (a
classic parser-differential trick), no NaN/Infinity, bounded nesting, and every failure raised as
the caller's typed error.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

from safeguard.formats.errors import FormatError


class Struct(dict[str, Any]):
    """A JSON object whose keys keep insertion order, as Go emits struct fields."""


_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}


def _go_string(text: str) -> str:
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif code < 0x20 or ch in "<>&" or code in (0x2028, 0x2029):
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\ufffd")  # Go replaces invalid UTF-8 with U+FFFD
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _shortest_digits(value: float) -> tuple[str, int]:
    """The shortest round-tripping decimal digits of ``|value|``, as ``D.IGITS * 10**point``."""
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    point = len(whole) - 1 + (int(exponent) if exponent else 0)
    leading_zeros = len(whole + frac) - len((whole + frac).lstrip("0"))
    point -= leading_zeros
    digits = digits.rstrip("0") or "0"
    return digits, point


def _go_float(value: float) -> str:
    """Go's float64 encoding: strconv 'f' (or 'e' outside [1e-6, 1e21)), shortest digits."""
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"JSON cannot encode {value}")
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    digits, point = _shortest_digits(value)
    magnitude = abs(value)
    if magnitude < 1e-6 or magnitude >= 1e21:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        exp_sign = "-" if point < 0 else "+"
        exp_digits = str(abs(point))
        if exp_sign == "+" and len(exp_digits) < 2:
            exp_digits = "0" + exp_digits  # Go trims the zero only for negative exponents
        return f"{sign}{mantissa}e{exp_sign}{exp_digits}"
    if point >= 0:
        whole = digits[: point + 1].ljust(point + 1, "0")
        frac = digits[point + 1 :]
    else:
        whole = "0"
        frac = "0" * (-point - 1) + digits
    return f"{sign}{whole}.{frac}" if frac else f"{sign}{whole}"


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_go_string(value))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_go_float(value))
    elif isinstance(value, dict):
        items = list(value.items()) if isinstance(value, Struct) else sorted(value.items())
        out.append("{")
        for index, (key, item) in enumerate(items):
            if not isinstance(key, str):
                raise TypeError("JSON object keys must be strings")
            if index:
                out.append(",")
            out.append(_go_string(key))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def go_marshal(value: Any) -> bytes:
    """Serialise ``value`` exactly as Go's ``json.Marshal`` would (see the module docstring)."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8")


def compact(value: Any) -> bytes:
    """Compact JSON in insertion order, non-ASCII kept as UTF-8 (pydantic/protobuf-JSON style)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


MAX_DEPTH = 64


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for item in value.values():
            _depth(item, level + 1)
    elif isinstance(value, list):
        for item in value:
            _depth(item, level + 1)
    return level


def loads(data: bytes | str, what: str, error: type[FormatError] = FormatError) -> Any:
    """Parse untrusted JSON strictly, raising ``error`` (never a bare exception) on any fault."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
        _depth(value)
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not UTF-8", detail=str(exc)) from None
    except RecursionError:
        raise error(f"{what} is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise error(f"{what} is not valid JSON: {exc}") from None
    return value


def expect_object(value: Any, what: str, error: type[FormatError]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise error(f"{what} is not a JSON object")
    return value


def expect_str(
    obj: dict[str, Any], key: str, what: str, error: type[FormatError], *, optional: bool = False
) -> str:
    value = obj.get(key)
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        raise error(f"{what} has no string {key!r}")
    return value


def b64decode(text: Any, what: str, error: type[FormatError], *, urlsafe: bool = False) -> bytes:
    """Strict RFC 4648 base64 (padding required, no stray characters), as Go's StdEncoding.

    With ``urlsafe`` the URL alphabet is accepted as a fallback, as DSSE allows.
    """
    if not isinstance(text, str):
        raise error(f"{what} is not a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        if urlsafe:
            try:
                raw = text.encode("ascii")
                if b"+" in raw or b"/" in raw:
                    raise ValueError("mixed alphabets")
                return base64.b64decode(raw.replace(b"-", b"+").replace(b"_", b"/"), validate=True)
            except (binascii.Error, ValueError, UnicodeEncodeError):
                pass
        raise error(f"{what} is not valid base64") from None


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
