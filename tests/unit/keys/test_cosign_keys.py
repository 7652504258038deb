"""cosign key files: cosign's own test keys decrypt, ours have cosign's exact layout."""

from __future__ import annotations

import base64
import json
import os
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


def test_force_replaces_key_files_atomically_private_and_not_through_symlinks(
    tmp_path: Path,
) -> None:
    """--force: an old world-readable cosign.key becomes a new 0600 file; symlinks are replaced,
    not followed; no temporary file is left behind."""
    prefix = tmp_path / "cosign"
    key_path, pub_path = tmp_path / "cosign.key", tmp_path / "cosign.pub"
    key_path.write_bytes(b"old key")
    key_path.chmod(0o644)
    pub_path.write_bytes(b"old pub")
    generate_key_pair(prefix, "secret", overwrite=True)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(pub_path.stat().st_mode) == 0o644 & ~umask
    signer = load_signer(key_path, "secret")
    assert signer.public_key_pem == pub_path.read_bytes()

    # Hostile: cosign.key and cosign.pub are symlinks to files elsewhere.
    victim_key, victim_pub = tmp_path / "victim-key", tmp_path / "victim-pub"
    victim_key.write_bytes(b"victim")
    victim_key.chmod(0o644)
    victim_pub.write_bytes(b"victim pub")
    key_path.unlink()
    pub_path.unlink()
    key_path.symlink_to(victim_key)
    pub_path.symlink_to(victim_pub)
    generate_key_pair(prefix, "secret", overwrite=True)
    assert victim_key.read_bytes() == b"victim" and victim_pub.read_bytes() == b"victim pub"
    assert not key_path.is_symlink() and not pub_path.is_symlink()
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert load_signer(key_path, "secret").public_key_pem == pub_path.read_bytes()

    # Without --force, a dangling symlink counts as an existing file and nothing is written.
    other = tmp_path / "other"
    (tmp_path / "other.key").symlink_to(tmp_path / "nowhere")
    with pytest.raises(KeyFileExists):
        generate_key_pair(other, "secret")
    assert not (tmp_path / "nowhere").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_key_file_writer_refuses_existing_without_overwrite(tmp_path: Path) -> None:
    from safeguard.keys.cosign_keys import write_key_file

    target = tmp_path / "k.key"
    write_key_file(target, b"one", 0o600, overwrite=False)
    with pytest.raises(KeyFileExists):
        write_key_file(target, b"two", 0o600, overwrite=False)
    assert target.read_bytes() == b"one"
    write_key_file(target, b"three", 0o600, overwrite=True)
    assert target.read_bytes() == b"three"
    assert [p.name for p in tmp_path.iterdir()] == ["k.key"]
