"""P-384 keys sign the SHA-384 digest: ``sign-blob`` writes ``messageDigest`` ``SHA2_384`` and
``verify-blob`` checks it by file and by ``sha384:<hex>``, for a software key file and a SoftHSM2
token key; a digest of the wrong hash is a named refusal (``DIGEST_MISMATCH``), never
``MATERIAL_UNREADABLE``. Logged P-384 signatures are in tests/integration/test_tlog_signing.py."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from safeguard.cli.app import app
from safeguard.keys import load_public_key, verify_signature
from safeguard.keys.base import public_key_pem
from safeguard.keys.cosign_keys import encrypt_private_key
from tests.fixtures import softhsm

runner = CliRunner()
PASSWORD = "p384 pw"


def run(*args: str) -> Any:
    result = runner.invoke(app, list(args), env={"COSIGN_PASSWORD": PASSWORD})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def p384_key_files(directory: Path) -> tuple[str, Path]:
    private = ec.generate_private_key(ec.SECP384R1())
    key, pub = directory / "p384.key", directory / "p384.pub"
    key.write_bytes(encrypt_private_key(private, PASSWORD.encode()))
    pub.write_bytes(public_key_pem(private.public_key()))
    return str(key), pub


def check_p384_blob(keyref: str, pub: Path, tmp_path: Path) -> None:
    artifact = tmp_path / "release.tar.gz"
    data = b"p384 release\n" * 50
    artifact.write_bytes(data)
    bundle = tmp_path / "release.sigstore.json"
    signed = run("sign-blob", "--key", keyref, "--bundle", str(bundle), str(artifact))
    assert signed.exit_code == 0, signed.output
    doc = json.loads(bundle.read_text())
    message = doc["messageSignature"]
    assert message["messageDigest"]["algorithm"] == "SHA2_384"
    assert base64.b64decode(message["messageDigest"]["digest"]) == hashlib.sha384(data).digest()
    verify_signature(
        load_public_key(pub.read_bytes()), base64.b64decode(message["signature"]), data
    )

    def verify(target: str) -> Any:
        return run("verify-blob", "--key", str(pub), "--bundle", str(bundle), "-o", "json", target)

    by_file = verify(str(artifact))
    assert by_file.exit_code == 0, by_file.output
    by_digest = verify("sha384:" + hashlib.sha384(data).hexdigest())
    assert by_digest.exit_code == 0, by_digest.output
    # Hostile: the SHA-256 digest of the same file, a changed file, a sha384 of other bytes.
    for target, code in (
        ("sha256:" + hashlib.sha256(data).hexdigest(), "DIGEST_MISMATCH"),
        ("sha384:" + hashlib.sha384(data + b"!").hexdigest(), "DIGEST_MISMATCH"),
    ):
        refused = verify(target)
        assert refused.exit_code == 1, refused.output
        assert json.loads(refused.stdout)["evidence"][0]["code"] == code
    changed = tmp_path / "changed"
    changed.write_bytes(data + b"!")
    refused = verify(str(changed))
    assert refused.exit_code == 1
    assert json.loads(refused.stdout)["evidence"][0]["code"] == "DIGEST_MISMATCH"
    # Without messageDigest, a sha256 digest still reaches the signature check and is refused
    # with a named reason (the P-384 signature is over a 48-byte digest).
    del message["messageDigest"]
    bundle.write_text(json.dumps(doc))
    refused = verify("sha256:" + hashlib.sha256(data).hexdigest())
    assert refused.exit_code == 1
    assert json.loads(refused.stdout)["evidence"][0]["code"] == "SIGNATURE_INVALID"
    assert verify(str(artifact)).exit_code == 0
    assert verify("sha384:" + hashlib.sha384(data).hexdigest()).exit_code == 0


def test_p384_key_file_sign_blob_verify_blob(tmp_path: Path) -> None:
    keyref, pub = p384_key_files(tmp_path)
    check_p384_blob(keyref, pub, tmp_path)


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[softhsm.SoftHSM]:
    if not softhsm.available():
        pytest.skip("SoftHSM2/OpenSC not installed")
    with softhsm.run_softhsm(tmp_path_factory.mktemp("softhsm-p384")) as token_store:
        token_store.init_token("p384", "3841")
        token_store.generate_key("p384", "release", "38", "EC:secp384r1")
        with softhsm.activated(token_store):
            yield token_store


def test_p384_token_sign_blob_verify_blob(hsm: softhsm.SoftHSM, tmp_path: Path) -> None:
    from safeguard.keys.pkcs11 import PKCS11Signer

    keyref = hsm.uri("p384", "release", "38")
    with PKCS11Signer(keyref) as signer:
        pub = tmp_path / "token.pub"
        pub.write_bytes(signer.public_key_pem)
    check_p384_blob(keyref, pub, tmp_path)
