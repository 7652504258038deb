"""C2SP signed notes: text signed by one or more keys, byte-exact (c2sp.org/signed-note).

A signed note is the text (ending in a newline), a blank line, and one or more signature lines
``— <key name> <base64(4-byte key ID || signature)>`` (the dash is U+2014). Parsing and
verification follow the spec's "Format" and "Signatures" sections and the reference
implementation, golang.org/x/mod/sumdb/note ``Open``/``Sign``: the whole note is UTF-8 without
control characters other than newline; the text ends at the *last* blank line; names are
non-empty with no spaces or ``+``; a note carries at most ``MAX_SIGNATURES`` lines; signatures
from unknown keys are kept but ignored; a known key's signature must verify (else the whole note is
refused); at least one known key must have signed.

Signature types (spec section "Signature types"):

* ``0x01`` Ed25519 over the note text; key ID ``SHA-256(name || 0x0A || 0x01 || pubkey)[:4]``;
  vkey ``<name>+<hex key ID>+<base64(0x01 || pubkey)>`` and private key
  ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>`` as golang.org/x/mod/sumdb/note.
* ``0x02`` ECDSA (ASN.1 DER signature over SHA-256 of the note text), as transparency-dev/formats
  and Sigstore's Rekor sign checkpoints. The key ID is the "Rekor key-ID rule": the first four
  bytes of SHA-256 over the DER-encoded PKIX (SubjectPublicKeyInfo) public key, with no name and
  no type byte (rekor ``pkg/util/signed_note.go``, rekor-tiles ``pkg/note``). Its vkey carries
  ``0x02 || DER``.
* ``0x04`` timestamped Ed25519 witness cosignatures (c2sp.org/tlog-cosignature, ``cosignature/v1``):
  the signature is ``uint64 timestamp || Ed25519(message)`` with message
  ``"cosignature/v1\\ntime <timestamp>\\n" || note text``.

The ``NoteSigner`` protocol lets the checkpoint key live in a file or behind PKCS#11:
``EcdsaSigner`` wraps any object with ``sign(data) -> DER ECDSA signature over SHA-256(data)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from safeguard.core.errors import InvalidInput, SafeguardError, VerificationFailed

SIG_ED25519: Final = 0x01
SIG_ECDSA: Final = 0x02
SIG_COSIGNATURE_V1: Final = 0x04

MAX_SIGNATURES: Final = 100
"""Signature lines accepted per note (the spec asks for at least 16; sumdb/note allows 100)."""

DASH: Final = "\u2014"
_SIG_PREFIX: Final = DASH + " "
_CONTROL: Final = re.compile(r"[\x00-\x09\x0b-\x1f]")
_HEX8: Final = re.compile(r"[0-9a-f]{8}")
_COSIGNATURE_HEADER: Final = "cosignature/v1\n"
_MAX_TIMESTAMP: Final = (1 << 63) - 1


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class MalformedNote(InvalidInput):
    """The bytes are not a well-formed signed note."""

    code = "TLOG_NOTE_MALFORMED"


class InvalidNoteKey(InvalidInput):
    """A verifier key (vkey), private key or key name is malformed or inconsistent."""

    code = "TLOG_NOTE_KEY_INVALID"


class AmbiguousVerifier(InvalidInput):
    """Two configured verifiers share a key name and key ID, so a signature cannot be assigned."""

    code = "TLOG_NOTE_VERIFIER_AMBIGUOUS"


class NoteSigningFailed(SafeguardError):
    """A signer produced no usable signature (for example an HSM answering for another key)."""

    code = "TLOG_NOTE_SIGNING_FAILED"


class InvalidNoteSignature(VerificationFailed):
    """A signature by a known key does not verify, so the whole note is refused."""

    code = "TLOG_NOTE_SIGNATURE_INVALID"

    def __init__(self, name: str, key_id: int) -> None:
        super().__init__(f"invalid signature for key {name}+{key_id:08x}")
        self.name = name
        self.key_id = key_id


class UnverifiedNote(VerificationFailed):
    """No known key signed the note. ``note`` holds what was parsed, unverified."""

    code = "TLOG_NOTE_UNVERIFIED"

    def __init__(self, note: Note) -> None:
        keys = ", ".join(f"{s.name}+{s.key_id:08x}" for s in note.signatures) or "none"
        super().__init__(f"note has no verifiable signatures (signed by: {keys})")
        self.note = note


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def is_valid_key_name(name: str) -> bool:
    """Key names are non-empty, with no Unicode spaces, no ``+`` and no control characters."""
    return (
        isinstance(name, str)
        and name != ""
        and "+" not in name
        and not any(c.isspace() for c in name)
        and not _CONTROL.search(name)
    )


def _b64decode_strict(text: str) -> bytes:
    """Standard base64 (RFC 4648 section 4), padded and canonical, or ``ValueError``."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(str(exc)) from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("non-canonical base64")
    return raw


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: key name, 32-bit key ID and the signature bytes (after the key ID)."""

    name: str
    key_id: int
    signature: bytes

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise MalformedNote(f"invalid key name {self.name!r}")
        if not 0 <= self.key_id <= 0xFFFFFFFF:
            raise MalformedNote(f"key ID {self.key_id} is not a uint32")
        if not self.signature:
            raise MalformedNote(f"empty signature for key {self.name}")

    @property
    def base64(self) -> str:
        return base64.b64encode(self.key_id.to_bytes(4, "big") + self.signature).decode("ascii")

    @property
    def line(self) -> str:
        """The signature line, newline included."""
        return f"{_SIG_PREFIX}{self.name} {self.base64}\n"


def _check_text(text: str) -> None:
    if not isinstance(text, str) or not text.endswith("\n"):
        raise MalformedNote("note text must end with a newline")
    if _CONTROL.search(text):
        raise MalformedNote("note text contains a control character other than newline")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedNote("note text is not valid Unicode") from None


@dataclass(frozen=True, slots=True)
class Note:
    """A parsed note: its text (final newline included) and every signature line, in order."""

    text: str
    signatures: tuple[NoteSignature, ...] = ()

    def __post_init__(self) -> None:
        _check_text(self.text)

    def encode(self) -> bytes:
        """The signed note, byte-exact: text, blank line, signature lines."""
        if not self.signatures:
            raise MalformedNote("a signed note needs at least one signature")
        return (self.text + "\n" + "".join(s.line for s in self.signatures)).encode("utf-8")


@dataclass(frozen=True, slots=True)
class VerifiedNote:
    """A note that known keys signed: ``verified`` by known keys, ``unverified`` by others."""

    text: str
    verified: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...]


def parse_note(data: bytes, *, max_signatures: int = MAX_SIGNATURES) -> Note:
    """Parse a signed note's syntax without verifying anything."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedNote("a signed note is bytes")
    try:
        msg = bytes(data).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedNote("note is not valid UTF-8") from None
    if _CONTROL.search(msg):
        raise MalformedNote("note contains a control character other than newline")
    split = msg.rfind("\n\n")
    if split < 0:
        raise MalformedNote("note has no blank line before its signatures")
    text, block = msg[: split + 1], msg[split + 2 :]
    if not block or not block.endswith("\n"):
        raise MalformedNote("note signatures must be non-empty lines ending with a newline")
    signatures: list[NoteSignature] = []
    for number, line in enumerate(block[:-1].split("\n"), start=1):
        if number > max_signatures:
            raise MalformedNote(f"note has more than {max_signatures} signatures")
        if not line.startswith(_SIG_PREFIX):
            raise MalformedNote(f"signature line {number} does not start with an em dash and space")
        name, _, encoded = line[len(_SIG_PREFIX) :].partition(" ")
        if not is_valid_key_name(name):
            raise MalformedNote(f"signature line {number} has an invalid key name {name!r}")
        try:
            raw = _b64decode_strict(encoded)
        except ValueError:
            raise MalformedNote(f"signature line {number} is not canonical base64") from None
        if len(raw) < 5:
            raise MalformedNote(f"signature line {number} is shorter than a key ID and signature")
        signatures.append(NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:]))
    return Note(text, tuple(signatures))


