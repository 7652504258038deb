"""DSSE against the spec's test vector (secure-systems-lab/dsse protocol.md), hostile input."""

from __future__ import annotations

import json

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from safeguard.core.errors import VerificationFailed
from safeguard.formats import dsse
from safeguard.formats.errors import DSSEInvalid

# protocol.md "Test Vectors": ECDSA P-256/SHA-256, signature as raw r||s.
X = 46950820868899156662930047687818585632848591499744589407958293238635476079160
Y = 5640078356564379163099075877009565129882514886557779369047442380624545832820
D = 97358161215184420915383655311931858321456579547487070936769975997791359926199
SPEC_ENVELOPE = (
    b'{"payload": "aGVsbG8gd29ybGQ=",\n "payloadType": "http://example.com/HelloWorld",\n'
    b' "signatures": [{"sig": "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfU'
    b'iHqJPcIAriEGAHTVeCUjW2JIZA=="}]}'
)


def _spec_verifier(message: bytes, signature: bytes, keyid: str) -> bool:
    key = ec.EllipticCurvePublicNumbers(X, Y, ec.SECP256R1()).public_key()
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        key.verify(der, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def test_pae_matches_spec() -> None:
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert dsse.pae("", b"") == b"DSSEv1 0  0 "
    assert dsse.pae("é", b"x") == "DSSEv1 2 é 1 x".encode()


def test_spec_vector_parses_and_verifies() -> None:
    envelope = dsse.Envelope.from_json(SPEC_ENVELOPE)
    assert envelope.payload == b"hello world"
    assert envelope.signatures[0].keyid == ""
    assert dsse.verify(envelope, _spec_verifier) == b"hello world"


def test_tampered_payload_fails_verification() -> None:
    envelope = dsse.Envelope.from_json(SPEC_ENVELOPE)
    forged = dsse.Envelope("http://example.com/HelloWorld", b"hello w0rld", envelope.signatures)
    with pytest.raises(VerificationFailed):
        dsse.verify(forged, _spec_verifier)
    retyped = dsse.Envelope("http://example.com/Other", b"hello world", envelope.signatures)
    with pytest.raises(VerificationFailed):
        dsse.verify(retyped, _spec_verifier)


def test_sign_and_serialise_as_cosign() -> None:
    key = ec.derive_private_key(D, ec.SECP256R1())
    envelope = dsse.sign(
        "application/vnd.in-toto+json", b"{}", lambda m: key.sign(m, ec.ECDSA(hashes.SHA256()))
    )
    raw = envelope.to_json()
    assert raw.startswith(b'{"payloadType":"application/vnd.in-toto+json","payload":"e30=",')
    assert b'"signatures":[{"keyid":"","sig":"' in raw
    public = key.public_key()

    def verifier(message: bytes, signature: bytes, keyid: str) -> bool:
        public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        return True

    assert dsse.verify(dsse.Envelope.from_json(raw), verifier) == b"{}"


def test_threshold_counts_each_verifier_once() -> None:
    envelope = dsse.Envelope.from_json(SPEC_ENVELOPE)
    with pytest.raises(VerificationFailed):
        dsse.verify(envelope, [_spec_verifier, _spec_verifier], threshold=3)
    assert dsse.verify(envelope, [_spec_verifier, _spec_verifier], threshold=2) == b"hello world"

    def broken(message: bytes, signature: bytes, keyid: str) -> bool:
        raise RuntimeError("boom")

    with pytest.raises(VerificationFailed):
        dsse.verify(envelope, broken)


def test_urlsafe_base64_and_unknown_fields_accepted() -> None:
    doc = {"payload": "-_8=", "payloadType": "t", "signatures": [{"sig": "AA==", "x": 1}], "y": 2}
    envelope = dsse.Envelope.from_json(json.dumps(doc))
    assert envelope.payload == b"\xfb\xff"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b'{"payloadType":"t","signatures":[]}',
        b'{"payload":"e30=","signatures":[]}',
        b'{"payload":"e30=","payloadType":"t"}',
        b'{"payload":"e30","payloadType":"t","signatures":[]}',
        b'{"payload":"e30=","payloadType":"t","signatures":[{"keyid":"k"}]}',
        b'{"payload":"e30=","payloadType":"t","signatures":[{"sig":"!!"}]}',
        b'{"payload":"e30=","payloadType":"t","signatures":[{"sig":"AA==","keyid":5}]}',
        b'{"payload":"e30=","payloadType":"t","signatures":["AA=="]}',
        b'{"payload":"e30=","payloadType":7,"signatures":[]}',
        SPEC_ENVELOPE[:40],
    ],
)
def test_hostile_envelopes_raise_typed_error(raw: bytes) -> None:
    with pytest.raises(DSSEInvalid):
        dsse.Envelope.from_json(raw)
