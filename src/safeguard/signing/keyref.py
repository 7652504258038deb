"""KEYREF, as cosign's ``--key`` takes it: a cosign key file, or a ``pkcs11:`` URI (RFC 7512).

A key file's password comes from ``COSIGN_PASSWORD`` or the terminal prompt
(``safeguard.keys.cosign_keys``); a token's PIN from the URI, ``COSIGN_PKCS11_PIN`` or nowhere
(``safeguard.keys.pkcs11``). ``open_signer`` is a context manager so that a token session is
released when signing is done. Public keys for verification (``--key`` of ``verify``) are read by
``load_verification_key`` (``safeguard.keys.verification``, re-exported here): a PEM public key
file, a certificate, or a ``pkcs11:`` URI whose public key object is read from the token.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from safeguard.keys.base import Signer
from safeguard.keys.cosign_keys import PasswordPrompt, load_signer, prompt_password
from safeguard.keys.verification import is_pkcs11, load_verification_key

__all__ = ["is_pkcs11", "load_verification_key", "open_signer"]


@contextmanager
def open_signer(
    keyref: str, *, prompt: PasswordPrompt | None = prompt_password
) -> Iterator[Signer]:
    if is_pkcs11(keyref):
        from safeguard.keys.pkcs11 import PKCS11Signer

        with PKCS11Signer(keyref) as token_signer:
            yield token_signer
        return
    yield load_signer(Path(keyref), prompt=prompt)
