"""``safeguard sign``/``verify``/``attest``/``verify-attestation`` against real registries (the
built-in one and Debian's docker-registry 2.8.2, which has no referrers API), with cosign key
files and a SoftHSM2 PKCS#11 key; tampering refused with the specific reason; hostile input
answered with an exit code, never a traceback."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from safeguard.cli.app import app
from safeguard.core import mediatypes as mt
from safeguard.core.digest import Digest
from safeguard.core.manifest import parse_manifest
from safeguard.formats.bundle import Bundle
from safeguard.formats.cosign_sig import parse_signature_manifest, signature_tag
from safeguard.keys.cosign_keys import generate_key_pair
from safeguard.oci.client import RegistryClient
from safeguard.oci.signatures import attach_bundle, attach_legacy, build_bundle_manifest
from tests.fixtures import softhsm
from tests.fixtures.distribution import RegistryServer
from tests.unit.oci.artifacts import image, push

runner = CliRunner()
PASSWORD = "correct horse"
SLSA = (
    Path(__file__).parents[1]
    / "fixtures"
    / "vectors"
    / "sigstore-python"
    / "slsa_predicate_v1_0.json"
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    base = tmp_path_factory.mktemp("keys")
    key, pub = generate_key_pair(base / "cosign", PASSWORD)
    _, other_pub = generate_key_pair(base / "other", PASSWORD)
    return key, pub, other_pub


def run(*args: str, password: str | None = PASSWORD) -> Any:
    env = {"COSIGN_PASSWORD": password} if password is not None else {}
    result = runner.invoke(app, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


async def _push_image(host: str, repo: str, tag: str = "v1") -> Digest:
    art = image()
    async with RegistryClient(host) as client:
        await push(client, repo, art, tag)
    return art.digest


def new_image(server: RegistryServer, tag: str = "v1") -> tuple[str, Digest]:
    repo = f"sign/{uuid.uuid4().hex[:10]}"
    digest = asyncio.run(_push_image(server.host, repo, tag))
    return repo, digest


def verdict_of(result: Any) -> dict[str, Any]:
    return json.loads(result.stdout)


def test_sign_then_verify_with_key_file(
    any_registry: RegistryServer, keys: tuple[Path, Path, Path]
) -> None:
    key, pub, other = keys
    repo, digest = new_image(any_registry)
    by_tag = f"{any_registry.host}/{repo}:v1"
    signed = run("sign", "--key", str(key), by_tag, "-o", "json")
    assert signed.exit_code == 0, signed.stderr
    assert "uses a tag, not a digest" in signed.stderr
    info = json.loads(signed.stdout)
    assert info["digest"] == str(digest) and info["legacyTag"] == signature_tag(digest)

    ref = f"{any_registry.host}/{repo}@{digest}"
    verified = run("verify", "--key", str(pub), ref)
    assert verified.exit_code == 0, verified.stderr
    payloads = json.loads(verified.stdout)
    assert len(payloads) == 2
    types = sorted(p["critical"]["type"] for p in payloads)
    assert types == ["cosign container image signature", "https://sigstore.dev/cosign/sign/v1"]
    assert all(p["critical"]["image"]["docker-manifest-digest"] == str(digest) for p in payloads)
    assert "The cosign claims were validated" in verified.stderr

    detail = verdict_of(run("verify", "--key", str(pub), ref, "--output", "json"))
    sources = sorted(e["source"] for e in detail["evidence"])
    expected_referrer = "referrer" if any_registry.kind == "builtin" else "tag-schema"
    assert sources == sorted([expected_referrer, "cosign-tag"])
    assert all(e["verified"] for e in detail["evidence"])

    refused = run("verify", "--key", str(other), ref)
    assert refused.exit_code == 1
    assert "SIGNATURE_INVALID" in refused.stderr and "Traceback" not in refused.stderr

    # Signing again appends to the .sig manifest, as cosign does.
    assert run("sign", "--key", str(key), ref).exit_code == 0

    async def inspect() -> None:
        async with RegistryClient(any_registry.host) as client:
            sig = await client.manifests.get(repo, signature_tag(digest))
            assert len(parse_signature_manifest(sig.raw).layers) == 2
            listed = await client.referrers.list(repo, digest)
            bundles = [d for d in listed.descriptors if d.artifact_type == mt.SIGSTORE_BUNDLE_V03]
            assert len(bundles) == 2
            manifest = parse_manifest((await client.manifests.get(repo, bundles[0].digest)).raw)
            assert manifest.config is not None and manifest.config.media_type == mt.OCI_EMPTY
            assert manifest.config.size == 2
            assert manifest.subject is not None and manifest.subject.digest == digest
            assert manifest.annotations["dev.sigstore.bundle.content"] == "dsse-envelope"
            assert (
                manifest.annotations["dev.sigstore.bundle.predicateType"]
                == "https://sigstore.dev/cosign/sign/v1"
            )
            assert "org.opencontainers.image.created" in manifest.annotations
            (layer,) = manifest.layers
            assert layer.media_type == mt.SIGSTORE_BUNDLE_V03
            blob = await client.blobs.get(repo, layer.digest)
            assert layer.annotations["org.opencontainers.image.title"] == (
                f"{Digest.of(blob).tag_form}.sigstore.json"
            )
            bundle = Bundle.from_json(blob)
            assert bundle.verification_material.public_key_hint
            assert bundle.verification_material.tlog_entries == ()

    asyncio.run(inspect())


def test_unsigned_and_unreachable(
    any_registry: RegistryServer, keys: tuple[Path, Path, Path]
) -> None:
    _, pub, _ = keys
    repo, digest = new_image(any_registry)
    result = run("verify", "--key", str(pub), f"{any_registry.host}/{repo}@{digest}")
    assert result.exit_code == 1 and "no signatures found" in result.stderr
    gone = run("verify", "--key", str(pub), f"127.0.0.1:1/{repo}@{digest}")
    assert gone.exit_code == 3 and "Traceback" not in gone.stderr
    missing = run("verify", "--key", str(pub), f"{any_registry.host}/{repo}:nope")
    assert missing.exit_code == 2


async def _copy_signatures(host: str, repo: str, source: Digest, target: Digest) -> None:
    """Attach image ``source``'s (valid) signatures to image ``target``: same bytes, wrong image."""
    async with RegistryClient(host) as client:
        sig = parse_signature_manifest(
            (await client.manifests.get(repo, signature_tag(source))).raw
        )
        layer = sig.layers[0].with_payload(
            await client.blobs.get(repo, sig.layers[0].payload_digest)
        )
        await attach_legacy(client, repo, target, layer, "sig")
        listed = await client.referrers.list(repo, source)
        manifest = parse_manifest(
            (await client.manifests.get(repo, listed.descriptors[0].digest)).raw
        )
        bundle = await client.blobs.get(repo, manifest.layers[0].digest)
        subject = await client.resolve(repo, target)
        await attach_bundle(
            client, repo, subject, bundle, predicate_type="https://sigstore.dev/cosign/sign/v1"
        )


