"""Reading a policy's YAML safely, and remembering where each value came from.

A policy file is written by people and applied by automation, so the reader is strict and
bounded:

* **YAML 1.2 core schema** (YAML 1.2.2, section 10.3): plain ``true``/``false`` are booleans,
  ``null``/``~``/empty are null, decimal, ``0o`` and ``0x`` integers and floats are numbers, and
  everything else is a string. YAML 1.1's surprises are gone: ``off``, ``no`` and ``on`` stay
  strings (``unsignedPush: off`` means ``"off"``), ``012`` is twelve, and a date stays text for
  the schema to parse. Only the standard tags (``!!str``, ``!!int``, ``!!float``, ``!!bool``,
  ``!!null``, ``!!seq``, ``!!map``) are accepted; merge keys (``<<``) are not.
* **Bounded**: at most ``MAX_BYTES`` of UTF-8 in YAML's printable character set (section 5.1),
  ``MAX_DEPTH`` levels of nesting (checked on the
  event stream before any recursive composition), ``MAX_NODES`` nodes after aliases are expanded
  (an alias "billion laughs" bomb stops there), no recursive aliases, one document.
* **Honest about mappings**: duplicate keys are errors (YAML 1.2.2, section 3.2.1.1: keys are
  unique), and keys are strings.

Parsing uses libyaml when PyYAML has it (about ten times faster) and PyYAML's pure-Python parser
otherwise; both keep node marks, and ``SourceMap`` maps each field path to the line and column of
its value and of its key, so that a schema error can say where it is.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Final

import yaml
from yaml._yaml import CParser
from yaml.composer import Composer
from yaml.error import MarkedYAMLError, YAMLError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader, ReaderError
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from safeguard.policy.errors import Loc, PolicyInvalid, PolicyIssue

MAX_BYTES: Final = 1024 * 1024
MAX_DEPTH: Final = 64
MAX_NODES: Final = 100_000

_TAG: Final = "tag:yaml.org,2002:"
STR: Final = _TAG + "str"
INT: Final = _TAG + "int"
FLOAT: Final = _TAG + "float"
BOOL: Final = _TAG + "bool"
NULL: Final = _TAG + "null"
SEQ: Final = _TAG + "seq"
MAP: Final = _TAG + "map"

_NULL_RE: Final = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL_RE: Final = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT_RE: Final = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_RE: Final = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


@dataclass(frozen=True, slots=True)
class Position:
    """1-based line and column in the policy text."""

    line: int
    column: int


@dataclass
class SourceMap:
    """Where each value (and each mapping key) of the document starts."""

    values: dict[Loc, Position] = field(default_factory=dict)
    keys: dict[Loc, Position] = field(default_factory=dict)

    def value(self, loc: Loc) -> Position | None:
        """The position of the value at ``loc``, else of its nearest known ancestor."""
        for end in range(len(loc), -1, -1):
            found = self.values.get(loc[:end])
            if found is not None:
                return found
        return None

    def key(self, loc: Loc) -> Position | None:
        """The position of the key naming ``loc`` (for unknown fields), else of the value."""
        return self.keys.get(loc) or self.value(loc)


@dataclass(frozen=True)
class ParsedYAML:
    data: dict[str, Any]
    source_map: SourceMap
    text: str
    issues: tuple[PolicyIssue, ...] = ()
    """Problems that did not stop reading (duplicate keys); the caller reports them with its own."""


def _position(mark: Any) -> Position | None:
    return None if mark is None else Position(mark.line + 1, mark.column + 1)


def _issue(message: str, hint: str | None, position: Position | None, loc: Loc = ()) -> PolicyIssue:
    line = position.line if position else None
    column = position.column if position else None
    return PolicyIssue(loc, message, hint, line, column)


class _CoreSchemaResolver(BaseResolver):
    """YAML 1.2 core-schema resolution of plain scalars; no constructor: ``_Converter`` builds
    the values."""

    def resolve(self, kind: type[Node], value: Any, implicit: Any) -> str:
        if kind is ScalarNode:
            if implicit[0]:
                return _resolve_plain(str(value))
            return STR
        return SEQ if kind is SequenceNode else MAP


class _PyLoader(Reader, Scanner, Parser, Composer, _CoreSchemaResolver):
    """PyYAML's pure-Python reader, scanner, parser and composer (they keep marks)."""

    def __init__(self, text: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        _CoreSchemaResolver.__init__(self)


class _CLoader(CParser, _CoreSchemaResolver):
    """The same on libyaml (about ten times faster; nodes keep marks too)."""

    def __init__(self, text: str) -> None:
        CParser.__init__(self, text)
        _CoreSchemaResolver.__init__(self)


_Loader: Final = _CLoader if yaml.__with_libyaml__ else _PyLoader


def _resolve_plain(value: str) -> str:
    if _NULL_RE.match(value):
        return NULL
    if _BOOL_RE.match(value):
        return BOOL
    if _INT_RE.match(value):
        return INT
    if _FLOAT_RE.match(value):
        return FLOAT
    return STR


class _Abort(Exception):
    def __init__(self, issue: PolicyIssue) -> None:
        self.issue = issue


class _Converter:
    """Nodes to plain data (dict, list, str, int, float, bool, None), recording positions."""

    def __init__(self) -> None:
        self.count = 0
        self.on_path: set[int] = set()
        self.source_map = SourceMap()
        self.issues: list[PolicyIssue] = []

    def convert(self, node: Node, loc: Loc) -> Any:
        self.count += 1
        position = _position(node.start_mark)
        if self.count > MAX_NODES:
            raise _Abort(
                _issue(
                    f"the document expands to more than {MAX_NODES} values",
                    "this looks like an alias bomb; write the values out, without * aliases",
                    position,
                    loc,
                )
            )
        if id(node) in self.on_path or len(loc) > MAX_DEPTH:
            raise _Abort(
                _issue(
                    "an alias refers to a node that contains it (a recursive structure)",
                    "remove the recursive * alias",
                    position,
                    loc,
                )
            )
        self.source_map.values.setdefault(loc, position or Position(1, 1))
        if isinstance(node, ScalarNode):
            return self._scalar(node, loc)
        self.on_path.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                if node.tag != SEQ:
                    raise _Abort(_unsupported_tag(node, loc))
                return [self.convert(child, (*loc, i)) for i, child in enumerate(node.value)]
            if isinstance(node, MappingNode):
                if node.tag != MAP:
                    raise _Abort(_unsupported_tag(node, loc))
                return self._mapping(node, loc)
        finally:
            self.on_path.discard(id(node))
        raise _Abort(_issue("unexpected YAML node", None, position, loc))  # pragma: no cover

    def _mapping(self, node: MappingNode, loc: Loc) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first_seen: dict[str, Position] = {}
        for key_node, value_node in node.value:
            key_position = _position(key_node.start_mark) or Position(1, 1)
            if not isinstance(key_node, ScalarNode) or key_node.tag != STR:
                shown = key_node.value if isinstance(key_node, ScalarNode) else "a collection"
                self.issues.append(
                    _issue(
                        f"mapping keys must be strings, not {shown!r}",
                        'quote the key, e.g. "1": ...',
                        key_position,
                        loc,
                    )
                )
                continue
            key = str(key_node.value)
            if key == "<<" and not key_node.style:  # plain: None (Python) or "" (libyaml)
                self.issues.append(
                    _issue(
                        "YAML merge keys (<<) are not supported",
                        "write the fields out in full",
                        key_position,
                        loc,
                    )
                )
                continue
            if key in first_seen:
                self.issues.append(
                    _issue(
                        f"duplicate key {key!r} (first at line {first_seen[key].line})",
                        "keep one of them: a later duplicate would silently replace the first",
                        key_position,
                        (*loc, key),
                    )
                )
                continue
            first_seen[key] = key_position
            self.source_map.keys[(*loc, key)] = key_position
            out[key] = self.convert(value_node, (*loc, key))
        return out

    def _scalar(self, node: ScalarNode, loc: Loc) -> Any:
        value = str(node.value)
        tag = node.tag
        try:
            if tag == STR:
                return value
            if tag == NULL and _NULL_RE.match(value):
                return None
            if tag == BOOL and _BOOL_RE.match(value):
                return value.lower() == "true"
            if tag == INT and _INT_RE.match(value):
                if value.startswith("0o"):
                    return int(value[2:], 8)
                if value.startswith("0x"):
                    return int(value[2:], 16)
                return int(value, 10)
            if tag == FLOAT and _FLOAT_RE.match(value):
                lowered = value.lower()
                if lowered.endswith(".nan"):
                    return math.nan
                if lowered.endswith(".inf"):
                    return -math.inf if lowered.startswith("-") else math.inf
                return float(value)
        except ValueError:  # pragma: no cover - the patterns above only admit valid numbers
            pass
        if tag in (NULL, BOOL, INT, FLOAT):
            raise _Abort(
                _issue(
                    f"{value!r} is not a valid {tag.removeprefix(_TAG)}",
                    "remove the tag or fix the value",
                    _position(node.start_mark),
                    loc,
                )
            )
        raise _Abort(_unsupported_tag(node, loc))


def _unsupported_tag(node: Node, loc: Loc) -> PolicyIssue:
    return _issue(
        f"unsupported YAML tag {node.tag!r}",
        "policies use plain YAML values; remove the tag",
        _position(node.start_mark),
        loc,
    )


def _line_of(text: str, index: int) -> Position:
    before = text[:index]
    line = before.count("\n") + 1
    return Position(line, index - (before.rfind("\n") + 1) + 1)


def _at(text: str, position: Position | None) -> str:
    """The character at ``position`` (empty past the end)."""
    if position is None:
        return ""
    lines = text.split("\n")
    if position.line > len(lines):
        return ""
    line = lines[position.line - 1]
    return line[position.column - 1] if position.column <= len(line) else ""


def _syntax_issue(exc: YAMLError, text: str) -> PolicyIssue:
    if isinstance(exc, ReaderError):  # pragma: no cover - _check_characters comes first
        return _issue(f"the file cannot be read as YAML: {exc}", "save it as UTF-8 text", None)
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        hint = "fix the YAML syntax at this position"
        position = _position(mark)
        if "'\\t'" in problem or "\t" in problem or _at(text, position) == "\t":
            problem = "a tab character where YAML expects spaces"
            hint = "YAML indents with spaces only: replace the tab with spaces"
        elif "maximum nesting depth" in problem:
            problem = f"the document nests deeper than {MAX_DEPTH} levels"
            hint = "a policy is a few levels deep; flatten the structure"
            return _issue(problem, hint, position)
        elif "expected a single document" in problem or "but found another document" in str(exc):
            problem = "the file holds more than one YAML document"
            hint = "keep one policy document per file (remove the extra ---)"
        return _issue(f"YAML syntax error: {problem}{context}", hint, position)
    return _issue(f"YAML syntax error: {exc}", "fix the YAML syntax", None)  # pragma: no cover


# YAML 1.2.2 section 5.1: the printable subset of Unicode (plus tab, line feed, carriage return).
_NOT_PRINTABLE: Final = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


def _check_characters(text: str) -> None:
    found = _NOT_PRINTABLE.search(text)
    if found is not None:
        raise _Abort(
            _issue(
                f"the file contains a character YAML does not allow (U+{ord(found.group()):04X})",
                "remove control characters; policies are plain UTF-8 text",
                _line_of(text, found.start()),
            )
        )


def _check_depth(text: str) -> None:
    """Walk the event stream (iterative, unlike composition) and stop at ``MAX_DEPTH``."""
    loader = _Loader(text)
    depth = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _Abort(
                        _issue(
                            f"the document nests deeper than {MAX_DEPTH} levels",
                            "a policy is a few levels deep; flatten the structure",
                            _position(event.start_mark),
                        )
                    )
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                depth -= 1
    finally:
        loader.dispose()


def too_large(size: int, *, source: str = "policy") -> PolicyInvalid:
    return PolicyInvalid(
        [
            PolicyIssue(
                (),
                f"the file is {size / (1024 * 1024):.1f} MiB; a policy may be at most "
                f"{MAX_BYTES // (1024 * 1024)} MiB",
                "a policy is a short human-written file: is this the right file?",
            )
        ],
        source=source,
    )


def decode_policy_text(content: bytes | str, *, source: str = "policy") -> str:
    """The policy's text: size-checked, UTF-8 (a leading BOM is dropped)."""
    size = (
        len(content.encode("utf-8", "surrogatepass")) if isinstance(content, str) else len(content)
    )
    if size > MAX_BYTES:
        raise too_large(size, source=source)
    if isinstance(content, str):
        return content.removeprefix("\ufeff")
    try:
        return content.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        prefix = content[: exc.start].decode("utf-8", "replace")
        where = _line_of(prefix, len(prefix))
        raise PolicyInvalid(
            [
                PolicyIssue(
                    (),
                    f"the file is not UTF-8 (byte {content[exc.start]:#04x})",
                    "save the policy as UTF-8",
                    where.line,
                    where.column,
                )
            ],
            source=source,
        ) from None


def parse_policy_yaml(content: bytes | str, *, source: str = "policy") -> ParsedYAML:
    """Parse one policy document into plain data plus its ``SourceMap``.

    Raises ``PolicyInvalid`` when the text cannot be read as one bounded YAML mapping; problems
    that still leave a usable document (duplicate keys) come back in ``ParsedYAML.issues``.
    """
    text = decode_policy_text(content, source=source)
    try:
        _check_characters(text)
        _check_depth(text)
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
        if root is None:
            raise _Abort(
                _issue(
                    "the policy is empty",
                    "start with `apiVersion: safeguard.dev/v1` and `kind: Policy`",
                    Position(1, 1),
                )
            )
        converter = _Converter()
        data = converter.convert(root, ())
    except _Abort as abort:
        raise PolicyInvalid([abort.issue], source=source) from None
    except YAMLError as exc:
        raise PolicyInvalid([_syntax_issue(exc, text)], source=source) from None
    except RecursionError:
        raise PolicyInvalid(
            [PolicyIssue((), "the document is nested too deeply", "flatten the structure")],
            source=source,
        ) from None
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a single value ({type(data).__name__})"
        raise PolicyInvalid(
            [
                _issue(
                    f"the top level of a policy must be a mapping, not {kind}",
                    "start with `apiVersion: safeguard.dev/v1` and `kind: Policy`, each on its "
                    "own line without a leading -",
                    _position(root.start_mark),
                )
            ],
            source=source,
        )
    return ParsedYAML(data, converter.source_map, text, tuple(converter.issues))
