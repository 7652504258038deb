"""The registry's metadata queries (SQLAlchemy Core over ``safeguard.store.registry_models``).

Every method is synchronous and opens its own short transaction, so callers run it in a worker
thread. Reads are single indexed queries; writes that must be all-or-nothing (a manifest with its
tags, a blob link with its repository) happen in one transaction, and upserts use
``INSERT ... ON CONFLICT`` on both SQLite and PostgreSQL so concurrent pushes never collide.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from safeguard.core.digest import Digest
from safeguard.core.manifest import Descriptor
from safeguard.store.base import utcnow
from safeguard.store.engine import Database
from safeguard.store.registry_models import BlobLink, Manifest, Repository, Tag, Upload

_repos = cast(sa.Table, Repository.__table__)
_manifests = cast(sa.Table, Manifest.__table__)
_tags = cast(sa.Table, Tag.__table__)
_links = cast(sa.Table, BlobLink.__table__)
_uploads = cast(sa.Table, Upload.__table__)


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    digest: str
    media_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class NewManifest:
    digest: str
    media_type: str
    artifact_type: str | None
    subject_digest: str | None
    annotations: dict[str, str]
    content: bytes


@dataclass(frozen=True, slots=True)
class UploadRecord:
    uuid: str
    repository: str
    offset: int
    digest_algorithm: str
    started_at: datetime


_BY_TAG = (
    sa.select(_manifests.c.digest, _manifests.c.media_type, _manifests.c.content)
    .select_from(
        _tags.join(_repos, _tags.c.repository_id == _repos.c.id).join(
            _manifests, _tags.c.manifest_id == _manifests.c.id
        )
    )
    .where(_repos.c.name == sa.bindparam("repo"), _tags.c.name == sa.bindparam("tag"))
)
_BY_DIGEST = (
    sa.select(_manifests.c.digest, _manifests.c.media_type, _manifests.c.content)
    .select_from(_manifests.join(_repos, _manifests.c.repository_id == _repos.c.id))
    .where(_repos.c.name == sa.bindparam("repo"), _manifests.c.digest == sa.bindparam("digest"))
)
_BLOB_SIZE = (
    sa.select(_links.c.size)
    .select_from(_links.join(_repos, _links.c.repository_id == _repos.c.id))
    .where(_repos.c.name == sa.bindparam("repo"), _links.c.digest == sa.bindparam("digest"))
)
_REPO_ID = sa.select(_repos.c.id).where(_repos.c.name == sa.bindparam("repo"))


class _SqliteReads:
    """The hottest lookups (manifest by tag or digest, blob size) on SQLite, through one raw
    ``sqlite3`` connection per worker thread in autocommit, read-only mode.

    SQLAlchemy's pool, events and result machinery cost about twenty times the query itself
    (~110 us against ~5 us), all of it holding the GIL the event loop needs. WAL mode lets these
    readers run alongside the writer; each SELECT is its own snapshot.
    """

    BY_TAG = (
        "SELECT m.digest, m.media_type, m.content FROM registry_tags AS t "
        "JOIN registry_repositories AS r ON t.repository_id = r.id "
        "JOIN registry_manifests AS m ON t.manifest_id = m.id "
        "WHERE r.name = ? AND t.name = ?"
    )
    BY_DIGEST = (
        "SELECT m.digest, m.media_type, m.content FROM registry_manifests AS m "
        "JOIN registry_repositories AS r ON m.repository_id = r.id "
        "WHERE r.name = ? AND m.digest = ?"
    )
    BLOB_SIZE = (
        "SELECT l.size FROM registry_blob_links AS l "
        "JOIN registry_repositories AS r ON l.repository_id = r.id "
        "WHERE r.name = ? AND l.digest = ?"
    )

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA query_only=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def one(self, sql: str, params: tuple[str, str]) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._connection().execute(sql, params).fetchone()
        return row


def _fast_reads(db: Database) -> _SqliteReads | None:
    url = db.engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return _SqliteReads(str(url.database))


def _insert(conn: Connection, table: sa.Table) -> Any:
    """A dialect insert that supports ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


