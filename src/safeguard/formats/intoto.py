"""in-toto Statements (in-toto/attestation ``spec/v1/statement.md``; v0.1 accepted for reading).

A Statement binds a predicate to the artifacts it is about::

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": ..., "digest": {"sha256": <hex>}}, ...],
     "predicateType": <URI>, "predicate": {...}}

We build v1 Statements and read v1 and v0.1 ones (v0.1 has the same shape). Subject digests are
a ``DigestSet`` (in-toto/attestation ``spec/v1/digest_set.md``): algorithm name to digest. The
algorithms that spec names are checked (hex of the algorithm's length; ``gitCommit``, ``gitTree``,
``gitBlob`` and ``gitTag`` are SHA-1 or SHA-256 git objects, 40 or 64 hex digits), and a malformed
value of one of them makes the statement invalid. Any other algorithm is kept as given but, as
the spec requires of consumers, ignored: it is never validated, never refuses a statement and
never matches. ``Statement.subject_matching`` answers "is this statement about that image?" by
comparing a digest (``sha256``, ``sha384`` or ``sha512``) against every subject: two digest sets
match when any accepted algorithm matches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from safeguard.core.digest import SIGNATURE_ALGORITHMS, Digest
from safeguard.formats._json import compact, loads
from safeguard.formats.errors import StatementInvalid

STATEMENT_V1: Final = "https://in-toto.io/Statement/v1"
STATEMENT_V01: Final = "https://in-toto.io/Statement/v0.1"
STATEMENT_TYPES: Final = frozenset({STATEMENT_V1, STATEMENT_V01})
PAYLOAD_TYPE: Final = "application/vnd.in-toto+json"
_HEX: Final = re.compile(r"^[0-9a-fA-F]+$")
# The hex-encoded algorithms digest_set.md names, with their lengths in hex digits (a tuple where
# the spec allows several: git objects are SHA-1 or SHA-256; shake/blake2/gost output lengths vary).
_HEX_LENGTHS: Final[dict[str, tuple[int, ...] | None]] = {
    "sha256": (64,),
    "sha224": (56,),
    "sha384": (96,),
    "sha512": (128,),
    "sha512_224": (56,),
    "sha512_256": (64,),
    "sha3_224": (56,),
    "sha3_256": (64,),
    "sha3_384": (96,),
    "sha3_512": (128,),
    "shake128": None,
    "shake256": None,
    "blake2b": None,
    "blake2s": None,
    "ripemd160": (40,),
    "sm3": (64,),
    "gost": None,
    "sha1": (40,),
    "md5": (32,),
    "dirHash1": (64,),
    "gitCommit": (40, 64),
    "gitTree": (40, 64),
    "gitBlob": (40, 64),
    "gitTag": (40, 64),
}
MATCHED_ALGORITHMS: Final = SIGNATURE_ALGORITHMS
"""The algorithms a subject is matched on (what Safeguard computes and trusts)."""


@dataclass(frozen=True, slots=True)
class Subject:
    name: str
    digest: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "digest": dict(self.digest)}

    def matches(self, digest: Digest | str) -> bool:
        """Whether this subject's digest set names ``digest`` (accepted algorithms only)."""
        d = (
            Digest.parse(digest, algorithms=SIGNATURE_ALGORITHMS)
            if isinstance(digest, str)
            else digest
        )
        if d.algorithm not in MATCHED_ALGORITHMS:
            return False
        value = self.digest.get(d.algorithm)
        return value is not None and value.lower() == d.hex

    @classmethod
    def for_digest(cls, name: str, digest: Digest | str) -> Subject:
        d = (
            Digest.parse(digest, algorithms=SIGNATURE_ALGORITHMS)
            if isinstance(digest, str)
            else digest
        )
        return cls(name, {d.algorithm: d.hex})


@dataclass(frozen=True, slots=True)
class Statement:
    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: dict[str, Any] | None = None
    type: str = STATEMENT_V1
    raw: bytes | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "_type": self.type,
            "subject": [s.to_dict() for s in self.subjects],
            "predicateType": self.predicate_type,
        }
        if self.predicate is not None:
            doc["predicate"] = self.predicate
        return doc

    def to_json(self) -> bytes:
        """Compact JSON in the spec's field order; UTF-8, nothing escaped that need not be."""
        return compact(self.to_dict())

    @classmethod
    def from_json(cls, data: bytes | str) -> Statement:
        statement = _from_dict(loads(data, "in-toto statement", StatementInvalid))
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        return Statement(
            statement.subjects, statement.predicate_type, statement.predicate, statement.type, raw
        )

    @classmethod
    def from_dict(cls, doc: Any) -> Statement:
        return _from_dict(doc)

    def subject_matching(self, digest: Digest | str) -> Subject | None:
        """The first subject whose digest set contains ``digest``, or ``None``."""
        return next((s for s in self.subjects if s.matches(digest)), None)

    def is_about(self, digest: Digest | str) -> bool:
        return self.subject_matching(digest) is not None


def build_statement(
    subjects: Iterable[Subject],
    predicate_type: str,
    predicate: Mapping[str, Any] | None,
) -> Statement:
    """A v1 Statement; raises ``StatementInvalid`` if it would not parse back."""
    statement = Statement(
        tuple(subjects), predicate_type, dict(predicate) if predicate is not None else None
    )
    return _from_dict(statement.to_dict())


def _subject(raw: Any, index: int) -> Subject:
    if not isinstance(raw, Mapping):
        raise StatementInvalid(f"statement subject[{index}] is not an object")
    name = raw.get("name", "")
    if not isinstance(name, str):
        raise StatementInvalid(f"statement subject[{index}].name is not a string")
    digests = raw.get("digest")
    if not isinstance(digests, Mapping) or not digests:
        raise StatementInvalid(f"statement subject[{index}] has no digest set")
    clean: dict[str, str] = {}
    for algorithm, value in digests.items():
        if algorithm not in _HEX_LENGTHS:
            # Unrecognised: consumers MUST ignore it (digest_set.md, "Guidelines"). Kept when it
            # is a string, for display; never checked, never matched.
            if isinstance(value, str):
                clean[algorithm] = value
            continue
        if not isinstance(value, str) or not _HEX.match(value):
            raise StatementInvalid(
                f"statement subject[{index}].digest.{algorithm} is not a hex string"
            )
        lengths = _HEX_LENGTHS[algorithm]
        if lengths is not None and len(value) not in lengths:
            raise StatementInvalid(
                f"statement subject[{index}].digest.{algorithm} has {len(value)} hex digits, "
                f"not {' or '.join(str(n) for n in lengths)}"
            )
        clean[algorithm] = value
    return Subject(name, clean)


def _from_dict(doc: Any) -> Statement:
    if not isinstance(doc, Mapping):
        raise StatementInvalid("in-toto statement is not a JSON object")
    kind = doc.get("_type")
    if kind not in STATEMENT_TYPES:
        raise StatementInvalid(
            f"unknown in-toto statement _type {kind!r}",
            hint=f"expected {STATEMENT_V1}",
        )
    subjects = doc.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise StatementInvalid("in-toto statement has no subjects")
    predicate_type = doc.get("predicateType")
    if not isinstance(predicate_type, str) or not predicate_type:
        raise StatementInvalid("in-toto statement has no predicateType")
    predicate = doc.get("predicate")
    if predicate is not None and not isinstance(predicate, dict):
        raise StatementInvalid("in-toto statement predicate is not an object")
    return Statement(
        tuple(_subject(s, i) for i, s in enumerate(subjects)), predicate_type, predicate, kind
    )
