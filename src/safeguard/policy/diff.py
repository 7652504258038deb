"""What changed between two policy versions: a unified diff of the text and a structural summary.

The text diff is ``difflib.unified_diff`` (the format of ``diff -u``/``git diff``) of the YAML
as applied, followed by the diff of every referenced file whose content changed. The summary
compares the normalised policies, so that reformatting or comments are not reported as changes
while a changed default-valued field is: identities, trust roots and their keys are matched by
name, ``registries`` and ``verification`` rules by their ``match`` glob (and a rule whose
position changed is reported as moved, since the first matching rule wins), ``admission`` and
``cleanup`` as single objects, files by path and sha256.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    added = "added"
    removed = "removed"
    changed = "changed"
    moved = "moved"


@dataclass(frozen=True, slots=True)
class Change:
    """One structural change: ``changed identities team-a-release: oidc.ref, mayPublish``."""

    action: Action
    section: str
    name: str
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        detail = f": {', '.join(self.fields)}" if self.fields else ""
        return f"{self.action.value} {self.section} {self.name}{detail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "section": self.section,
            "name": self.name,
            "fields": list(self.fields),
        }


@dataclass(frozen=True)
class PolicyDiff:
    old: int | None
    new: int
    text: str
    changes: tuple[Change, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return not self.text and not self.changes

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.old,
            "to": self.new,
            "changes": [c.to_dict() for c in self.changes],
            "diff": self.text,
        }


def unified_text_diff(old: str, new: str, old_label: str, new_label: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), old_label, new_label
    )
    out = []
    for line in lines:
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def files_diff(
    old: Mapping[str, bytes], new: Mapping[str, bytes], old_label: str, new_label: str
) -> str:
    """The diff of every referenced file whose content differs (binary files by name only)."""
    out = []
    for path in sorted(set(old) | set(new)):
        before, after = old.get(path), new.get(path)
        if before == after:
            continue
        try:
            before_text = (before or b"").decode("utf-8")
            after_text = (after or b"").decode("utf-8")
        except UnicodeDecodeError:
            out.append(f"Binary file {path} differs\n")
            continue
        out.append(
            unified_text_diff(
                before_text,
                after_text,
                f"{old_label}:{path}" if before is not None else "/dev/null",
                f"{new_label}:{path}" if after is not None else "/dev/null",
            )
        )
    return "".join(out)


def _changed_fields(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out.extend(_changed_fields(old.get(key), new.get(key), f"{prefix}{key}."))
        return out
    return [] if old == new else [prefix.rstrip(".")]


def _by(items: Any, key: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get(key), str):
            out.setdefault(item[key], item)
    return out


def _named(section: str, old: Any, new: Any, key: str, ordered: bool) -> list[Change]:
    before, after = _by(old, key), _by(new, key)
    changes = [Change(Action.removed, section, name) for name in before if name not in after]
    changes += [Change(Action.added, section, name) for name in after if name not in before]
    for name in before.keys() & after.keys():
        fields = _changed_fields(
            {k: v for k, v in before[name].items() if k != key},
            {k: v for k, v in after[name].items() if k != key},
        )
        if fields:
            changes.append(Change(Action.changed, section, name, tuple(fields)))
    if ordered:
        old_order = [n for n in before if n in after]
        new_order = [n for n in after if n in before]
        changes += [
            Change(Action.moved, section, name)
            for i, name in enumerate(old_order)
            if new_order[i] != name
        ]
    return changes


def structural_changes(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    old_files: Mapping[str, str] | None = None,
    new_files: Mapping[str, str] | None = None,
) -> list[Change]:
    """Compare two normalised policies (and their files, path to sha256)."""
    changes: list[Change] = []
    for header in ("apiVersion", "kind"):
        if old.get(header) != new.get(header):
            changes.append(Change(Action.changed, header, str(new.get(header))))
    old_roots = old.get("trustRoots") if isinstance(old.get("trustRoots"), dict) else {}
    new_roots = new.get("trustRoots") if isinstance(new.get("trustRoots"), dict) else {}
    assert isinstance(old_roots, dict) and isinstance(new_roots, dict)
    for name in old_roots.keys() - new_roots.keys():
        changes.append(Change(Action.removed, "trustRoots", name))
    for name in new_roots.keys() - old_roots.keys():
        changes.append(Change(Action.added, "trustRoots", name))
    for name in sorted(old_roots.keys() & new_roots.keys()):
        before, after = old_roots[name], new_roots[name]
        fields = _changed_fields(
            {k: v for k, v in before.items() if k != "keys"},
            {k: v for k, v in after.items() if k != "keys"},
        )
        if fields:
            changes.append(Change(Action.changed, "trustRoots", name, tuple(fields)))
        changes += _named(
            f"trustRoots.{name}.keys", before.get("keys"), after.get("keys"), "name", False
        )
    changes += _named("identities", old.get("identities"), new.get("identities"), "name", False)
    for section in ("registries", "verification"):
        changes += _named(section, old.get(section), new.get(section), "match", True)
    for section in ("admission", "cleanup"):
        fields = _changed_fields(old.get(section), new.get(section))
        if fields:
            changes.append(Change(Action.changed, section, section, tuple(fields)))
    before_files, after_files = old_files or {}, new_files or {}
    for path in sorted(set(before_files) | set(after_files)):
        if path not in after_files:
            changes.append(Change(Action.removed, "files", path))
        elif path not in before_files:
            changes.append(Change(Action.added, "files", path))
        elif before_files[path] != after_files[path]:
            changes.append(Change(Action.changed, "files", path))
    return changes
