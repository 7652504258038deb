"""PKCS#11 signing against a real SoftHSM2 token: P-256, P-384 and Ed25519 keys, the session
reused across threads, and clear errors for a wrong PIN, a missing token and a missing key."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from safeguard.keys import Algorithm, verify_digest_signature, verify_signature
from safeguard.keys.errors import (
    KeyUnsupported,
    PKCS11ObjectNotFound,
    PKCS11PinInvalid,
    PKCS11TokenNotFound,
    PKCS11Unavailable,
    PKCS11URIInvalid,
)
from safeguard.keys.pkcs11 import PKCS11Signer
from tests.fixtures import softhsm

pytestmark = pytest.mark.skipif(not softhsm.available(), reason="SoftHSM2/OpenSC not installed")

KEYS = {
    "p256": ("01", "EC:prime256v1", Algorithm.ECDSA_P256_SHA256),
    "p384": ("02", "EC:secp384r1", Algorithm.ECDSA_P384_SHA384),
    "ed25519": ("03", "EC:edwards25519", Algorithm.ED25519),
}


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[softhsm.SoftHSM]:
    with softhsm.run_softhsm(tmp_path_factory.mktemp("softhsm")) as token_store:
        token_store.init_token("safeguard", "1111")
        token_store.init_token("spare", "2222")
        for label, (key_id, key_type, _) in KEYS.items():
            token_store.generate_key("safeguard", label, key_id, key_type)
        token_store.generate_key("spare", "twin", "01", "EC:prime256v1")
        token_store.generate_key("spare", "twin", "02", "EC:prime256v1")
        with softhsm.activated(token_store):
            yield token_store


@pytest.mark.parametrize("label", list(KEYS))
def test_signatures_verify_with_cryptography(hsm: softhsm.SoftHSM, label: str) -> None:
    key_id, _, algorithm = KEYS[label]
    with PKCS11Signer(hsm.uri("safeguard", label, key_id)) as signer:
        assert signer.algorithm is algorithm
        message = b"safeguard signs this"
        signature = signer.sign(message)
        verify_signature(signer.public_key, signature, message)
        key = signer.public_key
        if isinstance(key, ec.EllipticCurvePublicKey):
            hash_algorithm = hashes.SHA256() if label == "p256" else hashes.SHA384()
            key.verify(signature, message, ec.ECDSA(hash_algorithm))
            digest = hashes.Hash(hash_algorithm)
            digest.update(message)
            raw_digest = digest.finalize()
            verify_digest_signature(key, signer.sign_digest(raw_digest), raw_digest)
        else:
            assert isinstance(key, ed25519.Ed25519PublicKey)
            key.verify(signature, message)
            with pytest.raises(KeyUnsupported):
                signer.sign_digest(b"\x00" * 32)
        assert signer.public_key_pem.startswith(b"-----BEGIN PUBLIC KEY-----")
        assert signer.key_id


def test_lookup_by_label_or_id_alone(hsm: softhsm.SoftHSM) -> None:
    with (
        PKCS11Signer(hsm.uri("safeguard", "p256")) as by_label,
        PKCS11Signer(hsm.uri("safeguard", key_id="01")) as by_id,
    ):
        assert by_label.key_id == by_id.key_id


def test_pin_from_file_and_argument(hsm: softhsm.SoftHSM, tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("1111\n")
    uri = hsm.uri("safeguard", "p256", pin_in_uri=False) + f"&pin-source=file:{pin_file}"
    with PKCS11Signer(uri) as signer:
        assert signer.sign(b"x")
    with PKCS11Signer(hsm.uri("safeguard", "p256", pin_in_uri=False), pin="1111") as signer:
        assert signer.sign(b"x")


def test_session_is_shared_safely_between_threads(hsm: softhsm.SoftHSM) -> None:
    with PKCS11Signer(hsm.uri("safeguard", "p256")) as signer:
        messages = [f"message {i}".encode() for i in range(400)]
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            signatures = list(pool.map(signer.sign, messages))
        elapsed = time.monotonic() - started
        for message, signature in zip(messages, signatures, strict=True):
            verify_signature(signer.public_key, signature, message)
        assert len(messages) / elapsed > 200, f"only {len(messages) / elapsed:.0f} signatures/s"


def test_wrong_pin_is_a_clear_error(hsm: softhsm.SoftHSM) -> None:
    with pytest.raises(PKCS11PinInvalid) as info:
        PKCS11Signer(hsm.uri("safeguard", "p256", pin="0000"))
    assert info.value.code == "PKCS11_PIN_INVALID"
    assert info.value.exit_code == 2
    assert info.value.hint
    assert "0000" not in str(info.value)


def test_missing_token_and_object(hsm: softhsm.SoftHSM) -> None:
    with pytest.raises(PKCS11TokenNotFound):
        PKCS11Signer(hsm.uri("nope", "p256", pin="1111"))
    with pytest.raises(PKCS11ObjectNotFound):
        PKCS11Signer(hsm.uri("safeguard", "absent"))
    with pytest.raises(PKCS11ObjectNotFound, match="several"):
        PKCS11Signer(hsm.uri("spare", "twin"))
    with PKCS11Signer(hsm.uri("spare", "twin", "02")) as signer:
        assert signer.sign(b"x")


def test_bad_module_and_uri(hsm: softhsm.SoftHSM, tmp_path: Path) -> None:
    with pytest.raises(PKCS11Unavailable):
        PKCS11Signer(f"pkcs11:token=safeguard;object=p256?module-path={tmp_path}/none.so")
    with pytest.raises(PKCS11URIInvalid):
        PKCS11Signer("pkcs11:token=safeguard;object=p256", env={})
    with pytest.raises(PKCS11URIInvalid):
        PKCS11Signer(f"pkcs11:token=safeguard?module-path={hsm.module}")


def test_closed_signer_refuses(hsm: softhsm.SoftHSM) -> None:
    signer = PKCS11Signer(hsm.uri("safeguard", "p256"))
    signer.close()
    with pytest.raises(PKCS11Unavailable):
        signer.sign(b"x")


def test_open_session_does_not_bypass_the_pin(hsm: softhsm.SoftHSM) -> None:
    """While one signer holds the token's logged-in session, another must still know the PIN."""
    with PKCS11Signer(hsm.uri("safeguard", "p256")) as holder:
        with PKCS11Signer(hsm.uri("safeguard", "p384", "02")) as same_pin:
            assert same_pin.sign(b"x")
        for hostile in (
            hsm.uri("safeguard", "p256", pin="0000"),
            hsm.uri("safeguard", "p256", pin="11110"),
            hsm.uri("safeguard", "p256", pin=""),
            hsm.uri("safeguard", "p256", pin_in_uri=False),
        ):
            with pytest.raises(PKCS11PinInvalid) as info:
                PKCS11Signer(hostile, env={})
            assert "0000" not in str(info.value)
        with pytest.raises(PKCS11PinInvalid):
            PKCS11Signer(hsm.uri("safeguard", "p256", pin_in_uri=False), pin="1112")
        assert holder.sign(b"still works")
        with PKCS11Signer(hsm.uri("safeguard", "p256", pin_in_uri=False), pin="1111") as again:
            verify_signature(again.public_key, again.sign(b"y"), b"y")
