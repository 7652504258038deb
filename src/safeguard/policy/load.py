"""Loading a policy: YAML text in, a validated ``Policy`` (and the files it refers to) out.

Three stages, and every problem of every stage is reported together, each with its field path,
line and column, and a hint (``PolicyInvalid``):

1. ``safeguard.policy.yamlsafe``: bounded, YAML 1.2 core-schema parsing with positions;
2. the pydantic schema (``safeguard.policy.schema``): shapes, types, formats, combinations;
3. ``safeguard.policy.checks``: names, references between sections, referenced files.

Relative paths resolve against the policy file's directory (``base_dir``), or come from the
files stored with a version (``StoredFiles``) when a stored version is re-validated.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from safeguard.core.errors import InvalidInput
from safeguard.policy.checks import check_policy_data
from safeguard.policy.errors import Loc, PolicyInvalid, PolicyIssue
from safeguard.policy.files import DirectoryFiles, FileSource
from safeguard.policy.schema import API_VERSION, KIND, Policy
from safeguard.policy.yamlsafe import MAX_BYTES, SourceMap, parse_policy_yaml, too_large


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_digest(text: str, files: Mapping[str, bytes]) -> str:
    """sha256 over the YAML text and every referenced file: equal digests, equal policies."""
    h = hashlib.sha256()
    h.update(b"safeguard-policy-v1\x00")
    encoded = text.encode("utf-8")
    h.update(len(encoded).to_bytes(8, "big") + encoded)
    for path in sorted(files):
        name = path.encode("utf-8")
        h.update(len(name).to_bytes(8, "big") + name)
        h.update(len(files[path]).to_bytes(8, "big") + files[path])
    return h.hexdigest()


@dataclass(frozen=True)
class LoadedPolicy:
    """A validated policy with its text and the public files it refers to."""

    policy: Policy
    text: str
    files: Mapping[str, bytes] = field(default_factory=dict)
    source: str = "policy"

    @property
    def normalized(self) -> dict[str, Any]:
        return self.policy.normalized()

    @property
    def normalized_json(self) -> str:
        return canonical_json(self.normalized)

    @property
    def sha256(self) -> str:
        """sha256 of the YAML text (UTF-8), as ``sha256sum`` of the file shows it."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def content_sha256(self) -> str:
        return content_digest(self.text, self.files)


