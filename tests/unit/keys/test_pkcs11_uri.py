from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from safeguard.keys.errors import KeyInvalid, KeyUnsupported, PKCS11URIInvalid
from safeguard.keys.pkcs11 import public_key_from_attributes
from safeguard.keys.pkcs11_uri import parse_pkcs11_uri


def test_rfc7512_examples() -> None:
    # RFC 7512 section 3 examples.
    uri = parse_pkcs11_uri(
        "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;"
        "manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;"
        "id=%69%95%3E%5C%F4%BD%EC%91;serial="
    )
    assert uri.token == "The Software PKCS#11 Softtoken"
    assert uri.path["manufacturer"] == b"Snake Oil, Inc."
    assert uri.object == "my-certificate" and uri.type == "cert"
    assert uri.id == bytes.fromhex("69953e5cf4bdec91")
    assert uri.serial == ""
    uri = parse_pkcs11_uri("pkcs11:object=my-sign-key;type=private?module-name=mypkcs11")
    assert uri.module_name == "mypkcs11"
    uri = parse_pkcs11_uri(
        "pkcs11:object=my-sign-key;type=private?module-path=/mnt/libmypkcs11.so.1"
    )
    assert uri.module_path == "/mnt/libmypkcs11.so.1"
    uri = parse_pkcs11_uri(
        "pkcs11:token=Software%20PKCS%2311%20softtoken;object=x?pin-source=file:/etc/token_pin"
    )
    assert uri.pin_source == "file:/etc/token_pin"
    uri = parse_pkcs11_uri("pkcs11:slot-description=Sun%20Metaslot;x-vendor=1")
    assert uri.path["x-vendor"] == b"1"
    assert parse_pkcs11_uri("pkcs11:").path == {}
    assert parse_pkcs11_uri("PKCS11:token=a").token == "a"


def test_redacted_hides_pin() -> None:
    uri = parse_pkcs11_uri("pkcs11:token=t;object=o?module-path=/lib.so&pin-value=1234")
    assert uri.pin_value == "1234"
    assert "1234" not in uri.redacted()
    assert parse_pkcs11_uri("pkcs11:slot-id=3").slot_id == 3


@pytest.mark.parametrize(
    "text",
    [
        "",
        "pkcs12:token=a",
        "token=a",
        "pkcs11:token",
        "pkcs11:token=a;;object=b",
        "pkcs11:token=a;token=b",
        "pkcs11:colour=red",
        "pkcs11:token=a?pin=1",
        "pkcs11:id=%zz",
        "pkcs11:id=%4",
        "pkcs11:type=banana",
        "pkcs11:slot-id=abc",
        "pkcs11:token=a b",
        "pkcs11:token=a?pin-value=1&pin-source=file:/x",
        "pkcs11:Token=a",
    ],
)
def test_hostile_uris(text: str) -> None:
    with pytest.raises(PKCS11URIInvalid):
        parse_pkcs11_uri(text)


def test_non_utf8_label_is_an_error() -> None:
    uri = parse_pkcs11_uri("pkcs11:token=%FF")
    with pytest.raises(PKCS11URIInvalid):
        _ = uri.token


P256_PARAMS = bytes.fromhex("06082a8648ce3d030107")


def test_public_key_from_token_attributes() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    wrapped = bytes([0x04, len(point)]) + point
    assert public_key_from_attributes(P256_PARAMS, wrapped) == key
    assert public_key_from_attributes(P256_PARAMS, point) == key
    ed = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = ed.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert public_key_from_attributes(b"\x13\x0cedwards25519", b"\x04\x20" + raw) == ed
    with pytest.raises(KeyUnsupported):
        public_key_from_attributes(bytes.fromhex("06052b81040023"), wrapped)
    with pytest.raises(KeyInvalid):
        public_key_from_attributes(P256_PARAMS, b"\x04\x03abc")
