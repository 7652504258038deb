"""Sigstore bundles v0.1-v0.3 from sigstore-conformance, sigstore-go and sigstore-python."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
import sigstore_models.bundle.v1 as sigstore_models_bundle
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sigstore.models import Bundle as SigstoreBundle

from safeguard.formats import bundle as b
from safeguard.formats.dsse import Envelope, Signature
from safeguard.formats.errors import BundleInvalid
from tests.unit.formats.vectors import read

GOOD = [
    "conformance/happy-path-v0.1/bundle.sigstore.json",
    "conformance/happy-path-v0.2/bundle.sigstore.json",
    "conformance/happy-path-v0.3/bundle.sigstore.json",
    "conformance/happy-path-v0.3-new-mediaType/bundle.sigstore.json",
    "conformance/happy-path-intoto-in-dsse-v3/bundle.sigstore.json",
    "conformance/intoto-with-custom-trust-root/bundle.sigstore.json",
    "conformance/managed-key-happy-path/bundle.sigstore.json",
    "conformance/rekor2-happy-path/bundle.sigstore.json",
    "conformance/rekor2-dsse-happy-path/bundle.sigstore.json",
    "sigstore-go/bundle-publish.json",
    "sigstore-go/dsse-2sigs.sigstore.json",
    "sigstore-go/public-key-validity.sigstore.json",
    "sigstore-python/bundle_v3.txt.sigstore",
]


def _normalise(doc: Any) -> Any:
    """What protobuf-JSON readers treat as equal: ``null`` fields and ``"keyid": ""`` are unset,
    and we always write ``tlogEntries`` (as sigstore-python does)."""
    if isinstance(doc, dict):
        out = {
            k: _normalise(v)
            for k, v in doc.items()
            if v is not None and not (k == "keyid" and v == "")
        }
        if "verificationMaterial" in out:
            out["verificationMaterial"].setdefault("tlogEntries", [])
        return out
    if isinstance(doc, list):
        return [_normalise(v) for v in doc]
    return doc


@pytest.mark.parametrize("path", GOOD)
def test_published_bundles_parse_and_reserialise(path: str) -> None:
    raw = read(path)
    bundle = b.Bundle.from_json(raw)
    assert json.loads(bundle.to_json()) == _normalise(json.loads(raw))
    for entry in bundle.verification_material.tlog_entries:
        assert entry.entry().kind in ("hashedrekord", "dsse", "intoto")


@pytest.mark.parametrize(
    "path", [p for p in GOOD if "sigstore-go/bundle-publish" not in p and "2sigs" not in p]
)
def test_output_is_byte_identical_to_sigstore_models(path: str) -> None:
    ours = b.Bundle.from_json(read(path)).to_json()
    assert sigstore_models_bundle.Bundle.from_json(ours).to_json().encode() == ours


@pytest.mark.parametrize(
    "path",
    [
        "conformance/happy-path-v0.2/bundle.sigstore.json",
        "conformance/happy-path-v0.3/bundle.sigstore.json",
        "conformance/happy-path-intoto-in-dsse-v3/bundle.sigstore.json",
        "sigstore-python/bundle_v3.txt.sigstore",
    ],
)
def test_sigstore_python_accepts_our_output(path: str) -> None:
    ours = b.Bundle.from_json(read(path)).to_json()
    assert SigstoreBundle.from_json(ours).to_json().encode() == ours


def test_message_signature_verifies_over_the_artifact() -> None:
    bundle = b.Bundle.from_json(read("conformance/happy-path-v0.3/bundle.sigstore.json"))
    artifact = read("conformance/a.txt")
    assert bundle.message_signature is not None
    assert bundle.message_signature.message_digest == b.HashOutput(
        "SHA2_256", hashlib.sha256(artifact).digest()
    )
    leaf = bundle.verification_material.leaf_certificate
    assert leaf is not None
    key = x509.load_der_x509_certificate(leaf).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(bundle.signature, artifact, ec.ECDSA(hashes.SHA256()))
    entry = bundle.verification_material.tlog_entries[0].entry()
    assert (
        entry.artifact_digest is not None
        and entry.artifact_digest.hex == hashlib.sha256(artifact).hexdigest()
    )


def test_public_key_bundle_verifies_with_its_key() -> None:
    bundle = b.Bundle.from_json(read("conformance/managed-key-happy-path/bundle.sigstore.json"))
    key = serialization.load_pem_public_key(read("conformance/managed-key-happy-path/key.pub"))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(bundle.signature, read("conformance/a.txt"), ec.ECDSA(hashes.SHA256()))
    assert bundle.verification_material.public_key_hint is not None


def test_npm_publish_attestation_verifies_with_published_key() -> None:
    """sigstore-go examples/bundle-publish.json: an npm publish attestation, key-signed DSSE."""
    bundle = b.Bundle.from_json(read("sigstore-go/bundle-publish.json"))
    assert bundle.dsse_envelope is not None
    key = serialization.load_pem_public_key(read("sigstore-go/publish_key.pub"))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(bundle.signature, bundle.dsse_envelope.pae(), ec.ECDSA(hashes.SHA256()))
    entry = bundle.verification_material.tlog_entries[0].entry()
    assert entry.kind == "intoto"
    assert entry.payload_hash is not None
    assert entry.payload_hash.hex == hashlib.sha256(bundle.dsse_envelope.payload).hexdigest()
    assert entry.signatures[0].signature == bundle.signature


def test_build_v03_bundles() -> None:
    source = b.Bundle.from_json(read("conformance/happy-path-v0.3/bundle.sigstore.json"))
    vm = source.verification_material
    assert vm.certificate is not None and source.message_signature is not None
    built = b.message_signature_bundle(
        source.signature,
        digest=source.message_signature.message_digest.digest
        if source.message_signature.message_digest
        else None,
        certificate=vm.certificate,
        tlog_entries=vm.tlog_entries,
    )
    assert built.to_json() == b.Bundle(b.MEDIA_TYPE_V03, vm, source.message_signature).to_json()
    SigstoreBundle.from_json(built.to_json())

    envelope = Envelope("application/vnd.in-toto+json", b"{}", (Signature(b"sig", "k1"),))
    keyed = b.dsse_bundle(envelope, public_key_hint="abc=", rfc3161_timestamps=[])
    raw = keyed.to_json()
    assert raw == (
        b'{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":'
        b'{"publicKey":{"hint":"abc="},"tlogEntries":[],"timestampVerificationData":'
        b'{"rfc3161Timestamps":[]}},"dsseEnvelope":{"payload":"e30=","payloadType":'
        b'"application/vnd.in-toto+json","signatures":[{"sig":"c2ln","keyid":"k1"}]}}'
    )
    assert b.Bundle.from_json(raw) == keyed
    assert sigstore_models_bundle.Bundle.from_json(raw).to_json().encode() == raw


def test_builders_need_one_kind_of_material() -> None:
    with pytest.raises(BundleInvalid):
        b.message_signature_bundle(b"s")
    with pytest.raises(BundleInvalid):
        b.message_signature_bundle(b"s", certificate=b"c", public_key_hint="h")


@pytest.mark.parametrize(
    "path",
    [
        "conformance/bundle-malformed-json_fail/bundle.sigstore.json",
        "conformance/bundle-invalid-base64-signature_fail/bundle.sigstore.json",
        "conformance/bundle-negative-log-index_fail/bundle.sigstore.json",
        "conformance/bundle-unknown-version_fail/bundle.sigstore.json",
        "conformance/bundle-empty-certificate-chain_fail/bundle.sigstore.json",
        "conformance/intoto-missing-inclusion-proof_fail/bundle.sigstore.json",
        "conformance/rekor2-no-inclusion-proof_fail/bundle.sigstore.json",
    ],
)
def test_published_malformed_bundles_rejected(path: str) -> None:
    with pytest.raises(BundleInvalid):
        b.Bundle.from_json(read(path))


def _mutated(mutate: Any) -> bytes:
    doc = json.loads(read("conformance/happy-path-v0.3/bundle.sigstore.json"))
    mutate(doc)
    return json.dumps(doc).encode()


def _vm(doc: dict[str, Any]) -> dict[str, Any]:
    vm: dict[str, Any] = doc["verificationMaterial"]
    return vm


HOSTILE = [
    lambda d: d.pop("mediaType"),
    lambda d: d.update(mediaType=5),
    lambda d: d.pop("verificationMaterial"),
    lambda d: d.update(verificationMaterial=[]),
    lambda d: _vm(d).update(publicKey={"hint": "x"}),
    lambda d: _vm(d).pop("certificate"),
    lambda d: _vm(d).update(certificate={"rawBytes": ""}),
    lambda d: _vm(d).update(x509CertificateChain={"certificates": []}) or _vm(d).pop("certificate"),
    lambda d: d.update(dsseEnvelope={"payload": "", "payloadType": "", "signatures": []}),
    lambda d: d.pop("messageSignature"),
    lambda d: d["messageSignature"].update(signature=""),
    lambda d: d["messageSignature"]["messageDigest"].update(algorithm="MD5"),
    lambda d: _vm(d)["tlogEntries"][0].update(logIndex="1e3"),
    lambda d: _vm(d)["tlogEntries"][0].update(logIndex="99999999999999999999"),
    lambda d: _vm(d)["tlogEntries"][0].update(logIndex=True),
    lambda d: _vm(d)["tlogEntries"][0].update(integratedTime="-5"),
    lambda d: _vm(d)["tlogEntries"][0].pop("canonicalizedBody"),
    lambda d: _vm(d)["tlogEntries"][0].pop("kindVersion"),
    lambda d: _vm(d)["tlogEntries"][0]["logId"].update(keyId="***"),
    lambda d: _vm(d)["tlogEntries"][0]["inclusionProof"].update(treeSize="1", logIndex="5"),
    lambda d: _vm(d)["tlogEntries"][0]["inclusionProof"].update(hashes="AA=="),
    lambda d: _vm(d)["tlogEntries"][0]["inclusionProof"].update(checkpoint={"envelope": 5}),
    lambda d: _vm(d)["tlogEntries"][0]["inclusionProof"].pop("checkpoint"),
    lambda d: _vm(d).update(tlogEntries={}),
    lambda d: _vm(d).update(
        timestampVerificationData={"rfc3161Timestamps": [{"signedTimestamp": 1}]}
    ),
]


@pytest.mark.parametrize("mutate", HOSTILE)
def test_hostile_bundles_raise_typed_error(mutate: Any) -> None:
    with pytest.raises(BundleInvalid):
        b.Bundle.from_json(_mutated(mutate))


def test_v01_without_inclusion_promise_rejected() -> None:
    doc = json.loads(read("conformance/happy-path-v0.1/bundle.sigstore.json"))
    doc["verificationMaterial"]["tlogEntries"][0].pop("inclusionPromise")
    with pytest.raises(BundleInvalid):
        b.Bundle.from_dict(doc)


def test_v02_certificate_chain_only_before_v03() -> None:
    doc = json.loads(read("conformance/happy-path-v0.2/bundle.sigstore.json"))
    doc["mediaType"] = b.MEDIA_TYPE_V03
    with pytest.raises(BundleInvalid):
        b.Bundle.from_dict(doc)


def test_json_number_int64_accepted() -> None:
    doc = json.loads(read("conformance/happy-path-v0.3/bundle.sigstore.json"))
    entry = doc["verificationMaterial"]["tlogEntries"][0]
    entry["logIndex"] = int(entry["logIndex"])
    assert (
        b.Bundle.from_dict(doc).verification_material.tlog_entries[0].log_index == entry["logIndex"]
    )
    assert base64.b64decode(entry["canonicalizedBody"])
