"""Signing with Safeguard's private transparency log, end to end over real HTTP.

``safeguard serve`` runs in a subprocess (registry and log in one process, as users run it; its
log signs checkpoints under the host clients reach it at, ``SAFEGUARD_TLOG_HOSTNAME``, as Rekor
does); ``sign``/``attest``/``sign-blob``/``attest-blob --tlog-url`` record entries in it through
``safeguard.tlog.client``; ``tlog export-trusted-root`` names it; ``verify*`` with ``--key`` and
``--trusted-root`` then checks the SET, the inclusion proof and the checkpoint and reports the
integrated time as the signing time. Every tampering (SET, proof, checkpoint, body, log ID, log
key, validity window) and an unlogged signature are refused with their named reasons.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from safeguard.cli.app import app
from safeguard.core import mediatypes as mt
from safeguard.core.digest import Digest
from safeguard.core.manifest import parse_manifest
from safeguard.formats.bundle import Bundle
from safeguard.formats.cosign_sig import (
    RekorBundle,
    attestation_tag,
    parse_signature_manifest,
    signature_tag,
)
from safeguard.keys.cosign_keys import generate_key_pair
from safeguard.oci.client import RegistryClient
from safeguard.tlog.merkle import leaf_hash
from tests.fixtures.builtin import serve_command
from tests.fixtures.distribution import RegistryServer
from tests.fixtures.ports import free_port, wait_for_port
from tests.fixtures.process import stop
from tests.unit.oci.artifacts import image, push

runner = CliRunner()
PASSWORD = "tlog signing"
SLSA_PREDICATE = (
    Path(__file__).parents[1]
    / "fixtures"
    / "vectors"
    / "sigstore-python"
    / "slsa_predicate_v1_0.json"
)
SLSA1 = "https://slsa.dev/provenance/v1"


@dataclass(frozen=True)
class LogServer:
    registry: RegistryServer
    url: str


def start_log_server(workdir: Path) -> Iterator[LogServer]:
    """``safeguard serve`` on a free port, its log named after the host it is reached at."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    host = f"127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "SAFEGUARD_DATABASE_URL"}
    env["SAFEGUARD_TLOG_HOSTNAME"] = host
    log_path = workdir / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            serve_command(port, workdir / "data"), stdout=log, stderr=log, env=env
        )
        try:
            try:
                wait_for_port(port, timeout=30)
            except TimeoutError:
                proc.kill()
                proc.wait()
                raise RuntimeError(log_path.read_text(errors="replace")[-4000:]) from None
            yield LogServer(RegistryServer("builtin", host, workdir / "data"), f"http://{host}")
        finally:
            stop(proc)


@pytest.fixture(scope="session")
def tlog_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LogServer]:
    yield from start_log_server(tmp_path_factory.mktemp("tlog-serve"))


@pytest.fixture(scope="session")
def tlog_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("tlog-keys")
    return generate_key_pair(base / "cosign", PASSWORD)


