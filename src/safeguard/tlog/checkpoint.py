"""C2SP transparency log checkpoints (c2sp.org/tlog-checkpoint), parsed strictly, formatted exactly.

A checkpoint is the text of a signed note (``safeguard.tlog.note``) made of at least three
non-empty lines, each ending in a newline:

1. the origin, a unique non-empty identifier of the log (``example.com/log42``; Rekor v1 uses
   ``rekor.sigstore.dev - <tree ID>``, so spaces are allowed here, unlike in key names);
2. the tree size in ASCII decimal, without leading zeros (``0`` for the empty tree);
3. the root hash, standard base64 of the 32-byte RFC 6962 SHA-256 Merkle tree hash;
4. optional, non-empty, opaque extension lines.

Parsing refuses everything else: a missing final newline, blank lines, ``+``-signs, spaces or
leading zeros in the size, sizes beyond uint64, non-canonical base64, roots that are not 32 bytes.
Signing and verifying go through the note module, so every signature type it knows works here,
including witness cosignatures.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from safeguard.core.errors import InvalidInput, VerificationFailed
from safeguard.tlog.merkle import HASH_SIZE, MAX_TREE_SIZE
from safeguard.tlog.note import (
    MAX_SIGNATURES,
    MalformedNote,
    Note,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    VerifiedNote,
    Verifiers,
    open_note,
    parse_note,
    sign_note,
)

_SIZE: Final = re.compile(r"0|[1-9][0-9]{0,19}")
_CONTROL: Final = re.compile(r"[\x00-\x1f]")


class MalformedCheckpoint(InvalidInput):
    """The note text is not a well-formed checkpoint."""

    code = "TLOG_CHECKPOINT_MALFORMED"


class CheckpointOriginMismatch(VerificationFailed):
    """A correctly signed checkpoint is for another log than the one expected."""

    code = "TLOG_CHECKPOINT_ORIGIN_MISMATCH"


def _check_line(value: str, what: str) -> None:
    if not isinstance(value, str) or value == "":
        raise MalformedCheckpoint(f"checkpoint {what} must be a non-empty line")
    if _CONTROL.search(value):
        raise MalformedCheckpoint(f"checkpoint {what} contains a newline or control character")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's tree head: origin, tree size, root hash and any extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if (
            not isinstance(self.size, int)
            or isinstance(self.size, bool)
            or not 0 <= self.size <= MAX_TREE_SIZE
        ):
            raise MalformedCheckpoint(f"checkpoint tree size must be a uint64, got {self.size!r}")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != HASH_SIZE:
            raise MalformedCheckpoint(f"checkpoint root hash must be {HASH_SIZE} bytes")
        if not isinstance(self.extensions, tuple):
            raise MalformedCheckpoint("checkpoint extension lines must be a tuple of strings")
        for line in self.extensions:
            _check_line(line, "extension line")

    def to_text(self) -> str:
        """The note text, byte-exact: every line newline-terminated."""
        root = base64.b64encode(self.root_hash).decode("ascii")
        return "".join(
            f"{line}\n" for line in (self.origin, str(self.size), root, *self.extensions)
        )

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse a checkpoint's note text (not a signed note: see ``open_checkpoint``)."""
        if not isinstance(text, str) or not text.endswith("\n"):
            raise MalformedCheckpoint("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise MalformedCheckpoint(
                f"checkpoint needs origin, size and root hash lines, got {len(lines)} lines"
            )
        origin, size_text, root_text, *extensions = lines
        _check_line(origin, "origin")
        if not _SIZE.fullmatch(size_text) or int(size_text) > MAX_TREE_SIZE:
            raise MalformedCheckpoint(
                f"checkpoint tree size {size_text!r} is not a decimal uint64 without leading zeros"
            )
        try:
            root = base64.b64decode(root_text, validate=True)
        except ValueError:
            raise MalformedCheckpoint("checkpoint root hash is not base64") from None
        if len(root) != HASH_SIZE or base64.b64encode(root).decode("ascii") != root_text:
            raise MalformedCheckpoint(
                f"checkpoint root hash must be the canonical base64 of {HASH_SIZE} bytes"
            )
        for line in extensions:
            _check_line(line, "extension line")
        return cls(origin, int(size_text), root, tuple(extensions))


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint whose note signatures verified: ``note`` says which keys signed."""

    checkpoint: Checkpoint
    note: VerifiedNote

    @property
    def verified_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.note.verified)


def sign_checkpoint(
    checkpoint: Checkpoint,
    *signers: NoteSigner,
    keep: Iterable[NoteSignature] = (),
) -> bytes:
    """The signed checkpoint note, byte-exact. ``keep`` adds existing lines (cosignatures)."""
    if not signers:
        raise MalformedNote("a checkpoint needs at least one signer")
    return sign_note(Note(checkpoint.to_text(), tuple(keep)), *signers)


def parse_signed_checkpoint(
    data: bytes, *, max_signatures: int = MAX_SIGNATURES
) -> tuple[Checkpoint, Note]:
    """Parse a signed checkpoint without verifying any signature (for display and triage)."""
    note = parse_note(data, max_signatures=max_signatures)
    return Checkpoint.from_text(note.text), note


def open_checkpoint(
    data: bytes,
    verifiers: Verifiers | Iterable[NoteVerifier],
    *,
    origin: str | None = None,
    max_signatures: int = MAX_SIGNATURES,
) -> SignedCheckpoint:
    """Verify a signed checkpoint and parse it.

    At least one known key must have signed (see ``open_note``); ``origin``, when given, must be
    the checkpoint's origin line exactly.
    """
    note = open_note(data, verifiers, max_signatures=max_signatures)
    checkpoint = Checkpoint.from_text(note.text)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointOriginMismatch(
            f"checkpoint is for log {checkpoint.origin!r}, expected {origin!r}"
        )
    return SignedCheckpoint(checkpoint, note)