def codes(detail: dict[str, Any]) -> dict[str, str]:
    return {e["source"]: e["code"] for e in detail["evidence"]}


def test_signature_of_another_image_is_refused(
    any_registry: RegistryServer, keys: tuple[Path, Path, Path]
) -> None:
    key, pub, _ = keys
    repo, first = new_image(any_registry, "a")
    second = asyncio.run(_push_image(any_registry.host, repo, "b"))
    assert run("sign", "--key", str(key), f"{any_registry.host}/{repo}@{first}").exit_code == 0
    asyncio.run(_copy_signatures(any_registry.host, repo, first, second))
    result = run("verify", "--key", str(pub), f"{any_registry.host}/{repo}@{second}", "-o", "json")
    assert result.exit_code == 1
    found = codes(verdict_of(result))
    assert found["cosign-tag"] == "DIGEST_MISMATCH"
    assert set(found.values()) == {"DIGEST_MISMATCH", "SUBJECT_MISMATCH"}


async def _tampered_referrers(host: str, repo: str, digest: Digest, bundle_json: bytes) -> None:
    """Referrers from one good bundle: payload edited, annotation mixed up, wrong media type."""
    doc = json.loads(bundle_json)
    statement = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    statement["predicate"] = {"edited": True}
    edited = dict(
        doc,
        dsseEnvelope=dict(
            doc["dsseEnvelope"],
            payload=base64.b64encode(json.dumps(statement).encode()).decode(),
        ),
    )
    async with RegistryClient(host) as client:
        subject = await client.resolve(repo, digest)
        await attach_bundle(
            client,
            repo,
            subject,
            json.dumps(edited).encode(),
            predicate_type="https://sigstore.dev/cosign/sign/v1",
        )
        # The content annotation says message-signature, the bundle holds an envelope.
        await attach_bundle(
            client,
            repo,
            subject,
            bundle_json + b" ",
            predicate_type="https://sigstore.dev/cosign/sign/v1",
            content="message-signature",
        )
        # A layer of the wrong media type.
        raw = build_bundle_manifest(bundle_json + b"  ", subject, predicate_type=None).replace(
            mt.SIGSTORE_BUNDLE_V03.encode() + b'","size"', b'application/json","size"', 1
        )
        await client.push_blob_bytes(repo, bundle_json + b"  ")
        await client.push_manifest(repo, Digest.of(raw), raw, mt.OCI_MANIFEST)


