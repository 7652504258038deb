"""Policy versions: every applied safeguard.yaml, its normalised form, diff, and public files.

Revision ID: 0003_policy
Revises: 0002_tlog
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_policy"
down_revision = "0002_tlog"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_versions",
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.String(255), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("source", sa.String(1024), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("normalized", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("diff", sa.Text(), nullable=False),
        sa.Column("rollback_of", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_policy_versions")),
    )
    op.create_table(
        "policy_blobs",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_policy_blobs")),
    )
    op.create_table(
        "policy_files",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["version"],
            ["policy_versions.number"],
            name=op.f("fk_policy_files_version_policy_versions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sha256"],
            ["policy_blobs.sha256"],
            name=op.f("fk_policy_files_sha256_policy_blobs"),
        ),
        sa.PrimaryKeyConstraint("version", "path", name=op.f("pk_policy_files")),
    )
    op.create_index(op.f("ix_policy_files_sha256"), "policy_files", ["sha256"])


def downgrade() -> None:
    op.drop_index(op.f("ix_policy_files_sha256"), table_name="policy_files")
    op.drop_table("policy_files")
    op.drop_table("policy_blobs")
    op.drop_table("policy_versions")