# --------------------------------------------------------------------------------------------
# Signer and verifier protocols, verifier sets
# --------------------------------------------------------------------------------------------


@runtime_checkable
class NoteVerifier(Protocol):
    """Checks signatures by one key: ``name`` and ``key_id`` are what signature lines carry."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify(self, message: bytes, signature: bytes, /) -> bool: ...


@runtime_checkable
class NoteSigner(Protocol):
    """Signs note text. ``sign`` gets the exact text bytes and returns the signature bytes."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def sign(self, message: bytes, /) -> bytes: ...


class Verifiers:
    """The set of known keys, looked up by (key name, key ID)."""

    __slots__ = ("_by_key",)

    def __init__(self, verifiers: Iterable[NoteVerifier] = ()) -> None:
        self._by_key: dict[tuple[str, int], list[NoteVerifier]] = {}
        for v in verifiers:
            self._by_key.setdefault((v.name, v.key_id), []).append(v)

    def __iter__(self) -> Iterator[NoteVerifier]:
        for group in self._by_key.values():
            yield from group

    def __len__(self) -> int:
        return sum(len(g) for g in self._by_key.values())

    def find(self, name: str, key_id: int) -> NoteVerifier | None:
        group = self._by_key.get((name, key_id))
        if not group:
            return None
        if len(group) > 1:
            raise AmbiguousVerifier(f"ambiguous key {name}+{key_id:08x}")
        return group[0]