def test_tampered_referrers_named(
    any_registry: RegistryServer, keys: tuple[Path, Path, Path]
) -> None:
    key, pub, _ = keys
    repo, digest = new_image(any_registry)
    ref = f"{any_registry.host}/{repo}@{digest}"
    assert run("sign", "--key", str(key), "--no-legacy-tag", ref).exit_code == 0

    async def good_bundle() -> bytes:
        async with RegistryClient(any_registry.host) as client:
            listed = await client.referrers.list(repo, digest)
            manifest = parse_manifest(
                (await client.manifests.get(repo, listed.descriptors[0].digest)).raw
            )
            return await client.blobs.get(repo, manifest.layers[0].digest)

    good = asyncio.run(good_bundle())
    asyncio.run(_tampered_referrers(any_registry.host, repo, digest, good))
    detail = verdict_of(run("verify", "--key", str(pub), ref, "-o", "json"))
    assert detail["allowed"]  # the untouched signature still verifies
    found = sorted(e["code"] for e in detail["evidence"])
    assert found == sorted(
        ["VERIFIED", "SIGNATURE_INVALID", "ANNOTATION_MISMATCH", "SIGNATURE_MATERIAL_INVALID"]
    ), detail


def test_attest_and_verify_attestation(
    any_registry: RegistryServer, keys: tuple[Path, Path, Path]
) -> None:
    key, pub, _ = keys
    repo, digest = new_image(any_registry)
    ref = f"{any_registry.host}/{repo}@{digest}"
    made = run(
        "attest", "--key", str(key), "--predicate", str(SLSA), "--type", "slsaprovenance1", ref
    )
    assert made.exit_code == 0, made.stderr
    ok = run("verify-attestation", "--key", str(pub), "--type", "slsaprovenance1", ref)
    assert ok.exit_code == 0, ok.stderr
    statements = [json.loads(line) for line in ok.stdout.splitlines()]
    assert len(statements) == 2  # the bundle referrer and the .att layer
    assert all(s["predicateType"] == "https://slsa.dev/provenance/v1" for s in statements)
    assert all(s["subject"][0]["digest"]["sha256"] == digest.hex for s in statements)
    mismatch = run(
        "verify-attestation", "--key", str(pub), "--type", "cyclonedx", ref, "-o", "json"
    )
    assert mismatch.exit_code == 1
    assert {e["code"] for e in verdict_of(mismatch)["evidence"]} == {"PREDICATE_TYPE_MISMATCH"}
    # An attestation is not a signature.
    assert run("verify", "--key", str(pub), ref).exit_code == 1
    bad_type = run(
        "attest", "--key", str(key), "--predicate", str(SLSA), "--type", "not a uri", ref
    )
    assert bad_type.exit_code == 2


