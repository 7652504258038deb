"""OCI image layouts: writing, reading, tags, referrers entries, tampering (image-layout.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safeguard.core import mediatypes as mt
from safeguard.core.digest import Digest
from safeguard.core.errors import InvalidInput, NotFound
from safeguard.core.manifest import Descriptor
from safeguard.oci.errors import DigestMismatch, SizeMismatch
from safeguard.oci.layout import REF_NAME, OCILayout
from safeguard.oci.referrers import referrers_tag
from tests.unit.oci.artifacts import Artifact, image, referrer


def _store(
    layout: OCILayout, artifact: Artifact, tag: str | None, *, as_referrer: bool = False
) -> None:
    for digest, data in artifact.blobs.items():
        layout.write_blob(digest, data)
    if as_referrer:
        layout.put_manifest(artifact.raw, artifact.descriptor(), None)
        subject = json.loads(artifact.raw)["subject"]["digest"]
        from safeguard.core.manifest import parse_manifest

        layout.record_referrer(Digest.parse(subject), parse_manifest(artifact.raw).descriptor())
    else:
        layout.put_manifest(artifact.raw, artifact.descriptor(), tag)


def test_create_writes_the_spec_files(tmp_path: Path) -> None:
    root = tmp_path / "layout"
    OCILayout.create(root)
    assert json.loads((root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((root / "index.json").read_text())
    assert index["schemaVersion"] == 2 and index["manifests"] == []
    assert (root / "blobs" / "sha256").is_dir()
    OCILayout.create(root)  # idempotent on an existing layout
    OCILayout.open(root)


def test_tagged_entries_resolve_and_move(tmp_path: Path) -> None:
    layout = OCILayout.create(tmp_path)
    first, second = image(), image()
    _store(layout, first, "v1")
    _store(layout, second, "v1")  # the tag moves
    _store(layout, first, "old")
    assert layout.resolve("v1").digest == second.digest
    assert layout.resolve("old").digest == first.digest
    assert sorted(layout.tags()) == ["old", "v1"]
    entry = layout.resolve("v1")
    assert entry.annotations == {REF_NAME: "v1"}
    assert layout.read_manifest(entry) == second.raw
    with pytest.raises(NotFound, match="no image tagged"):
        layout.resolve("missing")
    with pytest.raises(InvalidInput, match="holds 2 images"):
        layout.resolve(None)


def test_referrers_are_untagged_entries_plus_tag_schema_index(tmp_path: Path) -> None:
    layout = OCILayout.create(tmp_path)
    subject = image()
    _store(layout, subject, "v1")
    sig = referrer(subject, mt.SIGSTORE_BUNDLE_V03)
    sbom = referrer(subject, "application/spdx+json")
    _store(layout, sig, None, as_referrer=True)
    _store(layout, sbom, None, as_referrer=True)
    entries = layout.entries()
    untagged = [e.digest for e in entries if REF_NAME not in e.annotations]
    assert untagged == [sig.digest, sbom.digest]
    assert layout.find_tag(referrers_tag(subject.digest)) is not None  # regctl's convention
    found = {d.digest: (d.artifact_type, via) for d, via in layout.referrers(subject.digest)}
    assert found == {
        sig.digest: (mt.SIGSTORE_BUNDLE_V03, "layout"),
        sbom.digest: ("application/spdx+json", "layout"),
    }
    # Without a tag the one image is still found: referrers and their tags do not count.
    assert layout.resolve(None).digest == subject.digest
    # Recording twice does not duplicate.
    _store(layout, sig, None, as_referrer=True)
    assert len(layout.entries()) == len(entries)


def test_tampered_blob_is_a_digest_mismatch(tmp_path: Path) -> None:
    layout = OCILayout.create(tmp_path)
    art = image()
    _store(layout, art, "v1")
    layer = json.loads(art.raw)["layers"][0]
    path = layout.blob_path(Digest.parse(layer["digest"]))
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DigestMismatch) as info:
        layout.verify_blob(Digest.parse(layer["digest"]), layer["size"])
    assert info.value.exit_code == 1
    path.write_bytes(bytes(data) + b"extra")
    with pytest.raises(SizeMismatch):
        layout.verify_blob(Digest.parse(layer["digest"]), layer["size"])


def test_tampered_manifest_is_a_digest_mismatch(tmp_path: Path) -> None:
    layout = OCILayout.create(tmp_path)
    art = image()
    _store(layout, art, "v1")
    layout.blob_path(art.digest).write_bytes(art.raw.replace(b"tar+gzip", b"tar+gzIp"))
    with pytest.raises(DigestMismatch):
        layout.read_manifest(layout.resolve("v1"))


def test_write_blob_refuses_wrong_content_and_leaves_no_temp_files(tmp_path: Path) -> None:
    layout = OCILayout.create(tmp_path)
    with pytest.raises(DigestMismatch):
        layout.write_blob(Digest.of(b"right"), b"wrong")
    source = tmp_path / "src.bin"
    source.write_bytes(b"wrong")
    with pytest.raises(DigestMismatch):
        layout.import_blob(Digest.of(b"right"), source, 5)
    leftovers = [p.name for p in (tmp_path / "blobs" / "sha256").iterdir()]
    assert leftovers == []
    layout.import_blob(Digest.of(b"wrong"), source, 5)
    assert layout.has_blob(Digest.of(b"wrong"), 5)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "no oci-layout"),
        (lambda p: (p / "oci-layout").write_text("{nope"), "not valid JSON"),
        (lambda p: (p / "oci-layout").write_text('{"imageLayoutVersion":"9.0.0"}'), "unsupported"),
    ],
)
def test_not_a_layout(tmp_path: Path, setup: object, message: str) -> None:
    (tmp_path / "file").write_text("x")
    setup(tmp_path)  # type: ignore[operator]
    with pytest.raises(InvalidInput, match=message):
        OCILayout.open(tmp_path)


def test_missing_directory_and_non_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        OCILayout.open(tmp_path / "nope")
    (tmp_path / "stuff.txt").write_text("x")
    with pytest.raises(InvalidInput, match="not empty"):
        OCILayout.create(tmp_path)


def test_malformed_index_json(tmp_path: Path) -> None:
    OCILayout.create(tmp_path)
    (tmp_path / "index.json").write_text("[1, 2")
    with pytest.raises(InvalidInput, match=r"index\.json is not a valid image index"):
        OCILayout.open(tmp_path)
    (tmp_path / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [{"mediaType": "x", "size": 1, "digest": "../../etc"}],
            }
        )
    )
    layout = OCILayout(tmp_path)
    with pytest.raises(InvalidInput):
        layout.entries()


def test_blob_paths_cannot_escape(tmp_path: Path) -> None:
    layout = OCILayout.create(tmp_path)
    d = Digest.of(b"x")
    assert layout.blob_path(d) == tmp_path / "blobs" / "sha256" / d.hex
    assert not layout.has_blob(d)
    with pytest.raises(NotFound):
        layout.read_blob(d)
    assert isinstance(Descriptor(mt.OCI_MANIFEST, d, 1).to_dict(), dict)
