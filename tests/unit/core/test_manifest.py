from __future__ import annotations

import json

import pytest

from safeguard.core import mediatypes as mt
from safeguard.core.digest import Digest
from safeguard.core.errors import InvalidManifest
from safeguard.core.manifest import Descriptor, build_referrers_index, parse_manifest

D1 = "sha256:" + "11" * 32
D2 = "sha256:" + "22" * 32


def _image(**extra: object) -> bytes:
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": D1, "size": 2},
        "layers": [{"mediaType": mt.OCI_LAYER_GZIP, "digest": D2, "size": 10}],
    }
    doc.update(extra)
    return json.dumps(doc).encode()


def test_parse_image_manifest() -> None:
    raw = _image()
    m = parse_manifest(raw, mt.OCI_MANIFEST)
    assert not m.is_index
    assert [str(d.digest) for d in m.blobs()] == [D1, D2]
    assert m.effective_artifact_type == mt.OCI_CONFIG
    assert m.digest == Digest.of(raw)


def test_artifact_with_subject() -> None:
    raw = _image(
        artifactType=mt.SIGSTORE_BUNDLE_V03,
        subject={"mediaType": mt.OCI_MANIFEST, "digest": D2, "size": 100},
        annotations={"a": "b"},
    )
    m = parse_manifest(raw)
    assert m.subject is not None and str(m.subject.digest) == D2
    d = m.descriptor()
    assert d.artifact_type == mt.SIGSTORE_BUNDLE_V03
    assert d.annotations == {"a": "b"}


def test_parse_index() -> None:
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_INDEX,
            "manifests": [{"mediaType": mt.OCI_MANIFEST, "digest": D1, "size": 5}],
        }
    ).encode()
    m = parse_manifest(raw)
    assert m.is_index and m.blobs() == ()
    assert str(m.manifests[0].digest) == D1


def test_referrers_index_round_trip() -> None:
    d = Descriptor(mt.OCI_MANIFEST, Digest.parse(D1), 5, {"x": "y"}, "t")
    m = parse_manifest(build_referrers_index([d]))
    assert m.manifests == (d,)


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b"not json", None),
        (b"[]", None),
        (b'{"schemaVersion": 1}', None),
        (_image(), mt.OCI_INDEX),  # header disagrees with mediaType
        (json.dumps({"schemaVersion": 2, "mediaType": "text/plain"}).encode(), None),
        (json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST}).encode(), None),
        (_image(layers=[{"mediaType": "x", "digest": "sha256:zz", "size": 1}]), None),
        (_image(layers=[{"mediaType": "x", "digest": D1, "size": -1}]), None),
        (_image(layers=[{"mediaType": "x", "digest": D1, "size": True}]), None),
        (_image(layers="nope"), None),
        (_image(subject={"digest": D1}), None),
        (json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX}).encode(), None),
        (b"\xff\xfe", None),
    ],
)
def test_rejects_malformed(raw: bytes, content_type: str | None) -> None:
    with pytest.raises(InvalidManifest) as info:
        parse_manifest(raw, content_type)
    assert info.value.code == "MANIFEST_INVALID"
