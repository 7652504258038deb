"""OCI image layouts on disk (OCI image spec v1.1, ``image-layout.md``), as skopeo's ``oci:``
transport, oras and regctl read and write them.

A layout is a directory with an ``oci-layout`` file (``{"imageLayoutVersion": "1.0.0"}``), an
``index.json`` image index, and ``blobs/<alg>/<encoded>`` files. A tag is the
``org.opencontainers.image.ref.name`` annotation of an ``index.json`` entry (what skopeo's
``oci:DIR:TAG`` resolves). Referrers are stored as further ``index.json`` entries without a ref
name, as oras-go's layout store does; so that regctl, which reads the referrers tag schema in
layouts, finds them too, the subject's ``<alg>-<hex>`` index is also kept under that ref name.
Reading referrers merges both: entries whose manifest has the subject, and the tag-schema index.

Blob files are verified against their digest whenever they are read (a tampered layout is a
``DigestMismatch``), and every write goes through a temporary file renamed into place (fsynced,
with its directory; ``safeguard.oci.atomic``).

Concurrent writers: every read-modify-write of ``index.json`` (adding an entry, moving a tag,
updating a referrers tag-schema index) holds an exclusive ``flock(2)`` on the layout's
``oci-layout`` file, a file that is never replaced once written, so that two processes or threads
copying into the same layout keep each other's entries. Readers take no lock: the index is always
replaced whole.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from safeguard.core import mediatypes as mt
from safeguard.core.digest import Digest
from safeguard.core.errors import InvalidInput, InvalidManifest, NotFound
from safeguard.core.manifest import Descriptor, parse_manifest
from safeguard.core.reference import validate_tag
from safeguard.oci.atomic import AtomicFile, write_atomic
from safeguard.oci.manifests import MANIFEST_LIMIT
from safeguard.oci.referrers import parse_referrers_index, referrers_tag
from safeguard.oci.verify import DigestVerifier

LAYOUT_FILE: Final = "oci-layout"
INDEX_FILE: Final = "index.json"
LAYOUT_VERSION: Final = "1.0.0"
REF_NAME: Final = "org.opencontainers.image.ref.name"
READ_SIZE: Final = 1024 * 1024
# Tags that name a referrers list or cosign's attached artifacts, not an image.
_ATTACHED_TAG: Final = re.compile(r"^sha(?:256|512)-[0-9a-f]{64}(?:\.(?:sig|att|sbom))?$")


class OCILayout:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock_state = threading.local()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the layout's exclusive lock (re-entrant within a thread); see the module doc."""
        state = self._lock_state
        if getattr(state, "depth", 0):
            state.depth += 1
            try:
                yield
            finally:
                state.depth -= 1
            return
        try:
            fd = os.open(self.root / LAYOUT_FILE, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise InvalidInput(f"{self.root} is not an OCI layout: no {LAYOUT_FILE} file") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            state.depth = 1
            try:
                yield
            finally:
                state.depth = 0
        finally:
            os.close(fd)  # releases the lock

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, root: Path) -> OCILayout:
        """An existing layout; its ``oci-layout`` and ``index.json`` are checked."""
        layout = cls(root)
        if not root.is_dir():
            raise NotFound(f"OCI layout {root} does not exist", hint="check the oci:DIR path")
        layout._check_layout_file()
        layout._read_index()
        return layout

    @classmethod
    def create(cls, root: Path) -> OCILayout:
        """A layout at ``root``, created when missing; an existing one is checked."""
        layout = cls(root)
        if root.exists() and not root.is_dir():
            raise InvalidInput(f"{root} exists and is not a directory")
        root.mkdir(parents=True, exist_ok=True)
        layout_file = root / LAYOUT_FILE
        if not layout_file.exists():
            # Another writer creating the same layout right now leaves only its temporary files
            # and, once it has written oci-layout, the rest: neither makes the directory foreign.
            others = [p for p in root.iterdir() if not p.name.startswith(".tmp-")]
            if others and not layout_file.exists():
                raise InvalidInput(
                    f"{root} is not empty and is not an OCI layout",
                    hint="copy into an empty or new directory, or an existing OCI layout",
                )
            if not layout_file.exists():
                write_atomic(
                    layout_file, json.dumps({"imageLayoutVersion": LAYOUT_VERSION}).encode()
                )
        layout._check_layout_file()
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        with layout._locked():
            if not (root / INDEX_FILE).exists():
                layout._write_index(
                    {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
                )
            else:
                layout._read_index()
        return layout

    def _check_layout_file(self) -> None:
        path = self.root / LAYOUT_FILE
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError as exc:
            raise InvalidInput(
                f"{self.root} is not an OCI layout: no {LAYOUT_FILE} file",
                hint="point oci: at a directory written by skopeo, oras, regctl or safeguard",
            ) from exc
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"{path} is not valid JSON") from exc
        version = doc.get("imageLayoutVersion") if isinstance(doc, dict) else None
        if not isinstance(version, str) or not version.startswith("1."):
            raise InvalidInput(f"{path}: unsupported imageLayoutVersion {version!r}")

    # -- index.json ------------------------------------------------------------------------

    def _read_index(self) -> dict[str, Any]:
        path = self.root / INDEX_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError as exc:
            raise InvalidInput(f"OCI layout {self.root} has no {INDEX_FILE}") from exc
        try:
            parse_manifest(raw)
        except InvalidManifest as exc:
            raise InvalidInput(f"{path} is not a valid image index: {exc.message}") from exc
        doc: dict[str, Any] = json.loads(raw)
        if "manifests" not in doc:
            raise InvalidInput(f"{path} is not an image index (no manifests list)")
        return doc

    def _write_index(self, doc: dict[str, Any]) -> None:
        write_atomic(self.root / INDEX_FILE, json.dumps(doc, indent=None).encode())

    def entries(self) -> list[Descriptor]:
        doc = self._read_index()
        return [
            Descriptor.from_dict(d, f"{INDEX_FILE} manifests[{i}]")
            for i, d in enumerate(doc["manifests"])
        ]

    def tags(self) -> list[str]:
        return [d.annotations[REF_NAME] for d in self.entries() if REF_NAME in d.annotations]

    def resolve(self, tag: str | None) -> Descriptor:
        """The entry tagged ``tag``; without a tag, the only tagged (or the only) entry."""
        entries = self.entries()
        if tag is not None:
            for d in entries:
                if d.annotations.get(REF_NAME) == tag:
                    return d
            raise NotFound(
                f"no image tagged {tag!r} in OCI layout {self.root}",
                hint=f"tags there: {', '.join(self.tags()) or '(none)'}",
            )
        # Without a tag: the one image, not counting referrers and their tags.
        tagged = [
            d
            for d in entries
            if REF_NAME in d.annotations and not _ATTACHED_TAG.match(d.annotations[REF_NAME])
        ]
        candidates = tagged or [
            d for d in entries if REF_NAME not in d.annotations and not self._has_subject(d)
        ]
        if len(candidates) == 1:
            return candidates[0]
        raise InvalidInput(
            f"OCI layout {self.root} holds {len(candidates)} images; name one as oci:DIR:TAG",
            hint=f"tags there: {', '.join(self.tags()) or '(none)'}",
        )

    def _has_subject(self, descriptor: Descriptor) -> bool:
        if descriptor.media_type not in mt.MANIFESTS:
            return False
        raw = self.read_manifest(descriptor)
        return parse_manifest(raw, descriptor.media_type).subject is not None

    def find_tag(self, tag: str) -> Descriptor | None:
        for d in self.entries():
            if d.annotations.get(REF_NAME) == tag:
                return d
        return None

    def add_entry(self, descriptor: Descriptor, ref_name: str | None = None) -> None:
        """Record a manifest in ``index.json``: tagged (moving the tag), or untagged once."""
        if ref_name is not None:
            validate_tag(ref_name)
        with self._locked():
            self._add_entry(descriptor, ref_name)

    def _add_entry(self, descriptor: Descriptor, ref_name: str | None) -> None:
        doc = self._read_index()
        manifests: list[dict[str, Any]] = doc["manifests"]
        entry = Descriptor(
            descriptor.media_type,
            descriptor.digest,
            descriptor.size,
            {REF_NAME: ref_name} if ref_name else {},
            descriptor.artifact_type,
            descriptor.platform,
        ).to_dict()
        if ref_name is None:
            if any(m.get("digest") == str(descriptor.digest) for m in manifests):
                return
        else:
            manifests[:] = [
                m for m in manifests if (m.get("annotations") or {}).get(REF_NAME) != ref_name
            ]
            # An untagged entry of the same digest is now redundant.
            manifests[:] = [
                m
                for m in manifests
                if m.get("digest") != str(descriptor.digest)
                or REF_NAME in (m.get("annotations") or {})
            ]
        manifests.append(entry)
        self._write_index(doc)

    # -- blobs -----------------------------------------------------------------------------

    def blob_path(self, digest: Digest) -> Path:
        return self.root / "blobs" / digest.algorithm / digest.hex

    def has_blob(self, digest: Digest, size: int | None = None) -> bool:
        path = self.blob_path(digest)
        if not path.is_file():
            return False
        return size is None or path.stat().st_size == size

    def iter_blob(self, digest: Digest, size: int | None = None) -> Iterator[bytes]:
        """The blob's bytes in pieces, verified: ``DigestMismatch`` at the end if tampered."""
        path = self.blob_path(digest)
        verifier = DigestVerifier(digest, size, f"blob {digest} in OCI layout {self.root}")
        try:
            f = path.open("rb")
        except FileNotFoundError as exc:
            raise NotFound(f"blob {digest} is missing from OCI layout {self.root}") from exc
        with f:
            pending: bytes | None = None
            while piece := f.read(READ_SIZE):
                verifier.update(piece)
                if pending is not None:
                    yield pending
                pending = piece
        verifier.finish()
        if pending is not None:
            yield pending

    def read_blob(self, digest: Digest, size: int | None = None, limit: int | None = None) -> bytes:
        path = self.blob_path(digest)
        if limit is not None and path.is_file() and path.stat().st_size > limit:
            raise InvalidManifest(f"{path} is larger than {limit} bytes")
        return b"".join(self.iter_blob(digest, size))

    def verify_blob(self, digest: Digest, size: int | None = None) -> int:
        total = 0
        for piece in self.iter_blob(digest, size):
            total += len(piece)
        return total

    def write_blob(self, digest: Digest, data: bytes) -> None:
        verifier = DigestVerifier(digest, len(data), f"blob {digest} written to {self.root}")
        verifier.update(data)
        verifier.finish()
        if not self.has_blob(digest, len(data)):
            write_atomic(self.blob_path(digest), data)

    def import_blob(self, digest: Digest, source: Path, size: int | None = None) -> None:
        """Copy a file in as blob ``digest``, verifying it on the way."""
        verifier = DigestVerifier(digest, size, f"blob {digest} written to {self.root}")
        with AtomicFile(self.blob_path(digest)) as out, source.open("rb") as f:
            while piece := f.read(READ_SIZE):
                verifier.update(piece)
                out.write(piece)
            verifier.finish()

    def read_manifest(self, descriptor: Descriptor) -> bytes:
        return self.read_blob(descriptor.digest, descriptor.size, MANIFEST_LIMIT)

    def put_manifest(self, raw: bytes, descriptor: Descriptor, ref_name: str | None) -> None:
        self.write_blob(descriptor.digest, raw)
        self.add_entry(descriptor, ref_name)

    # -- referrers -------------------------------------------------------------------------

    def referrers(self, subject: Digest) -> list[tuple[Descriptor, str]]:
        """Referrers of ``subject`` with where they were found (``layout`` or ``tag-schema``)."""
        found: dict[Digest, tuple[Descriptor, str]] = {}
        for entry in self.entries():
            if entry.media_type not in mt.MANIFESTS or entry.digest in found:
                continue
            if entry.annotations.get(REF_NAME) == referrers_tag(subject):
                continue
            raw = self.read_manifest(entry)
            manifest = parse_manifest(raw, entry.media_type)
            if manifest.subject is not None and manifest.subject.digest == subject:
                found[entry.digest] = (manifest.descriptor(), "layout")
        tagged = self.find_tag(referrers_tag(subject))
        if tagged is not None:
            raw = self.read_manifest(tagged)
            where = f"referrers tag {referrers_tag(subject)} in OCI layout {self.root}"
            for d in parse_referrers_index(raw, where):
                found.setdefault(d.digest, (d, "tag-schema"))
        return list(found.values())

    def record_referrer(self, subject: Digest, descriptor: Descriptor) -> None:
        """Keep the subject's referrers tag-schema index in the layout (regctl reads it)."""
        with self._locked():
            self._record_referrer(subject, descriptor)

    def _record_referrer(self, subject: Digest, descriptor: Descriptor) -> None:
        tag = referrers_tag(subject)
        existing = self.find_tag(tag)
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
        if existing is not None:
            raw = self.read_manifest(existing)
            where = f"referrers tag {tag} in OCI layout {self.root}"
            if any(d.digest == descriptor.digest for d in parse_referrers_index(raw, where)):
                return
            doc = json.loads(raw)
        doc["manifests"].append(descriptor.to_dict())
        raw = json.dumps(doc, separators=(",", ":")).encode()
        index_desc = Descriptor(mt.OCI_INDEX, Digest.of(raw), len(raw))
        self.put_manifest(raw, index_desc, tag)
