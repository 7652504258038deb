"""OCI image layouts: writing, reading, tags, referrers entries, tampering (image-layout.md)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
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


# --- durability, permissions and concurrent writers ------------------------------------------

_WRITER = """
import sys
from pathlib import Path
from safeguard.core import mediatypes as mt
from safeguard.core.digest import Digest
from safeguard.core.manifest import Descriptor
from safeguard.oci.layout import OCILayout

layout = OCILayout.create(Path(sys.argv[1]))
for i in range(int(sys.argv[3])):
    raw = f'{{"writer":"{sys.argv[2]}","n":{i}}}'.encode()
    layout.add_entry(Descriptor(mt.OCI_MANIFEST, Digest.of(raw), len(raw)), f"{sys.argv[2]}-{i}")
"""


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_committed_files_are_readable_like_any_file_the_user_writes(tmp_path: Path) -> None:
    from safeguard.oci.atomic import file_mode, write_atomic

    assert file_mode() == 0o644 & ~_current_umask()
    root = tmp_path / "layout"
    layout = OCILayout.create(root)
    _store(layout, image(), "v1")
    for path in [root / "oci-layout", root / "index.json", *root.glob("blobs/sha256/*")]:
        assert stat.S_IMODE(path.stat().st_mode) == file_mode(), path
    target = tmp_path / "one"
    write_atomic(target, b"x")
    assert stat.S_IMODE(target.stat().st_mode) == file_mode()


def test_rename_is_made_durable_by_syncing_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import safeguard.oci.atomic as atomic

    synced: list[bool] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", recording_fsync)
    atomic.write_atomic(tmp_path / "index.json", b"{}")
    assert synced == [False, True]  # the file, then its directory after the rename


def test_concurrent_writers_keep_every_entry(tmp_path: Path) -> None:
    """Threads and processes adding entries at once: none is lost (index.json is locked)."""
    root = tmp_path / "layout"
    OCILayout.create(root)
    per_writer = 15

    def thread_writer(name: str) -> None:
        layout = OCILayout.open(root)
        for i in range(per_writer):
            raw = f'{{"writer":"{name}","n":{i}}}'.encode()
            layout.add_entry(Descriptor(mt.OCI_MANIFEST, Digest.of(raw), len(raw)), f"{name}-{i}")

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(root), f"p{n}", str(per_writer)], env=env
        )
        for n in range(3)
    ]
    threads = [threading.Thread(target=thread_writer, args=(f"t{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for process in processes:
        assert process.wait(timeout=60) == 0
    tags = OCILayout.open(root).tags()
    expected = {f"{w}-{i}" for w in ("p0", "p1", "p2", "t0", "t1", "t2") for i in range(per_writer)}
    assert sorted(tags) == sorted(expected)
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp-")]


def test_concurrent_creators_and_a_foreign_directory(tmp_path: Path) -> None:
    root = tmp_path / "new"
    errors: list[BaseException] = []

    def create() -> None:
        try:
            OCILayout.create(root)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert OCILayout.open(root).entries() == []
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="not empty"):
        OCILayout.create(foreign)