# -- pydantic errors to issues ---------------------------------------------------------------


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types behind ``X | None``, ``Annotated[X, ...]``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        out: list[Any] = []
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                out.extend(_unwrap(arg))
        return out
    return [annotation]


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model class that validates the object at ``loc`` (for "did you mean")."""
    current: list[Any] = [Policy]
    for part in loc:
        following: list[Any] = []
        for candidate in current:
            origin = typing.get_origin(candidate)
            if isinstance(part, int) and origin is list:
                following.extend(_unwrap(typing.get_args(candidate)[0]))
            elif isinstance(part, str) and origin is dict:
                following.extend(_unwrap(typing.get_args(candidate)[1]))
            elif isinstance(candidate, type) and issubclass(candidate, BaseModel):
                for name, info in candidate.model_fields.items():
                    if part in (name, info.alias):
                        following.extend(_unwrap(info.annotation))
        current = following
    for candidate in current:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _known_fields(loc: Loc) -> list[str]:
    model = _model_at(loc)
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__  # pragma: no cover


_EXPECTED: dict[str, tuple[str, str]] = {
    "string_type": ("a text value", 'quote it: "..."'),
    "int_type": ("a whole number", "write digits without quotes, e.g. 60"),
    "int_from_float": ("a whole number", "write digits without a fraction, e.g. 60"),
    "bool_type": ("true or false", "write true or false, unquoted (YAML 1.2: not yes/no/on/off)"),
    "list_type": ("a list", "write [a, b] or one '- item' per line"),
    "dict_type": ("a mapping", "write key: value pairs"),
    "model_type": ("a mapping", "write key: value pairs"),
    "model_attributes_type": ("a mapping", "write key: value pairs"),
}


def _issue_for(error: ErrorDetails, source_map: SourceMap) -> PolicyIssue:
    loc: Loc = tuple(p for p in error["loc"] if p != "[key]")
    at_key = "[key]" in error["loc"]
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    value = error.get("input")
    hint: str | None = None
    if kind == "policy":
        message = str(ctx.get("message"))
        hint = str(ctx.get("hint") or "") or None
        if ctx.get("field"):
            parts = str(ctx["field"]).split("/")
            loc = (*loc, *(int(p) if p.isdigit() else p for p in parts))
            at_key = True
    elif kind == "extra_forbidden":
        name = str(loc[-1])
        known = _known_fields(loc[:-1])
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        message = f"unknown field {name!r}"
        if close:
            hint = f"did you mean {close[0]!r}?"
        elif known:
            hint = f"fields here: {', '.join(known)}"
        at_key = True
    elif kind == "missing":
        message = f"missing required field {loc[-1]!r}"
        hint = f"add {loc[-1]}: ..."
        if loc == ("apiVersion",):
            hint = f"add apiVersion: {API_VERSION}"
        elif loc == ("kind",):
            hint = f"add kind: {KIND}"
        loc_for_position = loc[:-1]
        position = source_map.value(loc_for_position)
        return PolicyIssue(
            loc, message, hint, position.line if position else None,
            position.column if position else None,
        )  # fmt: skip
    elif kind in ("literal_error", "enum"):
        expected = str(ctx.get("expected", "")).replace(" or ", ", ")
        message = f"expected one of {expected}; got {_describe(value)}"
        hint = "use one of the listed values, spelled exactly"
    elif kind in _EXPECTED:
        what, hint = _EXPECTED[kind]
        message = f"expected {what}, got {_describe(value)}"
        if value is None:
            hint = "give a value, or remove the key to use the default"
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = next(iter(ctx.values()), "?")
        relation = {
            "greater_than_equal": "at least",
            "greater_than": "more than",
            "less_than_equal": "at most",
            "less_than": "less than",
        }[kind]
        message = f"must be {relation} {bound}; got {value}"
    elif kind == "too_short":
        message = f"must list at least {ctx.get('min_length', 1)}"
        hint = "add an entry"
    elif kind.startswith("datetime") or kind == "timezone_aware":
        message = f"expected an RFC 3339 date and time with a time zone; got {_describe(value)}"
        hint = "e.g. 2026-06-30T00:00:00Z"
    else:
        message = error["msg"]
    position = source_map.key(loc) if at_key else source_map.value(loc)
    return PolicyIssue(
        loc, message, hint, position.line if position else None,
        position.column if position else None,
    )  # fmt: skip


def issues_from_validation(error: ValidationError, source_map: SourceMap) -> list[PolicyIssue]:
    return [_issue_for(e, source_map) for e in error.errors(include_url=False)]


# -- entry points ----------------------------------------------------------------------------


def load_policy_text(
    content: str | bytes,
    *,
    base_dir: Path | None = None,
    files: FileSource | None = None,
    source: str = "policy",
) -> LoadedPolicy:
    """Validate a policy's text; raises ``PolicyInvalid`` listing every problem.

    Referenced files are read from ``files``, else from ``base_dir`` (default: the current
    directory).
    """
    parsed = parse_policy_yaml(content, source=source)
    issues = list(parsed.issues)
    policy: Policy | None = None
    try:
        policy = Policy.model_validate(parsed.data)
    except ValidationError as exc:
        issues.extend(issues_from_validation(exc, parsed.source_map))
    source_files = files if files is not None else DirectoryFiles(base_dir or Path.cwd())
    checked = check_policy_data(parsed.data, parsed.source_map, source_files)
    issues.extend(checked.issues)
    if issues or policy is None:
        raise PolicyInvalid(issues, source=source)
    return LoadedPolicy(policy, parsed.text, dict(checked.files), source)


def read_policy_file(path: Path) -> bytes:
    """A policy file's bytes; refuses (``PolicyInvalid``) a file over the size limit unread."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)
            if len(data) > MAX_BYTES:
                raise too_large(max(len(data), os.fstat(fh.fileno()).st_size), source=str(path))
    except FileNotFoundError:
        raise InvalidInput(
            f"no policy file at {path}", hint="give the path to safeguard.yaml"
        ) from None
    except IsADirectoryError:
        raise InvalidInput(
            f"{path} is a directory", hint="give the path to safeguard.yaml"
        ) from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from None
    return data


def load_policy(path: Path | str) -> LoadedPolicy:
    """Read and validate a policy file; its relative paths resolve against its directory."""
    path = Path(path)
    content = read_policy_file(path)
    return load_policy_text(content, base_dir=path.resolve().parent, source=str(path))
