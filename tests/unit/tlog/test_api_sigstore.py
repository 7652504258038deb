"""sigstore-python checks our entries: the exported trusted_root.json loads with
``sigstore.models.TrustedRoot``, and sigstore-python's own code verifies each Rekor v1 answer's
inclusion proof, checkpoint signature and root, and SET (``TransparencyLogEntry._verify``), and
its body matches the signed artifact (``_validate_hashedrekord_v001_entry_body``)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from safeguard.cli.app import app as cli
from safeguard.keys import SoftwareSigner
from safeguard.server import SafeguardApp, create_app
from tests.unit.tlog.tlog_helpers import dsse, hashedrekord

sigstore_models = pytest.importorskip("sigstore.models")
from sigstore._internal.trust import KeyringPurpose  # noqa: E402
from sigstore.errors import VerificationError  # noqa: E402


@pytest.fixture
def node(tmp_path: Path) -> Iterator[SafeguardApp]:
    app = create_app(tmp_path / "data")
    yield app
    for close in app.closers:
        close()
    app.db.dispose()


def _export(tmp_path: Path, data_dir: Path) -> Path:
    from typer.testing import CliRunner

    out = tmp_path / "trusted_root.json"
    result = CliRunner().invoke(
        cli,
        [
            "tlog",
            "export-trusted-root",
            "--data-dir",
            str(data_dir),
            "--base-url",
            "http://log.example",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    return out


def test_sigstore_python_verifies_entries(tmp_path: Path, node: SafeguardApp) -> None:
    signer = SoftwareSigner.generate()
    with TestClient(node) as client:
        artifact = b"sigstore-python checks this"
        created = client.post("/api/v1/log/entries", json=hashedrekord(signer, artifact))
        assert created.status_code == 201
        dsse_created = client.post("/api/v1/log/entries", json=dsse(signer, b"{}")[0])
        assert dsse_created.status_code == 201
        fetched = client.get("/api/v1/log/entries", params={"logIndex": 0}).json()
        trusted_path = _export(tmp_path, node.data_dir)
        doc = json.loads(trusted_path.read_text())
        assert doc["mediaType"] == "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
        (tlog,) = doc["tlogs"]
        assert tlog["publicKey"]["keyDetails"] == "PKIX_ECDSA_P256_SHA_256"
        der = base64.b64decode(tlog["publicKey"]["rawBytes"])
        assert base64.b64decode(tlog["logId"]["keyId"]) == hashlib.sha256(der).digest()
        assert next(iter(created.json().values()))["logID"] == hashlib.sha256(der).hexdigest()

        trusted = sigstore_models.TrustedRoot.from_file(str(trusted_path))
        keyring = trusted.rekor_keyring(KeyringPurpose.VERIFY)
        for answer in (created.json(), dsse_created.json(), fetched):
            entry = sigstore_models.TransparencyLogEntry._from_v1_response(answer)
            entry._verify(keyring)

        # A tampered SET, proof or checkpoint is caught by the same code.
        tampered: list[dict[str, Any]] = []
        for mutate in ("set", "proof", "checkpoint"):
            bad = copy.deepcopy(created.json())
            inner = next(iter(bad.values()))
            if mutate == "set":
                inner["integratedTime"] += 1
            elif mutate == "proof":
                inner["verification"]["inclusionProof"]["rootHash"] = "00" * 32
            else:
                cp = inner["verification"]["inclusionProof"]["checkpoint"]
                inner["verification"]["inclusionProof"]["checkpoint"] = cp.replace(
                    "\n1\n", "\n2\n", 1
                )
            tampered.append(bad)
        for bad in tampered:
            entry = sigstore_models.TransparencyLogEntry._from_v1_response(bad)
            with pytest.raises(VerificationError):
                entry._verify(keyring)


def test_export_trusted_root_from_url_and_merge(tmp_path: Path) -> None:
    """Over real HTTP (a uvicorn subprocess): --url reads the key and the first entry's time;
    --merge keeps the public-good instances and adds ours."""
    from typer.testing import CliRunner

    from tests.fixtures.builtin import run_builtin

    public_good = (
        Path(__file__).resolve().parents[2] / "fixtures/keyless/public-good.trusted_root.json"
    )
    with run_builtin(tmp_path / "srv") as server:
        url = f"http://{server.host}"
        out = tmp_path / "merged.json"
        result = CliRunner().invoke(
            cli,
            [
                "tlog",
                "export-trusted-root",
                "--url",
                url,
                "--out",
                str(out),
                "--merge",
                str(public_good),
            ],
        )
        assert result.exit_code == 0, result.output
    merged = json.loads(out.read_text())
    original = json.loads(public_good.read_text())
    assert len(merged["tlogs"]) == len(original["tlogs"]) + 1
    # The log was created with the default name, so the root names it as its checkpoints do.
    assert merged["tlogs"][-1]["baseUrl"] == "https://safeguard"
    assert merged["certificateAuthorities"] == original["certificateAuthorities"]
    sigstore_models.TrustedRoot.from_file(str(out)).rekor_keyring(KeyringPurpose.VERIFY)