def open_note(
    data: bytes,
    verifiers: Verifiers | Iterable[NoteVerifier],
    *,
    max_signatures: int = MAX_SIGNATURES,
) -> VerifiedNote:
    """Parse and verify a signed note against the known keys.

    Raises ``MalformedNote`` for bad syntax, ``InvalidNoteSignature`` when a known key's
    signature fails, ``UnverifiedNote`` when no known key signed, ``AmbiguousVerifier`` when two
    known keys share a name and key ID that a signature uses.
    """
    known = verifiers if isinstance(verifiers, Verifiers) else Verifiers(verifiers)
    note = parse_note(data, max_signatures=max_signatures)
    message = note.text.encode("utf-8")
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    seen: set[tuple[str, int]] = set()
    for sig in note.signatures:
        verifier = known.find(sig.name, sig.key_id)
        if verifier is None:
            if sig not in unverified:
                unverified.append(sig)
            continue
        if (sig.name, sig.key_id) in seen:
            continue
        seen.add((sig.name, sig.key_id))
        if not verifier.verify(message, sig.signature):
            raise InvalidNoteSignature(sig.name, sig.key_id)
        verified.append(sig)
    if not verified:
        raise UnverifiedNote(note)
    return VerifiedNote(note.text, tuple(verified), tuple(unverified))


def sign_note(note: Note | str, *signers: NoteSigner) -> bytes:
    """Sign ``note`` (text, or a parsed note whose other signatures are kept) with ``signers``.

    As sumdb/note ``Sign``: the new signature lines come first, then the note's existing lines
    except those of a key (name and key ID) that signed again.
    """
    if isinstance(note, str):
        note = Note(note)
    message = note.text.encode("utf-8")
    new: list[NoteSignature] = []
    for signer in signers:
        name, key_id = signer.name, signer.key_id
        if not is_valid_key_name(name) or not 0 <= key_id <= 0xFFFFFFFF:
            raise InvalidNoteKey(f"invalid signer {name!r}+{key_id!r}")
        signature = signer.sign(message)
        if not isinstance(signature, bytes) or not signature:
            raise NoteSigningFailed(f"signer {name} returned no signature")
        new.append(NoteSignature(name, key_id, signature))
    replaced = {(s.name, s.key_id) for s in new}
    kept = [s for s in note.signatures if (s.name, s.key_id) not in replaced]
    return Note(note.text, (*new, *kept)).encode()


# --------------------------------------------------------------------------------------------
# Key IDs and key encodings
# --------------------------------------------------------------------------------------------


def key_id(name: str, sig_type: int, public_key: bytes) -> int:
    """``SHA-256(name || 0x0A || type || public key)[:4]`` as a big-endian uint32."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + public_key)
    return int.from_bytes(digest.digest()[:4], "big")


def pkix_der(public_key: ec.EllipticCurvePublicKey | Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def rekor_log_id(public_key: ec.EllipticCurvePublicKey | Ed25519PublicKey) -> bytes:
    """Sigstore's log ID for a Rekor v1 key: SHA-256 of the DER-encoded PKIX public key."""
    return hashlib.sha256(pkix_der(public_key)).digest()


def rekor_key_id(public_key: ec.EllipticCurvePublicKey | Ed25519PublicKey) -> int:
    """The Rekor key-ID rule: the first four bytes of ``rekor_log_id``."""
    return int.from_bytes(rekor_log_id(public_key)[:4], "big")


def _format_vkey(name: str, kid: int, sig_type: int, material: bytes) -> str:
    return f"{name}+{kid:08x}+{base64.b64encode(bytes([sig_type]) + material).decode('ascii')}"