@pytest.fixture(scope="session")
def trusted_root(tmp_path_factory: pytest.TempPathFactory, tlog_server: LogServer) -> Path:
    out = tmp_path_factory.mktemp("tlog-root") / "trusted_root.json"
    result = run("tlog", "export-trusted-root", "--url", tlog_server.url, "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    result = runner.invoke(app, list(args), env={"COSIGN_PASSWORD": PASSWORD, **(env or {})})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def evidence(result: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(result.stdout)["evidence"]
    return items


def sign_blob_logged(
    server: LogServer, key: Path, workdir: Path, data: bytes = b"release 1.0\n"
) -> tuple[Path, Path]:
    artifact = workdir / f"artifact-{uuid.uuid4().hex[:6]}.bin"
    artifact.write_bytes(data)
    bundle = artifact.with_suffix(".sigstore.json")
    result = run(
        "sign-blob", "--key", str(key), "--tlog-url", server.url, "--bundle", str(bundle),
        str(artifact),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return artifact, bundle


def verify_blob(artifact: Path, bundle: Path, pub: Path, root: Path | None, *extra: str) -> Any:
    args = ["verify-blob", "--key", str(pub), "--bundle", str(bundle), "-o", "json"]
    if root is not None:
        args += ["--trusted-root", str(root)]
    return run(*args, *extra, str(artifact))


# --- blobs ------------------------------------------------------------------------------------


def test_sign_blob_with_log_then_verify(
    tlog_server: LogServer, tlog_keys: tuple[Path, Path], trusted_root: Path, tmp_path: Path
) -> None:
    key, pub = tlog_keys
    artifact = tmp_path / "app.tar.gz"
    artifact.write_bytes(b"app\n" * 100)
    bundle_path = tmp_path / "app.sigstore.json"
    signed = run(
        "sign-blob", "--key", str(key), "--tlog-url", tlog_server.url,
        "--bundle", str(bundle_path), "-o", "json", str(artifact),
    )  # fmt: skip
    assert signed.exit_code == 0, signed.output
    summary = json.loads(signed.stdout)
    (logged,) = summary["tlog"]
    assert logged["kind"] == "hashedrekord/0.0.1" and logged["created"] is True
    assert logged["url"] == tlog_server.url

    bundle = Bundle.from_json(bundle_path.read_bytes())
    (entry,) = bundle.verification_material.tlog_entries
    root = json.loads(trusted_root.read_text())
    assert base64.b64encode(entry.log_id).decode() == root["tlogs"][0]["logId"]["keyId"]
    assert (entry.kind, entry.version) == ("hashedrekord", "0.0.1")
    assert entry.signed_entry_timestamp and entry.integrated_time
    proof = entry.inclusion_proof
    assert proof is not None and proof.checkpoint is not None
    assert proof.checkpoint.startswith(f"{tlog_server.registry.host} - ")
    assert leaf_hash(entry.canonicalized_body).hex() == logged["uuid"]

    verified = verify_blob(artifact, bundle_path, pub, trusted_root)
    assert verified.exit_code == 0, verified.output
    (item,) = evidence(verified)
    (log,) = item["tlog"]
    assert log["verified"] and log["signedEntryTimestamp"] and log["inclusionProof"]
    assert log["kind"] == "hashedrekord/0.0.1" and log["logUrl"] == tlog_server.url
    # The signing time is the log's integrated time.
    signed_at = dt.datetime.fromtimestamp(entry.integrated_time, dt.UTC)
    assert dt.datetime.fromisoformat(log["integratedTime"]) == signed_at
    # Text mode says "Verified OK"; without a trusted root the entry is recorded, not checked.
    assert "Verified OK" in run(
        "verify-blob", "--key", str(pub), "--trusted-root", str(trusted_root),
        "--bundle", str(bundle_path), str(artifact),
    ).stderr  # fmt: skip
    unchecked = verify_blob(artifact, bundle_path, pub, None)
    assert unchecked.exit_code == 0 and evidence(unchecked)[0]["tlog"][0]["verified"] is False


def _flip(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _tamper_checkpoint_signature(entry: dict[str, Any]) -> None:
    envelope: str = entry["inclusionProof"]["checkpoint"]["envelope"]
    text, _, line = envelope.rstrip("\n").rpartition("\n")
    prefix, _, sig = line.rpartition(" ")
    entry["inclusionProof"]["checkpoint"]["envelope"] = f"{text}\n{prefix} {_flip(sig)}\n"


def _tamper_checkpoint_size(entry: dict[str, Any]) -> None:
    envelope: str = entry["inclusionProof"]["checkpoint"]["envelope"]
    lines = envelope.split("\n")
    lines[1] = str(int(lines[1]) + 1)
    entry["inclusionProof"]["checkpoint"]["envelope"] = "\n".join(lines)


TAMPERINGS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "set": (
        lambda e: e["inclusionPromise"].update(
            signedEntryTimestamp=_flip(e["inclusionPromise"]["signedEntryTimestamp"])
        ),
        "TLOG_SET_INVALID",
    ),
    "integrated-time": (
        lambda e: e.update(integratedTime=str(int(e["integratedTime"]) + 60)),
        "TLOG_SET_INVALID",
    ),
    "log-index": (
        lambda e: e.update(logIndex=str(int(e["logIndex"]) + 1)),
        "TLOG_SET_INVALID",
    ),
    "proof-root": (
        lambda e: e["inclusionProof"].update(rootHash=_flip(e["inclusionProof"]["rootHash"])),
        "TLOG_PROOF_INVALID",
    ),
    "proof-hash": (
        lambda e: e["inclusionProof"].update(
            hashes=[_flip(e["inclusionProof"]["hashes"][0]), *e["inclusionProof"]["hashes"][1:]]
        ),
        "TLOG_PROOF_INVALID",
    ),
    "checkpoint-signature": (_tamper_checkpoint_signature, "TLOG_CHECKPOINT_INVALID"),
    "checkpoint-size": (_tamper_checkpoint_size, "TLOG_CHECKPOINT_INVALID"),
    "log-id": (
        lambda e: e["logId"].update(keyId=_flip(e["logId"]["keyId"])),
        "TLOG_UNKNOWN_LOG",
    ),
}


@pytest.fixture(scope="module")
def logged_blob(
    tlog_server: LogServer, tlog_keys: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """A logged blob signature in a tree of at least two leaves (so its proof has hashes)."""
    workdir = tmp_path_factory.mktemp("logged-blob")
    sign_blob_logged(tlog_server, tlog_keys[0], workdir, b"padding entry\n")
    return sign_blob_logged(tlog_server, tlog_keys[0], workdir)


@pytest.mark.parametrize("name", sorted(TAMPERINGS))
def test_tampered_log_entry_refused_with_its_reason(
    name: str,
    logged_blob: tuple[Path, Path],
    tlog_keys: tuple[Path, Path],
    trusted_root: Path,
    tmp_path: Path,
) -> None:
    artifact, bundle_path = logged_blob
    tamper, reason = TAMPERINGS[name]
    doc = json.loads(bundle_path.read_bytes())
    tamper(doc["verificationMaterial"]["tlogEntries"][0])
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(doc))
    result = verify_blob(artifact, forged, tlog_keys[1], trusted_root)
    assert result.exit_code == 1, result.output
    (item,) = evidence(result)
    assert item["code"] == reason, item
    # The signature itself is good: only --insecure-ignore-tlog accepts it with a bad entry.
    ignored = verify_blob(artifact, forged, tlog_keys[1], trusted_root, "--insecure-ignore-tlog")
    assert ignored.exit_code == 0
    assert verify_blob(artifact, bundle_path, tlog_keys[1], trusted_root).exit_code == 0


def _root_variant(path: Path, out: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    doc = json.loads(path.read_text())
    change(doc["tlogs"][0])
    out.write_text(json.dumps(doc))
    return out


def _other_key_der() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def test_wrong_log_key_or_window_refused(
    logged_blob: tuple[Path, Path], tlog_keys: tuple[Path, Path], trusted_root: Path, tmp_path: Path
) -> None:
    artifact, bundle_path = logged_blob
    pub = tlog_keys[1]
    other = _other_key_der()

    # Same log ID, another key: the SET (checked first) does not verify.
    same_id = _root_variant(
        trusted_root, tmp_path / "same-id.json", lambda t: t["publicKey"].update(rawBytes=other)
    )
    result = verify_blob(artifact, bundle_path, pub, same_id)
    assert result.exit_code == 1 and evidence(result)[0]["code"] == "TLOG_SET_INVALID"

    # Another log altogether: the entry's log is unknown.
    def another_log(t: dict[str, Any]) -> None:
        import hashlib

        t["publicKey"]["rawBytes"] = other
        t["logId"]["keyId"] = base64.b64encode(
            hashlib.sha256(base64.b64decode(other)).digest()
        ).decode()

    unknown = _root_variant(trusted_root, tmp_path / "other-log.json", another_log)
    result = verify_blob(artifact, bundle_path, pub, unknown)
    assert result.exit_code == 1 and evidence(result)[0]["code"] == "TLOG_UNKNOWN_LOG"

    # The log key's validity starts after the entry was integrated.
    later = _root_variant(
        trusted_root,
        tmp_path / "later.json",
        lambda t: t["publicKey"]["validFor"].update(start="2999-01-01T00:00:00Z"),
    )
    result = verify_blob(artifact, bundle_path, pub, later)
    assert result.exit_code == 1 and evidence(result)[0]["code"] == "TLOG_KEY_OUTSIDE_VALIDITY"


def test_unlogged_blob_signature_refused_when_root_lists_logs(
    tlog_keys: tuple[Path, Path], trusted_root: Path, tmp_path: Path
) -> None:
    key, pub = tlog_keys
    artifact = tmp_path / "f.txt"
    artifact.write_bytes(b"unlogged\n")
    bundle = tmp_path / "f.sigstore.json"
    made = run("sign-blob", "--key", str(key), "--bundle", str(bundle), str(artifact))
    assert made.exit_code == 0
    assert Bundle.from_json(bundle.read_bytes()).verification_material.tlog_entries == ()
    result = verify_blob(artifact, bundle, pub, trusted_root)
    assert result.exit_code == 1 and evidence(result)[0]["code"] == "TLOG_MISSING"
    assert verify_blob(artifact, bundle, pub, trusted_root, "--insecure-ignore-tlog").exit_code == 0
    assert verify_blob(artifact, bundle, pub, None).exit_code == 0


def test_attest_blob_with_log(
    tlog_server: LogServer, tlog_keys: tuple[Path, Path], trusted_root: Path, tmp_path: Path
) -> None:
    key, pub = tlog_keys
    artifact = tmp_path / "app.bin"
    artifact.write_bytes(b"binary\n")
    bundle_path = tmp_path / "att.sigstore.json"
    made = run(
        "attest-blob", "--key", str(key), "--tlog-url", tlog_server.url,
        "--predicate", str(SLSA_PREDICATE), "--type", "slsaprovenance1",
        "--bundle", str(bundle_path), "-o", "json", str(artifact),
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["tlog"][0]["kind"] == "dsse/0.0.1"
    bundle = Bundle.from_json(bundle_path.read_bytes())
    (entry,) = bundle.verification_material.tlog_entries
    body = entry.entry()
    assert body.kind == "dsse" and body.payload_hash == Digest.of(bundle.dsse_envelope.payload)  # type: ignore[union-attr]
    result = run(
        "verify-blob-attestation", "--key", str(pub), "--trusted-root", str(trusted_root),
        "--type", "slsaprovenance1", "--bundle", str(bundle_path), "-o", "json", str(artifact),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert evidence(result)[0]["tlog"][0]["kind"] == "dsse/0.0.1"


# --- images -----------------------------------------------------------------------------------


async def _push_image(host: str) -> tuple[str, Digest]:
    repo = f"tlog/{uuid.uuid4().hex[:10]}"
    art = image()
    async with RegistryClient(host) as client:
        await push(client, repo, art, "v1")
    return repo, art.digest


async def _legacy_layers(host: str, repo: str, tag: str) -> list[Any]:
    async with RegistryClient(host) as client:
        return list(parse_signature_manifest((await client.manifests.get(repo, tag)).raw).layers)


async def _referrer_bundles(host: str, repo: str, digest: Digest) -> list[Bundle]:
    async with RegistryClient(host) as client:
        listed = await client.referrers.list(repo, digest)
        out = []
        for descriptor in listed.descriptors:
            if descriptor.artifact_type != mt.SIGSTORE_BUNDLE_V03:
                continue
            manifest = parse_manifest((await client.manifests.get(repo, descriptor.digest)).raw)
            out.append(Bundle.from_json(await client.blobs.get(repo, manifest.layers[0].digest)))
        return out


@pytest.mark.parametrize("registry_kind", ["log-server", "distribution"])
def test_sign_image_with_log_then_verify(
    registry_kind: str,
    request: pytest.FixtureRequest,
    tlog_server: LogServer,
    tlog_keys: tuple[Path, Path],
    trusted_root: Path,
) -> None:
    key, pub = tlog_keys
    registry: RegistryServer = (
        tlog_server.registry
        if registry_kind == "log-server"
        else request.getfixturevalue("distribution_registry")
    )
    repo, digest = asyncio.run(_push_image(registry.host))
    ref = f"{registry.host}/{repo}@{digest}"
    signed = run("sign", "--key", str(key), "--tlog-url", tlog_server.url, "-o", "json", ref)
    assert signed.exit_code == 0, signed.output
    kinds = sorted(item["kind"] for item in json.loads(signed.stdout)["tlog"])
    assert kinds == ["dsse/0.0.1", "hashedrekord/0.0.1"]
    assert json.loads(signed.stdout)["tlogEntries"] == 1

    (bundle,) = asyncio.run(_referrer_bundles(registry.host, repo, digest))
    (entry,) = bundle.verification_material.tlog_entries
    assert (entry.kind, entry.version) == ("dsse", "0.0.1")
    (layer,) = asyncio.run(_legacy_layers(registry.host, repo, signature_tag(digest)))
    assert layer.bundle is not None  # cosign's dev.sigstore.cosign/bundle annotation
    rekor_bundle: RekorBundle = layer.bundle
    assert rekor_bundle.log_id == entry.log_id.hex()
    assert json.loads(rekor_bundle.body)["kind"] == "hashedrekord"
    assert rekor_bundle.log_index != entry.log_index

    verified = run(
        "verify", "--key", str(pub), "--trusted-root", str(trusted_root), "-o", "json", ref
    )
    assert verified.exit_code == 0, verified.output
    items = evidence(verified)
    assert len(items) == 2 and all(item["verified"] for item in items)
    by_source = {item["source"]: item for item in items}
    assert {"cosign-tag"} < set(by_source)
    for item in items:
        (log,) = item["tlog"]
        assert log["verified"] and log["signedEntryTimestamp"]
    legacy_log = by_source["cosign-tag"]["tlog"][0]
    assert legacy_log["kind"] == "hashedrekord/0.0.1" and legacy_log["inclusionProof"] is False
    assert dt.datetime.fromisoformat(legacy_log["integratedTime"]) == dt.datetime.fromtimestamp(
        rekor_bundle.integrated_time, dt.UTC
    )
    bundle_log = next(item for item in items if item["source"] != "cosign-tag")["tlog"][0]
    assert bundle_log["kind"] == "dsse/0.0.1" and bundle_log["inclusionProof"] is True
    # Text mode, as cosign prints it.
    assert run("verify", "--key", str(pub), "--trusted-root", str(trusted_root), ref).exit_code == 0


def test_attest_image_with_log(
    tlog_server: LogServer, tlog_keys: tuple[Path, Path], trusted_root: Path
) -> None:
    key, pub = tlog_keys
    host = tlog_server.registry.host
    repo, digest = asyncio.run(_push_image(host))
    ref = f"{host}/{repo}@{digest}"
    made = run(
        "attest", "--key", str(key), "--tlog-url", tlog_server.url,
        "--predicate", str(SLSA_PREDICATE), "--type", "slsaprovenance1", ref,
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "tlog entry created with index:" in made.stderr
    (layer,) = asyncio.run(_legacy_layers(host, repo, attestation_tag(digest)))
    assert layer.bundle is not None and json.loads(layer.bundle.body)["kind"] == "dsse"
    result = run(
        "verify-attestation", "--key", str(pub), "--trusted-root", str(trusted_root),
        "--type", "slsaprovenance1", "-o", "json", ref,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert all(item["tlog"][0]["verified"] for item in evidence(result))


def test_unlogged_image_signature_refused_when_root_lists_logs(
    tlog_server: LogServer, tlog_keys: tuple[Path, Path], trusted_root: Path
) -> None:
    key, pub = tlog_keys
    repo, digest = asyncio.run(_push_image(tlog_server.registry.host))
    ref = f"{tlog_server.registry.host}/{repo}@{digest}"
    assert run("sign", "--key", str(key), ref).exit_code == 0
    result = run(
        "verify", "--key", str(pub), "--trusted-root", str(trusted_root), "-o", "json", ref
    )
    assert result.exit_code == 1
    assert {item["code"] for item in evidence(result)} == {"TLOG_MISSING"}
    text = run("verify", "--key", str(pub), "--trusted-root", str(trusted_root), ref)
    assert text.exit_code == 1 and "TLOG_MISSING" in text.stderr
    lenient = run(
        "verify", "--key", str(pub), "--trusted-root", str(trusted_root),
        "--insecure-ignore-tlog", ref,
    )  # fmt: skip
    assert lenient.exit_code == 0


# --- flags and failures -----------------------------------------------------------------------


def test_tlog_flags(tlog_server: LogServer, tlog_keys: tuple[Path, Path], tmp_path: Path) -> None:
    key, _ = tlog_keys
    artifact = tmp_path / "f"
    artifact.write_bytes(b"flags\n")
    bundle = tmp_path / "b.json"

    def entries() -> int:
        return len(Bundle.from_json(bundle.read_bytes()).verification_material.tlog_entries)

    base = ["sign-blob", "--key", str(key), "--bundle", str(bundle)]
    asked = run(*base, "--tlog-upload", str(artifact))
    assert asked.exit_code == 2 and "--tlog-url" in asked.stderr
    assert run(*base, "--tlog-url", "ftp://example", str(artifact)).exit_code == 2
    off = run(*base, "--tlog-url", tlog_server.url, "--no-tlog-upload", str(artifact))
    assert off.exit_code == 0 and entries() == 0
    by_env = run(*base, str(artifact), env={"SAFEGUARD_TLOG_URL": tlog_server.url})
    assert by_env.exit_code == 0 and entries() == 1
    alias = run(*base, "--rekor-url", tlog_server.url, "--tlog-upload", str(artifact))
    assert alias.exit_code == 0 and entries() == 1


def test_log_down_or_wrong_is_a_typed_error(
    tlog_server: LogServer, tlog_keys: tuple[Path, Path], tmp_path: Path
) -> None:
    key, _ = tlog_keys
    artifact = tmp_path / "f"
    artifact.write_bytes(b"down\n")
    bundle = tmp_path / "b.json"
    base = ["sign-blob", "--key", str(key), "--bundle", str(bundle), "-o", "json"]

    down = run(*base, "--tlog-url", f"http://127.0.0.1:{free_port()}", str(artifact))
    assert down.exit_code == 3 and not bundle.exists()
    assert json.loads(down.stderr)["error"]["code"] == "UNREACHABLE"

    not_a_log = run(*base, "--tlog-url", f"{tlog_server.url}/not-a-log", str(artifact))
    assert not_a_log.exit_code == 2 and not bundle.exists()
    error = json.loads(not_a_log.stderr)["error"]
    assert error["code"] == "TLOG_ENTRY_REJECTED" and "404" in error["message"]

    # Pinning the log key (cosign's SIGSTORE_REKOR_PUBLIC_KEY): the right one passes, another
    # one refuses the log's answer before any bundle is written.
    pem = tmp_path / "log.pem"
    import httpx

    pem.write_bytes(httpx.get(f"{tlog_server.url}/api/v1/log/publicKey").content)
    pinned = run(*base, "--tlog-url", tlog_server.url, str(artifact),
                 env={"SIGSTORE_REKOR_PUBLIC_KEY": str(pem)})  # fmt: skip
    assert pinned.exit_code == 0, pinned.output
    bundle.unlink()
    wrong = tmp_path / "wrong.pem"
    wrong.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    refused = run(*base, "--tlog-url", tlog_server.url, str(artifact),
                  env={"SIGSTORE_REKOR_PUBLIC_KEY": str(wrong)})  # fmt: skip
    assert refused.exit_code == 1 and not bundle.exists()
    assert json.loads(refused.stderr)["error"]["code"] == "TLOG_RESPONSE_UNTRUSTED"


def test_checkpoint_name_must_match_the_trusted_root(
    builtin_registry: RegistryServer, tlog_keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """A log left with the default checkpoint name ("safeguard") is reached at another URL: the
    signer warns; the exported root names the log as it signs (with a note saying so), and
    verifies; a root forced to name the URL it was reached at refuses the checkpoint."""
    key, pub = tlog_keys
    url = f"http://{builtin_registry.host}"
    artifact = tmp_path / "f"
    artifact.write_bytes(b"names\n")
    bundle = tmp_path / "b.json"
    made = run("sign-blob", "--key", str(key), "--tlog-url", url, "--bundle", str(bundle),
               str(artifact))  # fmt: skip
    assert made.exit_code == 0
    assert "SAFEGUARD_TLOG_HOSTNAME" in made.stderr and "'safeguard'" in made.stderr
    named = tmp_path / "named.json"
    exported = run("tlog", "export-trusted-root", "--url", url, "--out", str(named))
    assert exported.exit_code == 0
    assert "signs its checkpoints as 'safeguard'" in exported.stderr
    assert json.loads(named.read_text())["tlogs"][-1]["baseUrl"] == "https://safeguard"
    assert verify_blob(artifact, bundle, pub, named).exit_code == 0
    by_url = tmp_path / "by-url.json"
    forced = run("tlog", "export-trusted-root", "--url", url, "--base-url", url, "--out",
                 str(by_url))  # fmt: skip
    assert forced.exit_code == 0
    refused = verify_blob(artifact, bundle, pub, by_url)
    assert refused.exit_code == 1 and evidence(refused)[0]["code"] == "TLOG_CHECKPOINT_INVALID"


# --- P-384 keys -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def p384_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from safeguard.keys.base import public_key_pem
    from safeguard.keys.cosign_keys import encrypt_private_key

    base = tmp_path_factory.mktemp("tlog-p384")
    private = ec.generate_private_key(ec.SECP384R1())
    key, pub = base / "p384.key", base / "p384.pub"
    key.write_bytes(encrypt_private_key(private, PASSWORD.encode()))
    pub.write_bytes(public_key_pem(private.public_key()))
    return key, pub


def test_p384_blob_with_log_then_verify(
    tlog_server: LogServer,
    p384_keys: tuple[Path, Path],
    trusted_root: Path,
    tmp_path: Path,
) -> None:
    """The log accepts a P-384 blob signature as a sha384 hashedrekord (the digest the key
    signs), and verify-blob checks it by file and by digest."""
    key, pub = p384_keys
    data = b"p384 logged\n" * 20
    artifact, bundle_path = sign_blob_logged(tlog_server, key, tmp_path, data)
    bundle = Bundle.from_json(bundle_path.read_bytes())
    (entry,) = bundle.verification_material.tlog_entries
    body = json.loads(entry.canonicalized_body)
    assert body["spec"]["data"]["hash"] == {
        "algorithm": "sha384",
        "value": hashlib.sha384(data).hexdigest(),
    }
    assert bundle.message_signature is not None
    assert bundle.message_signature.message_digest is not None
    assert bundle.message_signature.message_digest.algorithm == "SHA2_384"
    for target in (str(artifact), "sha384:" + hashlib.sha384(data).hexdigest()):
        verified = verify_blob(Path(target), bundle_path, pub, trusted_root)
        assert verified.exit_code == 0, verified.output
        assert evidence(verified)[0]["tlog"][0]["verified"] is True
    # Hostile: the file's SHA-256 digest names another artifact than the log entry.
    wrong = verify_blob(
        Path("sha256:" + hashlib.sha256(data).hexdigest()), bundle_path, pub, trusted_root
    )
    assert wrong.exit_code == 1 and evidence(wrong)[0]["code"] == "DIGEST_MISMATCH"


def test_p384_image_with_log(
    tlog_server: LogServer, p384_keys: tuple[Path, Path], trusted_root: Path
) -> None:
    """Both entries of a P-384 image signature are accepted by the log (the .sig layer's
    hashedrekord records the payload's SHA-384 digest) and the image verifies."""
    key, pub = p384_keys
    host = tlog_server.registry.host
    repo, digest = asyncio.run(_push_image(host))
    ref = f"{host}/{repo}@{digest}"
    signed = run("sign", "--key", str(key), "--tlog-url", tlog_server.url, "-o", "json", ref)
    assert signed.exit_code == 0, signed.output
    kinds = sorted(item["kind"] for item in json.loads(signed.stdout)["tlog"])
    assert kinds == ["dsse/0.0.1", "hashedrekord/0.0.1"]
    (layer,) = asyncio.run(_legacy_layers(host, repo, signature_tag(digest)))
    assert layer.bundle is not None
    spec = json.loads(layer.bundle.body)["spec"]
    assert spec["data"]["hash"]["algorithm"] == "sha384"
    verified = run(
        "verify", "--key", str(pub), "--trusted-root", str(trusted_root), "-o", "json", ref
    )
    assert verified.exit_code == 0, verified.output
    by_source = {item["source"]: item for item in evidence(verified)}
    assert by_source["referrer"]["verified"] and by_source["referrer"]["tlog"][0]["verified"]
    # The .sig layer's entry is bound with the key's hash (sha384), as it was logged.
    legacy = by_source["cosign-tag"]
    assert legacy["verified"], legacy["reason"]
    assert legacy["tlog"][0]["verified"] and legacy["tlog"][0]["kind"] == "hashedrekord/0.0.1"
