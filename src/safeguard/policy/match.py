"""Globs and rule matching: which policy rule applies to a repository, who may publish where.

The glob functions live in ``safeguard.core.glob`` (one implementation, also used by the CI token
matching of ``safeguard.identity.match``) and are re-exported here. Glob semantics (the same
everywhere in a policy: repository matches, ``mayPublish``, ``immutableTags``, admission
namespaces, ``oidc.ref``):

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

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

from safeguard.core.glob import (
    GlobInvalid,
    any_glob_matches,
    check_glob,
    compile_glob,
    glob_matches,
)
from safeguard.core.reference import Reference

if TYPE_CHECKING:
    from safeguard.policy.schema import Identity

__all__ = [
    "GlobInvalid",
    "Rule",
    "any_glob_matches",
    "check_glob",
    "compile_glob",
    "glob_matches",
    "identity_may_publish",
    "repository_name",
    "rule_for",
]


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