def _split_key(text: str, parts: int, what: str) -> list[str]:
    if not isinstance(text, str):
        raise InvalidNoteKey(f"{what} must be text")
    fields = text.split("+", parts - 1)
    if len(fields) != parts:
        raise InvalidNoteKey(f"{what} must have {parts} '+'-separated parts")
    return fields


def _decode_key(name: str, hex_id: str, encoded: str, what: str) -> tuple[int, int, bytes]:
    if not is_valid_key_name(name):
        raise InvalidNoteKey(f"{what} has an invalid key name {name!r}")
    if not _HEX8.fullmatch(hex_id):
        raise InvalidNoteKey(f"{what} key ID must be 8 lower-case hex digits")
    try:
        raw = _b64decode_strict(encoded)
    except ValueError:
        raise InvalidNoteKey(f"{what} key material is not canonical base64") from None
    if len(raw) < 2:
        raise InvalidNoteKey(f"{what} key material is too short")
    return int(hex_id, 16), raw[0], raw[1:]


def parse_vkey(vkey: str) -> NoteVerifier:
    """A verifier from a verifier key ``<name>+<hex key ID>+<base64(type || key)>``.

    Supports Ed25519 (0x01), ECDSA (0x02, DER PKIX key) and Ed25519 cosignatures (0x04). The key
    ID must be the one the spec derives from the name and key.
    """
    name, hex_id, encoded = _split_key(vkey, 3, "verifier key")
    kid, sig_type, material = _decode_key(name, hex_id, encoded, "verifier key")
    verifier: NoteVerifier
    if sig_type == SIG_ED25519:
        verifier = Ed25519Verifier(name, _ed25519_public(material))
    elif sig_type == SIG_COSIGNATURE_V1:
        verifier = CosignatureV1Verifier(name, _ed25519_public(material))
    elif sig_type == SIG_ECDSA:
        try:
            public = serialization.load_der_public_key(material)
        except (ValueError, TypeError):
            raise InvalidNoteKey("verifier key is not a DER PKIX public key") from None
        if not isinstance(public, ec.EllipticCurvePublicKey):
            raise InvalidNoteKey("verifier key of type 0x02 must hold an ECDSA public key")
        if pkix_der(public) != material:
            raise InvalidNoteKey("verifier key DER is not canonical")
        verifier = EcdsaVerifier(name, public)
    else:
        raise InvalidNoteKey(f"unknown verifier key type 0x{sig_type:02x}")
    if verifier.key_id != kid:
        raise InvalidNoteKey(
            f"verifier key ID {hex_id} does not match the key (expected {verifier.key_id:08x})"
        )
    return verifier


def _ed25519_public(material: bytes) -> Ed25519PublicKey:
    if len(material) != 32:
        raise InvalidNoteKey(f"Ed25519 public key must be 32 bytes, got {len(material)}")
    return Ed25519PublicKey.from_public_bytes(material)


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _check_name(name: str) -> None:
    if not is_valid_key_name(name):
        raise InvalidNoteKey(f"invalid key name {name!r}: no spaces, no '+', not empty")


# --------------------------------------------------------------------------------------------
# Ed25519 (0x01)
# --------------------------------------------------------------------------------------------


class _Ed25519KeyVerifier:
    """An Ed25519 public key under a note name: the key ID and vkey are derived the same way for
    every signature type that uses one (0x01 notes, 0x04 cosignatures); subclasses verify."""

    __slots__ = ("key_id", "name", "public_key")
    sig_type: ClassVar[int]

    def __init__(self, name: str, public_key: Ed25519PublicKey | bytes) -> None:
        _check_name(name)
        if isinstance(public_key, bytes):
            public_key = _ed25519_public(public_key)
        self.name = name
        self.public_key = public_key
        self.key_id = key_id(name, self.sig_type, _raw_public(public_key))

    @property
    def vkey(self) -> str:
        return _format_vkey(self.name, self.key_id, self.sig_type, _raw_public(self.public_key))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.vkey!r})"


class Ed25519Verifier(_Ed25519KeyVerifier):
    """Verifies Ed25519 note signatures (type 0x01)."""

    __slots__ = ()
    sig_type: ClassVar[int] = SIG_ED25519

    def verify(self, message: bytes, signature: bytes, /) -> bool:
        if len(signature) != 64:
            return False
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


