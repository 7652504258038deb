"""Content digests as the OCI image spec defines them ("Digests" section of descriptor.md).

The grammar is ``algorithm ":" encoded``. By default only the OCI-registered algorithms
``sha256`` and ``sha512`` are accepted (``OCI_ALGORITHMS``), with the exact lower-case hex lengths
the spec requires, because a digest we cannot recompute is one we cannot check: descriptors,
manifests and registry uploads keep exactly that set.

Signatures and transparency-log entries also need ``sha384`` (96 lower-case hex characters):
ECDSA P-384 keys sign SHA-384 digests (protobuf-specs ``PKIX_ECDSA_P384_SHA_384``), and Rekor's
``hashedrekord`` records ``sha384`` for them. Callers that parse such digests pass
``algorithms=SIGNATURE_ALGORITHMS``; OCI content never does, so a ``sha384`` descriptor is still
refused.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final, Protocol

from safeguard.core.errors import InvalidDigest

_GRAMMAR: Final = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_KNOWN: Final[dict[str, re.Pattern[str]]] = {
    "sha256": re.compile(r"^[a-f0-9]{64}$"),
    "sha384": re.compile(r"^[a-f0-9]{96}$"),
    "sha512": re.compile(r"^[a-f0-9]{128}$"),
}
OCI_ALGORITHMS: Final = frozenset({"sha256", "sha512"})
"""The algorithms the OCI image spec registers: what descriptors and registries accept."""
SIGNATURE_ALGORITHMS: Final = frozenset({"sha256", "sha384", "sha512"})
"""What signed digests and transparency-log entries may use (adds ``sha384`` for P-384)."""
DEFAULT_ALGORITHM: Final = "sha256"


def _names(algorithms: Collection[str]) -> str:
    return " or ".join(sorted(algorithms))


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str, *, algorithms: Collection[str] = OCI_ALGORITHMS) -> Digest:
        """Parse ``algorithm:hex``; only ``algorithms`` (default: the OCI-registered ones)."""
        if not isinstance(text, str) or not _GRAMMAR.match(text):
            raise InvalidDigest(
                f"invalid digest {text!r}",
                hint="a digest looks like sha256:<64 lower-case hex characters>",
            )
        algorithm, _, encoded = text.partition(":")
        pattern = _KNOWN.get(algorithm) if algorithm in algorithms else None
        if pattern is None:
            raise InvalidDigest(
                f"unsupported digest algorithm {algorithm!r}",
                hint=f"use {_names(algorithms)}",
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
    """A hashlib object for any algorithm ``Digest`` knows (``SIGNATURE_ALGORITHMS``).

    It checks no policy: a digest of OCI content was already refused by ``Digest.parse`` (and the
    registry keeps its own upload allow-list) if its algorithm is not an OCI one.
    """
    if algorithm not in _KNOWN:
        raise InvalidDigest(
            f"unsupported digest algorithm {algorithm!r}",
            hint=f"use {_names(SIGNATURE_ALGORITHMS)}",
        )
    return hashlib.new(algorithm)


def is_digest(text: str, *, algorithms: Collection[str] = OCI_ALGORITHMS) -> bool:
    try:
        Digest.parse(text, algorithms=algorithms)
    except InvalidDigest:
        return False
    return True
