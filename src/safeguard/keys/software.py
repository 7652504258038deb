"""A ``Signer`` over a private key held in memory (a decrypted cosign key file, a test key)."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from safeguard.keys.base import (
    Algorithm,
    PrivateKey,
    PublicHalf,
)
from safeguard.keys.errors import KeyInvalid, KeyUnsupported


class SoftwareSigner(PublicHalf):
    """Signs with a ``cryptography`` private key; see ``safeguard.keys.base`` for the rules."""

    def __init__(self, private_key: PrivateKey) -> None:
        self._private_key = private_key
        self._set_public_key(private_key.public_key())

    @classmethod
    def generate(cls, algorithm: Algorithm = Algorithm.ECDSA_P256_SHA256) -> SoftwareSigner:
        if algorithm is Algorithm.ECDSA_P256_SHA256:
            return cls(ec.generate_private_key(ec.SECP256R1()))
        if algorithm is Algorithm.ECDSA_P384_SHA384:
            return cls(ec.generate_private_key(ec.SECP384R1()))
        if algorithm is Algorithm.ED25519:
            return cls(ed25519.Ed25519PrivateKey.generate())
        raise KeyUnsupported(f"cannot generate {algorithm} keys")

    @property
    def private_key(self) -> PrivateKey:
        return self._private_key

    def sign(self, data: bytes) -> bytes:
        key = self._private_key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(data)
        hash_algorithm = self._algorithm.hash_algorithm
        assert hash_algorithm is not None
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(hash_algorithm))
        return key.sign(data, padding.PKCS1v15(), hash_algorithm)

    def sign_digest(self, digest: bytes) -> bytes:
        key = self._private_key
        hash_algorithm = self._algorithm.hash_algorithm
        if hash_algorithm is None or isinstance(key, ed25519.Ed25519PrivateKey):
            raise KeyUnsupported("Ed25519 signs messages, not digests")
        if len(digest) != hash_algorithm.digest_size:
            raise KeyInvalid(
                f"a {self._algorithm} digest is {hash_algorithm.digest_size} bytes, "
                f"not {len(digest)}"
            )
        prehashed = utils.Prehashed(hash_algorithm)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(digest, ec.ECDSA(prehashed))
        assert isinstance(key, rsa.RSAPrivateKey)
        return key.sign(digest, padding.PKCS1v15(), prehashed)
