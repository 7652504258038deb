"""The signing service's open keys: one ``Signer`` per key reference, opened once, kept open.

A policy key's ``ref`` is a ``pkcs11:`` URI (RFC 7512) or, for small sites, a cosign key file.
PKCS#11 keys are opened with ``safeguard.keys.pkcs11.PKCS11Signer``: the PIN comes from the URI's
``pin-source=file:...`` (the policy refuses ``pin-value``) or ``COSIGN_PKCS11_PIN``, and every key
on a token shares that token's one logged-in session, so opening costs one ``C_Login`` per token
for the life of the process and each signature is a single ``C_Sign``. A cosign key file is
decrypted once with ``COSIGN_PASSWORD`` (never prompted: the service has no terminal).

Failures to open are the service's problem, not the caller's: they become
``SigningKeyUnavailable`` (HTTP 503) naming the key and the cause, never the PIN. A failed open is
not cached, so fixing the HSM or the PIN file needs no restart.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from safeguard.core.errors import SafeguardError
from safeguard.keys.base import Signer
from safeguard.keys.pkcs11_uri import parse_pkcs11_uri
from safeguard.signing.errors import SigningKeyUnavailable


def describe_ref(ref: str) -> str:
    """A key reference fit for messages and logs (a URI's PIN redacted)."""
    if ref.lower().startswith("pkcs11:"):
        try:
            return parse_pkcs11_uri(ref).redacted()
        except SafeguardError:
            return "pkcs11:<unparseable URI>"
    return ref


def open_key(ref: str) -> Signer:
    """Open the key ``ref`` names (module doc); raises ``SigningKeyUnavailable``."""
    try:
        if ref.lower().startswith("pkcs11:"):
            from safeguard.keys.pkcs11 import PKCS11Signer

            return PKCS11Signer(ref)
        from safeguard.keys.cosign_keys import load_signer

        return load_signer(Path(ref), os.environ.get("COSIGN_PASSWORD"), prompt=None)
    except SafeguardError as exc:
        raise SigningKeyUnavailable(
            f"the signing key {describe_ref(ref)} cannot be opened: [{exc.code}] {exc.message}",
            hint=exc.hint or "check the HSM, the key reference and its PIN source",
        ) from None


class KeyRing:
    """Signers by key reference (module doc). Thread-safe; ``close`` releases every session."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._signers: dict[str, Signer] = {}

    def signer(self, ref: str) -> Signer:
        found = self._signers.get(ref)
        if found is not None:
            return found
        with self._lock:
            found = self._signers.get(ref)
            if found is None:
                found = open_key(ref)
                self._signers[ref] = found
            return found

    def forget(self, ref: str) -> None:
        """Close and drop ``ref``'s signer (after the HSM failed it), to reopen on next use."""
        with self._lock:
            signer = self._signers.pop(ref, None)
        close = getattr(signer, "close", None)
        if callable(close):
            close()

    def close(self) -> None:
        with self._lock:
            signers, self._signers = list(self._signers.values()), {}
        for signer in signers:
            close = getattr(signer, "close", None)
            if callable(close):
                close()