class Ed25519Signer:
    """Signs notes with an Ed25519 key held in memory (type 0x01)."""

    __slots__ = ("_private", "_seed", "key_id", "name")
    sig_type: Final = SIG_ED25519

    def __init__(self, name: str, seed: bytes) -> None:
        _check_name(name)
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise InvalidNoteKey("an Ed25519 private key seed is 32 bytes")
        self.name = name
        self._seed = seed
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        self.key_id = key_id(name, self.sig_type, _raw_public(self._private.public_key()))

    @classmethod
    def generate(cls, name: str) -> Ed25519Signer:
        return cls(name, secrets.token_bytes(32))

    @classmethod
    def from_skey(cls, skey: str) -> Ed25519Signer:
        """Load ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>``."""
        fields = _split_key(skey, 5, "private key")
        if fields[0] != "PRIVATE" or fields[1] != "KEY":
            raise InvalidNoteKey("private key must start with PRIVATE+KEY+")
        kid, sig_type, seed = _decode_key(fields[2], fields[3], fields[4], "private key")
        if sig_type != SIG_ED25519:
            raise InvalidNoteKey(f"unknown private key type 0x{sig_type:02x}")
        signer = cls(fields[2], seed)
        if signer.key_id != kid:
            raise InvalidNoteKey("private key ID does not match the key")
        return signer

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._private.public_key()

    @property
    def skey(self) -> str:
        """The private key in sumdb/note form. A secret: never log it."""
        return "PRIVATE+KEY+" + _format_vkey(self.name, self.key_id, self.sig_type, self._seed)

    @property
    def vkey(self) -> str:
        return self.verifier().vkey

    def verifier(self) -> Ed25519Verifier:
        return Ed25519Verifier(self.name, self.public_key)

    def sign(self, message: bytes, /) -> bytes:
        return self._private.sign(message)

    def __repr__(self) -> str:
        return f"Ed25519Signer(name={self.name!r}, key_id={self.key_id:08x})"


# --------------------------------------------------------------------------------------------
# ECDSA (0x02, the Rekor key-ID rule)
# --------------------------------------------------------------------------------------------


class RawSigner(Protocol):
    """Anything that returns a DER ECDSA signature over SHA-256(data): a key file, an HSM."""

    def sign(self, data: bytes, /) -> bytes: ...


class KeyedRawSigner(RawSigner, Protocol):
    """A ``RawSigner`` that also names its public key (``safeguard.keys.Signer`` is one)."""

    @property
    def public_key(self) -> object: ...


class EcdsaVerifier:
    """Verifies ECDSA-over-SHA-256 note signatures, key ID by the Rekor rule."""

    __slots__ = ("key_id", "name", "public_key")
    sig_type: Final = SIG_ECDSA

    def __init__(self, name: str, public_key: ec.EllipticCurvePublicKey) -> None:
        _check_name(name)
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise InvalidNoteKey("an ECDSA note verifier needs an elliptic-curve public key")
        self.name = name
        self.public_key = public_key
        self.key_id = rekor_key_id(public_key)

    @property
    def vkey(self) -> str:
        return _format_vkey(self.name, self.key_id, self.sig_type, pkix_der(self.public_key))

    def verify(self, message: bytes, signature: bytes, /) -> bool:
        try:
            self.public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return False
        return True

    def __repr__(self) -> str:
        return f"EcdsaVerifier(name={self.name!r}, key_id={self.key_id:08x})"


class _PrivateKeySigner:
    __slots__ = ("_key",)

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key

    def sign(self, data: bytes, /) -> bytes:
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))


