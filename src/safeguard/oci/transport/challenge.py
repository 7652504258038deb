"""Parsing ``WWW-Authenticate`` challenges (RFC 9110 section 11.6.1, RFC 7235 grammar).

Registries answer 401 with ``Basic realm="..."`` or with the Docker token flow's ``Bearer
realm="...",service="...",scope="..."`` (distribution's "Token Authentication Specification").
One header may carry several challenges, and commas separate both challenges and parameters, so
the parser looks ahead: ``token =`` starts a parameter, a bare token starts the next challenge.
Parameter names are case-insensitive and kept lower-cased; quoted strings keep their escapes'
meaning (``\\"`` is a quote).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN68: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_WS: Final = re.compile(r"[ \t]*")


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower-cased: "basic", "bearer", ...
    params: dict[str, str] = field(default_factory=dict)
    token68: str | None = None

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        return self.params.get("service")

    @property
    def scopes(self) -> tuple[str, ...]:
        """The ``scope`` parameter, split on spaces as the token spec allows several."""
        return tuple(s for s in self.params.get("scope", "").split(" ") if s)


def parse_challenges(headers: list[str] | str) -> list[Challenge]:
    """Every challenge in one or more ``WWW-Authenticate`` header values; junk is skipped."""
    values = [headers] if isinstance(headers, str) else headers
    out: list[Challenge] = []
    for value in values:
        out.extend(_parse_one(value))
    return out


def _parse_one(text: str) -> list[Challenge]:
    out: list[Challenge] = []
    pos = 0
    n = len(text)
    while pos < n:
        pos = _skip_separators(text, pos)
        m = _TOKEN.match(text, pos)
        if not m:
            # Not a challenge: skip to the next comma and try again.
            nxt = text.find(",", pos)
            if nxt < 0:
                break
            pos = nxt + 1
            continue
        scheme = m.group(0).lower()
        pos = m.end()
        params: dict[str, str] = {}
        token68: str | None = None
        after_ws = _WS.match(text, pos)
        assert after_ws is not None
        if after_ws.end() > pos:
            pos = after_ws.end()
            # token68 (e.g. "Negotiate abc==") when it is not the start of a parameter.
            t68 = _TOKEN68.match(text, pos)
            if t68 and not _starts_param(text, pos):
                end = _WS.match(text, t68.end())
                assert end is not None
                if end.end() >= n or text[end.end()] == ",":
                    token68 = t68.group(0)
                    pos = end.end()
            if token68 is None:
                pos = _parse_params(text, pos, params)
        out.append(Challenge(scheme, params, token68))
    return out


def _skip_separators(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t,":
        pos += 1
    return pos


def _starts_param(text: str, pos: int) -> bool:
    m = _TOKEN.match(text, pos)
    if not m:
        return False
    ws = _WS.match(text, m.end())
    assert ws is not None
    rest = ws.end()
    return rest < len(text) and text[rest] == "=" and text[rest + 1 : rest + 2] != "="


def _parse_params(text: str, pos: int, params: dict[str, str]) -> int:
    n = len(text)
    while pos < n:
        start = _skip_separators(text, pos)
        if not _starts_param(text, start):
            return start  # next challenge (or junk) begins here
        name_m = _TOKEN.match(text, start)
        assert name_m is not None
        name = name_m.group(0).lower()
        ws = _WS.match(text, name_m.end())
        assert ws is not None
        pos = ws.end() + 1  # past "="
        ws = _WS.match(text, pos)
        assert ws is not None
        pos = ws.end()
        if pos < n and text[pos] == '"':
            value, pos = _quoted(text, pos + 1)
        else:
            vm = _TOKEN.match(text, pos)
            value = vm.group(0) if vm else ""
            pos = vm.end() if vm else pos
        params.setdefault(name, value)
        ws = _WS.match(text, pos)
        assert ws is not None
        pos = ws.end()
        if pos < n and text[pos] != ",":
            # Garbage after a value: skip to the next comma.
            nxt = text.find(",", pos)
            pos = n if nxt < 0 else nxt
    return pos


def _quoted(text: str, pos: int) -> tuple[str, int]:
    out: list[str] = []
    n = len(text)
    while pos < n:
        c = text[pos]
        if c == "\\" and pos + 1 < n:
            out.append(text[pos + 1])
            pos += 2
            continue
        if c == '"':
            return "".join(out), pos + 1
        out.append(c)
        pos += 1
    return "".join(out), pos  # unterminated: take what there is
