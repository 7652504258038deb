"""Registry metadata: repositories, manifests, tags, per-repository blob links, uploads.

Revision ID: 0001_registry
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_registry"
down_revision = None
branch_labels = None
depends_on = None


def _ordered(length: int) -> sa.types.TypeEngine[str]:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "registry_repositories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", _ordered(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_repositories")),
        sa.UniqueConstraint("name", name=op.f("uq_registry_repositories_name")),
    )
    op.create_table(
        "registry_manifests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(200), nullable=False),
        sa.Column("media_type", sa.String(255), nullable=False),
        sa.Column("artifact_type", sa.String(255), nullable=True),
        sa.Column("subject_digest", sa.String(200), nullable=True),
        sa.Column("annotations", sa.JSON(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["registry_repositories.id"],
            name=op.f("fk_registry_manifests_repository_id_registry_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_manifests")),
        sa.UniqueConstraint(
            "repository_id", "digest", name=op.f("uq_registry_manifests_repository_id_digest")
        ),
    )
    op.create_index(
        op.f("ix_registry_manifests_repository_id_subject_digest"),
        "registry_manifests",
        ["repository_id", "subject_digest"],
    )
    op.create_table(
        "registry_tags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("name", _ordered(128), nullable=False),
        sa.Column("manifest_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["manifest_id"],
            ["registry_manifests.id"],
            name=op.f("fk_registry_tags_manifest_id_registry_manifests"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["registry_repositories.id"],
            name=op.f("fk_registry_tags_repository_id_registry_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_tags")),
        sa.UniqueConstraint(
            "repository_id", "name", name=op.f("uq_registry_tags_repository_id_name")
        ),
    )
    op.create_index(op.f("ix_registry_tags_manifest_id"), "registry_tags", ["manifest_id"])
    op.create_table(
        "registry_blob_links",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(200), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["registry_repositories.id"],
            name=op.f("fk_registry_blob_links_repository_id_registry_repositories"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repository_id", "digest", name=op.f("pk_registry_blob_links")),
    )
    op.create_table(
        "registry_uploads",
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("repository", sa.String(255), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("digest_algorithm", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("uuid", name=op.f("pk_registry_uploads")),
    )
    op.create_index(op.f("ix_registry_uploads_started_at"), "registry_uploads", ["started_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_registry_uploads_started_at"), table_name="registry_uploads")
    op.drop_table("registry_uploads")
    op.drop_table("registry_blob_links")
    op.drop_index(op.f("ix_registry_tags_manifest_id"), table_name="registry_tags")
    op.drop_table("registry_tags")
    op.drop_index(
        op.f("ix_registry_manifests_repository_id_subject_digest"), table_name="registry_manifests"
    )
    op.drop_table("registry_manifests")
    op.drop_table("registry_repositories")