class EcdsaSigner:
    """Signs notes with ECDSA over SHA-256 through any ``RawSigner`` (key file or PKCS#11).

    Each signature is checked against ``public_key`` before it is used, so a token that signs
    with another key than the one configured fails here rather than in every verifier.
    """

    __slots__ = ("_signer", "_verifier")
    sig_type: Final = SIG_ECDSA

    def __init__(self, name: str, signer: RawSigner, public_key: ec.EllipticCurvePublicKey) -> None:
        self._verifier = EcdsaVerifier(name, public_key)
        self._signer = signer

    @classmethod
    def from_private_key(cls, name: str, key: ec.EllipticCurvePrivateKey) -> EcdsaSigner:
        return cls(name, _PrivateKeySigner(key), key.public_key())

    @classmethod
    def from_signer(cls, name: str, signer: KeyedRawSigner) -> EcdsaSigner:
        """Wrap a signer that knows its public key, such as a ``safeguard.keys`` PKCS#11 key."""
        public_key = signer.public_key
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise InvalidNoteKey("an ECDSA note signer needs an elliptic-curve key")
        return cls(name, signer, public_key)

    @property
    def name(self) -> str:
        return self._verifier.name

    @property
    def key_id(self) -> int:
        return self._verifier.key_id

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._verifier.public_key

    @property
    def vkey(self) -> str:
        return self._verifier.vkey

    def verifier(self) -> EcdsaVerifier:
        return self._verifier

    def sign(self, message: bytes, /) -> bytes:
        signature = self._signer.sign(message)
        if not isinstance(signature, bytes) or not self._verifier.verify(message, signature):
            raise NoteSigningFailed(
                f"the signer for {self.name} returned a signature its public key does not verify",
                hint="check that the HSM key label or key file matches the configured public key",
            )
        return signature

    def __repr__(self) -> str:
        return f"EcdsaSigner(name={self.name!r}, key_id={self.key_id:08x})"


# --------------------------------------------------------------------------------------------
# Witness cosignatures (0x04, c2sp.org/tlog-cosignature, cosignature/v1)
# --------------------------------------------------------------------------------------------


def cosignature_message(text: str | bytes, timestamp: int) -> bytes:
    """``cosignature/v1\\ntime <timestamp>\\n`` followed by the whole checkpoint note text."""
    if isinstance(text, str):
        text = text.encode("utf-8")
    if isinstance(timestamp, bool) or not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise ValueError("cosignature timestamp must be in [0, 2^63)")
    return f"{_COSIGNATURE_HEADER}time {timestamp}\n".encode("ascii") + text


def cosignature_timestamp(signature: bytes) -> int:
    """The POSIX timestamp a ``cosignature/v1`` signature carries (its first eight bytes)."""
    if len(signature) != 72:
        raise MalformedNote(f"a cosignature/v1 signature is 72 bytes, got {len(signature)}")
    return int.from_bytes(signature[:8], "big")


def _looks_like_checkpoint(message: bytes) -> bool:
    return message.endswith(b"\n") and message.count(b"\n") >= 3


class CosignatureV1Verifier(_Ed25519KeyVerifier):
    """Verifies Ed25519 ``cosignature/v1`` witness cosignatures (type 0x04)."""

    __slots__ = ()
    sig_type: ClassVar[int] = SIG_COSIGNATURE_V1

    def verify(self, message: bytes, signature: bytes, /) -> bool:
        if len(signature) != 72 or not _looks_like_checkpoint(message):
            return False
        timestamp = int.from_bytes(signature[:8], "big")
        if timestamp > _MAX_TIMESTAMP:
            return False
        try:
            self.public_key.verify(signature[8:], cosignature_message(message, timestamp))
        except InvalidSignature:
            return False
        return True


class CosignatureV1Signer:
    """Creates ``cosignature/v1`` witness cosignatures with an in-memory Ed25519 key."""

    __slots__ = ("_clock", "_private", "key_id", "name")
    sig_type: Final = SIG_COSIGNATURE_V1

    def __init__(self, name: str, seed: bytes, *, clock: Callable[[], float] = time.time) -> None:
        _check_name(name)
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise InvalidNoteKey("an Ed25519 private key seed is 32 bytes")
        self.name = name
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        self._clock = clock
        self.key_id = key_id(name, self.sig_type, _raw_public(self._private.public_key()))

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._private.public_key()

    @property
    def vkey(self) -> str:
        return self.verifier().vkey

    def verifier(self) -> CosignatureV1Verifier:
        return CosignatureV1Verifier(self.name, self.public_key)

    def sign(self, message: bytes, /) -> bytes:
        if not _looks_like_checkpoint(message):
            raise NoteSigningFailed("a cosignature covers a checkpoint of at least three lines")
        timestamp = int(self._clock())
        signature = self._private.sign(cosignature_message(message, timestamp))
        return timestamp.to_bytes(8, "big") + signature

    def __repr__(self) -> str:
        return f"CosignatureV1Signer(name={self.name!r}, key_id={self.key_id:08x})"


def verifiers_from_vkeys(vkeys: Sequence[str]) -> Verifiers:
    return Verifiers(parse_vkey(v) for v in vkeys)
