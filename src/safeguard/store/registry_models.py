"""Tables of the built-in OCI registry (distribution-spec v1.1): the metadata half of storage.

Blob bytes live in the content-addressed filesystem store (``safeguard.registry.blobstore``);
these tables say which repository may see which blob (blobs are scoped per repository, as the
spec's "Pulling blobs" and "Mounting a blob" sections require), hold each manifest's exact bytes
with the fields the referrers API filters on, map tags to manifests, and track upload sessions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from safeguard.store.base import Base, ordered_text, utcnow

DIGEST_LENGTH = 200  # "sha512:" + 128 hex, with room to spare
MEDIA_TYPE_LENGTH = 255
REPOSITORY_NAME_LENGTH = 255
TAG_LENGTH = 128


class Repository(Base):
    __tablename__ = "registry_repositories"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(ordered_text(REPOSITORY_NAME_LENGTH), unique=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class Manifest(Base):
    """A manifest or index, stored byte for byte as pushed (spec: "MUST store the manifest in
    the exact byte representation provided by the client")."""

    __tablename__ = "registry_manifests"
    __table_args__ = (
        sa.UniqueConstraint("repository_id", "digest"),
        sa.Index(None, "repository_id", "subject_digest"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    repository_id: Mapped[int] = mapped_column(
        sa.ForeignKey("registry_repositories.id", ondelete="CASCADE")
    )
    digest: Mapped[str] = mapped_column(sa.String(DIGEST_LENGTH))
    media_type: Mapped[str] = mapped_column(sa.String(MEDIA_TYPE_LENGTH))
    # The artifact type the referrers API reports: ``artifactType``, else the config media type.
    artifact_type: Mapped[str | None] = mapped_column(sa.String(MEDIA_TYPE_LENGTH))
    subject_digest: Mapped[str | None] = mapped_column(sa.String(DIGEST_LENGTH))
    annotations: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    size: Mapped[int] = mapped_column(sa.BigInteger)
    content: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class Tag(Base):
    __tablename__ = "registry_tags"
    __table_args__ = (sa.UniqueConstraint("repository_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    repository_id: Mapped[int] = mapped_column(
        sa.ForeignKey("registry_repositories.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(ordered_text(TAG_LENGTH))
    manifest_id: Mapped[int] = mapped_column(
        sa.ForeignKey("registry_manifests.id", ondelete="CASCADE"), index=True
    )
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class BlobLink(Base):
    """A blob made visible to one repository by an upload or a cross-repository mount."""

    __tablename__ = "registry_blob_links"

    repository_id: Mapped[int] = mapped_column(
        sa.ForeignKey("registry_repositories.id", ondelete="CASCADE"), primary_key=True
    )
    digest: Mapped[str] = mapped_column(sa.String(DIGEST_LENGTH), primary_key=True)
    size: Mapped[int] = mapped_column(sa.BigInteger)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class Upload(Base):
    """An upload session. It names its repository rather than referencing a row, so that an
    upload that is never finished does not create a repository."""

    __tablename__ = "registry_uploads"

    uuid: Mapped[str] = mapped_column(sa.String(36), primary_key=True)
    repository: Mapped[str] = mapped_column(sa.String(REPOSITORY_NAME_LENGTH))
    offset: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    digest_algorithm: Mapped[str] = mapped_column(sa.String(16), default="sha256")
    started_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), default=utcnow, index=True
    )
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
