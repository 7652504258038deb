"""The layers together, as the signing service will use them: a key signs a simple-signing
payload; the signature goes into a cosign .sig manifest, a hashedrekord body and a v0.3 bundle;
each reads back and verifies."""

from __future__ import annotations

import hashlib

import sigstore_models.bundle.v1 as sigstore_models_bundle

from safeguard.core.digest import Digest
from safeguard.formats import bundle, cosign_sig, dsse, rekor, simplesigning
from safeguard.formats.intoto import Subject
from safeguard.formats.slsa import provenance_from_env
from safeguard.keys import Algorithm, SoftwareSigner, load_public_key, verify_signature

IMAGE = Digest.parse("sha256:" + "ab" * 32)


def test_image_signature_round_trip() -> None:
    signer = SoftwareSigner.generate(Algorithm.ECDSA_P256_SHA256)
    payload = simplesigning.build_payload("registry.example/team/app", IMAGE)
    signature = signer.sign(payload)
    body = rekor.hashedrekord_v001(Digest.of(payload), signature, signer.public_key_pem)

    layer = cosign_sig.new_signature_layer(payload, signature)
    built = cosign_sig.build_signature_manifest([layer])
    parsed = cosign_sig.parse_signature_manifest(built.manifest).layers[0]
    blob = dict(built.blobs)[parsed.payload_digest]
    parsed = parsed.with_payload(blob)
    verify_signature(signer.public_key, parsed.signature, blob)
    assert simplesigning.parse_payload(blob).manifest_digest == IMAGE

    entry = bundle.TransparencyLogEntry(
        log_index=7,
        log_id=b"\x01" * 32,
        kind="hashedrekord",
        version="0.0.1",
        canonicalized_body=body,
        integrated_time=1_700_000_000,
        signed_entry_timestamp=b"set",
        inclusion_proof=bundle.InclusionProof(7, b"\x02" * 32, 8, (b"\x03" * 32,), "checkpoint\n"),
    )
    sig_bundle = bundle.message_signature_bundle(
        signature,
        digest=hashlib.sha256(payload).digest(),
        public_key_hint=signer.key_id,
        tlog_entries=[entry],
    )
    raw = sig_bundle.to_json()
    assert sigstore_models_bundle.Bundle.from_json(raw).to_json().encode() == raw
    again = bundle.Bundle.from_json(raw)
    logged = again.verification_material.tlog_entries[0].entry()
    assert logged.artifact_digest == Digest.of(payload)
    pem = logged.signatures[0].verifier.pem
    assert pem is not None
    verify_signature(load_public_key(pem), again.signature, payload)


def test_attestation_round_trip() -> None:
    signer = SoftwareSigner.generate(Algorithm.ED25519)
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "o/r",
        "GITHUB_SHA": "c" * 40,
        "GITHUB_REF": "refs/tags/v1",
        "GITHUB_WORKFLOW_REF": "o/r/.github/workflows/release.yml@refs/tags/v1",
        "GITHUB_RUN_ID": "1",
        "GITHUB_RUN_ATTEMPT": "1",
    }
    statement = provenance_from_env(env).statement([Subject.for_digest("app", IMAGE)])
    envelope = dsse.sign(dsse.INTOTO_PAYLOAD_TYPE, statement.to_json(), signer.sign)
    layer = cosign_sig.new_attestation_layer(envelope.to_json(), statement.predicate_type)
    manifest = cosign_sig.build_signature_manifest([layer])
    parsed = cosign_sig.parse_signature_manifest(manifest.manifest).layers[0]
    assert parsed.predicate_type == "https://slsa.dev/provenance/v1"

    def verifier(pae: bytes, sig: bytes, keyid: str) -> bool:
        verify_signature(signer.public_key, sig, pae)
        return True

    read_back = dsse.Envelope.from_json(dict(manifest.blobs)[parsed.payload_digest])
    payload = dsse.verify(read_back, verifier)
    body = rekor.dsse_v001(envelope.to_json(), signer.public_key_pem)
    assert rekor.parse_entry(body).payload_hash == Digest.of(payload)
    att_bundle = bundle.dsse_bundle(read_back, public_key_hint=signer.key_id)
    assert bundle.Bundle.from_json(att_bundle.to_json()).dsse_envelope == read_back
