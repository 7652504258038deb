"""Globs and rule matching: which policy rule applies to a repository, who may publish where.

Glob semantics (the same everywhere in a policy: repository matches, ``mayPublish``,
``immutableTags``, admission namespaces, ``oidc.ref``):

* a glob is matched against the **whole** name (anchored at both ends), segment by segment, where
  segments are separated by ``/``;
* ``*`` matches any run of characters **within** one segment (never a ``/``); a segment that is
  only ``*`` matches one non-empty segment;
* ``**`` must be a whole segment and matches **zero or more** whole segments: ``team-a/**``
  matches ``team-a``, ``team-a/app`` and ``team-a/x/app``; ``**/app`` matches ``app`` and
  ``x/y/app``; ``**`` alone matches everything;
* every other character is literal; ``?``, ``[``, ``]``, ``{``, ``}`` and ``\\`` are rejected
  rather than silently taken literally, and so are empty segments and white space.

Rule order: ``rule_for`` returns the **first** rule, in file order, whose ``match`` glob matches,
as Kyverno's ``applyRules: One`` and Harbor's ordered tag-retention/immutability rules do. Put
narrow rules before broad ones; a rule behind an identical or ``**`` rule never applies, and
validation says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Final, Protocol, TypeVar

from safeguard.core.errors import InvalidInput
from safeguard.core.reference import Reference

if TYPE_CHECKING:
    from safeguard.policy.schema import Identity

_FORBIDDEN: Final = frozenset("?[]{}\\")
_MAX_GLOB: Final = 512


class GlobInvalid(InvalidInput):
    code = "POLICY_GLOB_INVALID"


def check_glob(pattern: str) -> str:
    """Return ``pattern`` if it is a valid glob, else raise ``GlobInvalid`` saying why."""
    if not pattern:
        raise GlobInvalid("empty glob", hint="write a pattern such as team-a/** or v*")
    if len(pattern) > _MAX_GLOB:
        raise GlobInvalid(f"glob is longer than {_MAX_GLOB} characters")
    bad = sorted({c for c in pattern if c in _FORBIDDEN or c.isspace() or not c.isprintable()})
    if bad:
        shown = " ".join(repr(c) for c in bad)
        raise GlobInvalid(
            f"glob {pattern!r} contains {shown}",
            hint="globs know only * (within a segment) and ** (across segments)",
        )
    segments = pattern.split("/")
    if any(not s for s in segments):
        raise GlobInvalid(
            f"glob {pattern!r} has an empty segment",
            hint="remove leading, trailing or doubled /",
        )
    previous = ""
    for segment in segments:
        if "**" in segment and segment != "**":
            raise GlobInvalid(
                f"glob {pattern!r}: ** must be a whole segment",
                hint="write team-a/** (any depth) or team-a/app-* (within a segment)",
            )
        if segment == "**" and previous == "**":
            raise GlobInvalid(f"glob {pattern!r} repeats **", hint="one ** matches any depth")
        previous = segment
    return pattern


def _segment(segment: str) -> str:
    if segment == "*":
        return "[^/]+"
    return "[^/]*".join(re.escape(part) for part in segment.split("*"))


@lru_cache(maxsize=4096)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """The anchored regular expression for a (valid) glob; raises ``GlobInvalid`` otherwise."""
    check_glob(pattern)
    segments = pattern.split("/")
    out = ""
    after_leading = True  # no "/" before the first emitted segment
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == "**":
            if last:
                out += ".*" if i == 0 else "(?:/[^/]+)*"
            else:
                if not after_leading:
                    out += "/"
                out += "(?:[^/]+/)*"
                after_leading = True
            continue
        if not after_leading:
            out += "/"
        out += _segment(segment)
        after_leading = False
    return re.compile(f"^{out}$")


def glob_matches(pattern: str, name: str) -> bool:
    return compile_glob(pattern).match(name) is not None


def any_glob_matches(patterns: Iterable[str], name: str) -> bool:
    return any(glob_matches(p, name) for p in patterns)


class Rule(Protocol):
    @property
    def match(self) -> str: ...


R = TypeVar("R", bound=Rule)


def rule_for(rules: Sequence[R], repository: str) -> R | None:
    """The first rule (file order) whose ``match`` glob matches ``repository``, else ``None``.

    ``repository`` is what the rule list is about: for ``registries`` the repository path inside
    the registry the gateway fronts (``team-a/app``), for ``verification`` the full name with the
    registry host (``registry.internal/team-a/app``). Tags and digests are not part of it.
    """
    for rule in rules:
        if glob_matches(rule.match, repository):
            return rule
    return None


def repository_name(reference: str | Reference) -> str:
    """``registry/repository`` of an image reference (tag and digest dropped), Docker-normalised."""
    if isinstance(reference, Reference):
        return reference.name
    return Reference.parse(reference).name


def identity_may_publish(identity: Identity, reference: str | Reference) -> bool:
    """Whether ``identity``'s ``mayPublish`` globs cover the repository of ``reference``.

    ``reference`` is an image reference (``registry.internal/team-a/app:v1``, or a ``Reference``);
    the globs are matched against ``registry.internal/team-a/app``. An identity without
    ``mayPublish`` may publish nowhere.
    """
    return any_glob_matches(identity.may_publish, repository_name(reference))
