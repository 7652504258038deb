"""The one glob syntax of Safeguard, for every place a name is matched against a pattern.

A policy's repository matches, ``mayPublish``, ``immutableTags``, admission namespaces and
``oidc.ref`` (docs/policy.md, "Globs and rule order"), and the CI token matching of
``safeguard.identity.match`` (refs, job workflow refs), all use these rules, so a pattern means
the same wherever it is written:

* a glob is matched against the **whole** name (anchored at both ends), segment by segment, where
  segments are separated by ``/``;
* ``*`` matches any run of characters **within** one segment (never a ``/``); a segment that is
  only ``*`` matches one non-empty segment (``refs/heads/*`` does not match ``refs/heads/``);
* ``**`` must be a whole segment and matches **zero or more** whole segments: ``team-a/**``
  matches ``team-a``, ``team-a/app`` and ``team-a/x/app``; ``refs/**/main`` matches
  ``refs/main`` and ``refs/heads/main``; ``**`` alone matches everything;
* every other character is literal; ``?``, ``[``, ``]``, ``{``, ``}`` and ``\\`` are rejected
  rather than silently taken literally, and so are empty segments and white space.

Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Final

from safeguard.core.errors import InvalidInput

_FORBIDDEN: Final = frozenset("?[]{}\\")
MAX_GLOB: Final = 512


class GlobInvalid(InvalidInput):
    """A pattern that is not a glob. (The code predates this module: globs are policy syntax.)"""

    code = "POLICY_GLOB_INVALID"


def check_glob(pattern: str) -> str:
    """Return ``pattern`` if it is a valid glob, else raise ``GlobInvalid`` saying why."""
    if not isinstance(pattern, str) or not pattern:
        raise GlobInvalid("empty glob", hint="write a pattern such as team-a/** or v*")
    if len(pattern) > MAX_GLOB:
        raise GlobInvalid(f"glob is longer than {MAX_GLOB} characters")
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
    return re.compile(f"^{out}$", re.DOTALL)


def glob_matches(pattern: str, name: str) -> bool:
    """Whether ``name`` matches the glob ``pattern``; an invalid glob raises ``GlobInvalid``."""
    return compile_glob(pattern).fullmatch(name) is not None


def any_glob_matches(patterns: Iterable[str], name: str) -> bool:
    return any(glob_matches(p, name) for p in patterns)


def exact_or_glob(pattern: str, value: str) -> bool:
    """Equality when ``pattern`` has no ``*`` (any characters taken literally), else a glob match.

    For values that are not always glob-shaped (CI claims such as GitLab's
    ``ci_config_ref_uri``, which holds ``//``): only patterns that use a wildcard must be globs.
    """
    if "*" not in pattern:
        return pattern == value
    return glob_matches(pattern, value)
