"""Content digests as the OCI image spec defines them ("Digests" section of descriptor.md).

The grammar is ``algorithm ":" encoded``. Only the registered algorithms ``sha256`` and
``sha512`` are accepted, with the exact lower-case hex lengths the spec requires, because a digest
we cannot recompute is one we cannot check.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final, Protocol

from safeguard.core.errors import InvalidDigest

_GRAMMAR: Final = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_REGISTERED: Final[dict[str, re.Pattern[str]]] = {
    "sha256": re.compile(r"^[a-f0-9]{64}$"),
    "sha512": re.compile(r"^[a-f0-9]{128}$"),
}
DEFAULT_ALGORITHM: Final = "sha256"


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        if not isinstance(text, str) or not _GRAMMAR.match(text):
            raise InvalidDigest(
                f"invalid digest {text!r}",
                hint="a digest looks like sha256:<64 lower-case hex characters>",
            )
        algorithm, _, encoded = text.partition(":")
        pattern = _REGISTERED.get(algorithm)
        if pattern is None:
            raise InvalidDigest(
                f"unsupported digest algorithm {algorithm!r}",
                hint="use sha256 or sha512",
            )
        if not pattern.match(encoded):
            raise InvalidDigest(
                f"invalid {algorithm} digest {text!r}: wrong length or not lower-case hex",
                hint="a digest looks like sha256:<64 lower-case hex characters>",
            )
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = DEFAULT_ALGORITHM) -> Digest:
        h = new_hasher(algorithm)
        h.update(data)
        return cls(algorithm, h.hexdigest())

    @classmethod
    def from_hasher(cls, algorithm: str, hasher: Hasher) -> Digest:
        return cls(algorithm, hasher.hexdigest())

    def hasher(self) -> Hasher:
        return new_hasher(self.algorithm)

    def matches(self, data: bytes) -> bool:
        h = self.hasher()
        h.update(data)
        return h.hexdigest() == self.hex

    @property
    def tag_form(self) -> str:
        """The ``<alg>-<hex>`` form used by the referrers tag schema and cosign's tags."""
        return f"{self.algorithm}-{self.hex}"

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def new_hasher(algorithm: str) -> Hasher:
    if algorithm not in _REGISTERED:
        raise InvalidDigest(
            f"unsupported digest algorithm {algorithm!r}", hint="use sha256 or sha512"
        )
    return hashlib.new(algorithm)


def is_digest(text: str) -> bool:
    try:
        Digest.parse(text)
    except InvalidDigest:
        return False
    return True
