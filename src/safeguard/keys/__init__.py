"""Signers and public keys: cosign key files, PKCS#11 tokens and HSMs, Sigstore keyless.

Every key source implements ``Signer`` (``safeguard.keys.base``); ``verify_signature`` checks a
signature with a public key by the same algorithm rules.
"""

from safeguard.keys.base import (
    Algorithm,
    PublicKey,
    Signer,
    algorithm_for,
    is_valid_signature,
    key_id_for,
    load_public_key,
    public_key_pem,
    verify_digest_signature,
    verify_signature,
)
from safeguard.keys.software import SoftwareSigner

__all__ = [
    "Algorithm",
    "PublicKey",
    "Signer",
    "SoftwareSigner",
    "algorithm_for",
    "is_valid_signature",
    "key_id_for",
    "load_public_key",
    "public_key_pem",
    "verify_digest_signature",
    "verify_signature",
]
