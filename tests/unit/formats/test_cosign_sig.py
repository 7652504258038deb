"""cosign .sig/.att layout, checked against real cosign output (containers/image fixtures,
goharbor/harbor's captured manifest) and verified with cosign's public key."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from safeguard.core.digest import Digest
from safeguard.core.manifest import Descriptor
from safeguard.formats import cosign_sig as cs
from safeguard.formats.errors import SignatureManifestInvalid
from safeguard.formats.rekor import parse_entry
from safeguard.formats.simplesigning import parse_payload
from tests.unit.formats.vectors import containers_image_signature, read

IMAGE = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"


def _layer_from_fixture(directory: str) -> cs.SignatureLayer:
    doc = containers_image_signature(directory)
    descriptor = Descriptor(
        doc["mimeType"], Digest.of(doc["payload"]), len(doc["payload"]), doc["annotations"]
    )
    return cs.parse_signature_layer(descriptor).with_payload(doc["payload"])


def test_tags() -> None:
    assert cs.signature_tag(IMAGE) == f"sha256-{IMAGE[7:]}.sig"
    assert cs.attestation_tag(IMAGE).endswith(".att")
    assert cs.sbom_tag(IMAGE).endswith(".sbom")
    assert cs.parse_tag(cs.attestation_tag(IMAGE)) == (Digest.parse(IMAGE), "att")
    assert cs.parse_tag("latest") is None
    assert cs.parse_tag("sha256-abc.sig") is None


def test_real_cosign_signature_verifies_with_cosign_pub() -> None:
    layer = _layer_from_fixture("dir-img-cosign-valid")
    key = serialization.load_pem_public_key(read("containers-image/cosign.pub"))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert layer.payload is not None
    key.verify(layer.signature, layer.payload, ec.ECDSA(hashes.SHA256()))
    assert parse_payload(layer.payload).manifest_digest == Digest.parse(IMAGE)
    assert Digest.of(read("containers-image/dir-img-cosign-valid/manifest.json")) == Digest.parse(
        IMAGE
    )


def test_keyless_layer_annotations_round_trip_byte_exact() -> None:
    doc = containers_image_signature("dir-img-cosign-fulcio-rekor-valid")
    layer = _layer_from_fixture("dir-img-cosign-fulcio-rekor-valid")
    assert layer.certificate is not None and layer.certificate.startswith(b"-----BEGIN CERT")
    assert layer.chain is not None
    assert layer.bundle is not None
    # Our RekorBundle serialisation is byte-identical to what cosign wrote.
    assert layer.bundle.to_json().decode() == doc["annotations"][cs.BUNDLE_ANNOTATION]
    entry = parse_entry(layer.bundle.body)
    assert entry.kind == "hashedrekord"
    assert entry.signatures[0].signature == layer.signature
    assert entry.artifact_digest == layer.payload_digest
    # Rebuilding the layer from its parts gives the same annotations.
    assert layer.payload is not None
    rebuilt = cs.new_signature_layer(
        layer.payload,
        layer.signature,
        certificate=layer.certificate,
        chain=layer.chain,
        bundle=layer.bundle,
    )
    assert rebuilt.annotations == doc["annotations"]


def test_key_rekor_layer_signature_verifies() -> None:
    layer = _layer_from_fixture("dir-img-cosign-key-rekor-valid")
    assert layer.bundle is not None and layer.payload is not None
    entry = parse_entry(layer.bundle.body)
    pem = entry.signatures[0].verifier.pem
    assert pem is not None
    key = serialization.load_pem_public_key(pem)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(layer.signature, layer.payload, ec.ECDSA(hashes.SHA256()))


# goharbor/harbor src/server/middleware/cosign/cosign.go quotes a manifest cosign pushed:
# config size 233 digest d4e6059e..., one layer sha256:91a821a0... of 250 bytes.
HARBOR_LAYER = "sha256:91a821a0e2412f1b99b07bfe176451bcc343568b761388718abbf38076048564"
HARBOR_CONFIG = "sha256:d4e6059ece7bea95266fd7766353130d4bf3dc21048b8a9783c98b8412618c38"
HARBOR_SIG = (
    "MEUCIQD/imXjZJlcV82eXu9y9FJGgbDwVPw7AaGFzqva8G+CgwIg"
    "Yc4CRvEjwoAwkzGoX+aZxQWCASpv5G+EAWDKOJRLbTQ="
)


def test_config_matches_cosign_byte_for_byte() -> None:
    layer = cs.parse_signature_layer(
        Descriptor(
            cs.SIMPLE_SIGNING_MEDIA_TYPE,
            Digest.parse(HARBOR_LAYER),
            250,
            {cs.SIGNATURE_ANNOTATION: HARBOR_SIG},
        )
    )
    built = cs.build_signature_manifest([layer])
    assert built.config_digest == Digest.parse(HARBOR_CONFIG)
    assert len(built.config) == 233
    assert built.blobs == ((built.config_digest, built.config),)  # layer blob already pushed
    manifest = json.loads(built.manifest)
    assert manifest["layers"][0] == {
        "mediaType": cs.SIMPLE_SIGNING_MEDIA_TYPE,
        "size": 250,
        "digest": HARBOR_LAYER,
        "annotations": {cs.SIGNATURE_ANNOTATION: HARBOR_SIG},
    }
    assert built.manifest.startswith(
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
        b'"config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":233,'
    )
    reparsed = cs.parse_signature_manifest(built.manifest)
    assert reparsed.layers[0].signature == base64.b64decode(HARBOR_SIG)


def test_build_parse_round_trip_and_append() -> None:
    first = _layer_from_fixture("dir-img-cosign-valid")
    second = _layer_from_fixture("dir-img-cosign-fulcio-rekor-valid")
    manifest, config, blobs = cs.build_signature_manifest([first])
    parsed = cs.parse_signature_manifest(manifest)
    assert parsed.layers[0].payload is None
    appended = cs.build_signature_manifest([*parsed.layers, second])
    assert [d for d, _ in appended.blobs][1:] == [second.payload_digest]
    both = cs.parse_signature_manifest(appended.manifest)
    assert [layer.payload_digest for layer in both.layers] == [
        first.payload_digest,
        second.payload_digest,
    ]
    assert b'"history":[{"created":"0001-01-01T00:00:00Z"},{"created":"0001-01-01T00:00:00Z"}]' in (
        appended.config
    )
    assert config in dict(blobs).values()


def test_attestation_layer_layout() -> None:
    envelope = b'{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}'
    layer = cs.new_attestation_layer(envelope, "https://slsa.dev/provenance/v1")
    assert layer.annotations == {
        "predicateType": "https://slsa.dev/provenance/v1",
        cs.SIGNATURE_ANNOTATION: "",
    }
    assert layer.is_attestation and layer.predicate_type == "https://slsa.dev/provenance/v1"
    built = cs.build_signature_manifest([layer], docker_media_types=True)
    parsed = cs.parse_signature_manifest(built.manifest)
    assert parsed.media_type == "application/vnd.docker.distribution.manifest.v2+json"
    assert parsed.layers[0].signature == b""
    assert parsed.layers[0].media_type == cs.DSSE_MEDIA_TYPE


def test_with_payload_checks_the_blob() -> None:
    layer = _layer_from_fixture("dir-img-cosign-valid")
    bare = cs.parse_signature_manifest(cs.build_signature_manifest([layer]).manifest).layers[0]
    with pytest.raises(SignatureManifestInvalid):
        bare.with_payload(b"tampered")


def _manifest_with(
    annotations: dict[str, str], media_type: str = cs.SIMPLE_SIGNING_MEDIA_TYPE
) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "size": 2,
                "digest": HARBOR_CONFIG,
            },
            "layers": [
                {
                    "mediaType": media_type,
                    "size": 1,
                    "digest": HARBOR_LAYER,
                    "annotations": annotations,
                }
            ],
        }
    ).encode()


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[]",
        b'{"schemaVersion":1}',
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}',
        b'{"schemaVersion":2,"config":{"mediaType":"x","size":2,"digest":"'
        + HARBOR_CONFIG.encode()
        + b'"},"layers":[]}',
        _manifest_with({}),
        _manifest_with({cs.SIGNATURE_ANNOTATION: "%%%"}),
        _manifest_with({cs.SIGNATURE_ANNOTATION: ""}),
        _manifest_with({cs.SIGNATURE_ANNOTATION: HARBOR_SIG, cs.BUNDLE_ANNOTATION: "{"}),
        _manifest_with(
            {cs.SIGNATURE_ANNOTATION: HARBOR_SIG, cs.BUNDLE_ANNOTATION: '{"Payload":1}'}
        ),
        _manifest_with(
            {
                cs.SIGNATURE_ANNOTATION: HARBOR_SIG,
                cs.BUNDLE_ANNOTATION: '{"SignedEntryTimestamp":"AA==","Payload":{"body":"AA==",'
                '"integratedTime":-1,"logIndex":1,"logID":"ab"}}',
            }
        ),
        _manifest_with({cs.SIGNATURE_ANNOTATION: HARBOR_SIG, cs.CERTIFICATE_ANNOTATION: "junk"}),
    ],
)
def test_hostile_manifests_raise_typed_error(raw: bytes) -> None:
    with pytest.raises(SignatureManifestInvalid):
        cs.parse_signature_manifest(raw)


def test_build_needs_a_layer() -> None:
    with pytest.raises(SignatureManifestInvalid):
        cs.build_signature_manifest([])
