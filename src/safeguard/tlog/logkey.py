"""The log's signing key: signs checkpoints (signed notes) and signed entry timestamps (SETs).

Rekor v1 signs both with one key, and Sigstore clients verify both with the key that a
``trusted_root.json`` names for the log (protobuf-specs ``TransparencyLogInstance``), found by
its log ID, the SHA-256 of the DER SubjectPublicKeyInfo. So the key here is:

* ECDSA P-256 (recommended, what Rekor v1 uses): SETs are ASN.1 DER ECDSA over SHA-256 of the
  message, and checkpoints are note signatures of type 0x02 (``EcdsaSigner``);
* or Ed25519: SETs are pure Ed25519, and checkpoint note signatures carry the *Rekor* key ID
  (``SHA-256(DER)[:4]``), as rekor ``pkg/util/signed_note.go`` writes them and as sigstore-python
  and sigstore-go look them up, rather than the C2SP Ed25519 key ID.

The key comes from a cosign key file (``ENCRYPTED SIGSTORE PRIVATE KEY``; password from
``COSIGN_PASSWORD``), a PEM private key (PKCS#8 or SEC 1), or a PKCS#11 URI (``pkcs11:…``, see
``safeguard.keys.pkcs11``). With no key configured, ``load_or_create`` makes an ECDSA P-256 key
in the data directory on first start (``tlog/log-key.pem``, mode 0600).
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from safeguard.keys.base import Algorithm, PublicKey, Signer, public_key_der, public_key_pem
from safeguard.keys.errors import KeyInvalid, KeyUnsupported
from safeguard.keys.software import SoftwareSigner
from safeguard.tlog.note import (
    EcdsaSigner,
    EcdsaVerifier,
    NoteSigner,
    NoteVerifier,
    rekor_key_id,
)

DEFAULT_KEY_FILE: Final = Path("tlog") / "log-key.pem"
KEY_PASSWORD_ENV: Final = "SAFEGUARD_TLOG_KEY_PASSWORD"
_COSIGN_TYPES: Final = (b"ENCRYPTED SIGSTORE PRIVATE KEY", b"ENCRYPTED COSIGN PRIVATE KEY")


class RekorEd25519NoteSigner:
    """Ed25519 note signatures with the Rekor key-ID rule (``SHA-256(DER)[:4]``)."""

    __slots__ = ("_signer", "key_id", "name")

    def __init__(self, name: str, signer: Signer) -> None:
        public = signer.public_key
        if not isinstance(public, ed25519.Ed25519PublicKey):
            raise KeyUnsupported("an Ed25519 note signer needs an Ed25519 key")
        self.name = name
        self.key_id = rekor_key_id(public)
        self._signer = signer

    def sign(self, message: bytes, /) -> bytes:
        return self._signer.sign(message)


class RekorEd25519NoteVerifier:
    """Verifies Ed25519 note signatures whose key ID follows the Rekor rule."""

    __slots__ = ("key_id", "name", "public_key")

    def __init__(self, name: str, public_key: ed25519.Ed25519PublicKey) -> None:
        self.name = name
        self.public_key = public_key
        self.key_id = rekor_key_id(public_key)

    def verify(self, message: bytes, signature: bytes, /) -> bool:
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


def key_details(public_key: PublicKey) -> str:
    """protobuf-specs ``PublicKeyDetails`` of a log key."""
    if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(
        public_key.curve, ec.SECP256R1
    ):
        return Algorithm.ECDSA_P256_SHA256.value
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return Algorithm.ED25519.value
    raise KeyUnsupported(
        "a transparency log key must be ECDSA P-256 or Ed25519",
        hint="note signatures are over SHA-256, which only fits P-256 among ECDSA curves",
    )


def note_verifier(name: str, public_key: PublicKey) -> NoteVerifier:
    """The checkpoint verifier for a log key (either supported type)."""
    key_details(public_key)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return EcdsaVerifier(name, public_key)
    assert isinstance(public_key, ed25519.Ed25519PublicKey)
    return RekorEd25519NoteVerifier(name, public_key)


def verify_set(public_key: PublicKey, signature: bytes, message: bytes) -> bool:
    """Check a signed entry timestamp as Sigstore clients do (ECDSA SHA-256 or Ed25519)."""
    from cryptography.hazmat.primitives import hashes

    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, message)
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


class LogKey:
    """A ``safeguard.keys.Signer`` usable as a transparency log key."""

    __slots__ = ("_der", "details", "log_id", "signer")

    def __init__(self, signer: Signer) -> None:
        self.details = key_details(signer.public_key)
        self.signer = signer
        self._der = public_key_der(signer.public_key)
        self.log_id = hashlib.sha256(self._der).digest()

    @property
    def public_key(self) -> PublicKey:
        return self.signer.public_key

    @property
    def der(self) -> bytes:
        return self._der

    @property
    def pem(self) -> bytes:
        return public_key_pem(self.signer.public_key)

    @property
    def log_id_hex(self) -> str:
        return self.log_id.hex()

    @property
    def key_id_b64(self) -> str:
        return base64.b64encode(self.log_id).decode("ascii")

    def sign(self, message: bytes) -> bytes:
        """Sign a message (a SET payload): ECDSA over SHA-256, or Ed25519."""
        return self.signer.sign(message)

    def note_signer(self, name: str) -> NoteSigner:
        if isinstance(self.signer.public_key, ec.EllipticCurvePublicKey):
            return EcdsaSigner.from_signer(name, self.signer)
        return RekorEd25519NoteSigner(name, self.signer)

    def note_verifier(self, name: str) -> NoteVerifier:
        return note_verifier(name, self.signer.public_key)


def load_log_key(ref: str | Path, *, password: str | bytes | None = None) -> LogKey:
    """A log key from a PKCS#11 URI, a cosign key file or a PEM private key file."""
    text = str(ref)
    if text.startswith("pkcs11:"):
        from safeguard.keys.pkcs11 import PKCS11Signer

        return LogKey(PKCS11Signer(text))
    path = Path(text)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        from safeguard.keys.errors import KeyNotFound

        raise KeyNotFound(f"no log key file at {path}") from None
    except OSError as exc:
        raise KeyInvalid(f"cannot read the log key {path}: {exc.strerror}") from None
    if any(b"-----BEGIN " + kind + b"-----" in data for kind in _COSIGN_TYPES):
        from safeguard.keys.cosign_keys import load_signer

        return LogKey(load_signer(data, password, prompt=None))
    secret = password if password is not None else os.environ.get(KEY_PASSWORD_ENV)
    secret_bytes = secret.encode("utf-8") if isinstance(secret, str) else secret
    try:
        private = serialization.load_pem_private_key(data, password=secret_bytes)
    except (ValueError, TypeError) as exc:
        raise KeyInvalid(
            f"cannot load the log key {path}: {exc}",
            hint=f"use a PEM private key (password in {KEY_PASSWORD_ENV}), a cosign key file "
            "(password in COSIGN_PASSWORD) or a pkcs11: URI",
        ) from None
    if not isinstance(private, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise KeyUnsupported("a transparency log key must be ECDSA P-256 or Ed25519")
    return LogKey(SoftwareSigner(private))


def generate_log_key(path: Path) -> LogKey:
    """Write a new ECDSA P-256 PKCS#8 PEM key to ``path`` (mode 0600) and return it."""
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    return LogKey(SoftwareSigner(private))


def load_or_create(ref: str | Path | None, data_dir: Path) -> LogKey:
    """``ref`` if given, else the data directory's key, generated on first start."""
    if ref:
        return load_log_key(ref)
    path = Path(data_dir) / DEFAULT_KEY_FILE
    if path.exists():
        return load_log_key(path)
    return generate_log_key(path)
