from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from safeguard.core.errors import VerificationFailed
from safeguard.keys import (
    Algorithm,
    Signer,
    SoftwareSigner,
    is_valid_signature,
    key_id_for,
    load_public_key,
    verify_digest_signature,
    verify_signature,
)
from safeguard.keys.base import der_signature_from_raw
from safeguard.keys.errors import KeyInvalid, KeyUnsupported
from tests.unit.formats.vectors import read


@pytest.mark.parametrize(
    ("algorithm", "hash_name"),
    [
        (Algorithm.ECDSA_P256_SHA256, "sha256"),
        (Algorithm.ECDSA_P384_SHA384, "sha384"),
        (Algorithm.ED25519, None),
    ],
)
def test_software_signer(algorithm: Algorithm, hash_name: str | None) -> None:
    signer = SoftwareSigner.generate(algorithm)
    assert isinstance(signer, Signer)
    assert signer.algorithm is algorithm and algorithm.hash_name == hash_name
    signature = signer.sign(b"message")
    verify_signature(signer.public_key, signature, b"message")
    with pytest.raises(VerificationFailed):
        verify_signature(signer.public_key, signature, b"other")
    assert not is_valid_signature(signer.public_key, signature, b"other")
    if hash_name:
        digest = hashlib.new(hash_name, b"message").digest()
        verify_digest_signature(signer.public_key, signer.sign_digest(digest), digest)
        verify_signature(signer.public_key, signer.sign_digest(digest), b"message")
        with pytest.raises(KeyInvalid):
            signer.sign_digest(b"short")
    else:
        with pytest.raises(KeyUnsupported):
            signer.sign_digest(b"\x00" * 32)
    assert load_public_key(signer.public_key_pem) == signer.public_key


def test_key_id_is_cosigns_hint() -> None:
    """sigstore-go's public-key-validity bundle carries the hint of its published key."""
    key = load_public_key(read("sigstore-go/public-key-validity.pem"))
    assert key_id_for(key) == "IpekKjxVkmTfB4YqY8q5sGEAeVtF9x3m7jHdhAxpgjQ="


def test_unsupported_keys() -> None:
    with pytest.raises(KeyUnsupported):
        SoftwareSigner(ec.generate_private_key(ec.SECP521R1()))
    with pytest.raises(KeyUnsupported):
        SoftwareSigner(rsa.generate_private_key(65537, 1024))
    with pytest.raises(KeyInvalid):
        load_public_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(KeyInvalid):
        load_public_key(b"garbage")


def test_rsa_signer_for_imported_cosign_keys() -> None:
    signer = SoftwareSigner(rsa.generate_private_key(65537, 2048))
    assert signer.algorithm is Algorithm.RSA_PKCS1V15_SHA256
    verify_signature(signer.public_key, signer.sign(b"m"), b"m")


def test_raw_to_der() -> None:
    der = der_signature_from_raw(b"\x01" * 32 + b"\x02" * 32)
    assert der[0] == 0x30
    with pytest.raises(KeyInvalid):
        der_signature_from_raw(b"\x01" * 3)


@pytest.mark.parametrize(
    ("algorithm", "wrong"),
    [
        (Algorithm.ECDSA_P384_SHA384, "sha256"),
        (Algorithm.ECDSA_P256_SHA256, "sha384"),
        (Algorithm.ECDSA_P256_SHA256, "sha512"),
    ],
)
def test_digest_of_the_wrong_hash_is_a_failed_verification(
    algorithm: Algorithm, wrong: str
) -> None:
    """A digest of the wrong length is VerificationFailed (a named reason), never ValueError."""
    signer = SoftwareSigner.generate(algorithm)
    assert algorithm.hash_name is not None
    good = hashlib.new(algorithm.hash_name, b"message").digest()
    signature = signer.sign_digest(good)
    verify_digest_signature(signer.public_key, signature, good)
    bad = hashlib.new(wrong, b"message").digest()
    with pytest.raises(VerificationFailed, match="digest") as info:
        verify_digest_signature(signer.public_key, signature, bad)
    assert info.value.hint
    with pytest.raises(VerificationFailed):
        verify_digest_signature(signer.public_key, signature, b"")