def test_hostile_cli_input(
    any_registry: RegistryServer, keys: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    key, pub, _ = keys
    repo, digest = new_image(any_registry)
    ref = f"{any_registry.host}/{repo}@{digest}"
    wrong = run("sign", "--key", str(key), ref, password="wrong")
    assert wrong.exit_code == 2 and "KEY_PASSWORD_INVALID" in wrong.stderr
    missing = run("sign", "--key", str(key), ref, password=None)
    assert missing.exit_code == 2 and "KEY_PASSWORD_MISSING" in missing.stderr
    assert run("sign", "--key", str(tmp_path / "nope.key"), ref).exit_code == 2
    assert run("sign", "--key", str(key), "--tlog-upload", ref).exit_code == 2
    assert run("verify", ref).exit_code == 2  # nothing to trust
    assert run("verify", "--certificate-identity", "x", ref).exit_code == 2  # no issuer
    assert run("verify", "--key", str(pub), "not a reference").exit_code == 2
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("not a key")
    assert run("verify", "--key", str(garbage), ref).exit_code == 2
    bad_root = tmp_path / "root.json"
    bad_root.write_text("{}")
    result = run(
        "verify",
        "--certificate-identity",
        "x",
        "--certificate-oidc-issuer",
        "y",
        "--trusted-root",
        str(bad_root),
        ref,
    )
    assert result.exit_code == 2 and "Traceback" not in result.stderr

    # A .sig tag holding something that is not a signature manifest.
    async def clobber() -> None:
        async with RegistryClient(any_registry.host) as client:
            await push(client, repo, image(), signature_tag(digest))

    asyncio.run(clobber())
    detail = verdict_of(run("verify", "--key", str(pub), ref, "-o", "json"))
    assert not detail["allowed"]
    assert detail["evidence"][0]["code"] in {"SIGNATURE_MANIFEST_INVALID", "SIGNATURE_INVALID"}
    assert run("sign", "--key", str(key), ref).exit_code == 2  # refuses to overwrite that tag


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[softhsm.SoftHSM]:
    if not softhsm.available():
        pytest.skip("SoftHSM2/OpenSC not installed")
    with softhsm.run_softhsm(tmp_path_factory.mktemp("softhsm")) as store:
        store.init_token("signing", "4321")
        store.generate_key("signing", "release", "0a", "EC:prime256v1")
        with softhsm.activated(store):
            yield store


def test_sign_with_pkcs11_key(
    builtin_registry: RegistryServer, hsm: softhsm.SoftHSM, tmp_path: Path
) -> None:
    from safeguard.keys.pkcs11 import PKCS11Signer

    uri = hsm.uri("signing", "release", "0a")
    repo, digest = new_image(builtin_registry)
    ref = f"{builtin_registry.host}/{repo}@{digest}"
    assert run("sign", "--key", uri, ref, password=None).exit_code == 0
    with PKCS11Signer(uri) as signer:
        pub = tmp_path / "hsm.pub"
        pub.write_bytes(signer.public_key_pem)
    exported = run("verify", "--key", str(pub), ref)
    assert exported.exit_code == 0, exported.stderr
    assert len(json.loads(exported.stdout)) == 2
    assert run("verify", "--key", uri, ref).exit_code == 0
