"""cosign key files: cosign's own test keys decrypt, ours have cosign's exact layout."""

from __future__ import annotations

import base64
import json
import re
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from safeguard.keys import verify_signature
from safeguard.keys.cosign_keys import (
    COSIGN_PEM_TYPE,
    decrypt_private_key,
    encrypt_private_key,
    generate_key_pair,
    load_signer,
    resolve_password,
)
from safeguard.keys.errors import (
    KeyFileExists,
    KeyInvalid,
    KeyNotFound,
    KeyPasswordInvalid,
    KeyPasswordMissing,
)
from tests.unit.formats.vectors import read


@pytest.mark.parametrize("name", ["pemcosignkey", "pemsigstorekey"])
def test_cosign_test_keys_decrypt(name: str) -> None:
    key = decrypt_private_key(read(f"cosign/{name}.key"), b"hello")
    assert isinstance(key, ec.EllipticCurvePrivateKey)


def test_wrong_password_is_typed_with_hint() -> None:
    with pytest.raises(KeyPasswordInvalid) as info:
        decrypt_private_key(read("cosign/pemsigstorekey.key"), b"wrong")
    assert info.value.code == "KEY_PASSWORD_INVALID"
    assert info.value.exit_code == 2
    assert info.value.hint and "COSIGN_PASSWORD" in info.value.hint


def test_sec1_inside_is_rejected_as_cosign_does() -> None:
    with pytest.raises(KeyInvalid, match="PKCS#8"):
        decrypt_private_key(read("cosign/pemcosigneckey.key"), b"hello")


def test_written_file_has_cosigns_layout() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = encrypt_private_key(key, b"pw")
    lines = pem.decode().splitlines()
    assert lines[0] == "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"
    assert lines[-1] == "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----"
    assert all(len(line) == 64 for line in lines[1:-2])
    body = base64.b64decode("".join(lines[1:-1]))
    assert re.fullmatch(
        rb'\{"kdf":\{"name":"scrypt","params":\{"N":65536,"r":8,"p":1\},"salt":"[A-Za-z0-9+/]{43}="'
        rb'\},"cipher":\{"name":"nacl/secretbox","nonce":"[A-Za-z0-9+/]{32}"\},'
        rb'"ciphertext":"[A-Za-z0-9+/=]+"\}',
        body,
    )
    assert decrypt_private_key(pem, b"pw").private_numbers() == key.private_numbers()
    legacy = encrypt_private_key(key, b"pw", pem_type=COSIGN_PEM_TYPE, scrypt_params=(32768, 8, 1))
    assert legacy.startswith(b"-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----")
    assert decrypt_private_key(legacy, b"pw").private_numbers() == key.private_numbers()


def _tampered(change: dict[str, object]) -> bytes:
    pem = read("cosign/pemsigstorekey.key").decode()
    body = json.loads(base64.b64decode("".join(pem.splitlines()[1:-1])))
    for path, value in change.items():
        target = body
        *parents, leaf = path.split(".")
        for part in parents:
            target = target[part]
        target[leaf] = value
    encoded = base64.b64encode(json.dumps(body).encode()).decode()
    return _pem(encoded.encode())


def _pem(body: bytes) -> bytes:
    kind = b"ENCRYPTED SIGSTORE PRIVATE KEY"
    return b"-----BEGIN " + kind + b"-----\n" + body + b"\n-----END " + kind + b"-----\n"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not pem",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        _pem(b"!!!"),
        _pem(b"W10="),
        _tampered({"kdf.params.N": 1 << 30}),
        _tampered({"kdf.name": "pbkdf2"}),
        _tampered({"cipher.name": "aes"}),
        _tampered({"cipher.nonce": "AAAA"}),
        _tampered({"kdf.salt": 5}),
        _tampered({"ciphertext": "%%%"}),
    ],
)
def test_hostile_key_files(data: bytes) -> None:
    with pytest.raises(KeyInvalid):
        decrypt_private_key(data, b"hello")


def test_tampered_ciphertext_reads_as_wrong_password() -> None:
    with pytest.raises(KeyPasswordInvalid):
        decrypt_private_key(_tampered({"ciphertext": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}), b"hello")


def test_password_resolution() -> None:
    assert resolve_password("a", env={"COSIGN_PASSWORD": "b"}) == b"a"
    assert resolve_password(None, env={"COSIGN_PASSWORD": ""}) == b""
    assert resolve_password(None, env={}, prompt=lambda confirm: b"typed") == b"typed"
    with pytest.raises(KeyPasswordMissing):
        resolve_password(None, env={}, prompt=None)


def test_generate_key_pair_and_sign(tmp_path: Path) -> None:
    key_path, pub_path = generate_key_pair(tmp_path / "cosign", "secret")
    assert (key_path.name, pub_path.name) == ("cosign.key", "cosign.pub")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert pub_path.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----\n")
    signer = load_signer(key_path, env={"COSIGN_PASSWORD": "secret"}, prompt=None)
    assert signer.public_key_pem == pub_path.read_bytes()
    verify_signature(signer.public_key, signer.sign(b"data"), b"data")
    with pytest.raises(KeyFileExists):
        generate_key_pair(tmp_path / "cosign", "secret")
    with pytest.raises(KeyPasswordInvalid):
        load_signer(key_path, "nope")
    with pytest.raises(KeyNotFound):
        load_signer(tmp_path / "missing.key", "x")
