"""Independent proof: sigstore-js (``@sigstore/verify``, pinned in tests/js/package-lock.json)
accepts what Safeguard signs with its private log, and refuses it once tampered.

``tests/js/verify.mjs BUNDLE TRUSTED_ROOT KEY [ARTIFACT]`` exits 0 only when sigstore-js's
``Verifier`` accepts (bundle schema, SET, inclusion proof against a checkpoint signed by a log of
the trusted root, entry body, signature, public key found by the bundle's hint). Covered: a blob
message-signature bundle (hashedrekord 0.0.1), a blob attestation and the image signature bundle
read back from the registry's referrers (dsse 0.0.1; the script also checks the statement names
the artifact: the blob, or the image manifest). Skipped only when ``node`` is absent; the npm
packages come from ``scripts/install-test-deps.sh`` (``npm ci --prefix tests/js``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from safeguard.cli.app import app
from safeguard.core import mediatypes as mt
from safeguard.core.manifest import parse_manifest
from safeguard.keys.cosign_keys import generate_key_pair
from safeguard.oci.client import RegistryClient
from tests.integration.test_tlog_signing import LogServer, start_log_server
from tests.unit.oci.artifacts import image, push

JS = Path(__file__).parents[1] / "js"
NODE = shutil.which("node")
PASSWORD = "sigstore-js"
SLSA_PREDICATE = (
    Path(__file__).parents[1]
    / "fixtures"
    / "vectors"
    / "sigstore-python"
    / "slsa_predicate_v1_0.json"
)
runner = CliRunner()

pytestmark = pytest.mark.skipif(
    NODE is None, reason="node is not installed: sigstore-js cannot run"
)


@pytest.fixture(scope="module", autouse=True)
def npm_packages() -> None:
    if not (JS / "node_modules" / "@sigstore" / "verify").is_dir():
        pytest.fail(
            "tests/js has no node_modules: run `npm ci --prefix tests/js --no-audit --no-fund` "
            "(scripts/install-test-deps.sh does)"
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LogServer]:
    yield from start_log_server(tmp_path_factory.mktemp("tlog-js"))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    base = tmp_path_factory.mktemp("js-keys")
    key, pub = generate_key_pair(base / "cosign", PASSWORD)
    _, other = generate_key_pair(base / "other", PASSWORD)
    return key, pub, other


@pytest.fixture(scope="module")
def root(server: LogServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("js-root") / "trusted_root.json"
    assert cli("tlog", "export-trusted-root", "--url", server.url, "--out", str(out)).exit_code == 0
    return out


def cli(*args: str) -> Any:
    result = runner.invoke(app, list(args), env={"COSIGN_PASSWORD": PASSWORD})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def sigstore_js(
    bundle: Path, root: Path, key: Path, artifact: Path | None
) -> tuple[int, dict[str, Any]]:
    assert NODE is not None
    args = [NODE, str(JS / "verify.mjs"), str(bundle), str(root), str(key)]
    if artifact is not None:
        args.append(str(artifact))
    done = subprocess.run(args, capture_output=True, timeout=60, check=False)
    assert done.stdout, done.stderr.decode(errors="replace")
    return done.returncode, json.loads(done.stdout)


@pytest.fixture(scope="module")
def blob(
    server: LogServer, keys: tuple[Path, Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    workdir = tmp_path_factory.mktemp("js-blob")
    # A first entry, so that the tested one has a non-empty inclusion proof.
    padding = workdir / "padding"
    padding.write_bytes(b"padding\n")
    cli("sign-blob", "--key", str(keys[0]), "--tlog-url", server.url, str(padding))
    artifact = workdir / "app.tar.gz"
    artifact.write_bytes(b"release\n" * 64)
    bundle = workdir / "app.sigstore.json"
    made = cli("sign-blob", "--key", str(keys[0]), "--tlog-url", server.url,
               "--bundle", str(bundle), str(artifact))  # fmt: skip
    assert made.exit_code == 0, made.output
    return artifact, bundle


def test_sigstore_js_accepts_a_logged_blob_signature(
    blob: tuple[Path, Path], keys: tuple[Path, Path, Path], root: Path
) -> None:
    artifact, bundle = blob
    code, out = sigstore_js(bundle, root, keys[1], artifact)
    assert code == 0, out
    assert out["verified"] and out["content"] == "messageSignature" and out["signerKeyMatches"]
    (entry,) = out["tlogEntries"]
    assert entry["kind"] == "hashedrekord/0.0.1"
    assert entry["inclusionPromise"] and entry["inclusionProof"]
    # Safeguard agrees.
    assert cli("verify-blob", "--key", str(keys[1]), "--trusted-root", str(root),
               "--bundle", str(bundle), str(artifact)).exit_code == 0  # fmt: skip


def _tampered(bundle: Path, out: Path, change: Any) -> Path:
    doc = json.loads(bundle.read_text())
    change(doc)
    out.write_text(json.dumps(doc))
    return out


def _flip(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[len(raw) // 2] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _entry(doc: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = doc["verificationMaterial"]["tlogEntries"][0]
    return entry


def _checkpoint_sig(doc: dict[str, Any]) -> None:
    checkpoint = _entry(doc)["inclusionProof"]["checkpoint"]
    text, _, line = checkpoint["envelope"].rstrip("\n").rpartition("\n")
    prefix, _, sig = line.rpartition(" ")
    checkpoint["envelope"] = f"{text}\n{prefix} {_flip(sig)}\n"


TAMPERED = {
    "set": (
        lambda d: _entry(d)["inclusionPromise"].update(
            signedEntryTimestamp=_flip(_entry(d)["inclusionPromise"]["signedEntryTimestamp"])
        ),
        "TLOG_INCLUSION_PROMISE_ERROR",
    ),
    "checkpoint-signature": (_checkpoint_sig, "TLOG_INCLUSION_PROOF_ERROR"),
    "proof-hash": (
        lambda d: _entry(d)["inclusionProof"].update(
            hashes=[_flip(h) for h in _entry(d)["inclusionProof"]["hashes"]]
        ),
        "TLOG_INCLUSION_PROOF_ERROR",
    ),
    "signature": (
        lambda d: d["messageSignature"].update(signature=_flip(d["messageSignature"]["signature"])),
        "TLOG_BODY_ERROR",
    ),
    "no-log-entry": (
        lambda d: d["verificationMaterial"].update(tlogEntries=[]),
        "TIMESTAMP_ERROR",
    ),
}


@pytest.mark.parametrize("name", sorted(TAMPERED))
def test_sigstore_js_refuses_a_tampered_blob_bundle(
    name: str, blob: tuple[Path, Path], keys: tuple[Path, Path, Path], root: Path, tmp_path: Path
) -> None:
    artifact, bundle = blob
    change, reason = TAMPERED[name]
    forged = _tampered(bundle, tmp_path / "forged.json", change)
    code, out = sigstore_js(forged, root, keys[1], artifact)
    assert code == 1 and not out["verified"] and out["code"] == reason, out


def test_sigstore_js_refuses_other_artifact_key_or_log(
    blob: tuple[Path, Path], keys: tuple[Path, Path, Path], root: Path, tmp_path: Path
) -> None:
    artifact, bundle = blob
    other = tmp_path / "other"
    other.write_bytes(b"not the release\n")
    code, out = sigstore_js(bundle, root, keys[1], other)
    assert code == 1 and out["code"] == "SIGNATURE_ERROR"
    code, out = sigstore_js(bundle, root, keys[2], artifact)
    assert code == 1 and out["code"] == "PUBLIC_KEY_ERROR"  # the hint names another key
    # A trusted root whose log sits at another URL: sigstore-js matches the checkpoint's key name
    # against the log's baseUrl, so the checkpoint is not accepted.
    doc = json.loads(root.read_text())
    doc["tlogs"][0]["baseUrl"] = "https://log.example"
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps(doc))
    code, out = sigstore_js(bundle, moved, keys[1], artifact)
    assert code == 1 and out["code"] == "TLOG_INCLUSION_PROOF_ERROR"
    # An empty trusted root: no log to check the entry against.
    doc["tlogs"] = []
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps(doc))
    code, out = sigstore_js(bundle, empty, keys[1], artifact)
    assert code == 1
    code, out = sigstore_js(bundle, root, keys[1], None)
    assert code == 2


def test_sigstore_js_accepts_a_logged_blob_attestation(
    server: LogServer, keys: tuple[Path, Path, Path], root: Path, tmp_path: Path
) -> None:
    artifact = tmp_path / "app.bin"
    artifact.write_bytes(b"binary\n")
    bundle = tmp_path / "att.sigstore.json"
    made = cli("attest-blob", "--key", str(keys[0]), "--tlog-url", server.url,
               "--predicate", str(SLSA_PREDICATE), "--type", "slsaprovenance1",
               "--bundle", str(bundle), str(artifact))  # fmt: skip
    assert made.exit_code == 0, made.output
    code, out = sigstore_js(bundle, root, keys[1], artifact)
    assert code == 0, out
    assert out["content"] == "dsseEnvelope" and out["subjectMatched"] is True
    assert out["tlogEntries"][0]["kind"] == "dsse/0.0.1"
    other = tmp_path / "other.bin"
    other.write_bytes(b"other\n")
    code, out = sigstore_js(bundle, root, keys[1], other)
    assert code == 1 and out["code"] == "SUBJECT_MISMATCH"

    # The payload is what DSSE signs: an edited statement fails in sigstore-js itself.
    def edit(doc: dict[str, Any]) -> None:
        statement = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
        statement["predicate"] = {"edited": True}
        doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()

    code, out = sigstore_js(_tampered(bundle, tmp_path / "edited.json", edit), root, keys[1], None)
    assert code == 1 and out["code"] == "TLOG_BODY_ERROR"  # the log recorded another payload


async def _image_bundle(host: str) -> tuple[str, str, bytes]:
    repo = f"js/{uuid.uuid4().hex[:10]}"
    art = image()
    async with RegistryClient(host) as client:
        await push(client, repo, art, "v1")
    return repo, str(art.digest), art.raw


async def _referrer_bundle(host: str, repo: str, digest: str) -> bytes:
    from safeguard.core.digest import Digest

    async with RegistryClient(host) as client:
        listed = await client.referrers.list(repo, Digest.parse(digest))
        (descriptor,) = [d for d in listed.descriptors if d.artifact_type == mt.SIGSTORE_BUNDLE_V03]
        manifest = parse_manifest((await client.manifests.get(repo, descriptor.digest)).raw)
        return await client.blobs.get(repo, manifest.layers[0].digest)


def test_sigstore_js_accepts_the_image_signature_from_the_registry(
    server: LogServer, keys: tuple[Path, Path, Path], root: Path, tmp_path: Path
) -> None:
    host = server.registry.host
    repo, digest, manifest = asyncio.run(_image_bundle(host))
    ref = f"{host}/{repo}@{digest}"
    assert cli("sign", "--key", str(keys[0]), "--tlog-url", server.url, ref).exit_code == 0
    bundle = tmp_path / "image.sigstore.json"
    bundle.write_bytes(asyncio.run(_referrer_bundle(host, repo, digest)))
    artifact = tmp_path / "manifest.json"
    artifact.write_bytes(manifest)
    code, out = sigstore_js(bundle, root, keys[1], artifact)
    assert code == 0, out
    assert out["content"] == "dsseEnvelope" and out["subjectMatched"] is True
    assert out["tlogEntries"][0]["kind"] == "dsse/0.0.1"
    code, out = sigstore_js(bundle, root, keys[2], artifact)
    assert code == 1
