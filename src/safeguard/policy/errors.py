"""Typed errors of the policy room: every problem in a policy file, with where and what to do.

Validation never stops at the first problem: ``PolicyInvalid`` carries the whole list of
``PolicyIssue``s, each naming the field path (``identities[0].oidc.ref``), the line and column in
the YAML text, what is wrong and a hint. The CLI prints them all and exits 2 (usage or input
error, ``safeguard.core.errors``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from safeguard.core.errors import InvalidInput, NotFound

Loc = tuple[str | int, ...]


def render_path(loc: Loc) -> str:
    """``("identities", 0, "oidc", "ref")`` -> ``identities[0].oidc.ref`` (root: ``(root)``)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part and all(c.isalnum() or c in "-_" for c in part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out or "(root)"


@dataclass(frozen=True, slots=True)
class PolicyIssue:
    """One problem: where it is (field path and position in the file), what, and what to do."""

    loc: Loc
    message: str
    hint: str | None = None
    line: int | None = None
    column: int | None = None

    @property
    def path(self) -> str:
        return render_path(self.loc)

    @property
    def where(self) -> str:
        if self.line is None:
            return self.path
        if self.column is None:
            return f"{self.path} (line {self.line})"
        return f"{self.path} (line {self.line}, column {self.column})"

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"path": self.path, "message": self.message}
        if self.line is not None:
            body["line"] = self.line
        if self.column is not None:
            body["column"] = self.column
        if self.hint:
            body["hint"] = self.hint
        return body


class PolicyInvalid(InvalidInput):
    """A policy that cannot be accepted; ``issues`` lists every problem found, in file order."""

    code = "POLICY_INVALID"

    def __init__(self, issues: Sequence[PolicyIssue], *, source: str = "policy") -> None:
        ordered = sorted(issues, key=lambda i: (i.line or 0, i.column or 0, i.path))
        count = len(ordered)
        first = f": {ordered[0]}" if count == 1 else ""
        noun = "problem" if count == 1 else "problems"
        super().__init__(
            f"{source} is not a valid policy ({count} {noun}){first}",
            hint="fix every problem listed; `safeguard policy validate FILE` checks a file",
            detail=[i.to_dict() for i in ordered],
        )
        self.issues: tuple[PolicyIssue, ...] = tuple(ordered)
        self.source = source


class PolicyVersionNotFound(NotFound):
    code = "POLICY_VERSION_NOT_FOUND"


class PolicyNotApplied(NotFound):
    """The store holds no policy version yet."""

    code = "POLICY_NOT_APPLIED"
