"""Blob commands through the CLI: sign-blob/verify-blob (bytes and ``sha256:<hex>``), DSSE bundles
whose subject must be the file, attest-blob/verify-blob-attestation, keyless verify-blob on real
public-good bundles compared with sigstore-python, and hostile bundles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sigstore.errors import VerificationError
from sigstore.models import Bundle as SigstoreBundle
from sigstore.verify import Verifier
from sigstore.verify.policy import Identity
from typer.testing import CliRunner

from safeguard.cli.app import app
from safeguard.core.digest import Digest
from safeguard.keys.cosign_keys import generate_key_pair
from safeguard.verify.trustroot import load_trust_material

runner = CliRunner()
PASSWORD = "blob pw"
FIX = Path(__file__).parents[1] / "fixtures"
KL = FIX / "keyless"
SLSA = FIX / "vectors" / "sigstore-python" / "slsa_predicate_v1_0.json"
GH = "https://token.actions.githubusercontent.com"


def run(*args: str) -> Any:
    result = runner.invoke(app, list(args), env={"COSIGN_PASSWORD": PASSWORD})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.stderr
    return result


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    key, pub = generate_key_pair(tmp_path / "cosign", PASSWORD)
    _, other = generate_key_pair(tmp_path / "other", PASSWORD)
    artifact = tmp_path / "app.tar.gz"
    artifact.write_bytes(b"release bytes " * 100)
    return key, pub, other, artifact


def test_sign_blob_verify_blob(setup: tuple[Path, Path, Path, Path], tmp_path: Path) -> None:
    key, pub, other, artifact = setup
    bundle = tmp_path / "app.sigstore.json"
    signed = run("sign-blob", "--key", str(key), "--bundle", str(bundle), str(artifact))
    assert signed.exit_code == 0, signed.stderr
    doc = json.loads(bundle.read_text())
    assert doc["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert doc["messageSignature"]["messageDigest"]["algorithm"] == "SHA2_256"
    assert signed.stdout.strip() == doc["messageSignature"]["signature"]
    ok = run("verify-blob", "--key", str(pub), "--bundle", str(bundle), str(artifact))
    assert ok.exit_code == 0 and "Verified OK" in ok.stderr
    digest = str(Digest.of(artifact.read_bytes()))
    assert run("verify-blob", "--key", str(pub), "--bundle", str(bundle), digest).exit_code == 0
    wrong_key = run("verify-blob", "--key", str(other), "--bundle", str(bundle), str(artifact))
    assert wrong_key.exit_code == 1 and "SIGNATURE_INVALID" in wrong_key.stderr
    changed = tmp_path / "changed"
    changed.write_bytes(artifact.read_bytes() + b"!")
    tampered = run(
        "verify-blob", "--key", str(pub), "--bundle", str(bundle), str(changed), "-o", "json"
    )
    assert tampered.exit_code == 1
    assert json.loads(tampered.stdout)["evidence"][0]["code"] == "DIGEST_MISMATCH"


def test_dsse_bundles_for_blobs(setup: tuple[Path, Path, Path, Path], tmp_path: Path) -> None:
    key, pub, _, artifact = setup
    bundle = tmp_path / "att.sigstore.json"
    made = run(
        "attest-blob",
        "--key",
        str(key),
        "--predicate",
        str(SLSA),
        "--type",
        "slsaprovenance1",
        "--bundle",
        str(bundle),
        str(artifact),
    )
    assert made.exit_code == 0, made.stderr
    # verify-blob takes a DSSE bundle whose statement names the file.
    assert (
        run("verify-blob", "--key", str(pub), "--bundle", str(bundle), str(artifact)).exit_code == 0
    )
    other = tmp_path / "other"
    other.write_bytes(b"not the subject")
    refused = run("verify-blob", "--key", str(pub), "--bundle", str(bundle), str(other))
    assert refused.exit_code == 1 and "SUBJECT_MISMATCH" in refused.stderr
    typed = run(
        "verify-blob-attestation",
        "--key",
        str(pub),
        "--bundle",
        str(bundle),
        "--type",
        "slsaprovenance1",
        str(artifact),
    )
    assert typed.exit_code == 0, typed.stderr
    mismatch = run(
        "verify-blob-attestation",
        "--key",
        str(pub),
        "--bundle",
        str(bundle),
        "--type",
        "spdxjson",
        str(artifact),
    )
    assert mismatch.exit_code == 1 and "PREDICATE_TYPE_MISMATCH" in mismatch.stderr
    digest = str(Digest.of(artifact.read_bytes()))
    by_digest = run("verify-blob-attestation", "--key", str(pub), "--bundle", str(bundle), digest)
    assert by_digest.exit_code == 0


@pytest.mark.parametrize(
    ("pattern", "allowed"),
    [
        (r"^https://github\.com/trailofbits/rfc8785\.py/", True),
        (r"^https://github\.com/evil/", False),
    ],
)
def test_keyless_verify_blob_matches_sigstore_python(pattern: str, allowed: bool) -> None:
    artifact = KL / "bundle_v3_github.whl"
    bundle = KL / "bundle_v3_github.whl.sigstore"
    root = KL / "public-good.trusted_root.json"
    result = run(
        "verify-blob",
        "--bundle",
        str(bundle),
        "--certificate-identity-regexp",
        pattern,
        "--certificate-oidc-issuer",
        GH,
        "--trusted-root",
        str(root),
        str(artifact),
    )
    assert (result.exit_code == 0) is allowed, result.stderr
    if not allowed:
        assert result.exit_code == 1 and "IDENTITY_MISMATCH" in result.stderr
    # sigstore-python's verdict on the same input: the identity the regexp is about.
    signer = (
        "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
    )
    identity = signer if allowed else "https://github.com/evil/x"
    verifier = Verifier(trusted_root=load_trust_material(root).sigstore_root())
    sigstore_bundle = SigstoreBundle.from_json(bundle.read_bytes())
    if allowed:
        verifier.verify_artifact(
            artifact.read_bytes(), sigstore_bundle, Identity(identity=identity, issuer=GH)
        )
    else:
        with pytest.raises(VerificationError):
            verifier.verify_artifact(
                artifact.read_bytes(), sigstore_bundle, Identity(identity=identity, issuer=GH)
            )
    # Without the trusted root a keyless bundle cannot be checked: a usage error.
    no_root = run(
        "verify-blob",
        "--bundle",
        str(bundle),
        "--certificate-identity-regexp",
        pattern,
        "--certificate-oidc-issuer",
        GH,
        str(artifact),
    )
    assert no_root.exit_code == 2


def test_hostile_bundles_and_inputs(setup: tuple[Path, Path, Path, Path], tmp_path: Path) -> None:
    key, pub, _, artifact = setup
    bundle = tmp_path / "b.json"
    assert (
        run("sign-blob", "--key", str(key), "--bundle", str(bundle), str(artifact)).exit_code == 0
    )
    raw = bundle.read_bytes()
    cases = {
        "truncated": raw[: len(raw) // 2],
        "not json": b"\xff\xfe garbage",
        "wrong media type": raw.replace(b"bundle.v0.3+json", b"bundle.v9+json"),
        "no material": json.dumps({**json.loads(raw), "verificationMaterial": {}}).encode(),
        "two contents": json.dumps(
            {
                **json.loads(raw),
                "dsseEnvelope": {"payload": "", "payloadType": "x", "signatures": []},
            }
        ).encode(),
    }
    for name, content in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_bytes(content)
        result = run(
            "verify-blob", "--key", str(pub), "--bundle", str(path), str(artifact), "-o", "json"
        )
        assert result.exit_code == 1, name
        assert json.loads(result.stdout)["evidence"][0]["code"] == "BUNDLE_INVALID", name
    assert (
        run(
            "verify-blob", "--key", str(pub), "--bundle", str(tmp_path / "missing"), str(artifact)
        ).exit_code
        == 2
    )
    assert (
        run(
            "verify-blob", "--key", str(pub), "--bundle", str(bundle), str(tmp_path / "nofile")
        ).exit_code
        == 2
    )
    assert run("sign-blob", "--key", str(key), str(tmp_path / "nofile")).exit_code == 2
    bad = runner.invoke(
        app, ["sign-blob", "--key", str(key), str(artifact)], env={"COSIGN_PASSWORD": "wrong"}
    )
    assert bad.exit_code == 2 and "KEY_PASSWORD_INVALID" in bad.stderr
