"""Attestation types and statement checks, with cosign's names for predicate types.

``--type`` takes cosign's short names (cosign ``cmd/cosign/cli/options/predicate.go``
``PredicateTypeMap``) or a predicate-type URI. ``custom`` wraps the predicate file as cosign's
``generateCustomPredicate`` does (``{"Data": <file text>, "Timestamp": <RFC 3339>}``); every other
type takes the file as the JSON predicate object itself.

``check_statement`` is the attestation half of verification: the signed in-toto Statement must
name the artifact's digest among its subjects and, when a type is asked for, carry that
predicate type (in-toto attestation ``spec/v1/statement.md``); with a ``PredicateRequirement``
(``safeguard.verify.predicates``) its predicate must also state the builder, build type and
source asked for (``PREDICATE_REQUIREMENT_UNMET`` otherwise).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Final
from urllib.parse import urlsplit

from safeguard.core.digest import Digest
from safeguard.core.errors import InvalidInput
from safeguard.formats.intoto import Statement
from safeguard.verify.errors import CheckFailed
from safeguard.verify.predicates import UNMET, PredicateRequirement

CUSTOM: Final = "https://cosign.sigstore.dev/attestation/v1"
PREDICATE_TYPES: Final = {
    "custom": CUSTOM,
    "slsaprovenance": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance02": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance1": "https://slsa.dev/provenance/v1",
    "spdx": "https://spdx.dev/Document",
    "spdxjson": "https://spdx.dev/Document",
    "cyclonedx": "https://cyclonedx.org/bom",
    "link": "https://in-toto.io/Link/v1",
    "vuln": "https://cosign.sigstore.dev/attestation/vuln/v1",
    "openvex": "https://openvex.dev/ns",
}


def resolve_predicate_type(value: str) -> str:
    """A cosign short name or a URI, as the predicate-type URI; else ``InvalidInput``."""
    if value in PREDICATE_TYPES:
        return PREDICATE_TYPES[value]
    parts = urlsplit(value)
    if not parts.scheme or not (parts.netloc or parts.path) or any(c.isspace() for c in value):
        raise InvalidInput(
            f"invalid predicate type {value!r}",
            hint=f"use one of {', '.join(sorted(PREDICATE_TYPES))} or a URI",
        )
    return value


def build_predicate(
    type_name: str, data: bytes, *, now: dt.datetime | None = None
) -> dict[str, Any]:
    """The predicate object for ``--type type_name --predicate FILE`` (``data`` is the file)."""
    if type_name == "custom":
        when = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"Data": data.decode("utf-8", errors="replace"), "Timestamp": when}
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"the predicate file is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidInput("the predicate file must hold a JSON object")
    return doc


def check_statement(
    statement: Statement,
    digest: Digest,
    predicate_type: str | None,
    requirement: PredicateRequirement | None = None,
) -> None:
    """Raise ``CheckFailed`` (``SUBJECT_MISMATCH``, ``PREDICATE_TYPE_MISMATCH``,
    ``PREDICATE_REQUIREMENT_UNMET``) unless the statement is about ``digest``, of
    ``predicate_type`` (any when ``None``) and meets ``requirement`` (when given)."""
    if not statement.is_about(digest):
        names = ", ".join(
            f"{a}:{v}" for s in statement.subjects for a, v in sorted(s.digest.items())
        )
        raise CheckFailed(
            "SUBJECT_MISMATCH",
            f"the signed statement is about {names}, not {digest}",
        )
    if predicate_type is not None and statement.predicate_type != predicate_type:
        raise CheckFailed(
            "PREDICATE_TYPE_MISMATCH",
            f"the signed statement has predicate type {statement.predicate_type!r}, "
            f"not {predicate_type!r}",
        )
    if requirement is not None:
        reasons = requirement.check(statement)
        if reasons:
            raise CheckFailed(
                UNMET, "the attestation does not meet the requirement: " + "; ".join(reasons)
            )
