"""Public keys to verify against, as cosign's ``--key`` names them for ``verify``.

A KEYREF for verification is a PEM public key file (SubjectPublicKeyInfo, or a certificate whose
key is taken), or a ``pkcs11:`` URI (RFC 7512) whose public key object is read from the token
(``safeguard.keys.pkcs11``). This lives in the keys room, not in signing, so that the verifier and
the policy bridge (``safeguard.verify.from_policy``) can use it without depending on the signing
service; ``safeguard.signing.keyref`` re-exports it for the CLI.

``load_verification_key`` reads a file from the local file system: the CLI's ``--key`` path.
Code that verifies by a stored policy reads files through the policy's reader instead and only
uses ``token_public_key`` for ``pkcs11:`` references.
"""

from __future__ import annotations

from pathlib import Path

from safeguard.keys.base import PublicKey, load_public_key
from safeguard.keys.errors import KeyInvalid, KeyNotFound


def is_pkcs11(keyref: str) -> bool:
    return keyref.startswith("pkcs11:")


def token_public_key(uri: str) -> PublicKey:
    """The public key of the key object a ``pkcs11:`` URI names (a token session is opened,
    read and closed)."""
    from safeguard.keys.pkcs11 import PKCS11Signer

    with PKCS11Signer(uri) as token_signer:
        return token_signer.public_key


def load_verification_key(keyref: str) -> PublicKey:
    """The public key ``keyref`` names: a ``pkcs11:`` URI, or a PEM public key or certificate
    file on the local file system."""
    if is_pkcs11(keyref):
        return token_public_key(keyref)
    path = Path(keyref)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyNotFound(f"no public key file at {path}") from None
    except OSError as exc:
        raise KeyInvalid(f"cannot read {path}: {exc.strerror}") from None
    return load_public_key(data)
