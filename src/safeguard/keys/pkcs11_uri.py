"""PKCS#11 URIs (RFC 7512), e.g. ``pkcs11:token=ci;object=signer;id=%01?pin-source=file:/pin``.

Grammar (RFC 7512 section 2.3): ``pkcs11:`` then path attributes separated by ``;`` and,
after ``?``, query attributes separated by ``&``. Values are percent-decoded (section 2.3:
``pk11-pchar``/``pk11-qchar`` plus ``pct-encoded``); ``id`` is raw bytes, every other value UTF-8.
An attribute may appear once (section 2.3); vendor attributes start with ``x-``. Path
attributes name the token and object (``token``, ``manufacturer``, ``serial``, ``model``,
``object``, ``type``, ``id``, ``slot-id``, ...); query attributes say how to reach them
(``module-path``, ``module-name``, ``pin-value``, ``pin-source``). Pure parsing, no I/O:
``pin-source`` is resolved by the signer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote_to_bytes

from safeguard.keys.errors import PKCS11URIInvalid

PATH_ATTRIBUTES: Final = frozenset(
    {
        "token",
        "manufacturer",
        "serial",
        "model",
        "library-manufacturer",
        "library-description",
        "library-version",
        "object",
        "type",
        "id",
        "slot-description",
        "slot-manufacturer",
        "slot-id",
    }
)
QUERY_ATTRIBUTES: Final = frozenset({"pin-source", "pin-value", "module-name", "module-path"})
OBJECT_TYPES: Final = frozenset({"public", "private", "cert", "secret-key", "data"})
_NAME: Final = re.compile(r"^[a-z][a-z0-9-]*$")
_VALUE: Final = re.compile(r"^(?:[A-Za-z0-9\-._~:\[\]@!$'()*+,=/?&|%]|%[0-9A-Fa-f]{2})*$")


@dataclass(frozen=True, slots=True)
class PKCS11URI:
    path: dict[str, bytes] = field(default_factory=dict)
    query: dict[str, bytes] = field(default_factory=dict)

    def _text(self, where: dict[str, bytes], name: str) -> str | None:
        value = where.get(name)
        if value is None:
            return None
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise PKCS11URIInvalid(f"PKCS#11 URI attribute {name!r} is not UTF-8") from None

    @property
    def token(self) -> str | None:
        return self._text(self.path, "token")

    @property
    def serial(self) -> str | None:
        return self._text(self.path, "serial")

    @property
    def object(self) -> str | None:
        return self._text(self.path, "object")

    @property
    def id(self) -> bytes | None:
        return self.path.get("id")

    @property
    def type(self) -> str | None:
        return self._text(self.path, "type")

    @property
    def slot_id(self) -> int | None:
        text = self._text(self.path, "slot-id")
        return int(text) if text is not None else None

    @property
    def module_path(self) -> str | None:
        return self._text(self.query, "module-path")

    @property
    def module_name(self) -> str | None:
        return self._text(self.query, "module-name")

    @property
    def pin_value(self) -> str | None:
        return self._text(self.query, "pin-value")

    @property
    def pin_source(self) -> str | None:
        return self._text(self.query, "pin-source")

    def redacted(self) -> str:
        """The URI for logs and messages: never the PIN."""
        path = ";".join(f"{k}={_quote(v)}" for k, v in self.path.items())
        query = "&".join(
            f"{k}={'***' if k == 'pin-value' else _quote(v)}" for k, v in self.query.items()
        )
        return f"pkcs11:{path}" + (f"?{query}" if query else "")


def _quote(value: bytes) -> str:
    safe = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/"
    return "".join(chr(b) if b in safe else f"%{b:02X}" for b in value)


def _attributes(part: str, separator: str, allowed: frozenset[str], where: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    if not part:
        return out
    for item in part.split(separator):
        if not item:
            raise PKCS11URIInvalid(f"empty {where} attribute in PKCS#11 URI")
        name, eq, value = item.partition("=")
        if not eq or not _NAME.match(name):
            raise PKCS11URIInvalid(f"malformed {where} attribute {name!r} in PKCS#11 URI")
        if name not in allowed and not name.startswith("x-"):
            raise PKCS11URIInvalid(
                f"unknown PKCS#11 URI {where} attribute {name!r}",
                hint=f"known {where} attributes: {', '.join(sorted(allowed))}",
            )
        if name in out:
            raise PKCS11URIInvalid(f"PKCS#11 URI attribute {name!r} appears twice")
        if not _VALUE.match(value) or re.search(r"%(?![0-9A-Fa-f]{2})", value):
            raise PKCS11URIInvalid(f"PKCS#11 URI attribute {name!r} has an invalid value")
        out[name] = unquote_to_bytes(value)
    return out


def parse_pkcs11_uri(text: str) -> PKCS11URI:
    """Parse ``text`` per RFC 7512; raises ``PKCS11URIInvalid`` with the reason."""
    if not isinstance(text, str) or not text[:7].lower() == "pkcs11:":
        raise PKCS11URIInvalid(
            "not a PKCS#11 URI", hint="write pkcs11:token=LABEL;object=KEY?module-path=/path/lib.so"
        )
    body = text[7:]
    path_part, _, query_part = body.partition("?")
    path = _attributes(path_part, ";", PATH_ATTRIBUTES, "path")
    query = _attributes(query_part, "&", QUERY_ATTRIBUTES, "query")
    if "pin-value" in query and "pin-source" in query:
        raise PKCS11URIInvalid("a PKCS#11 URI cannot have both pin-value and pin-source")
    uri = PKCS11URI(path, query)
    if uri.type is not None and uri.type not in OBJECT_TYPES:
        raise PKCS11URIInvalid(f"unknown PKCS#11 object type {uri.type!r}")
    slot = path.get("slot-id")
    if slot is not None and not slot.isdigit():
        raise PKCS11URIInvalid("PKCS#11 URI slot-id is not a decimal number")
    return uri
