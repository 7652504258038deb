"""The one ``Signer`` protocol every key source implements, and the helpers around keys.

A signer signs a *message* (``sign``) the way Sigstore verifiers expect for its key type:
ECDSA P-256 with SHA-256, ECDSA P-384 with SHA-384 (protobuf-specs ``PublicKeyDetails``
``PKIX_ECDSA_P256_SHA_256``/``PKIX_ECDSA_P384_SHA_384``), pure Ed25519 (``PKIX_ED25519``) and,
for imported cosign keys, RSA PKCS#1 v1.5 with SHA-256. ECDSA signatures are ASN.1 DER
(``SEQUENCE{r, s}``), as cosign, Rekor and Sigstore bundles carry them. ``sign_digest`` signs a
precomputed hash (not possible for Ed25519).

``key_id`` is cosign's public-key hint: standard base64 of SHA-256 over the DER
SubjectPublicKeyInfo, which is what cosign writes in a bundle's ``publicKey.hint``.
"""

from __future__ import annotations

import base64
import hashlib
from enum import StrEnum
from typing import Protocol, TypeAlias, runtime_checkable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from safeguard.core.errors import VerificationFailed
from safeguard.keys.errors import KeyInvalid, KeyUnsupported

PublicKey: TypeAlias = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


class Algorithm(StrEnum):
    """Signing algorithms, named as protobuf-specs ``PublicKeyDetails`` names them."""

    ECDSA_P256_SHA256 = "PKIX_ECDSA_P256_SHA_256"
    ECDSA_P384_SHA384 = "PKIX_ECDSA_P384_SHA_384"
    ED25519 = "PKIX_ED25519"
    RSA_PKCS1V15_SHA256 = "PKIX_RSA_PKCS1V15_SHA256"  # cosign imports; size-specific in specs

    @property
    def hash_name(self) -> str | None:
        """The hash the message is digested with before signing (``None`` for Ed25519)."""
        return {
            Algorithm.ECDSA_P256_SHA256: "sha256",
            Algorithm.ECDSA_P384_SHA384: "sha384",
            Algorithm.RSA_PKCS1V15_SHA256: "sha256",
        }.get(self)

    @property
    def hash_algorithm(self) -> hashes.HashAlgorithm | None:
        name = self.hash_name
        return {"sha256": hashes.SHA256(), "sha384": hashes.SHA384()}[name] if name else None


@runtime_checkable
class Signer(Protocol):
    """Anything that signs: a decrypted key file, an HSM key, a hardware token."""

    @property
    def algorithm(self) -> Algorithm: ...

    @property
    def public_key(self) -> PublicKey: ...

    @property
    def public_key_pem(self) -> bytes: ...

    @property
    def key_id(self) -> str: ...

    def sign(self, data: bytes) -> bytes:
        """Sign the message ``data`` (hashed internally where the algorithm hashes)."""
        ...

    def sign_digest(self, digest: bytes) -> bytes:
        """Sign a digest made with ``algorithm.hash_name``; Ed25519 raises ``KeyUnsupported``."""
        ...