class RegistryMetadata:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._fast = _fast_reads(db)

    # -- repositories ----------------------------------------------------------------------
    @staticmethod
    def _repository_id(conn: Connection, repo: str) -> int | None:
        value = conn.execute(_REPO_ID, {"repo": repo}).scalar()
        return int(value) if value is not None else None

    @classmethod
    def _ensure_repository(cls, conn: Connection, repo: str) -> int:
        conn.execute(
            _insert(conn, _repos)
            .values(name=repo, created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["name"])
        )
        repo_id = cls._repository_id(conn, repo)
        assert repo_id is not None
        return repo_id

    def repository_exists(self, repo: str) -> bool:
        with self.db.read() as conn:
            return self._repository_id(conn, repo) is not None

    def list_repositories(self, limit: int | None, last: str | None) -> list[str]:
        query = sa.select(_repos.c.name).order_by(_repos.c.name)
        if last:
            query = query.where(_repos.c.name > last)
        if limit is not None:
            query = query.limit(limit)
        with self.db.read() as conn:
            return list(conn.execute(query).scalars())

    # -- manifests and tags ----------------------------------------------------------------
    def manifest_by_tag(self, repo: str, tag: str) -> ManifestRecord | None:
        row: Any
        if self._fast is not None:
            row = self._fast.one(_SqliteReads.BY_TAG, (repo, tag))
        else:
            with self.db.read() as conn:
                row = conn.execute(_BY_TAG, {"repo": repo, "tag": tag}).first()
        return ManifestRecord(row[0], row[1], bytes(row[2])) if row else None

    def manifest_by_digest(self, repo: str, digest: str) -> ManifestRecord | None:
        row: Any
        if self._fast is not None:
            row = self._fast.one(_SqliteReads.BY_DIGEST, (repo, digest))
        else:
            with self.db.read() as conn:
                row = conn.execute(_BY_DIGEST, {"repo": repo, "digest": digest}).first()
        return ManifestRecord(row[0], row[1], bytes(row[2])) if row else None

    def missing_references(
        self, repo: str, blobs: Sequence[Descriptor], manifests: Sequence[Descriptor]
    ) -> tuple[list[Descriptor], list[Descriptor]]:
        """Which ``blobs`` are not linked in ``repo``, and which child ``manifests`` it lacks.
        A blob whose stored size differs from its descriptor counts as missing."""
        with self.db.read() as conn:
            return self._missing(conn, repo, blobs, manifests)

    @classmethod
    def _missing(
        cls,
        conn: Connection,
        repo: str,
        blobs: Sequence[Descriptor],
        manifests: Sequence[Descriptor],
    ) -> tuple[list[Descriptor], list[Descriptor]]:
        repo_id = cls._repository_id(conn, repo)
        if repo_id is None:
            return list(blobs), list(manifests)
        sizes: dict[str, int] = {}
        wanted = sorted({str(d.digest) for d in blobs})
        for batch in _batches(wanted, 500):
            rows = conn.execute(
                sa.select(_links.c.digest, _links.c.size).where(
                    _links.c.repository_id == repo_id, _links.c.digest.in_(batch)
                )
            )
            sizes.update((row[0], int(row[1])) for row in rows)
        missing_blobs = [d for d in blobs if sizes.get(str(d.digest)) != d.size]
        present: dict[str, int] = {}
        wanted = sorted({str(d.digest) for d in manifests})
        for batch in _batches(wanted, 500):
            rows = conn.execute(
                sa.select(_manifests.c.digest, _manifests.c.size).where(
                    _manifests.c.repository_id == repo_id, _manifests.c.digest.in_(batch)
                )
            )
            present.update((row[0], int(row[1])) for row in rows)
        missing_manifests = [d for d in manifests if present.get(str(d.digest)) != d.size]
        return missing_blobs, missing_manifests

    def put_manifest(
        self,
        repo: str,
        manifest: NewManifest,
        tags: Iterable[str],
        blobs: Sequence[Descriptor],
        children: Sequence[Descriptor],
    ) -> tuple[list[Descriptor], list[Descriptor]]:
        """Store a manifest and point ``tags`` at it, in one transaction, after checking (inside
        that transaction) that everything it references exists. Returns what is missing; when
        anything is, nothing is written."""
        with self.db.write() as conn:
            missing = self._missing(conn, repo, blobs, children)
            if missing[0] or missing[1]:
                return missing
            repo_id = self._ensure_repository(conn, repo)
            now = utcnow()
            conn.execute(
                _insert(conn, _manifests)
                .values(
                    repository_id=repo_id,
                    digest=manifest.digest,
                    media_type=manifest.media_type,
                    artifact_type=manifest.artifact_type,
                    subject_digest=manifest.subject_digest,
                    annotations=manifest.annotations or None,
                    size=len(manifest.content),
                    content=manifest.content,
                    created_at=now,
                )
                .on_conflict_do_nothing(index_elements=["repository_id", "digest"])
            )
            manifest_id = conn.execute(
                sa.select(_manifests.c.id).where(
                    _manifests.c.repository_id == repo_id, _manifests.c.digest == manifest.digest
                )
            ).scalar_one()
            for tag in tags:
                stmt = _insert(conn, _tags).values(
                    repository_id=repo_id, name=tag, manifest_id=manifest_id, updated_at=now
                )
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["repository_id", "name"],
                        set_={"manifest_id": manifest_id, "updated_at": now},
                    )
                )
        return [], []

    def delete_manifest(self, repo: str, digest: str) -> bool:
        """Delete a manifest and every tag pointing at it."""
        with self.db.write() as conn:
            repo_id = self._repository_id(conn, repo)
            if repo_id is None:
                return False
            manifest_id = conn.execute(
                sa.select(_manifests.c.id).where(
                    _manifests.c.repository_id == repo_id, _manifests.c.digest == digest
                )
            ).scalar()
            if manifest_id is None:
                return False
            conn.execute(sa.delete(_tags).where(_tags.c.manifest_id == manifest_id))
            conn.execute(sa.delete(_manifests).where(_manifests.c.id == manifest_id))
            return True

    def delete_tag(self, repo: str, tag: str) -> bool:
        with self.db.write() as conn:
            repo_id = self._repository_id(conn, repo)
            if repo_id is None:
                return False
            result = conn.execute(
                sa.delete(_tags).where(_tags.c.repository_id == repo_id, _tags.c.name == tag)
            )
            return bool(result.rowcount)

    def list_tags(self, repo: str, limit: int | None, last: str | None) -> list[str] | None:
        """Tags in byte order after ``last``; ``None`` when the repository does not exist."""
        with self.db.read() as conn:
            repo_id = self._repository_id(conn, repo)
            if repo_id is None:
                return None
            query = sa.select(_tags.c.name).where(_tags.c.repository_id == repo_id)
            if last:
                query = query.where(_tags.c.name > last)
            query = query.order_by(_tags.c.name)
            if limit is not None:
                query = query.limit(limit)
            return list(conn.execute(query).scalars())

    def referrers(self, repo: str, subject: str, artifact_type: str | None) -> list[Descriptor]:
        query = (
            sa.select(
                _manifests.c.media_type,
                _manifests.c.digest,
                _manifests.c.size,
                _manifests.c.annotations,
                _manifests.c.artifact_type,
            )
            .select_from(_manifests.join(_repos, _manifests.c.repository_id == _repos.c.id))
            .where(_repos.c.name == repo, _manifests.c.subject_digest == subject)
            .order_by(_manifests.c.id)
        )
        if artifact_type is not None:
            query = query.where(_manifests.c.artifact_type == artifact_type)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [
            Descriptor(
                media_type=row[0],
                digest=Digest.parse(row[1]),
                size=int(row[2]),
                annotations=dict(row[3] or {}),
                artifact_type=row[4],
            )
            for row in rows
        ]

    # -- blobs -----------------------------------------------------------------------------
    def blob_size(self, repo: str, digest: str) -> int | None:
        if self._fast is not None:
            row = self._fast.one(_SqliteReads.BLOB_SIZE, (repo, digest))
            return int(row[0]) if row else None
        with self.db.read() as conn:
            value = conn.execute(_BLOB_SIZE, {"repo": repo, "digest": digest}).scalar()
        return int(value) if value is not None else None

    def link_blob(self, repo: str, digest: str, size: int) -> None:
        with self.db.write() as conn:
            self._link(conn, repo, digest, size)

    @classmethod
    def _link(cls, conn: Connection, repo: str, digest: str, size: int) -> None:
        repo_id = cls._ensure_repository(conn, repo)
        conn.execute(
            _insert(conn, _links)
            .values(repository_id=repo_id, digest=digest, size=size, created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["repository_id", "digest"])
        )

    def unlink_blob(self, repo: str, digest: str) -> bool:
        with self.db.write() as conn:
            repo_id = self._repository_id(conn, repo)
            if repo_id is None:
                return False
            condition = sa.and_(_links.c.repository_id == repo_id, _links.c.digest == digest)
            result = conn.execute(sa.delete(_links).where(condition))
            return bool(result.rowcount)

    # -- upload sessions -------------------------------------------------------------------
    def create_upload(self, upload_id: str, repo: str, algorithm: str) -> None:
        now = utcnow()
        with self.db.write() as conn:
            conn.execute(
                sa.insert(_uploads).values(
                    uuid=upload_id,
                    repository=repo,
                    offset=0,
                    digest_algorithm=algorithm,
                    started_at=now,
                    updated_at=now,
                )
            )

    def get_upload(self, upload_id: str) -> UploadRecord | None:
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(
                    _uploads.c.uuid,
                    _uploads.c.repository,
                    _uploads.c.offset,
                    _uploads.c.digest_algorithm,
                    _uploads.c.started_at,
                ).where(_uploads.c.uuid == upload_id)
            ).first()
        return UploadRecord(row[0], row[1], int(row[2]), row[3], row[4]) if row else None

    def set_upload_offset(self, upload_id: str, offset: int) -> None:
        with self.db.write() as conn:
            conn.execute(
                sa.update(_uploads)
                .where(_uploads.c.uuid == upload_id)
                .values(offset=offset, updated_at=utcnow())
            )

    def finish_upload(self, upload_id: str, repo: str, digest: str, size: int) -> None:
        """Link the finished blob into its repository and end the session, atomically."""
        with self.db.write() as conn:
            self._link(conn, repo, digest, size)
            conn.execute(sa.delete(_uploads).where(_uploads.c.uuid == upload_id))

    def delete_upload(self, upload_id: str) -> bool:
        with self.db.write() as conn:
            result = conn.execute(sa.delete(_uploads).where(_uploads.c.uuid == upload_id))
            return bool(result.rowcount)

    def stale_uploads(self, older_than: timedelta) -> list[str]:
        cutoff = utcnow() - older_than
        with self.db.read() as conn:
            return list(
                conn.execute(
                    sa.select(_uploads.c.uuid).where(_uploads.c.updated_at < cutoff)
                ).scalars()
            )


def _batches(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