def algorithm_for(public_key: object) -> Algorithm:
    if isinstance(public_key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        if isinstance(public_key.curve, ec.SECP256R1):
            return Algorithm.ECDSA_P256_SHA256
        if isinstance(public_key.curve, ec.SECP384R1):
            return Algorithm.ECDSA_P384_SHA384
        raise KeyUnsupported(f"unsupported elliptic curve {public_key.curve.name}")
    if isinstance(public_key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return Algorithm.ED25519
    if isinstance(public_key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        if public_key.key_size < 2048:
            raise KeyUnsupported(f"RSA keys of {public_key.key_size} bits are too weak")
        return Algorithm.RSA_PKCS1V15_SHA256
    raise KeyUnsupported(f"unsupported key type {type(public_key).__name__}")


def public_key_der(public_key: PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_pem(public_key: PublicKey) -> bytes:
    """``-----BEGIN PUBLIC KEY-----`` PEM, as cosign's ``cosign.pub`` and Rekor store keys."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id_for(public_key: PublicKey) -> str:
    return base64.b64encode(hashlib.sha256(public_key_der(public_key)).digest()).decode("ascii")


class PublicHalf:
    """What every signer derives from its public key once: the algorithm, the PEM and cosign's
    key id. Signers inherit it and call ``_set_public_key`` when they know their key."""

    _algorithm: Algorithm
    _public_key: PublicKey
    _pem: bytes
    _key_id: str

    def _set_public_key(self, public_key: PublicKey) -> None:
        self._public_key = public_key
        self._algorithm = algorithm_for(public_key)
        self._pem = public_key_pem(public_key)
        self._key_id = key_id_for(public_key)

    @property
    def algorithm(self) -> Algorithm:
        return self._algorithm

    @property
    def public_key(self) -> PublicKey:
        return self._public_key

    @property
    def public_key_pem(self) -> bytes:
        return self._pem

    @property
    def key_id(self) -> str:
        return self._key_id


def load_public_key(pem: bytes) -> PublicKey:
    """A PEM public key (``cosign.pub``) or the key of a PEM/DER certificate."""
    from cryptography import x509

    try:
        if b"-----BEGIN CERTIFICATE-----" in pem:
            key: object = x509.load_pem_x509_certificate(pem).public_key()
        elif pem.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(pem)
        else:
            key = serialization.load_der_public_key(pem)
    except ValueError as exc:
        raise KeyInvalid(f"not a public key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise KeyUnsupported(f"unsupported public key type {type(key).__name__}")
    algorithm_for(key)
    return key


def der_signature_from_raw(raw: bytes) -> bytes:
    """ECDSA ``r || s`` (as PKCS#11 returns it) to ASN.1 DER."""
    if not raw or len(raw) % 2:
        raise KeyInvalid("raw ECDSA signature has odd length")
    half = len(raw) // 2
    return utils.encode_dss_signature(
        int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
    )


def verify_signature(public_key: PublicKey, signature: bytes, data: bytes) -> None:
    """Check ``signature`` over the message ``data`` with the key's algorithm (see module doc).

    Raises ``VerificationFailed`` (exit code 1) when it does not verify.
    """
    algorithm = algorithm_for(public_key)
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            assert algorithm.hash_algorithm is not None
            public_key.verify(signature, data, ec.ECDSA(algorithm.hash_algorithm))
        elif isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, data)
        else:
            public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise VerificationFailed(
            "signature does not verify with the given public key",
            hint="check that the artifact and key are the ones that were signed",
        ) from None


def verify_digest_signature(public_key: PublicKey, signature: bytes, digest: bytes) -> None:
    """Like ``verify_signature`` for a precomputed digest (ECDSA and RSA only)."""
    algorithm = algorithm_for(public_key)
    if algorithm.hash_algorithm is None:
        raise KeyUnsupported("Ed25519 signs messages, not digests")
    size = algorithm.hash_algorithm.digest_size
    if len(digest) != size:
        # cryptography would raise ValueError; a digest of the wrong hash is a failed check.
        raise VerificationFailed(
            f"a {algorithm} signature is over a {size}-byte {algorithm.hash_name} digest, "
            f"not a {len(digest)}-byte one",
            hint=f"verify by the file itself, or give its {algorithm.hash_name} digest",
        )
    prehashed = utils.Prehashed(algorithm.hash_algorithm)
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, digest, ec.ECDSA(prehashed))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, digest, padding.PKCS1v15(), prehashed)
    except (InvalidSignature, ValueError):
        raise VerificationFailed("signature does not verify with the given public key") from None


def is_valid_signature(public_key: PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        verify_signature(public_key, signature, data)
    except VerificationFailed:
        return False
    return True
